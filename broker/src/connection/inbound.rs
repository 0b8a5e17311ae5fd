//! Handling of the packets a connected client sends: PUBLISH and its QoS flows, acknowledgements
//! of our deliveries, SUBSCRIBE / UNSUBSCRIBE with retained replay, PINGREQ, DISCONNECT.

use std::sync::Arc;

use tracing::{debug, warn};

use super::Exit;
use super::io::PacketStream;
use crate::codec::QoS;
use crate::codec::v4::{Packet, Publish, SubAck, Subscribe, SubscribeReturnCode, Unsubscribe};
use crate::context::BrokerContext;
use crate::message::Message;
use crate::session::Session;
use crate::stats::Stats;

/// The connected state of one client: its session and the broker it talks to.
#[derive(Debug)]
pub(crate) struct Connection {
    ctx: Arc<BrokerContext>,
    session: Arc<Session>,
    /// Scratch space for retained replay, reused across SUBSCRIBEs.
    retained: Vec<Message>,
}

impl Connection {
    pub(crate) fn new(ctx: Arc<BrokerContext>, session: Arc<Session>) -> Self {
        Connection {
            ctx,
            session,
            retained: Vec::new(),
        }
    }

    pub(crate) fn ctx(&self) -> &BrokerContext {
        &self.ctx
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Handles one packet from the client, queueing any answer in `stream`'s write buffer.
    /// Returns `Some(exit)` when the connection must end.
    pub(crate) fn handle(&mut self, packet: Packet, stream: &mut PacketStream) -> Option<Exit> {
        Stats::add(&self.ctx.stats.packets_received, 1);
        let answer = match packet {
            Packet::Publish(publish) => self.on_publish(publish),
            Packet::PubAck(id) => {
                if !self.session.with_state(|st| st.outgoing.on_puback(id)) {
                    debug!(packet_id = id, "PUBACK for an unknown packet id");
                }
                None
            }
            Packet::PubRec(id) => {
                if !self.session.with_state(|st| st.outgoing.on_pubrec(id)) {
                    debug!(packet_id = id, "PUBREC for an unknown packet id");
                }
                Some(Packet::PubRel(id))
            }
            Packet::PubComp(id) => {
                if !self.session.with_state(|st| st.outgoing.on_pubcomp(id)) {
                    debug!(packet_id = id, "PUBCOMP for an unknown packet id");
                }
                None
            }
            Packet::PubRel(id) => {
                self.session.with_state(|st| st.incoming_qos2.remove(&id));
                Some(Packet::PubComp(id))
            }
            Packet::Subscribe(subscribe) => Some(self.on_subscribe(subscribe)),
            Packet::Unsubscribe(unsubscribe) => Some(self.on_unsubscribe(unsubscribe)),
            Packet::PingReq => Some(Packet::PingResp),
            Packet::Disconnect => return Some(Exit::Disconnect),
            Packet::Connect(_) => {
                warn!("second CONNECT [MQTT-3.1.0-2]");
                Stats::add(&self.ctx.stats.protocol_errors, 1);
                return Some(Exit::ProtocolError);
            }
            other @ (Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => {
                warn!(
                    packet = other.name(),
                    "server-to-client packet sent by a client"
                );
                Stats::add(&self.ctx.stats.protocol_errors, 1);
                return Some(Exit::ProtocolError);
            }
        };
        if let Some(answer) = answer
            && let Err(error) = stream.queue(&answer)
        {
            warn!(%error, "could not encode an answer");
            return Some(Exit::ProtocolError);
        }
        None
    }

    fn on_publish(&mut self, publish: Publish) -> Option<Packet> {
        Stats::add(&self.ctx.stats.publish_received, 1);
        let message = Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
        };
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => {
                self.ctx.router.publish(&message);
                None
            }
            (QoS::AtLeastOnce, Some(id)) => {
                self.ctx.router.publish(&message);
                Some(Packet::PubAck(id))
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // Method A of §4.3.3: deliver on first receipt, remember the id until PUBREL so
                // a re-sent PUBLISH is not delivered twice.
                if self.session.with_state(|st| st.incoming_qos2.insert(id)) {
                    self.ctx.router.publish(&message);
                }
                Some(Packet::PubRec(id))
            }
        }
    }

    fn on_subscribe(&mut self, subscribe: Subscribe) -> Packet {
        let mut return_codes = Vec::with_capacity(subscribe.filters.len());
        for (filter, qos) in &subscribe.filters {
            self.ctx.router.subscribe(&self.session, filter, *qos);
            return_codes.push(SubscribeReturnCode::Success(*qos));
        }
        // Retained replay ([MQTT-3.3.1-6]) goes through the session queue, so it is written after
        // the SUBACK that is queued first.
        for (filter, qos) in &subscribe.filters {
            self.ctx
                .router
                .retained_matching(filter, &mut self.retained);
            for message in self.retained.drain(..) {
                let _ = self.session.deliver(message.for_subscriber(*qos, true));
            }
        }
        Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            return_codes,
        })
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Packet {
        for filter in &unsubscribe.filters {
            self.ctx.router.unsubscribe(&self.session, filter);
        }
        Packet::UnsubAck(unsubscribe.packet_id)
    }
}

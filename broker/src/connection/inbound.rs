//! Handling of the packets a connected client sends: PUBLISH and its QoS flows, acknowledgements
//! of our deliveries, SUBSCRIBE / UNSUBSCRIBE with retained replay, PINGREQ, DISCONNECT — with
//! the topic checks and events of the plugin contract at the moments aMQTT fires them.

use std::sync::Arc;

use bytestring::ByteString;
use midge_proto::plugin::v1 as pb;
use tracing::{debug, info, warn};

use super::Exit;
use super::io::PacketStream;
use crate::codec::QoS;
use crate::codec::v4::{Packet, Publish, SubAck, Subscribe, SubscribeReturnCode, Unsubscribe};
use crate::context::BrokerContext;
use crate::dispatch::{self, Origin};
use crate::message::Message;
use crate::plugin::decision::Action;
use crate::plugin::{TopicQuery, emit};
use crate::session::Session;
use crate::stats::Stats;

/// The connected state of one client: its session and the broker it talks to.
#[derive(Debug)]
pub(crate) struct Connection {
    ctx: Arc<BrokerContext>,
    session: Arc<Session>,
    client_id: ByteString,
    username: Option<ByteString>,
    listener: Arc<str>,
    /// Scratch space for retained replay, reused across SUBSCRIBEs.
    retained: Vec<Message>,
}

impl Connection {
    pub(crate) fn new(
        ctx: Arc<BrokerContext>,
        session: Arc<Session>,
        username: Option<ByteString>,
        listener: Arc<str>,
    ) -> Self {
        Connection {
            client_id: session.client_id().clone(),
            ctx,
            session,
            username,
            listener,
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
    pub(crate) async fn handle(
        &mut self,
        packet: Packet,
        stream: &mut PacketStream,
    ) -> Option<Exit> {
        Stats::add(&self.ctx.stats.packets_received, 1);
        let answer = match packet {
            Packet::Publish(publish) => return self.on_publish(publish, stream).await,
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
            Packet::Subscribe(subscribe) => return self.on_subscribe(subscribe, stream).await,
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
        answer.and_then(|answer| queue(stream, &answer))
    }

    fn query<'a>(
        &'a self,
        topic: &'a ByteString,
        action: Action,
        qos: QoS,
        retain: bool,
    ) -> TopicQuery<'a> {
        TopicQuery {
            client_id: &self.client_id,
            username: self.username.as_ref(),
            topic,
            action,
            qos: qos as u8,
            retain,
            listener: &self.listener,
        }
    }

    /// PUBLISH: the QoS acknowledgement, `message_received` (denied ones too), the PUBLISH check
    /// (a denied message is dropped, not retained), then `message_broadcast` and dispatch.
    async fn on_publish(&mut self, publish: Publish, stream: &mut PacketStream) -> Option<Exit> {
        Stats::add(&self.ctx.stats.publish_received, 1);
        let message = Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
        };
        let (ack, first_receipt) = match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => (None, true),
            (QoS::AtLeastOnce, Some(id)) => (Some(Packet::PubAck(id)), true),
            // Method A of §4.3.3: deliver on first receipt, remember the id until PUBREL so a
            // re-sent PUBLISH is not delivered twice.
            (QoS::ExactlyOnce, Some(id)) => (
                Some(Packet::PubRec(id)),
                self.session.with_state(|st| st.incoming_qos2.insert(id)),
            ),
        };
        if !first_receipt {
            return ack.and_then(|ack| queue(stream, &ack));
        }
        if let Some(exit) = ack.and_then(|ack| queue(stream, &ack)) {
            return Some(exit);
        }
        let origin = Origin {
            client_id: &self.client_id,
            username: self.username.as_deref(),
        };
        let event = |kind: fn(pb::MessageEvent) -> pb::event::Body, payload: bool| {
            kind(emit::message_event(
                origin.client_id,
                origin.username,
                &message,
                payload,
            ))
        };
        let plugins = &self.ctx.plugins;
        plugins.emit_message(
            pb::EventKind::MessageReceived,
            |p| event(pb::event::Body::MessageReceived, p),
            &message.topic,
        );
        // Clients may not write the broker's own statistics.
        let allowed = !message.topic.starts_with("$SYS")
            && dispatch::topic_allowed(
                &self.ctx,
                self.session.decisions(),
                &self.query(&message.topic, Action::Publish, message.qos, message.retain),
            )
            .await;
        if !allowed {
            info!(topic = %message.topic, "publish denied: dropped");
            return None;
        }
        plugins.emit_message(
            pb::EventKind::MessageBroadcast,
            |p| event(pb::event::Body::MessageBroadcast, p),
            &message.topic,
        );
        dispatch::dispatch(&self.ctx, origin, &message).await;
        None
    }

    /// SUBSCRIBE: the SUBSCRIBE check per filter (denied → 0x80, no retained replay, no event),
    /// SUBACK, `client_subscribed` per granted filter, then retained replay through the RECEIVE
    /// check.
    async fn on_subscribe(
        &mut self,
        subscribe: Subscribe,
        stream: &mut PacketStream,
    ) -> Option<Exit> {
        let mut return_codes = Vec::with_capacity(subscribe.filters.len());
        for (filter, qos) in &subscribe.filters {
            let query = self.query(filter, Action::Subscribe, *qos, false);
            if dispatch::topic_allowed(&self.ctx, self.session.decisions(), &query).await {
                self.ctx.router.subscribe(&self.session, filter, *qos);
                return_codes.push(SubscribeReturnCode::Success(*qos));
            } else {
                info!(%filter, "subscription denied");
                return_codes.push(SubscribeReturnCode::Failure);
            }
        }
        let suback = Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            return_codes: return_codes.clone(),
        });
        if let Some(exit) = queue(stream, &suback) {
            return Some(exit);
        }
        let granted = subscribe.filters.iter().zip(&return_codes).filter_map(
            |((filter, requested), code)| match code {
                SubscribeReturnCode::Success(qos) => Some((filter, *requested, *qos)),
                SubscribeReturnCode::Failure => None,
            },
        );
        for (filter, requested, qos) in granted {
            self.ctx.plugins.emit(pb::EventKind::ClientSubscribed, || {
                pb::event::Body::ClientSubscribed(pb::ClientSubscribed {
                    client_id: self.client_id.to_string(),
                    username: self.username.as_ref().map(|u| u.to_string()),
                    topic_filter: filter.to_string(),
                    requested_qos: requested as u32,
                    granted_qos: qos as u32,
                })
            });
            // Retained replay ([MQTT-3.3.1-6]) goes through the session queue, so it is written
            // after the SUBACK queued above.
            self.ctx
                .router
                .retained_matching(filter, &mut self.retained);
            for message in std::mem::take(&mut self.retained) {
                if dispatch::may_receive(&self.ctx, &self.session, &message, qos).await {
                    let _ = self.session.deliver(message.for_subscriber(qos, true));
                }
            }
        }
        None
    }

    /// UNSUBSCRIBE: removes each filter, fires `client_unsubscribed` per filter (even if it was
    /// not subscribed, as aMQTT does), then UNSUBACK.
    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Packet {
        for filter in &unsubscribe.filters {
            self.ctx.router.unsubscribe(&self.session, filter);
            self.ctx
                .plugins
                .emit(pb::EventKind::ClientUnsubscribed, || {
                    pb::event::Body::ClientUnsubscribed(pb::ClientUnsubscribed {
                        client_id: self.client_id.to_string(),
                        username: self.username.as_ref().map(|u| u.to_string()),
                        topic_filter: filter.to_string(),
                    })
                });
        }
        Packet::UnsubAck(unsubscribe.packet_id)
    }
}

/// Queues `packet`; an encoding failure ends the connection.
fn queue(stream: &mut PacketStream, packet: &Packet) -> Option<Exit> {
    match stream.queue(packet) {
        Ok(()) => None,
        Err(error) => {
            warn!(%error, "could not encode an answer");
            Some(Exit::ProtocolError)
        }
    }
}

//! Handling of the packets a connected client sends: PUBLISH and its QoS flows, acknowledgements
//! of our deliveries, SUBSCRIBE / UNSUBSCRIBE with retained replay, PINGREQ, DISCONNECT — with
//! the topic checks and events of the plugin contract at the moments aMQTT fires them.

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Exit;
use super::io::PacketStream;
use crate::backpressure;
use crate::codec::QoS;
use crate::codec::v5::{
    AckProperties, Packet, PubResponse, Publish, ReasonCode, RetainHandling, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use crate::context::BrokerContext;
use crate::dispatch;
use crate::message::Origin;
use crate::message::{Message, MessageProperties};
use crate::plugin::decision::Action;
use crate::plugin::emit::EventClock;
use crate::plugin::{MessageMoment, TopicQuery};
use crate::session::Session;
use crate::session::Subscription;
use crate::stats::Stats;

/// The connected state of one client: its session and the broker it talks to.
#[derive(Debug)]
pub(crate) struct Connection {
    ctx: Arc<BrokerContext>,
    session: Arc<Session>,
    username: Option<ByteString>,
    listener: Arc<str>,
    /// The MQTT 5 Session Expiry Interval accepted at CONNECT (0 for 3.1.1).
    session_expiry: u32,
    /// The keep alive in force, in seconds (kept here for the connection task, where these
    /// bytes fill padding).
    pub(crate) keep_alive: u16,
    /// The Clean Start (3.1.1: clean session) flag of the CONNECT.
    pub(crate) clean_start: bool,
    /// MQTT 5 topic aliases the client set: slot `a - 1` holds alias `a`'s topic. Grows up to
    /// `topic-alias-maximum` as aliases are used.
    aliases: Box<[Option<ByteString>]>,
}

impl Connection {
    pub(crate) fn new(
        ctx: Arc<BrokerContext>,
        session: Arc<Session>,
        username: Option<ByteString>,
        listener: Arc<str>,
        session_expiry: u32,
    ) -> Self {
        Connection {
            ctx,
            session,
            username,
            listener,
            session_expiry,
            keep_alive: 0,
            clean_start: false,
            aliases: Box::default(),
        }
    }

    pub(crate) fn ctx(&self) -> &BrokerContext {
        &self.ctx
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The broker, shared.
    pub(crate) fn ctx_arc(&self) -> &Arc<BrokerContext> {
        &self.ctx
    }

    /// The client identifier.
    pub(crate) fn client_id(&self) -> &ByteString {
        self.session.client_id()
    }

    /// The user name of the CONNECT.
    pub(crate) fn username(&self) -> Option<&ByteString> {
        self.username.as_ref()
    }

    /// The listener the client connected to.
    pub(crate) fn listener(&self) -> &Arc<str> {
        &self.listener
    }

    /// Handles one packet from the client, queueing any answer in `stream`'s write buffer.
    /// `read` is the time of the socket read the packet came in (the time of its
    /// `message_received` event). Returns `Some(exit)` when the connection must end.
    pub(crate) async fn handle(
        &mut self,
        packet: Packet,
        stream: &mut PacketStream,
        read: &mut EventClock,
    ) -> Option<Exit> {
        Stats::add(&self.ctx.stats.packets_received, 1);
        let answer = match packet {
            Packet::Publish(publish) => return self.on_publish(publish, stream, read).await,
            Packet::PubAck(ack) => {
                if !self
                    .session
                    .with_state(|st| st.outgoing.on_puback(ack.packet_id))
                {
                    debug!(packet_id = ack.packet_id, "PUBACK for an unknown packet id");
                }
                None
            }
            Packet::PubRec(rec) if rec.reason_code.is_error() => {
                // An error PUBREC ends the QoS 2 flow: no PUBREL (MQTT 5 §4.3.3).
                self.session
                    .with_state(|st| st.outgoing.forget(rec.packet_id));
                None
            }
            Packet::PubRec(rec) => {
                if !self
                    .session
                    .with_state(|st| st.outgoing.on_pubrec(rec.packet_id))
                {
                    debug!(packet_id = rec.packet_id, "PUBREC for an unknown packet id");
                }
                Some(Packet::PubRel(PubResponse::success(rec.packet_id)))
            }
            Packet::PubComp(comp) => {
                if !self
                    .session
                    .with_state(|st| st.outgoing.on_pubcomp(comp.packet_id))
                {
                    debug!(
                        packet_id = comp.packet_id,
                        "PUBCOMP for an unknown packet id"
                    );
                }
                None
            }
            Packet::PubRel(rel) => {
                let known = self
                    .session
                    .with_state(|st| st.incoming_qos2.remove(&rel.packet_id));
                let mut comp = PubResponse::success(rel.packet_id);
                if !known {
                    comp.reason_code = ReasonCode::PacketIdentifierNotFound;
                }
                Some(Packet::PubComp(comp))
            }
            Packet::Subscribe(subscribe) => return self.on_subscribe(subscribe, stream).await,
            Packet::Unsubscribe(unsubscribe) => Some(self.on_unsubscribe(unsubscribe)),
            Packet::PingReq => Some(Packet::PingResp),
            Packet::Disconnect(disconnect) => return Some(self.on_disconnect(&disconnect)),
            Packet::Auth(_) => {
                // Re-authentication needs an exchange begun in CONNECT ([MQTT-4.12.0-6]);
                // the broker does not offer re-authentication.
                warn!("AUTH after CONNECT: re-authentication is not supported");
                return Some(self.protocol_error(ReasonCode::ProtocolError));
            }
            Packet::Connect(_) => {
                warn!("second CONNECT [MQTT-3.1.0-2]");
                return Some(self.protocol_error(ReasonCode::ProtocolError));
            }
            other @ (Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => {
                warn!(
                    packet = other.name(),
                    "server-to-client packet sent by a client"
                );
                return Some(self.protocol_error(ReasonCode::ProtocolError));
            }
        };
        answer.and_then(|answer| queue(stream, &answer))
    }

    fn protocol_error(&self, reason: ReasonCode) -> Exit {
        Stats::add(&self.ctx.stats.protocol_errors, 1);
        Exit::ProtocolError(reason)
    }

    /// DISCONNECT: MQTT 5 may change the session expiry, but not from 0 ([MQTT-3.14.2-2]),
    /// and may ask for the will to be published (0x04).
    fn on_disconnect(&mut self, disconnect: &crate::codec::v5::Disconnect) -> Exit {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if self.session_expiry == 0 && expiry != 0 {
                warn!("DISCONNECT raises a session expiry of 0 [MQTT-3.14.2-2]");
                return self.protocol_error(ReasonCode::ProtocolError);
            }
            let cap = self.ctx.config.limits.max_session_expiry.as_secs();
            // 0xFFFFFFFF means the session does not expire (§3.1.2.11.2) — unless capped: the
            // cap bounds what DISCONNECT asks for as it bounds CONNECT, "never" included.
            let expires = if cap > 0 {
                Some(u64::from(expiry).min(cap))
            } else {
                (expiry != u32::MAX).then_some(u64::from(expiry))
            };
            self.session.with_state(|st| {
                st.clean = expiry == 0;
                st.expiry = expires.map(Duration::from_secs);
            });
        }
        if disconnect.reason_code == ReasonCode::DisconnectWithWillMessage {
            Exit::DisconnectWithWill
        } else {
            Exit::Disconnect
        }
    }

    fn query<'a>(
        &'a self,
        topic: &'a ByteString,
        action: Action,
        qos: QoS,
        retain: bool,
    ) -> TopicQuery<'a> {
        TopicQuery {
            client_id: self.session.client_id(),
            username: self.username.as_ref(),
            topic,
            action,
            qos: qos as u8,
            retain,
            listener: &self.listener,
        }
    }

    /// PUBLISH: resolves the MQTT 5 topic alias, fires `message_received` (denied ones too),
    /// runs the PUBLISH check (a denied message is dropped, not retained), then
    /// `message_broadcast` and dispatch; when that left subscriber queues over their bounds,
    /// waits for them ([`backpressure`]); the QoS acknowledgement carries the outcome for MQTT 5
    /// (0x87 not authorized, 0x10 no matching subscribers).
    async fn on_publish(
        &mut self,
        publish: Publish,
        stream: &mut PacketStream,
        read: &mut EventClock,
    ) -> Option<Exit> {
        Stats::add(&self.ctx.stats.publish_received, 1);
        let topic = match self.resolve_alias(&publish) {
            Ok(topic) => topic,
            Err(exit) => return Some(exit),
        };
        if !publish.properties.subscription_identifiers.is_empty() {
            warn!("PUBLISH from a client with a subscription identifier [MQTT-3.3.4-6]");
            return Some(self.protocol_error(ReasonCode::ProtocolError));
        }
        let first_receipt = match (publish.qos, publish.packet_id) {
            // Method A of §4.3.3: deliver on first receipt, remember the id until PUBREL so a
            // re-sent PUBLISH is not delivered twice.
            (QoS::ExactlyOnce, Some(id)) => {
                let max = usize::from(self.ctx.config.limits.receive_maximum);
                match self.session.with_state(|st| {
                    if st.incoming_qos2.contains(&id) {
                        Some(false)
                    } else if stream.is_v5() && st.incoming_qos2.len() >= max {
                        None
                    } else {
                        Some(st.incoming_qos2.insert(id))
                    }
                }) {
                    Some(first) => first,
                    None => {
                        warn!(max, "client exceeded the Receive Maximum");
                        return Some(self.protocol_error(ReasonCode::ReceiveMaximumExceeded));
                    }
                }
            }
            _ => true,
        };
        if !first_receipt {
            return ack(stream, publish.qos, publish.packet_id, ReasonCode::Success);
        }
        let mut message = Message::new(topic, publish.payload, publish.qos, publish.retain);
        message.properties = MessageProperties::from_publish(&publish.properties);
        message.expires_at = publish
            .properties
            .message_expiry_interval
            .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs)));
        let origin = Origin {
            client_id: self.session.client_id(),
            username: self.username.as_deref(),
        };
        let plugins = &self.ctx.plugins;
        plugins.message_at(MessageMoment::Received, origin, &message, read);
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
            if let (QoS::ExactlyOnce, Some(id)) = (publish.qos, publish.packet_id) {
                // An error PUBREC ends the flow: the client sends no PUBREL for it.
                self.session.with_state(|st| st.incoming_qos2.remove(&id));
            }
            return ack(
                stream,
                publish.qos,
                publish.packet_id,
                ReasonCode::NotAuthorized,
            );
        }
        plugins.message(MessageMoment::Broadcast, origin, &message);
        let delivered = dispatch::dispatch(&self.ctx, origin, &message).await;
        if !delivered.backlog.is_empty() {
            // Flow control: the acknowledgement (and the next packet) waits for the full
            // subscriber queues this message went to. Boxed: only under pressure.
            let owner = self.session.owner();
            let wait = backpressure::wait_for_room(&self.ctx, owner.as_ref(), delivered.backlog);
            Box::pin(wait).await;
        }
        let reason = if delivered.receivers == 0 {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        };
        ack(stream, publish.qos, publish.packet_id, reason)
    }

    /// The topic of an MQTT 5 PUBLISH: its topic name (recorded under its alias, if it has
    /// one), or the topic its alias stands for. An alias above `topic-alias-maximum` or one
    /// never set is a protocol error (DISCONNECT 0x94, [MQTT-3.3.2-9], [MQTT-3.3.2-10]).
    fn resolve_alias(&mut self, publish: &Publish) -> Result<ByteString, Exit> {
        let Some(alias) = publish.properties.topic_alias else {
            return Ok(publish.topic.clone());
        };
        let max = self.ctx.config.limits.topic_alias_maximum;
        if alias.get() > max {
            warn!(alias, max, "topic alias above the maximum");
            return Err(self.protocol_error(ReasonCode::TopicAliasInvalid));
        }
        let slot = usize::from(alias.get() - 1);
        if publish.topic.is_empty() {
            return match self.aliases.get(slot).cloned().flatten() {
                Some(topic) => Ok(topic),
                None => {
                    warn!(alias, "unknown topic alias");
                    Err(self.protocol_error(ReasonCode::TopicAliasInvalid))
                }
            };
        }
        if self.aliases.len() <= slot {
            let mut aliases = std::mem::take(&mut self.aliases).into_vec();
            aliases.resize(slot + 1, None);
            self.aliases = aliases.into_boxed_slice();
        }
        // A copy: the alias outlives the read buffer the topic was decoded from.
        self.aliases[slot] = Some(ByteString::from(publish.topic.to_string()));
        Ok(publish.topic.clone())
    }

    /// SUBSCRIBE: the SUBSCRIBE check per filter (denied → 0x80 / MQTT 5 0x87, no retained
    /// replay, no event), SUBACK, `client_subscribed` per granted filter, then retained replay
    /// (as Retain Handling asks) through the RECEIVE check.
    async fn on_subscribe(
        &mut self,
        subscribe: Subscribe,
        stream: &mut PacketStream,
    ) -> Option<Exit> {
        let id = subscribe.properties.subscription_identifier;
        let shared_allowed = self.ctx.config.limits.shared_subscriptions;
        let mut reason_codes = Vec::with_capacity(subscribe.filters.len());
        let mut granted = Vec::with_capacity(subscribe.filters.len());
        for (filter, options) in &subscribe.filters {
            let shared = crate::topic::is_shared(filter);
            if shared && options.no_local {
                warn!(%filter, "No Local on a shared subscription [MQTT-3.8.3-4]");
                return Some(self.protocol_error(ReasonCode::ProtocolError));
            }
            if shared && !shared_allowed {
                reason_codes.push(ReasonCode::SharedSubscriptionsNotSupported);
                continue;
            }
            if shared && crate::topic::split_shared(filter).is_none() {
                info!(%filter, "malformed shared subscription");
                reason_codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            let query = self.query(filter, Action::Subscribe, options.qos, false);
            if dispatch::topic_allowed(&self.ctx, self.session.decisions(), &query).await {
                let sub = Subscription {
                    options: *options,
                    id,
                };
                let new = self.ctx.router.subscribe(&self.session, filter, sub);
                reason_codes.push(ReasonCode::granted(options.qos));
                granted.push((filter, sub, new, shared));
            } else {
                info!(%filter, "subscription denied");
                reason_codes.push(ReasonCode::NotAuthorized);
            }
        }
        let suback = Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: AckProperties::default(),
            reason_codes,
        });
        if let Some(exit) = queue(stream, &suback) {
            return Some(exit);
        }
        for (filter, sub, new, shared) in granted {
            self.ctx.plugins.client_subscribed(
                self.session.client_id(),
                self.username.as_deref(),
                filter,
                sub.options.qos,
            );
            let replay = match sub.options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendAtNewSubscribe => new,
                RetainHandling::DoNotSend => false,
            };
            // Shared subscriptions get no retained messages (MQTT 5 §4.8.2).
            if !replay || shared {
                continue;
            }
            // Retained replay ([MQTT-3.3.1-6]) goes through the session queue, so it is written
            // after the SUBACK queued above.
            let mut retained = Vec::new();
            self.ctx.router.retained_matching(filter, &mut retained);
            for message in retained {
                if dispatch::may_receive(&self.ctx, &self.session, &message, sub.options.qos).await
                {
                    let mut copy = message.for_subscriber(sub.options.qos, true);
                    copy.subscription_ids = sub.id.map(|id| Box::from([id]));
                    let _ = self.session.deliver_replay(copy);
                }
            }
        }
        None
    }

    /// UNSUBSCRIBE: removes each filter, fires `client_unsubscribed` per filter (even if it was
    /// not subscribed, as aMQTT does), then UNSUBACK (MQTT 5: 0x11 for a filter that was not
    /// subscribed).
    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Packet {
        let mut reason_codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let existed = self.ctx.router.unsubscribe(&self.session, filter);
            reason_codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
            self.ctx.plugins.client_unsubscribed(
                self.session.client_id(),
                self.username.as_deref(),
                filter,
            );
        }
        Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            properties: AckProperties::default(),
            reason_codes,
        })
    }
}

/// Queues the acknowledgement of a PUBLISH at `qos` (none for QoS 0) with `reason`.
fn ack(
    stream: &mut PacketStream,
    qos: QoS,
    packet_id: Option<crate::codec::PacketId>,
    reason: ReasonCode,
) -> Option<Exit> {
    let id = packet_id?;
    let mut response = PubResponse::success(id);
    response.reason_code = reason;
    let packet = match qos {
        QoS::AtMostOnce => return None,
        QoS::AtLeastOnce => Packet::PubAck(response),
        QoS::ExactlyOnce => Packet::PubRec(response),
    };
    queue(stream, &packet)
}

/// Queues `packet`; an encoding failure ends the connection.
fn queue(stream: &mut PacketStream, packet: &Packet) -> Option<Exit> {
    match stream.queue(packet) {
        Ok(()) => None,
        Err(error) => {
            warn!(%error, "could not encode an answer");
            Some(Exit::ProtocolError(ReasonCode::ImplementationSpecificError))
        }
    }
}

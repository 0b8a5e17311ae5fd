//! How deliveries are written for one connection: in its protocol version, never larger than
//! the client accepts, and (MQTT 5) with topic aliases when the client allows them.

use std::collections::HashMap;
use std::num::NonZeroU16;

use bytes::BytesMut;
use bytestring::ByteString;
use tokio::time::Instant;

use crate::codec::v5::{PublishProperties, SubscriptionId};
use crate::codec::{EncodeError, PacketId, ProtocolVersion, v4, v5};
use crate::message::Message;

/// The per-connection state for encoding PUBLISH packets to one client.
#[derive(Debug)]
pub(crate) struct Outbound {
    protocol: ProtocolVersion,
    /// The client's Maximum Packet Size ([MQTT-3.1.2-24]); `u32::MAX` when it set none.
    max_packet_size: u32,
    /// Topic aliases towards the client; `None` when it allows none (or speaks 3.1.1). Boxed:
    /// most clients allow none, and every connection carries this struct.
    aliases: Option<Box<AliasMap>>,
    /// Messages dropped because they were larger than the client accepts, since last taken.
    pub(crate) too_large: u64,
}

/// What [`Outbound::encode`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoded {
    /// The PUBLISH is in the buffer.
    Written,
    /// The PUBLISH would exceed the client's Maximum Packet Size: it was not written and the
    /// message is to be dropped for this client ([MQTT-3.1.2-25]).
    TooLarge,
}

impl Outbound {
    /// Encoding for a 3.1/3.1.1 client.
    pub(crate) fn v4() -> Self {
        Outbound {
            protocol: ProtocolVersion::V311,
            max_packet_size: u32::MAX,
            aliases: None,
            too_large: 0,
        }
    }

    /// Encoding for an MQTT 5 client that accepts packets up to `max_packet_size` and up to
    /// `alias_max` topic aliases (both from its CONNECT; the alias count already capped by the
    /// broker's own `topic-alias-maximum`).
    pub(crate) fn v5(max_packet_size: Option<u32>, alias_max: u16) -> Self {
        Outbound {
            protocol: ProtocolVersion::V5,
            max_packet_size: max_packet_size.unwrap_or(u32::MAX),
            aliases: (alias_max > 0).then(|| Box::new(AliasMap::new(alias_max))),
            too_large: 0,
        }
    }

    /// The protocol version deliveries are encoded in.
    pub(crate) fn protocol(&self) -> ProtocolVersion {
        self.protocol
    }

    /// The largest packet the client accepts, in bytes (`u32::MAX` when it set no limit).
    pub(crate) fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Appends `message` as a PUBLISH with `packet_id` and `dup` to `buf`, or leaves `buf`
    /// unchanged when the client could not accept it. The expiry interval forwarded is the one
    /// left at `now`.
    pub(crate) fn encode(
        &mut self,
        message: &Message,
        packet_id: Option<PacketId>,
        dup: bool,
        now: Instant,
        buf: &mut BytesMut,
    ) -> Result<Encoded, EncodeError> {
        if self.protocol != ProtocolVersion::V5 {
            let publish = v4::Publish {
                dup,
                qos: message.qos,
                retain: message.retain,
                topic: message.topic.clone(),
                packet_id,
                payload: message.payload.clone(),
            };
            v4::encode_publish(&publish, buf)?;
            return Ok(Encoded::Written);
        }
        let alias = self.aliases.as_ref().map(|a| a.lookup(&message.topic));
        let (topic, topic_alias) = match alias {
            Some(Alias::Known(alias)) => (ByteString::new(), Some(alias)),
            Some(Alias::New(alias)) => (message.topic.clone(), Some(alias)),
            None => (message.topic.clone(), None),
        };
        let publish = v5::Publish {
            dup,
            qos: message.qos,
            retain: message.retain,
            topic,
            packet_id,
            properties: properties(message, topic_alias, now),
            payload: message.payload.clone(),
        };
        let before = buf.len();
        v5::encode_publish(&publish, buf)?;
        if buf.len() - before > self.max_packet_size as usize {
            buf.truncate(before);
            self.too_large += 1;
            return Ok(Encoded::TooLarge);
        }
        if let (Some(Alias::New(alias)), Some(map)) = (alias, self.aliases.as_mut()) {
            map.commit(&message.topic, alias);
        }
        Ok(Encoded::Written)
    }
}

/// The PUBLISH properties of one delivery of `message`.
fn properties(
    message: &Message,
    topic_alias: Option<NonZeroU16>,
    now: Instant,
) -> PublishProperties {
    let mut p = PublishProperties {
        topic_alias,
        message_expiry_interval: message.remaining_expiry(now),
        subscription_identifiers: message
            .subscription_ids
            .as_deref()
            .map(<[SubscriptionId]>::to_vec)
            .unwrap_or_default(),
        ..PublishProperties::default()
    };
    if let Some(carried) = message.properties.as_deref() {
        p.payload_format_indicator = carried.payload_format_indicator;
        p.content_type = carried.content_type.clone();
        p.response_topic = carried.response_topic.clone();
        p.correlation_data = carried.correlation_data.clone();
        p.user_properties = carried.user_properties.clone();
    }
    p
}

/// Topic aliases the broker has told one client: topic → alias, with the slots reused in
/// round-robin order once all are taken (the replaced alias is re-sent with its new topic,
/// which MQTT 5 allows: §3.3.2.3.4).
#[derive(Debug)]
struct AliasMap {
    by_topic: HashMap<ByteString, NonZeroU16>,
    /// Slot `i` holds alias `i + 1`'s topic.
    slots: Vec<ByteString>,
    max: u16,
    /// Next slot to reuse once every alias is taken.
    cursor: u16,
}

/// The alias to send a topic with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alias {
    /// The client knows it: send an empty topic.
    Known(NonZeroU16),
    /// Send the topic with this alias, then [`AliasMap::commit`] it.
    New(NonZeroU16),
}

impl AliasMap {
    fn new(max: u16) -> Self {
        AliasMap {
            by_topic: HashMap::new(),
            slots: Vec::new(),
            max,
            cursor: 0,
        }
    }

    fn lookup(&self, topic: &ByteString) -> Alias {
        if let Some(alias) = self.by_topic.get(topic) {
            return Alias::Known(*alias);
        }
        let index = if self.slots.len() < usize::from(self.max) {
            self.slots.len()
        } else {
            usize::from(self.cursor)
        };
        // index < max ≤ u16::MAX, so index + 1 fits and is not zero.
        let alias = u16::try_from(index + 1)
            .ok()
            .and_then(NonZeroU16::new)
            .unwrap_or(NonZeroU16::MIN);
        Alias::New(alias)
    }

    fn commit(&mut self, topic: &ByteString, alias: NonZeroU16) {
        let index = usize::from(alias.get() - 1);
        if index == self.slots.len() {
            self.slots.push(topic.clone());
        } else if let Some(slot) = self.slots.get_mut(index) {
            let old = std::mem::replace(slot, topic.clone());
            self.by_topic.remove(&old);
            self.cursor = (self.cursor + 1) % self.max;
        }
        self.by_topic.insert(topic.clone(), alias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use bytes::Bytes;

    fn decode(buf: &mut BytesMut) -> v5::Publish {
        match v5::Decoder::new(u32::MAX).decode(buf) {
            Ok(Some(v5::Packet::Publish(p))) => p,
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }

    fn msg(topic: &str) -> Message {
        Message::new(
            topic.into(),
            Bytes::from_static(b"x"),
            QoS::AtMostOnce,
            false,
        )
    }

    #[test]
    fn aliases_are_assigned_reused_and_recycled() {
        let mut out = Outbound::v5(None, 2);
        let now = Instant::now();
        let mut buf = BytesMut::new();
        let mut send = |topic: &str| {
            out.encode(&msg(topic), None, false, now, &mut buf)
                .expect("encodes");
            decode(&mut buf)
        };
        let a = send("a");
        assert_eq!(
            (a.topic.as_ref(), a.properties.topic_alias.map(|x| x.get())),
            ("a", Some(1))
        );
        let b = send("b");
        assert_eq!(
            (b.topic.as_ref(), b.properties.topic_alias.map(|x| x.get())),
            ("b", Some(2))
        );
        let a2 = send("a");
        assert_eq!(
            (
                a2.topic.as_ref(),
                a2.properties.topic_alias.map(|x| x.get())
            ),
            ("", Some(1))
        );
        // Full: "c" takes slot 1 over, so "a" is new again afterwards.
        let c = send("c");
        assert_eq!(
            (c.topic.as_ref(), c.properties.topic_alias.map(|x| x.get())),
            ("c", Some(1))
        );
        let a3 = send("a");
        assert_eq!(
            (
                a3.topic.as_ref(),
                a3.properties.topic_alias.map(|x| x.get())
            ),
            ("a", Some(2))
        );
    }

    #[test]
    fn a_message_too_large_for_the_client_is_not_written() {
        let mut out = Outbound::v5(Some(20), 0);
        let mut buf = BytesMut::new();
        let big = Message::new("t".into(), Bytes::from(vec![0; 64]), QoS::AtMostOnce, false);
        let result = out.encode(&big, None, false, Instant::now(), &mut buf);
        assert_eq!(result, Ok(Encoded::TooLarge));
        assert!(buf.is_empty());
        assert_eq!(out.too_large, 1);
        let small = msg("t");
        assert_eq!(
            out.encode(&small, None, false, Instant::now(), &mut buf),
            Ok(Encoded::Written)
        );
    }

    #[test]
    fn v4_clients_get_v4_packets() {
        let mut out = Outbound::v4();
        let mut buf = BytesMut::new();
        out.encode(&msg("t"), None, false, Instant::now(), &mut buf)
            .expect("encodes");
        let packet = v4::Decoder::new(u32::MAX).decode(&mut buf);
        assert!(matches!(packet, Ok(Some(v4::Packet::Publish(_)))));
    }
}

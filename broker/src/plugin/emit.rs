//! Building the protobuf events plugins receive from the broker's own facts: as `pb` values,
//! and, for the message events of the hot path, encoded straight from the [`Message`]
//! ([`MessageEvent::encode`]) so that no `pb` value is built, copied and freed per message.

use std::time::SystemTime;

use bytes::BytesMut;
use midge_proto::plugin::v1 as pb;
use pb::event::Body;
use prost::Message as _;

use super::fields::{self, event, message, message_event, timestamp};
use super::wire::{SliceWriter, delimited_len, text_len, varint_len};
use crate::codec::ProtocolVersion;
use crate::message::{Message, Origin};

/// Wraps a body into an event stamped now; the pipeline assigns the sequence number.
pub(crate) fn event(body: Body) -> pb::Event {
    pb::Event {
        sequence: 0,
        time: Some(prost_types::Timestamp::from(SystemTime::now())),
        body: Some(body),
    }
}

/// The wire value of a protocol version.
pub(crate) fn protocol_version(version: ProtocolVersion) -> pb::ProtocolVersion {
    match version {
        ProtocolVersion::V31 => pb::ProtocolVersion::Mqtt31,
        ProtocolVersion::V311 => pb::ProtocolVersion::Mqtt311,
        ProtocolVersion::V5 => pb::ProtocolVersion::Mqtt5,
    }
}

/// A broker lifecycle body.
pub(crate) fn lifecycle() -> pb::BrokerLifecycle {
    pb::BrokerLifecycle {
        broker_version: crate::VERSION.to_string(),
    }
}

/// A message as plugins see it; `payload` false leaves the bytes out (the size stays).
pub(crate) fn message(message: &Message, payload: bool) -> pb::Message {
    pb::Message {
        topic: message.topic.to_string(),
        payload: if payload {
            message.payload.to_vec()
        } else {
            Vec::new()
        },
        payload_size: u32::try_from(message.payload.len()).unwrap_or(u32::MAX),
        qos: message.qos as u32,
        retain: message.retain,
        properties: properties(message),
    }
}

/// The MQTT 5 properties of `message` as plugins see them; `None` when it has none.
fn properties(message: &Message) -> Option<pb::MessageProperties> {
    // The clock is read only for messages that expire (none of the 3.1.1 ones).
    let expiry = message
        .expires_at
        .and_then(|_| message.remaining_expiry(tokio::time::Instant::now()));
    let props = message.properties.as_deref();
    if props.is_none() && expiry.is_none() {
        return None;
    }
    let text = |v: &Option<bytestring::ByteString>| v.as_ref().map(|v| v.to_string());
    Some(pb::MessageProperties {
        user_properties: props
            .map(|p| {
                p.user_properties
                    .iter()
                    .map(|(key, value)| pb::UserProperty {
                        key: key.to_string(),
                        value: value.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        content_type: props
            .and_then(|p| text(&p.content_type))
            .unwrap_or_default(),
        response_topic: props
            .and_then(|p| text(&p.response_topic))
            .unwrap_or_default(),
        correlation_data: props
            .and_then(|p| p.correlation_data.as_ref().map(|v| v.to_vec()))
            .unwrap_or_default(),
        message_expiry_secs: expiry,
        payload_is_utf8: props
            .and_then(|p| p.payload_format_indicator)
            .unwrap_or(false),
    })
}

/// MQTT 5 properties given by a plugin or the admin API, as the broker carries them (empty
/// strings are absent properties), and the expiry they ask for.
pub(crate) fn from_pb_properties(
    props: Option<&pb::MessageProperties>,
) -> (
    Option<std::sync::Arc<crate::message::MessageProperties>>,
    Option<tokio::time::Instant>,
) {
    let Some(p) = props else {
        return (None, None);
    };
    let text = |s: &str| (!s.is_empty()).then(|| bytestring::ByteString::from(s));
    let carried = crate::message::MessageProperties {
        payload_format_indicator: p.payload_is_utf8.then_some(true),
        content_type: text(&p.content_type),
        response_topic: text(&p.response_topic),
        correlation_data: (!p.correlation_data.is_empty())
            .then(|| bytes::Bytes::copy_from_slice(&p.correlation_data)),
        user_properties: p
            .user_properties
            .iter()
            .map(|u| (u.key.as_str().into(), u.value.as_str().into()))
            .collect(),
    };
    let expires = p
        .message_expiry_secs
        .map(|secs| tokio::time::Instant::now() + std::time::Duration::from_secs(u64::from(secs)));
    let carried = (carried != crate::message::MessageProperties::default())
        .then(|| std::sync::Arc::new(carried));
    (carried, expires)
}

/// A message event body for `client_id` (empty for broker-originated messages).
pub(crate) fn message_event(
    client_id: &str,
    username: Option<&str>,
    msg: &Message,
    payload: bool,
) -> pb::MessageEvent {
    pb::MessageEvent {
        client_id: client_id.to_string(),
        username: username.map(str::to_string),
        message: Some(message(msg, payload)),
    }
}

/// The `Event.body` variant of a message event kind; `None` for the other kinds.
pub(crate) fn message_body(kind: pb::EventKind, event: pb::MessageEvent) -> Option<Body> {
    Some(match kind {
        pb::EventKind::MessageReceived => Body::MessageReceived(event),
        pb::EventKind::MessageBroadcast => Body::MessageBroadcast(event),
        pb::EventKind::RetainedStored => Body::RetainedStored(event),
        pb::EventKind::RetainedCleared => Body::RetainedCleared(event),
        _ => return None,
    })
}

/// The field number of a message event kind's `Event.body` variant (see `events.proto`).
fn message_body_field(kind: pb::EventKind) -> Option<u32> {
    match kind {
        pb::EventKind::MessageReceived => Some(fields::event::MESSAGE_RECEIVED),
        pb::EventKind::MessageBroadcast => Some(fields::event::MESSAGE_BROADCAST),
        pb::EventKind::RetainedStored => Some(fields::event::RETAINED_STORED),
        pb::EventKind::RetainedCleared => Some(fields::event::RETAINED_CLEARED),
        _ => None,
    }
}

/// The wall-clock time of events, read at most once: the message events of the packets of one
/// socket read share that read's time (when the broker received them). A clock read costs tens
/// of nanoseconds in a VM, 3 % of the broker's time with an event plugin (`bench/perf.sh`).
#[derive(Debug, Default)]
pub(crate) struct EventClock(Option<Stamp>);

impl EventClock {
    /// The time with its encoded `Event.time` field, made on the first call (with the clock
    /// read), the same on every later one.
    pub(crate) fn stamp(&mut self) -> Stamp {
        *self.0.get_or_insert_with(|| Stamp::new(SystemTime::now()))
    }
}

/// Longest encoded `Event.time` field: key, length, and the `Timestamp`'s two fields (key and
/// varint each: seconds up to 10 bytes, nanos up to 5).
const TIME_FIELD_MAX: usize = 2 + 1 + 10 + 1 + 5;

/// A time events are stamped with, and its `Event.time` field encoded once: the events of one
/// socket read copy those bytes instead of encoding the same time again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    /// The time.
    pub(crate) time: SystemTime,
    /// The encoded `Event.time` field, in the first `field_len` bytes.
    field: [u8; TIME_FIELD_MAX],
    /// How many bytes of `field` are used.
    field_len: u8,
}

impl Stamp {
    /// `time` with its field encoded; a time before 1970 (a clock set wrong) is written as the
    /// epoch.
    pub(crate) fn new(time: SystemTime) -> Self {
        let since_epoch = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let seconds = since_epoch.as_secs();
        let nanos = u64::from(since_epoch.subsec_nanos());
        // `Timestamp`: int64 seconds, int32 nanos; both non-negative here.
        let time_len =
            varint_len(timestamp::SECONDS, seconds) + varint_len(timestamp::NANOS, nanos);
        let mut field = [0u8; TIME_FIELD_MAX];
        let mut w = SliceWriter::new(&mut field);
        w.delimited_head(event::TIME, time_len);
        w.varint(timestamp::SECONDS, seconds);
        w.varint(timestamp::NANOS, nanos);
        // At most `TIME_FIELD_MAX` (the writer panics past it), so it fits a `u8`.
        let field_len = u8::try_from(w.written()).unwrap_or(u8::MAX);
        Self {
            time,
            field,
            field_len,
        }
    }

    /// The encoded `Event.time` field.
    fn field(&self) -> &[u8] {
        &self.field[..usize::from(self.field_len)]
    }
}

/// A message event about to be encoded straight from the message, once per plugin that wants
/// it, into that plugin's pipeline (see [`encode`](Self::encode)): no protobuf value is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageEvent<'a> {
    /// Field number of the `Event.body` variant.
    body_field: u32,
    time: Stamp,
    origin: Origin<'a>,
    message: &'a Message,
}

impl<'a> MessageEvent<'a> {
    /// The event of `kind` about `message` at `time`; `None` when `kind` is not a message kind.
    pub(crate) fn new(
        kind: pb::EventKind,
        time: Stamp,
        origin: Origin<'a>,
        message: &'a Message,
    ) -> Option<Self> {
        Some(Self {
            body_field: message_body_field(kind)?,
            time,
            origin,
            message,
        })
    }

    /// Appends the encoded `Event` (without `sequence`, which the pipeline adds) to `out`: the
    /// same bytes as prost's encoding of `event(message_body(kind, message_event(..)))`, with
    /// the payload or without it.
    pub(crate) fn encode(&self, payload: bool, out: &mut BytesMut) {
        let msg = self.message;
        let origin = self.origin;
        // Most messages (every MQTT 3.1.1 one) have no properties: nothing to build or drop.
        let props = if msg.properties.is_none() && msg.expires_at.is_none() {
            None
        } else {
            properties(msg)
        };
        let props_len = props.as_ref().map(prost::Message::encoded_len);
        let topic = msg.topic.as_bytes();
        let data: &[u8] = if payload { &msg.payload } else { &[] };
        let payload_size = u64::from(u32::try_from(msg.payload.len()).unwrap_or(u32::MAX));
        let qos = msg.qos as u64;
        // pb::Message
        let message_len = text_len(message::TOPIC, topic)
            + text_len(message::PAYLOAD, data)
            + varint_len(message::PAYLOAD_SIZE, payload_size)
            + varint_len(message::QOS, qos)
            + varint_len(message::RETAIN, u64::from(msg.retain))
            + props_len.map_or(0, |len| delimited_len(message::PROPERTIES, len));
        // pb::MessageEvent: `username` is `optional` (written when present, even empty),
        // `message` is always present.
        let event_len = text_len(message_event::CLIENT_ID, origin.client_id.as_bytes())
            + origin
                .username
                .map_or(0, |u| delimited_len(message_event::USERNAME, u.len()))
            + delimited_len(message_event::MESSAGE, message_len);
        // pb::Event: `time`, encoded once per stamp (see `Stamp`), and the body.
        let time = self.time.field();
        let total = time.len() + delimited_len(self.body_field, event_len);

        let start = out.len();
        out.resize(start + total, 0);
        let mut w = SliceWriter::new(&mut out[start..]);
        w.bytes(time);
        w.delimited_head(self.body_field, event_len);
        w.text(message_event::CLIENT_ID, origin.client_id.as_bytes());
        if let Some(username) = origin.username {
            w.delimited_head(message_event::USERNAME, username.len());
            w.bytes(username.as_bytes());
        }
        w.delimited_head(message_event::MESSAGE, message_len);
        w.text(message::TOPIC, topic);
        w.text(message::PAYLOAD, data);
        w.varint(message::PAYLOAD_SIZE, payload_size);
        w.varint(message::QOS, qos);
        w.varint(message::RETAIN, u64::from(msg.retain));
        if let (Some(p), Some(len)) = (&props, props_len) {
            w.delimited_head(message::PROPERTIES, len);
            p.encode_raw(&mut w.rest());
            w.skip(len);
        }
        debug_assert_eq!(w.written(), total);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use bytestring::ByteString;

    use super::*;
    use crate::codec::QoS;
    use crate::message::MessageProperties;

    /// What prost makes of the same event, the reference the direct encoding must equal.
    fn reference(
        kind: pb::EventKind,
        time: SystemTime,
        origin: Origin<'_>,
        msg: &Message,
        payload: bool,
    ) -> Vec<u8> {
        let body = message_event(origin.client_id, origin.username, msg, payload);
        pb::Event {
            sequence: 0,
            time: Some(time.into()),
            body: message_body(kind, body),
        }
        .encode_to_vec()
    }

    fn messages() -> Vec<Message> {
        let mut with_props = Message::new(
            ByteString::from("a/b"),
            Bytes::from(vec![7u8; 300]),
            QoS::ExactlyOnce,
            true,
        );
        with_props.properties = Some(Arc::new(MessageProperties {
            payload_format_indicator: Some(true),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(b"id")),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
        }));
        let mut expiring = Message::new(
            ByteString::from("e"),
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            false,
        );
        expiring.expires_at = Some(tokio::time::Instant::now() + Duration::from_secs(60));
        vec![
            Message::new(
                ByteString::from("sensors/1/temp"),
                Bytes::from_static(b"21.5"),
                QoS::AtMostOnce,
                false,
            ),
            Message::new(ByteString::from("t"), Bytes::new(), QoS::AtMostOnce, true),
            with_props,
            expiring,
        ]
    }

    // Paused: the remaining expiry interval is read twice and must not tick in between.
    #[tokio::test(start_paused = true)]
    async fn direct_encoding_equals_prost_for_every_shape() {
        let times = [
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + Duration::new(1_764_000_000, 123_456_789),
        ];
        let origins = [
            Origin::default(),
            Origin {
                client_id: "c1",
                username: Some(""),
            },
            Origin {
                client_id: "a-much-longer-client-identifier",
                username: Some("alice"),
            },
        ];
        let kinds = [
            pb::EventKind::MessageReceived,
            pb::EventKind::MessageBroadcast,
            pb::EventKind::RetainedStored,
            pb::EventKind::RetainedCleared,
        ];
        let mut cases = 0;
        for msg in &messages() {
            for origin in origins {
                for kind in kinds {
                    for time in times {
                        for payload in [true, false] {
                            let mut direct = BytesMut::from(&b"earlier"[..]);
                            MessageEvent::new(kind, Stamp::new(time), origin, msg)
                                .expect("a message kind")
                                .encode(payload, &mut direct);
                            let direct = direct.split_off(7);
                            assert_eq!(
                                &direct[..],
                                &reference(kind, time, origin, msg, payload)[..],
                                "{kind:?} {origin:?} payload {payload} topic {}",
                                msg.topic
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 3 * 4 * 2 * 2);
    }

    #[test]
    fn only_message_kinds_are_encoded() {
        let msg = &messages()[0];
        let none = MessageEvent::new(
            pb::EventKind::ClientConnected,
            Stamp::new(SystemTime::now()),
            Origin::default(),
            msg,
        );
        assert!(none.is_none());
    }
}

//! Building the protobuf events plugins receive from the broker's own facts.

use std::time::SystemTime;

use midge_proto::plugin::v1 as pb;
use pb::event::Body;

use crate::codec::ProtocolVersion;
use crate::message::Message;

/// Wraps a body into an event stamped now; the pipeline assigns the sequence number.
pub fn event(body: Body) -> pb::Event {
    pb::Event {
        sequence: 0,
        time: Some(prost_types::Timestamp::from(SystemTime::now())),
        body: Some(body),
    }
}

/// The wire value of a protocol version.
pub fn protocol_version(version: ProtocolVersion) -> pb::ProtocolVersion {
    match version {
        ProtocolVersion::V31 => pb::ProtocolVersion::Mqtt31,
        ProtocolVersion::V311 => pb::ProtocolVersion::Mqtt311,
        ProtocolVersion::V5 => pb::ProtocolVersion::Mqtt5,
    }
}

/// A broker lifecycle body.
pub fn lifecycle() -> pb::BrokerLifecycle {
    pb::BrokerLifecycle {
        broker_version: crate::sys_topics::VERSION.to_string(),
    }
}

/// A message as plugins see it; `payload` false leaves the bytes out (the size stays).
pub fn message(message: &Message, payload: bool) -> pb::Message {
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
pub fn from_pb_properties(
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
pub fn message_event(
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

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
        properties: None,
    }
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

//! The broker's own view of an application message, independent of the protocol version it
//! arrived with.

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::QoS;

/// An application message on its way through the broker.
///
/// Cloning is cheap (two reference-count increments): topic and payload share the buffer the
/// message was decoded from, so fan-out never copies a payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name the message was published to.
    pub topic: ByteString,
    /// Application payload.
    pub payload: Bytes,
    /// QoS: as published, or, once queued for a subscriber, the QoS it is delivered with.
    pub qos: QoS,
    /// Retain flag: as published, or, once queued, whether it is delivered as retained.
    pub retain: bool,
}

impl Message {
    /// A copy of this message for a subscriber granted `max_qos`, with the given retain flag.
    pub fn for_subscriber(&self, max_qos: QoS, retain: bool) -> Message {
        Message {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            qos: self.qos.min(max_qos),
            retain,
        }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .finish()
    }
}

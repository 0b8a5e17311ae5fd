//! PUBLISH (§3.3) and its responses PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4 to §3.7).

use std::num::NonZeroU16;

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::types::{PacketId, QoS};
use crate::codec::v5::packet::{SubscriptionId, UserProperties};
use crate::codec::v5::reason::ReasonCode;

/// PUBLISH: an application message.
#[derive(Clone, PartialEq, Eq)]
pub struct Publish {
    /// Re-delivery flag (only meaningful for QoS > 0).
    pub dup: bool,
    /// Delivery QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name (no wildcards); empty only with a topic alias (§3.3.2.1).
    pub topic: ByteString,
    /// Packet identifier: present exactly when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// PUBLISH properties.
    pub properties: PublishProperties,
    /// Application payload. Shown by size only in `Debug`.
    pub payload: Bytes,
}

impl std::fmt::Debug for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("dup", &self.dup)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("topic", &self.topic)
            .field("packet_id", &self.packet_id)
            .field("properties", &self.properties)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .finish()
    }
}

/// PUBLISH properties (§3.3.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// `true` if the payload is UTF-8 character data, `false` if unspecified bytes.
    pub payload_format_indicator: Option<bool>,
    /// Lifetime of the message in seconds; absent means it does not expire.
    pub message_expiry_interval: Option<u32>,
    /// An integer standing for the topic name on this connection.
    pub topic_alias: Option<NonZeroU16>,
    /// Response topic: a topic name, no wildcards ([MQTT-3.3.2-14]).
    pub response_topic: Option<ByteString>,
    /// Correlation data for a response.
    pub correlation_data: Option<Bytes>,
    /// User properties, order kept ([MQTT-3.3.2-18]).
    pub user_properties: UserProperties,
    /// The identifiers of the subscriptions that matched (server to client only,
    /// [MQTT-3.3.4-6]); may hold several.
    pub subscription_identifiers: Vec<SubscriptionId>,
    /// Content type of the payload.
    pub content_type: Option<ByteString>,
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: the four packets of the QoS 1 and 2 handshakes share
/// this shape; [`Packet`](crate::codec::v5::Packet) says which one it is.
///
/// With [`ReasonCode::Success`] and no properties the packet is written in its two-byte short
/// form (§3.4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResponse {
    /// Packet identifier of the PUBLISH (or PUBREL) being answered.
    pub packet_id: PacketId,
    /// The outcome; one of the codes Table 2-6 allows for this packet type.
    pub reason_code: ReasonCode,
    /// Reason string and user properties.
    pub properties: AckProperties,
}

impl PubResponse {
    /// A successful response with no properties: the two-byte short form.
    pub fn success(packet_id: PacketId) -> Self {
        PubResponse {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }
}

/// The properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK (§3.4.2.2 etc.).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// Human-readable diagnostic.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
}

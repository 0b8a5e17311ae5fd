//! Types shared by every MQTT protocol version: QoS, packet identifiers, protocol levels.

use std::num::NonZeroU16;

/// A packet identifier. MQTT forbids 0 ([MQTT-2.3.1-1]), so the type does too.
pub type PacketId = NonZeroU16;

/// Quality of service of a publication or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum QoS {
    /// Fire and forget.
    AtMostOnce = 0,
    /// Acknowledged delivery; duplicates possible.
    AtLeastOnce = 1,
    /// Exactly-once delivery through the PUBREC/PUBREL/PUBCOMP handshake.
    ExactlyOnce = 2,
}

impl TryFrom<u8> for QoS {
    type Error = u8;

    /// Converts the two QoS bits; `Err` carries the invalid value (3 is reserved).
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            other => Err(other),
        }
    }
}

/// The protocol level a client asked for in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1 (protocol name `MQIsdp`, level 3).
    V31,
    /// MQTT 3.1.1 (protocol name `MQTT`, level 4).
    V311,
    /// MQTT 5.0 (protocol name `MQTT`, level 5).
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte sent in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProtocolVersion::V31 => "3.1",
            ProtocolVersion::V311 => "3.1.1",
            ProtocolVersion::V5 => "5.0",
        })
    }
}

/// The control packet type: the high nibble of a packet's first byte (spec §2.2.1).
///
/// Shared by every protocol version; [`PacketType::Auth`] exists only in MQTT 5, and MQTT 3.1.1
/// decoders reject it as a reserved type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// CONNECT, client to server.
    Connect = 1,
    /// CONNACK, server to client.
    ConnAck = 2,
    /// PUBLISH, both directions.
    Publish = 3,
    /// PUBACK, both directions.
    PubAck = 4,
    /// PUBREC, both directions.
    PubRec = 5,
    /// PUBREL, both directions.
    PubRel = 6,
    /// PUBCOMP, both directions.
    PubComp = 7,
    /// SUBSCRIBE, client to server.
    Subscribe = 8,
    /// SUBACK, server to client.
    SubAck = 9,
    /// UNSUBSCRIBE, client to server.
    Unsubscribe = 10,
    /// UNSUBACK, server to client.
    UnsubAck = 11,
    /// PINGREQ, client to server.
    PingReq = 12,
    /// PINGRESP, server to client.
    PingResp = 13,
    /// DISCONNECT, client to server (both directions in MQTT 5).
    Disconnect = 14,
    /// AUTH (MQTT 5 only).
    Auth = 15,
}

impl PacketType {
    /// Maps the type nibble (0..=15) to a packet type; `None` for the reserved value 0 or any
    /// value that does not fit in four bits.
    pub fn from_nibble(nibble: u8) -> Option<Self> {
        Some(match nibble {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 => PacketType::Auth,
            _ => return None,
        })
    }

    /// The fixed-header flags (low nibble) this type requires, or `None` for PUBLISH, whose
    /// flags carry DUP, QoS and RETAIN (spec §2.2.2, Table 2.2).
    pub fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// The packet type's name as the spec writes it.
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }
}

impl std::fmt::Display for PacketType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

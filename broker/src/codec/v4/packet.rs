//! MQTT 3.1 / 3.1.1 packets as values (spec §3). Payloads and topics are `Bytes`-backed, so
//! decoding slices the read buffer instead of copying.

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::types::{PacketId, PacketType, ProtocolVersion, QoS};

/// One MQTT 3.1.1 control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (§3.1); boxed because it is much larger than the other variants.
    Connect(Box<Connect>),
    /// CONNACK (§3.2).
    ConnAck(ConnAck),
    /// PUBLISH (§3.3).
    Publish(Publish),
    /// PUBACK (§3.4).
    PubAck(PacketId),
    /// PUBREC (§3.5).
    PubRec(PacketId),
    /// PUBREL (§3.6).
    PubRel(PacketId),
    /// PUBCOMP (§3.7).
    PubComp(PacketId),
    /// SUBSCRIBE (§3.8).
    Subscribe(Subscribe),
    /// SUBACK (§3.9).
    SubAck(SubAck),
    /// UNSUBSCRIBE (§3.10).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (§3.11).
    UnsubAck(PacketId),
    /// PINGREQ (§3.12).
    PingReq,
    /// PINGRESP (§3.13).
    PingResp,
    /// DISCONNECT (§3.14).
    Disconnect,
}

impl Packet {
    /// The packet type's name as the spec writes it, for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        self.packet_type().name()
    }

    /// The control packet type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect => PacketType::Disconnect,
        }
    }
}

/// CONNECT: the first packet of every connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    /// 3.1 (`MQIsdp`/3) or 3.1.1 (`MQTT`/4).
    pub protocol: ProtocolVersion,
    /// Clean session flag: discard any previous session and do not keep this one.
    pub clean_session: bool,
    /// Keep alive in seconds; 0 disables the keepalive check.
    pub keep_alive: u16,
    /// Client identifier; may be empty (§3.1.3.1).
    pub client_id: ByteString,
    /// The will message, published if the connection ends without DISCONNECT.
    pub will: Option<LastWill>,
    /// User name, if the user name flag was set.
    pub username: Option<ByteString>,
    /// Password, if the password flag was set. Redacted in `Debug`.
    pub password: Option<Bytes>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("protocol", &self.protocol)
            .field("clean_session", &self.clean_session)
            .field("keep_alive", &self.keep_alive)
            .field("client_id", &self.client_id)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<REDACTED>"))
            .finish()
    }
}

/// The will message carried by CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Topic the will is published to.
    pub topic: ByteString,
    /// Will payload. Redacted in `Debug`.
    pub message: Bytes,
    /// QoS of the will publication.
    pub qos: QoS,
    /// Whether the will is published as retained.
    pub retain: bool,
}

impl std::fmt::Debug for LastWill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastWill")
            .field("topic", &self.topic)
            .field("message", &format_args!("<{} bytes>", self.message.len()))
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .finish()
    }
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session (must be false unless `Accepted`).
    pub session_present: bool,
    /// Accepted or the reason for refusal.
    pub return_code: ConnectReturnCode,
}

/// CONNACK return codes (§3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// 0x00 Connection accepted.
    Accepted = 0,
    /// 0x01 The server does not support the requested protocol level.
    UnacceptableProtocolVersion = 1,
    /// 0x02 The client identifier is not allowed.
    IdentifierRejected = 2,
    /// 0x03 The MQTT service is unavailable.
    ServerUnavailable = 3,
    /// 0x04 Malformed user name or password.
    BadUserNameOrPassword = 4,
    /// 0x05 The client is not authorized to connect.
    NotAuthorized = 5,
}

impl TryFrom<u8> for ConnectReturnCode {
    type Error = u8;

    /// Converts a CONNACK return code byte; `Err` carries a reserved value (6..=255).
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Ok(match value {
            0 => ConnectReturnCode::Accepted,
            1 => ConnectReturnCode::UnacceptableProtocolVersion,
            2 => ConnectReturnCode::IdentifierRejected,
            3 => ConnectReturnCode::ServerUnavailable,
            4 => ConnectReturnCode::BadUserNameOrPassword,
            5 => ConnectReturnCode::NotAuthorized,
            other => return Err(other),
        })
    }
}

/// PUBLISH: an application message.
#[derive(Clone, PartialEq, Eq)]
pub struct Publish {
    /// Re-delivery flag (only meaningful for QoS > 0).
    pub dup: bool,
    /// Delivery QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name (no wildcards).
    pub topic: ByteString,
    /// Packet identifier: present exactly when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// Application payload.
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
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .finish()
    }
}

/// SUBSCRIBE: one or more topic filters with their requested QoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier echoed in SUBACK.
    pub packet_id: PacketId,
    /// (filter, requested QoS) pairs, at least one ([MQTT-3.8.3-3]).
    pub filters: Vec<(ByteString, QoS)>,
}

/// One return code of SUBACK (§3.9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeReturnCode {
    /// Granted at this maximum QoS.
    Success(QoS),
    /// 0x80 Failure.
    Failure,
}

impl SubscribeReturnCode {
    /// The byte written in SUBACK.
    pub fn to_u8(self) -> u8 {
        match self {
            SubscribeReturnCode::Success(qos) => qos as u8,
            SubscribeReturnCode::Failure => 0x80,
        }
    }
}

impl TryFrom<u8> for SubscribeReturnCode {
    type Error = u8;

    /// Converts a SUBACK return code byte; `Err` carries a reserved value ([MQTT-3.9.3-2]).
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            0x80 => Ok(SubscribeReturnCode::Failure),
            other => QoS::try_from(other).map(SubscribeReturnCode::Success),
        }
    }
}

/// SUBACK: the server's answer to SUBSCRIBE, one return code per filter, same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// One code per requested filter.
    pub return_codes: Vec<SubscribeReturnCode>,
}

/// UNSUBSCRIBE: one or more topic filters to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier echoed in UNSUBACK.
    pub packet_id: PacketId,
    /// Filters to remove, at least one ([MQTT-3.10.3-2]).
    pub filters: Vec<ByteString>,
}

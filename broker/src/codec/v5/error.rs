//! How a [`DecodeError`] closes an MQTT 5 connection: the reason code to send, and the
//! MQTT 5.0 statement the input broke.
//!
//! §4.13 separates a Malformed Packet (0x81: the bytes cannot be parsed as the spec lays them
//! out) from a Protocol Error (0x82: they parse, but break a rule), and names more specific
//! codes where it has them. The spec decides each case: a property in the wrong packet is
//! Malformed (§2.2.2.2) while a repeated one is a Protocol Error (stated per property).

use crate::codec::error::DecodeError;
use crate::codec::types::PacketType;
use crate::codec::v5::properties::PropertyId;
use crate::codec::v5::reason::ReasonCode;

impl DecodeError {
    /// The reason code to close an MQTT 5 connection with after this error: in CONNACK if it
    /// came from the CONNECT, in DISCONNECT after that ([MQTT-4.13.1-1]).
    ///
    /// Every code returned is one DISCONNECT may carry, except Unsupported Protocol Version
    /// (0x84) and Client Identifier not valid (0x85), which only CONNECT errors produce; and
    /// every error a CONNECT can produce maps to a code CONNACK may carry.
    pub fn v5_reason(&self) -> ReasonCode {
        use DecodeError as E;
        match self {
            E::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            E::UnsupportedProtocolLevel(_) | E::InvalidProtocolName => {
                // [MQTT-3.1.2-1] and [MQTT-3.1.2-2] both suggest 0x84.
                ReasonCode::UnsupportedProtocolVersion
            }
            E::EmptyClientId(_) => ReasonCode::ClientIdentifierNotValid,
            E::WildcardInTopicName => ReasonCode::TopicNameInvalid,
            E::MisplacedMultiLevelWildcard | E::MisplacedSingleLevelWildcard => {
                ReasonCode::TopicFilterInvalid
            }
            E::InvalidPropertyValue {
                property: PropertyId::TopicAlias,
                ..
            } => ReasonCode::TopicAliasInvalid,
            // Reserved bits are Malformed [MQTT-3.8.3-5]; QoS 3 and Retain Handling 3 are
            // Protocol Errors (§3.8.3.1).
            E::InvalidSubscriptionOptions(byte) if byte & 0b1100_0000 != 0 => {
                ReasonCode::MalformedPacket
            }
            E::DuplicateProperty { .. }
            | E::InvalidPropertyValue { .. }
            | E::InvalidReasonCode { .. }
            | E::MissingAuthenticationMethod(_)
            | E::InvalidSubscriptionOptions(_)
            | E::NoLocalOnSharedSubscription
            | E::EmptySubscribe
            | E::EmptyUnsubscribe
            | E::EmptyTopic
            | E::PacketIdRequired
            | E::SessionPresentOnRefusal
            | E::ExpectedConnect(_) => ReasonCode::ProtocolError,
            E::MalformedRemainingLength
            | E::MalformedVariableByteInteger { .. }
            | E::NonMinimalVariableByteInteger { .. }
            | E::InvalidPacketType(_)
            | E::InvalidFlags { .. }
            | E::Truncated { .. }
            | E::InvalidRemainingLength { .. }
            | E::TrailingBytes { .. }
            | E::InvalidUtf8 { .. }
            | E::NullCharacter { .. }
            | E::InvalidPropertyId(_)
            | E::PropertyNotAllowed { .. }
            | E::ConnectReservedFlag
            | E::WillQoSWithoutWill
            | E::WillRetainWithoutWill
            | E::InvalidWillQoS
            | E::InvalidConnAckFlags(_)
            | E::InvalidQoS
            | E::DupWithQoS0
            // MQTT 3.1.1 only; never produced by the MQTT 5 decoder.
            | E::PasswordWithoutUsername
            | E::InvalidConnectReturnCode(_)
            | E::InvalidRequestedQoS(_)
            | E::InvalidSubAckReturnCode(_) => ReasonCode::MalformedPacket,
        }
    }

    /// The MQTT 5.0 normative statement the input breaks, e.g. `"MQTT-3.8.3-4"`; where the
    /// rule has no number, the section that states it, e.g. `"§3.1.2.11.2"`; `None` for
    /// framing limits and errors the MQTT 5 decoder never produces.
    pub fn v5_spec_reference(&self) -> Option<&'static str> {
        use DecodeError as E;
        Some(match self {
            E::NonMinimalVariableByteInteger { .. } => "MQTT-1.5.5-1",
            E::InvalidFlags { .. } => "MQTT-2.1.3-1",
            E::InvalidUtf8 { .. } => "MQTT-1.5.4-1",
            E::NullCharacter { .. } => "MQTT-1.5.4-2",
            E::PacketIdRequired => "MQTT-2.2.1-3",
            E::EmptyTopic => "MQTT-4.7.3-1",
            E::WildcardInTopicName => "MQTT-4.7.0-1",
            E::MisplacedMultiLevelWildcard => "MQTT-4.7.1-1",
            E::MisplacedSingleLevelWildcard => "MQTT-4.7.1-2",
            E::ExpectedConnect(_) => "MQTT-3.1.0-1",
            E::InvalidProtocolName => "MQTT-3.1.2-1",
            E::UnsupportedProtocolLevel(_) => "MQTT-3.1.2-2",
            E::ConnectReservedFlag => "MQTT-3.1.2-3",
            E::WillQoSWithoutWill => "MQTT-3.1.2-13",
            E::InvalidWillQoS => "MQTT-3.1.2-14",
            E::WillRetainWithoutWill => "MQTT-3.1.2-15",
            E::EmptyClientId(_) => "MQTT-3.1.3-8",
            E::InvalidConnAckFlags(_) => "MQTT-3.2.2-1",
            E::SessionPresentOnRefusal => "MQTT-3.2.2-6",
            E::DupWithQoS0 => "MQTT-3.3.1-2",
            E::InvalidQoS => "MQTT-3.3.1-4",
            E::EmptySubscribe => "MQTT-3.8.3-2",
            E::NoLocalOnSharedSubscription => "MQTT-3.8.3-4",
            E::InvalidSubscriptionOptions(byte) if byte & 0b1100_0000 != 0 => "MQTT-3.8.3-5",
            E::InvalidSubscriptionOptions(_) => "§3.8.3.1",
            E::EmptyUnsubscribe => "MQTT-3.10.3-2",
            E::InvalidPropertyId(_) | E::PropertyNotAllowed { .. } => "§2.2.2.2",
            E::DuplicateProperty { property, context } => property.spec_section(*context)?,
            E::InvalidPropertyValue {
                property: PropertyId::TopicAlias,
                ..
            } => "MQTT-3.3.2-8",
            E::InvalidPropertyValue {
                property, context, ..
            } => property.spec_section(*context)?,
            E::InvalidReasonCode { packet, .. } => reason_code_statement(*packet)?,
            E::MissingAuthenticationMethod(PacketType::Connect) => "§3.1.2.11.10",
            E::MissingAuthenticationMethod(_) => "§3.15.2.2.2",
            E::PacketTooLarge { .. }
            | E::MalformedRemainingLength
            | E::MalformedVariableByteInteger { .. }
            | E::InvalidPacketType(_)
            | E::Truncated { .. }
            | E::InvalidRemainingLength { .. }
            | E::TrailingBytes { .. }
            | E::PasswordWithoutUsername
            | E::InvalidConnectReturnCode(_)
            | E::InvalidRequestedQoS(_)
            | E::InvalidSubAckReturnCode(_) => return None,
        })
    }
}

/// The statement requiring the sender of `packet` to use one of its reason codes.
fn reason_code_statement(packet: PacketType) -> Option<&'static str> {
    Some(match packet {
        PacketType::ConnAck => "MQTT-3.2.2-8",
        PacketType::PubAck => "MQTT-3.4.2-1",
        PacketType::PubRec => "MQTT-3.5.2-1",
        PacketType::PubRel => "MQTT-3.6.2-1",
        PacketType::PubComp => "MQTT-3.7.2-1",
        PacketType::SubAck => "MQTT-3.9.3-2",
        PacketType::UnsubAck => "MQTT-3.11.3-2",
        PacketType::Disconnect => "MQTT-3.14.2-1",
        PacketType::Auth => "MQTT-3.15.2-1",
        _ => return None,
    })
}

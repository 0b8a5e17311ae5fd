//! Decoding and encoding errors, shared by every protocol version.
//!
//! Every way a peer's bytes can be bad is its own [`DecodeError`] variant, and each variant that
//! breaks a normative statement of the MQTT 3.1.1 specification names it through
//! [`DecodeError::spec_statement`]. Whatever the variant, the connection must be closed after a
//! decode error; [`DecodeError::connack_code`] says whether a CONNACK has to be sent first.
//!
//! MQTT 5 closes a connection with a reason code instead: [`DecodeError::v5_reason`] gives it,
//! and [`DecodeError::v5_spec_reference`] names the MQTT 5.0 statement broken (both live in
//! `codec::v5::error`, beside the rest of MQTT 5).
//!
//! "Need more bytes" is not an error: decoders return `Ok(None)` for it.

use crate::codec::properties::{PropertyContext, PropertyId};
use crate::codec::reason::ReasonCode;
use crate::codec::types::{PacketType, ProtocolVersion};

/// Why a byte stream is not a valid sequence of MQTT packets.
///
/// After any of these the stream cannot be resynchronised: close the network connection, after
/// sending a CONNACK with [`DecodeError::connack_code`] if that returns `Some`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    // ---- framing --------------------------------------------------------------------------
    /// The fixed header announces a packet larger than the configured maximum. Detected from the
    /// fixed header alone, before any of the body is buffered.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Total size announced: fixed header plus remaining length.
        size: u64,
        /// The configured maximum.
        max: u32,
    },
    /// The remaining length field continues past its fourth byte (spec §2.2.3).
    #[error("malformed remaining length: continues past 4 bytes")]
    MalformedRemainingLength,
    /// The packet type nibble is reserved (0, or 15 outside MQTT 5).
    #[error("invalid packet type {0}")]
    InvalidPacketType(u8),
    /// The fixed-header flags are not the ones the packet type requires.
    #[error("invalid fixed header flags {flags:#06b} for {packet}")]
    InvalidFlags {
        /// The packet type.
        packet: PacketType,
        /// The low nibble of the first byte.
        flags: u8,
    },
    /// A field runs past the end of the packet.
    #[error("packet truncated: {field} runs past the end of the packet")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A fixed-size packet has the wrong remaining length.
    #[error("{packet} must have remaining length {expected}, got {actual}")]
    InvalidRemainingLength {
        /// The packet type.
        packet: PacketType,
        /// The only valid remaining length for this packet type.
        expected: u32,
        /// The remaining length received.
        actual: u32,
    },
    /// Bytes are left over after the last field of a packet.
    #[error("{count} unexpected trailing byte(s) after the {packet} payload")]
    TrailingBytes {
        /// The packet type.
        packet: PacketType,
        /// How many bytes were left.
        count: usize,
    },

    // ---- fields shared by several packets ------------------------------------------------
    /// A string is not well-formed UTF-8 (this includes encoded surrogates).
    #[error("{field} is not well-formed UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A string contains U+0000.
    #[error("{field} contains the null character U+0000")]
    NullCharacter {
        /// The field being read.
        field: &'static str,
    },
    /// A packet that needs a packet identifier lacks it, or it is 0.
    #[error("packet identifier missing or zero")]
    PacketIdRequired,
    /// A topic name or filter is empty.
    #[error("topic names and filters must be at least one character long")]
    EmptyTopic,
    /// A topic name (in PUBLISH or a will) contains `+` or `#`.
    #[error("topic name contains a wildcard character")]
    WildcardInTopicName,
    /// `#` is not the last character of a topic filter, or not alone in its level.
    #[error("multi-level wildcard '#' must be alone in the last level of a topic filter")]
    MisplacedMultiLevelWildcard,
    /// `+` does not occupy a whole level of a topic filter.
    #[error("single-level wildcard '+' must occupy an entire level of a topic filter")]
    MisplacedSingleLevelWildcard,

    // ---- CONNECT --------------------------------------------------------------------------
    /// The protocol name is neither `MQTT` nor `MQIsdp`.
    #[error("unknown protocol name")]
    InvalidProtocolName,
    /// The protocol name is known but the level is not one this decoder speaks.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    /// The reserved bit 0 of the CONNECT flags is set.
    #[error("reserved CONNECT flag is set")]
    ConnectReservedFlag,
    /// Will QoS is non-zero although the will flag is 0.
    #[error("will QoS set without the will flag")]
    WillQoSWithoutWill,
    /// Will retain is set although the will flag is 0.
    #[error("will retain set without the will flag")]
    WillRetainWithoutWill,
    /// Will QoS is 3.
    #[error("will QoS 3 is invalid")]
    InvalidWillQoS,
    /// The password flag is set without the user name flag (MQTT 3.1.1).
    #[error("password flag set without the user name flag")]
    PasswordWithoutUsername,
    /// The client identifier is empty where the protocol forbids it: with clean session 0 in
    /// 3.1.1, always in 3.1.
    #[error("empty client identifier is not allowed here (MQTT {0})")]
    EmptyClientId(ProtocolVersion),

    // ---- CONNACK --------------------------------------------------------------------------
    /// The reserved bits 7..1 of the CONNACK acknowledge flags are set.
    #[error("reserved CONNACK flags are set: {0:#010b}")]
    InvalidConnAckFlags(u8),
    /// The CONNACK return code is reserved (6..=255).
    #[error("reserved CONNACK return code {0}")]
    InvalidConnectReturnCode(u8),
    /// Session present is set in a CONNACK that refuses the connection.
    #[error("session present set in a refusing CONNACK")]
    SessionPresentOnRefusal,

    // ---- PUBLISH --------------------------------------------------------------------------
    /// Both QoS bits of a PUBLISH are set.
    #[error("PUBLISH QoS 3 is invalid")]
    InvalidQoS,
    /// DUP is set on a QoS 0 PUBLISH.
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQoS0,

    // ---- SUBSCRIBE / SUBACK / UNSUBSCRIBE -------------------------------------------------
    /// A SUBSCRIBE carries no topic filter.
    #[error("SUBSCRIBE without topic filters")]
    EmptySubscribe,
    /// A SUBSCRIBE requested-QoS byte has reserved bits set or asks for QoS 3.
    #[error("invalid requested QoS byte {0:#04x} in SUBSCRIBE")]
    InvalidRequestedQoS(u8),
    /// A SUBACK return code is reserved.
    #[error("reserved SUBACK return code {0:#04x}")]
    InvalidSubAckReturnCode(u8),
    /// An UNSUBSCRIBE carries no topic filter.
    #[error("UNSUBSCRIBE without topic filters")]
    EmptyUnsubscribe,

    // ---- connection start -----------------------------------------------------------------
    /// The first packet of a connection is not CONNECT ([MQTT-3.1.0-1]).
    #[error("the first packet must be CONNECT, got {0}")]
    ExpectedConnect(PacketType),

    // ---- MQTT 5 ---------------------------------------------------------------------------
    /// A variable byte integer other than the remaining length (a property length, a
    /// subscription identifier) continues past its fourth byte (MQTT 5 §1.5.5).
    #[error("malformed variable byte integer in {field}: continues past 4 bytes")]
    MalformedVariableByteInteger {
        /// The field being read.
        field: &'static str,
    },
    /// A variable byte integer does not use the fewest bytes possible, which MQTT 5 requires
    /// of every one, the remaining length included.
    #[error("{field} is not encoded in the fewest bytes possible")]
    NonMinimalVariableByteInteger {
        /// The field being read.
        field: &'static str,
    },
    /// A property identifier that MQTT 5 does not define.
    #[error("unknown property identifier {0:#04x}")]
    InvalidPropertyId(u8),
    /// A property in a packet (or the will properties) that may not carry it
    /// (MQTT 5 §2.2.2.2, Table 2-4).
    #[error("property {property} is not allowed in {context}")]
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// Where it appeared.
        context: PropertyContext,
    },
    /// A property that may appear at most once appears again.
    #[error("property {property} appears more than once in {context}")]
    DuplicateProperty {
        /// The property.
        property: PropertyId,
        /// Where it appeared.
        context: PropertyContext,
    },
    /// A property value outside its range: 0 where 0 is forbidden, or a byte that must be
    /// 0 or 1.
    #[error("invalid value {value} for property {property} in {context}")]
    InvalidPropertyValue {
        /// The property.
        property: PropertyId,
        /// Where it appeared.
        context: PropertyContext,
        /// The value received.
        value: u32,
    },
    /// A reason code that MQTT 5 does not define, or that this packet type may not carry.
    #[error("reason code {code:#04x} is not allowed in {packet}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The reason code byte received.
        code: u8,
    },
    /// Authentication data without an authentication method (CONNECT), or an AUTH packet
    /// without an authentication method.
    #[error("{0} lacks the authentication method it requires")]
    MissingAuthenticationMethod(PacketType),
    /// A SUBSCRIBE subscription options byte with reserved bits set, QoS 3 or retain
    /// handling 3.
    #[error("invalid subscription options byte {0:#04x}")]
    InvalidSubscriptionOptions(u8),
    /// No Local is set on a shared subscription (`$share/...`).
    #[error("no local set on a shared subscription")]
    NoLocalOnSharedSubscription,
}

impl DecodeError {
    /// The MQTT 3.1.1 normative statement the input violates, e.g. `"MQTT-3.3.1-4"`, or `None`
    /// where the spec has no numbered statement for it (framing limits, reserved values
    /// described only in prose, MQTT 3.1-only rules).
    pub fn spec_statement(&self) -> Option<&'static str> {
        use DecodeError as E;
        Some(match self {
            E::PacketTooLarge { .. }
            | E::MalformedRemainingLength
            | E::InvalidPacketType(_)
            | E::Truncated { .. }
            | E::InvalidRemainingLength { .. }
            | E::TrailingBytes { .. }
            | E::InvalidConnAckFlags(_)
            | E::InvalidConnectReturnCode(_)
            | E::EmptyClientId(ProtocolVersion::V31 | ProtocolVersion::V5)
            // MQTT 5 only: see `v5_spec_reference`.
            | E::MalformedVariableByteInteger { .. }
            | E::NonMinimalVariableByteInteger { .. }
            | E::InvalidPropertyId(_)
            | E::PropertyNotAllowed { .. }
            | E::DuplicateProperty { .. }
            | E::InvalidPropertyValue { .. }
            | E::InvalidReasonCode { .. }
            | E::MissingAuthenticationMethod(_)
            | E::InvalidSubscriptionOptions(_)
            | E::NoLocalOnSharedSubscription => return None,
            E::InvalidFlags { .. } => "MQTT-2.2.2-2",
            E::InvalidUtf8 { .. } => "MQTT-1.5.3-1",
            E::NullCharacter { .. } => "MQTT-1.5.3-2",
            E::PacketIdRequired => "MQTT-2.3.1-1",
            E::EmptyTopic => "MQTT-4.7.3-1",
            E::WildcardInTopicName => "MQTT-3.3.2-2",
            E::MisplacedMultiLevelWildcard => "MQTT-4.7.1-2",
            E::MisplacedSingleLevelWildcard => "MQTT-4.7.1-3",
            E::InvalidProtocolName => "MQTT-3.1.2-1",
            E::UnsupportedProtocolLevel(_) => "MQTT-3.1.2-2",
            E::ConnectReservedFlag => "MQTT-3.1.2-3",
            E::WillQoSWithoutWill => "MQTT-3.1.2-13",
            E::InvalidWillQoS => "MQTT-3.1.2-14",
            E::WillRetainWithoutWill => "MQTT-3.1.2-15",
            E::PasswordWithoutUsername => "MQTT-3.1.2-22",
            E::EmptyClientId(ProtocolVersion::V311) => "MQTT-3.1.3-8",
            E::SessionPresentOnRefusal => "MQTT-3.2.2-4",
            E::InvalidQoS => "MQTT-3.3.1-4",
            E::DupWithQoS0 => "MQTT-3.3.1-2",
            E::EmptySubscribe => "MQTT-3.8.3-3",
            E::InvalidRequestedQoS(_) => "MQTT-3-8.3-4",
            E::InvalidSubAckReturnCode(_) => "MQTT-3.9.3-2",
            E::EmptyUnsubscribe => "MQTT-3.10.3-2",
            E::ExpectedConnect(_) => "MQTT-3.1.0-1",
        })
    }
}

/// Why a packet value cannot be encoded. The output buffer is left unchanged when this is
/// returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The packet's remaining length would exceed 268 435 455, the largest the 4-byte
    /// variable-length encoding can express (spec §2.2.3).
    #[error("remaining length {0} exceeds the maximum of 268435455")]
    PacketTooLarge(usize),
    /// A length-prefixed string or binary field is longer than 65 535 bytes (spec §1.5.3).
    #[error("{field} is {len} bytes long, more than 65535")]
    FieldTooLong {
        /// The field being written.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A PUBLISH has a packet identifier but QoS 0 ([MQTT-2.3.1-5]), or lacks one with
    /// QoS > 0 ([MQTT-2.3.1-1]).
    #[error("PUBLISH packet identifier must be present exactly when QoS > 0")]
    PacketIdMismatch,
    /// This codec cannot write a CONNECT for this protocol version.
    #[error("cannot encode a CONNECT for MQTT {0} with this codec")]
    UnsupportedProtocolVersion(ProtocolVersion),
    /// An MQTT 5 reason code that this packet type may not carry (MQTT 5 §2.4, Table 2-6).
    #[error("reason code {code} is not allowed in {packet}")]
    ReasonCodeNotAllowed {
        /// The packet type.
        packet: PacketType,
        /// The reason code.
        code: ReasonCode,
    },
    /// An MQTT 5 property value the receiver would reject: a Maximum QoS of 2.
    #[error("invalid value for property {0}")]
    InvalidPropertyValue(PropertyId),
    /// An MQTT 5 CONNECT with authentication data but no authentication method, or an AUTH
    /// that is not the two-byte short form but has no authentication method.
    #[error("{0} lacks the authentication method it requires")]
    MissingAuthenticationMethod(PacketType),
}

//! MQTT 5 property identifiers (spec §2.2.2): the 27 identifiers, their data types, and which
//! packets may carry each (Table 2-4). The vocabulary that errors and both directions of the
//! MQTT 5 codec share; reading and writing property sections is in `v5::properties`.

use crate::codec::types::PacketType;

mod table;

/// The data type of a property value (spec §1.5, as listed in Table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// One byte.
    Byte,
    /// A big-endian `u16`.
    TwoByteInteger,
    /// A big-endian `u32`.
    FourByteInteger,
    /// A variable byte integer of one to four bytes.
    VariableByteInteger,
    /// A length-prefixed UTF-8 string.
    Utf8String,
    /// Length-prefixed bytes.
    BinaryData,
    /// Two UTF-8 strings: a name and a value.
    Utf8StringPair,
}

/// Where a property section sits: in a packet's variable header, or the will properties in
/// the CONNECT payload, which have rules of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyContext {
    /// The properties of a packet of this type.
    Packet(PacketType),
    /// The will properties of CONNECT (§3.1.3.2).
    Will,
}

impl std::fmt::Display for PropertyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyContext::Packet(packet) => f.write_str(packet.name()),
            PropertyContext::Will => f.write_str("will properties"),
        }
    }
}

macro_rules! property_ids {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $value:literal, $name:literal, $data_type:ident;
    )+) => {
        /// An MQTT 5 property identifier (Table 2-4).
        ///
        /// The spec defines identifiers as variable byte integers, but every one it defines
        /// fits in one byte.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum PropertyId {
            $( $(#[$doc])* $variant = $value, )+
        }

        impl PropertyId {
            /// Every property identifier, in ascending order of value.
            pub const ALL: &'static [PropertyId] = &[$(PropertyId::$variant),+];

            /// The property's name as the spec writes it.
            pub fn name(self) -> &'static str {
                match self {
                    $(PropertyId::$variant => $name,)+
                }
            }

            /// The type of the property's value.
            pub fn data_type(self) -> DataType {
                match self {
                    $(PropertyId::$variant => DataType::$data_type,)+
                }
            }
        }

        impl TryFrom<u8> for PropertyId {
            type Error = u8;

            /// Converts an identifier byte; `Err` carries a value MQTT 5 does not define
            /// (including any first byte of a multi-byte identifier).
            fn try_from(value: u8) -> Result<Self, Self::Error> {
                match value {
                    $($value => Ok(PropertyId::$variant),)+
                    other => Err(other),
                }
            }
        }
    };
}

property_ids! {
    /// 0x01: 0 for unspecified bytes, 1 for UTF-8 character data.
    PayloadFormatIndicator = 0x01, "Payload Format Indicator", Byte;
    /// 0x02: lifetime of the application message in seconds.
    MessageExpiryInterval = 0x02, "Message Expiry Interval", FourByteInteger;
    /// 0x03: MIME-like description of the payload.
    ContentType = 0x03, "Content Type", Utf8String;
    /// 0x08: topic name for a response message.
    ResponseTopic = 0x08, "Response Topic", Utf8String;
    /// 0x09: lets a requester match a response to its request.
    CorrelationData = 0x09, "Correlation Data", BinaryData;
    /// 0x0B: identifier of a subscription, 1 to 268 435 455.
    SubscriptionIdentifier = 0x0B, "Subscription Identifier", VariableByteInteger;
    /// 0x11: how long the session outlives the connection, in seconds.
    SessionExpiryInterval = 0x11, "Session Expiry Interval", FourByteInteger;
    /// 0x12: the client identifier the server assigned.
    AssignedClientIdentifier = 0x12, "Assigned Client Identifier", Utf8String;
    /// 0x13: the keep alive the server imposes, in seconds.
    ServerKeepAlive = 0x13, "Server Keep Alive", TwoByteInteger;
    /// 0x15: name of the extended authentication method.
    AuthenticationMethod = 0x15, "Authentication Method", Utf8String;
    /// 0x16: data of the extended authentication method.
    AuthenticationData = 0x16, "Authentication Data", BinaryData;
    /// 0x17: whether the server may send reason strings and user properties on failures.
    RequestProblemInformation = 0x17, "Request Problem Information", Byte;
    /// 0x18: delay before the will is published, in seconds.
    WillDelayInterval = 0x18, "Will Delay Interval", FourByteInteger;
    /// 0x19: whether the client asks for response information in CONNACK.
    RequestResponseInformation = 0x19, "Request Response Information", Byte;
    /// 0x1A: basis for response topics.
    ResponseInformation = 0x1A, "Response Information", Utf8String;
    /// 0x1C: another server the client may use.
    ServerReference = 0x1C, "Server Reference", Utf8String;
    /// 0x1F: human-readable diagnostic.
    ReasonString = 0x1F, "Reason String", Utf8String;
    /// 0x21: how many QoS 1 and 2 publications the sender will process at once.
    ReceiveMaximum = 0x21, "Receive Maximum", TwoByteInteger;
    /// 0x22: the highest topic alias the sender accepts.
    TopicAliasMaximum = 0x22, "Topic Alias Maximum", TwoByteInteger;
    /// 0x23: an integer standing for the topic name.
    TopicAlias = 0x23, "Topic Alias", TwoByteInteger;
    /// 0x24: the highest QoS the server supports, 0 or 1 (absent means 2).
    MaximumQoS = 0x24, "Maximum QoS", Byte;
    /// 0x25: whether the server supports retained messages.
    RetainAvailable = 0x25, "Retain Available", Byte;
    /// 0x26: a name/value pair; may repeat, order kept.
    UserProperty = 0x26, "User Property", Utf8StringPair;
    /// 0x27: the largest packet the sender accepts, in bytes.
    MaximumPacketSize = 0x27, "Maximum Packet Size", FourByteInteger;
    /// 0x28: whether the server supports wildcard subscriptions.
    WildcardSubscriptionAvailable = 0x28, "Wildcard Subscription Available", Byte;
    /// 0x29: whether the server supports subscription identifiers.
    SubscriptionIdentifierAvailable = 0x29, "Subscription Identifier Available", Byte;
    /// 0x2A: whether the server supports shared subscriptions.
    SharedSubscriptionAvailable = 0x2A, "Shared Subscription Available", Byte;
}

impl std::fmt::Display for PropertyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:#04x})", self.name(), *self as u8)
    }
}

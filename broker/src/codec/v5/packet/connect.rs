//! CONNECT (§3.1) with its will, and CONNACK (§3.2).

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::types::QoS;
use crate::codec::v5::packet::{UserProperties, redacted};
use crate::codec::v5::reason::ReasonCode;

/// CONNECT: the first packet of every connection. The protocol is always `MQTT` level 5.
#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    /// Clean Start: discard any existing session and start a new one.
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables the keepalive check.
    pub keep_alive: u16,
    /// CONNECT properties.
    pub properties: ConnectProperties,
    /// Client identifier; may be empty, for the server to assign one (§3.1.3.1).
    pub client_id: ByteString,
    /// The will message, published if the connection ends without a normal DISCONNECT.
    pub will: Option<LastWill>,
    /// User name, if the user name flag was set.
    pub username: Option<ByteString>,
    /// Password, if the password flag was set (MQTT 5 allows one without a user name).
    /// Redacted in `Debug`.
    pub password: Option<Bytes>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("clean_start", &self.clean_start)
            .field("keep_alive", &self.keep_alive)
            .field("properties", &self.properties)
            .field("client_id", &self.client_id)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .finish()
    }
}

/// CONNECT properties (§3.1.2.11).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// How long the session outlives the connection, in seconds; absent means 0, and
    /// `u32::MAX` means it never expires.
    pub session_expiry_interval: Option<u32>,
    /// How many QoS 1 and 2 publications the client processes at once; absent means 65 535.
    pub receive_maximum: Option<NonZeroU16>,
    /// The largest packet the client accepts; absent means no limit beyond the protocol's.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// The highest topic alias the client accepts from the server; absent means 0 (none).
    pub topic_alias_maximum: Option<u16>,
    /// Whether the client asks for Response Information in CONNACK.
    pub request_response_information: Option<bool>,
    /// Whether the server may send Reason Strings and User Properties on failures.
    pub request_problem_information: Option<bool>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Extended authentication method.
    pub authentication_method: Option<ByteString>,
    /// Extended authentication data; only with a method (§3.1.2.11.10). Redacted in `Debug`.
    pub authentication_data: Option<Bytes>,
}

impl std::fmt::Debug for ConnectProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectProperties")
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("receive_maximum", &self.receive_maximum)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .field("topic_alias_maximum", &self.topic_alias_maximum)
            .field(
                "request_response_information",
                &self.request_response_information,
            )
            .field(
                "request_problem_information",
                &self.request_problem_information,
            )
            .field("user_properties", &self.user_properties)
            .field("authentication_method", &self.authentication_method)
            .field("authentication_data", &redacted(&self.authentication_data))
            .finish()
    }
}

/// The will message carried by CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Topic the will is published to.
    pub topic: ByteString,
    /// Will payload. Shown by size only in `Debug`.
    pub payload: Bytes,
    /// QoS of the will publication.
    pub qos: QoS,
    /// Whether the will is published as retained.
    pub retain: bool,
    /// Will properties.
    pub properties: WillProperties,
}

impl std::fmt::Debug for LastWill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastWill")
            .field("topic", &self.topic)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("properties", &self.properties)
            .finish()
    }
}

/// Will properties (§3.1.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    /// Delay before the will is published, in seconds; absent means 0.
    pub will_delay_interval: Option<u32>,
    /// `true` if the payload is UTF-8 character data, `false` if unspecified bytes.
    pub payload_format_indicator: Option<bool>,
    /// Lifetime of the will message in seconds; absent means it does not expire.
    pub message_expiry_interval: Option<u32>,
    /// Content type of the payload.
    pub content_type: Option<ByteString>,
    /// Response topic: a topic name, no wildcards ([MQTT-3.3.2-14]).
    pub response_topic: Option<ByteString>,
    /// Correlation data for a response.
    pub correlation_data: Option<Bytes>,
    /// User properties.
    pub user_properties: UserProperties,
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session; false unless the reason code is
    /// [`ReasonCode::Success`] ([MQTT-3.2.2-6]).
    pub session_present: bool,
    /// Success or the reason for refusal; one of the CONNACK codes of Table 3-1.
    pub reason_code: ReasonCode,
    /// CONNACK properties.
    pub properties: ConnAckProperties,
}

/// CONNACK properties (§3.2.2.3).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// The session expiry the server uses, if it differs from the client's.
    pub session_expiry_interval: Option<u32>,
    /// How many QoS 1 and 2 publications the server processes at once; absent means 65 535.
    pub receive_maximum: Option<NonZeroU16>,
    /// The highest QoS the server supports: QoS 0 or 1 only (absent means 2; the encoder
    /// refuses `Some(QoS::ExactlyOnce)`).
    pub maximum_qos: Option<QoS>,
    /// Whether the server supports retained messages; absent means it does.
    pub retain_available: Option<bool>,
    /// The largest packet the server accepts.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// The client identifier the server assigned to a client that sent an empty one.
    pub assigned_client_identifier: Option<ByteString>,
    /// The highest topic alias the server accepts; absent means 0 (none).
    pub topic_alias_maximum: Option<u16>,
    /// Human-readable diagnostic.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Whether the server supports wildcard subscriptions; absent means it does.
    pub wildcard_subscription_available: Option<bool>,
    /// Whether the server supports subscription identifiers; absent means it does.
    pub subscription_identifiers_available: Option<bool>,
    /// Whether the server supports shared subscriptions; absent means it does.
    pub shared_subscription_available: Option<bool>,
    /// The keep alive the client must use instead of its own, in seconds.
    pub server_keep_alive: Option<u16>,
    /// Basis for creating response topics.
    pub response_information: Option<ByteString>,
    /// Another server the client may use.
    pub server_reference: Option<ByteString>,
    /// Extended authentication method.
    pub authentication_method: Option<ByteString>,
    /// Extended authentication data. Redacted in `Debug`.
    pub authentication_data: Option<Bytes>,
}

impl std::fmt::Debug for ConnAckProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnAckProperties")
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("receive_maximum", &self.receive_maximum)
            .field("maximum_qos", &self.maximum_qos)
            .field("retain_available", &self.retain_available)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .field(
                "assigned_client_identifier",
                &self.assigned_client_identifier,
            )
            .field("topic_alias_maximum", &self.topic_alias_maximum)
            .field("reason_string", &self.reason_string)
            .field("user_properties", &self.user_properties)
            .field(
                "wildcard_subscription_available",
                &self.wildcard_subscription_available,
            )
            .field(
                "subscription_identifiers_available",
                &self.subscription_identifiers_available,
            )
            .field(
                "shared_subscription_available",
                &self.shared_subscription_available,
            )
            .field("server_keep_alive", &self.server_keep_alive)
            .field("response_information", &self.response_information)
            .field("server_reference", &self.server_reference)
            .field("authentication_method", &self.authentication_method)
            .field("authentication_data", &redacted(&self.authentication_data))
            .finish()
    }
}

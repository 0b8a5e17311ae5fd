//! DISCONNECT (§3.14) and AUTH (§3.15).

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::v5::packet::{UserProperties, redacted};
use crate::codec::v5::reason::ReasonCode;

/// DISCONNECT: the last packet of a connection, from either side.
///
/// With [`ReasonCode::NORMAL_DISCONNECTION`] and no properties it is written in its short form,
/// with no body (§3.14.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// Why the connection ends; one of the DISCONNECT codes of Table 3-11.
    pub reason_code: ReasonCode,
    /// DISCONNECT properties.
    pub properties: DisconnectProperties,
}

/// DISCONNECT properties (§3.14.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// New session expiry, from the client only ([MQTT-3.14.2-2]).
    pub session_expiry_interval: Option<u32>,
    /// Human-readable diagnostic.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
    /// Another server the client may use.
    pub server_reference: Option<ByteString>,
}

/// AUTH: one step of an extended authentication exchange (§4.12).
///
/// With [`ReasonCode::Success`] and no properties it is written in its short form, with no
/// body; otherwise the authentication method is required (§3.15.2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Success (0x00), Continue authentication (0x18) or Re-authenticate (0x19).
    pub reason_code: ReasonCode,
    /// AUTH properties.
    pub properties: AuthProperties,
}

/// AUTH properties (§3.15.2.2).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// Extended authentication method; required unless the packet is the short form.
    pub authentication_method: Option<ByteString>,
    /// Extended authentication data. Redacted in `Debug`.
    pub authentication_data: Option<Bytes>,
    /// Human-readable diagnostic.
    pub reason_string: Option<ByteString>,
    /// User properties.
    pub user_properties: UserProperties,
}

impl std::fmt::Debug for AuthProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthProperties")
            .field("authentication_method", &self.authentication_method)
            .field("authentication_data", &redacted(&self.authentication_data))
            .field("reason_string", &self.reason_string)
            .field("user_properties", &self.user_properties)
            .finish()
    }
}

//! Encoding DISCONNECT (§3.14) and AUTH (§3.15).

use bytes::{BufMut, BytesMut};

use crate::codec::error::EncodeError;
use crate::codec::primitives::ensure;
use crate::codec::types::PacketType;
use crate::codec::v5::encode::{check_reason_code, write_header};
use crate::codec::v5::packet::{Auth, AuthProperties, Disconnect, DisconnectProperties};
use crate::codec::v5::properties::PropertyId as P;
use crate::codec::v5::properties::write::{
    PropertyWriter, WriteProperties, properties_len, section_len, write_properties,
};
use crate::codec::v5::reason::ReasonCode;

/// Writes DISCONNECT in its shortest form: no body for a normal disconnection without
/// properties, no property length when there are no properties (§3.14.2.1).
pub(super) fn write_disconnect(
    disconnect: &Disconnect,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_reason_code(PacketType::Disconnect, disconnect.reason_code)?;
    let props_len = properties_len(&disconnect.properties)?;
    let len = match (props_len, disconnect.reason_code) {
        (0, ReasonCode::Success) => 0,
        (0, _) => 1,
        _ => 1 + section_len(props_len),
    };
    write_header(PacketType::Disconnect, 0, len, dst)?;
    if len > 0 {
        dst.put_u8(disconnect.reason_code as u8);
    }
    if props_len > 0 {
        write_properties(&disconnect.properties, props_len, dst)?;
    }
    Ok(())
}

impl WriteProperties for DisconnectProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.four(P::SessionExpiryInterval, self.session_expiry_interval);
        w.string(P::ReasonString, self.reason_string.as_deref())?;
        w.user_properties(&self.user_properties)?;
        w.string(P::ServerReference, self.server_reference.as_deref())
    }
}

/// Writes AUTH: no body for Success without properties (§3.15.2.1); otherwise the reason
/// code and the properties, which must name the authentication method (§3.15.2.2.2).
pub(super) fn write_auth(auth: &Auth, dst: &mut BytesMut) -> Result<(), EncodeError> {
    check_reason_code(PacketType::Auth, auth.reason_code)?;
    let props_len = properties_len(&auth.properties)?;
    if props_len == 0 && auth.reason_code == ReasonCode::Success {
        return write_header(PacketType::Auth, 0, 0, dst);
    }
    ensure!(
        auth.properties.authentication_method.is_some(),
        EncodeError::MissingAuthenticationMethod(PacketType::Auth)
    );
    write_header(PacketType::Auth, 0, 1 + section_len(props_len), dst)?;
    dst.put_u8(auth.reason_code as u8);
    write_properties(&auth.properties, props_len, dst)
}

impl WriteProperties for AuthProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.string(
            P::AuthenticationMethod,
            self.authentication_method.as_deref(),
        )?;
        w.binary(P::AuthenticationData, self.authentication_data.as_deref())?;
        w.string(P::ReasonString, self.reason_string.as_deref())?;
        w.user_properties(&self.user_properties)
    }
}

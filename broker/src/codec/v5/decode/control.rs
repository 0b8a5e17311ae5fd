//! Decoding DISCONNECT (§3.14) and AUTH (§3.15).

use bytes::Bytes;

use crate::codec::error::DecodeError;
use crate::codec::primitives::ensure;
use crate::codec::types::PacketType;
use crate::codec::v5::decode::read_reason_code;
use crate::codec::v5::packet::{Auth, AuthProperties, Disconnect, DisconnectProperties};
use crate::codec::v5::properties::read::read_properties;
use crate::codec::v5::properties::{PropertyContext, PropertyId as P};
use crate::codec::v5::reason::ReasonCode;

/// Decodes DISCONNECT, including the short forms: no body is a normal disconnection, and a
/// reason code without a property length means no properties (§3.14.2.1).
pub(super) fn decode_disconnect(src: &mut Bytes) -> Result<Disconnect, DecodeError> {
    if src.is_empty() {
        return Ok(Disconnect::default());
    }
    let reason_code = read_reason_code(src, PacketType::Disconnect)?;
    let mut properties = DisconnectProperties::default();
    if !src.is_empty() {
        read_properties(src, PropertyContext::Packet(PacketType::Disconnect), |v| {
            let p = &mut properties;
            match v.id() {
                P::SessionExpiryInterval => p.session_expiry_interval = Some(v.four()?),
                P::ReasonString => p.reason_string = Some(v.string()?),
                P::UserProperty => p.user_properties.push(v.pair()?),
                P::ServerReference => p.server_reference = Some(v.string()?),
                _ => return Err(v.not_allowed()),
            }
            Ok(())
        })?;
    }
    Ok(Disconnect {
        reason_code,
        properties,
    })
}

/// Decodes AUTH. Its only short form is no body at all, for Success without properties
/// (§3.15.2.1); otherwise the properties must name the authentication method (§3.15.2.2.2).
pub(super) fn decode_auth(src: &mut Bytes) -> Result<Auth, DecodeError> {
    if src.is_empty() {
        return Ok(Auth {
            reason_code: ReasonCode::Success,
            properties: AuthProperties::default(),
        });
    }
    let reason_code = read_reason_code(src, PacketType::Auth)?;
    let mut p = AuthProperties::default();
    read_properties(src, PropertyContext::Packet(PacketType::Auth), |v| {
        match v.id() {
            P::AuthenticationMethod => p.authentication_method = Some(v.string()?),
            P::AuthenticationData => p.authentication_data = Some(v.binary()?),
            P::ReasonString => p.reason_string = Some(v.string()?),
            P::UserProperty => p.user_properties.push(v.pair()?),
            _ => return Err(v.not_allowed()),
        }
        Ok(())
    })?;
    ensure!(
        p.authentication_method.is_some(),
        DecodeError::MissingAuthenticationMethod(PacketType::Auth)
    );
    Ok(Auth {
        reason_code,
        properties: p,
    })
}

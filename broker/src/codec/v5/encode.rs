//! Encoding MQTT 5 packets (spec §3).
//!
//! The encoder checks that a packet *can* be written (field and packet sizes, packet identifier
//! presence) and what the types cannot carry: reason codes the packet type may not carry, a
//! Maximum QoS of 2, a missing authentication method. It trusts the caller for the rest of the
//! spec (topic syntax, flag combinations, the peer's Maximum Packet Size), so that the broker's
//! delivery path stays cheap. On error the output buffer is left exactly as it was.
//!
//! Properties are written in the order the spec lists them, and acknowledgements use their
//! short forms whenever they can.

use bytes::{BufMut, BytesMut};

use crate::codec::error::EncodeError;
use crate::codec::primitives::{
    MAX_REMAINING_LENGTH, ensure, remaining_length_len, write_remaining_length,
};
use crate::codec::types::PacketType;
use crate::codec::v5::packet::{Packet, Publish};
use crate::codec::v5::reason::ReasonCode;

mod connect;
mod control;
mod publish;
mod subscribe;

/// Appends `packet` to `dst`.
///
/// Fails, leaving `dst` unchanged, if the packet cannot be represented: a remaining length above
/// 268 435 455, a string or binary field above 65 535 bytes, a PUBLISH whose packet identifier
/// does not match its QoS, a reason code the packet type may not carry, a CONNACK Maximum QoS
/// of 2, or authentication data (CONNECT) or an AUTH exchange step without an authentication
/// method.
pub fn encode(packet: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let start = dst.len();
    let result = encode_unchecked(packet, dst);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

/// Appends a PUBLISH to `dst`: the broker's delivery fast path, which needs no [`Packet`].
///
/// Same contract as [`encode`].
pub fn encode_publish(publish: &Publish, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let start = dst.len();
    let result = publish::write_publish(publish, dst);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

/// Encodes `packet`; on error `dst` may hold a partial packet, which the callers cut off.
fn encode_unchecked(packet: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let packet_type = packet.packet_type();
    match packet {
        Packet::Connect(connect) => connect::write_connect(connect, dst),
        Packet::ConnAck(ack) => connect::write_connack(ack, dst),
        Packet::Publish(publish) => publish::write_publish(publish, dst),
        Packet::PubAck(response)
        | Packet::PubRec(response)
        | Packet::PubRel(response)
        | Packet::PubComp(response) => publish::write_response(packet_type, response, dst),
        Packet::Subscribe(subscribe) => subscribe::write_subscribe(subscribe, dst),
        Packet::SubAck(ack) => subscribe::write_suback(ack, dst),
        Packet::Unsubscribe(unsubscribe) => subscribe::write_unsubscribe(unsubscribe, dst),
        Packet::UnsubAck(ack) => subscribe::write_unsuback(ack, dst),
        Packet::PingReq | Packet::PingResp => write_header(packet_type, 0, 0, dst),
        Packet::Disconnect(disconnect) => control::write_disconnect(disconnect, dst),
        Packet::Auth(auth) => control::write_auth(auth, dst),
    }
}

/// Writes the fixed header, after reserving room for the whole packet. `flags` is used for
/// PUBLISH only; other types get the flags the spec requires of them.
fn write_header(
    packet_type: PacketType,
    flags: u8,
    remaining_length: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let flags = packet_type.required_flags().unwrap_or(flags);
    // Checked by write_remaining_length too, but before reserving, not after.
    ensure!(
        remaining_length <= MAX_REMAINING_LENGTH,
        EncodeError::PacketTooLarge(remaining_length)
    );
    dst.reserve(1 + remaining_length_len(remaining_length) + remaining_length);
    dst.put_u8((packet_type as u8) << 4 | flags);
    write_remaining_length(remaining_length, dst)
}

/// Refuses a reason code that `packet` may not carry (Table 2-6).
fn check_reason_code(packet: PacketType, code: ReasonCode) -> Result<(), EncodeError> {
    ensure!(
        code.allowed_in(packet),
        EncodeError::ReasonCodeNotAllowed { packet, code }
    );
    Ok(())
}

#[cfg(test)]
mod tests;

//! Decoding MQTT 5 packet bodies (spec §3), with every packet-level check the spec requires of
//! a receiver. Checks that need connection state (topic alias maximum, receive maximum,
//! direction rules such as [MQTT-3.3.4-6], the authentication method matching CONNECT's) are
//! the connection's.

use bytes::Bytes;

use crate::codec::error::DecodeError;
use crate::codec::framing::{FixedHeader, Frame};
use crate::codec::primitives::{ensure, read_u8, remaining_length_len};
use crate::codec::types::PacketType;
use crate::codec::v5::packet::Packet;
use crate::codec::v5::reason::ReasonCode;

mod connect;
mod control;
mod publish;
mod subscribe;

pub(in crate::codec::v5) use connect::connect_flags;

/// Checks everything the fixed header alone decides, so that a bad packet is refused before
/// its body is buffered: the packet type, its flags ([MQTT-2.1.3-1], [MQTT-3.3.1-4],
/// [MQTT-3.3.1-2]), the empty body of PINGREQ and PINGRESP, and a minimal remaining length
/// ([MQTT-1.5.5-1]).
pub(super) fn check_fixed_header(header: &FixedHeader) -> Result<(), DecodeError> {
    let nibble = header.type_nibble();
    let packet_type =
        PacketType::from_nibble(nibble).ok_or(DecodeError::InvalidPacketType(nibble))?;
    let flags = header.flags();
    match packet_type.required_flags() {
        Some(required) => ensure!(
            flags == required,
            DecodeError::InvalidFlags {
                packet: packet_type,
                flags
            }
        ),
        None => {
            publish::publish_flags(flags)?;
        }
    }
    if matches!(packet_type, PacketType::PingReq | PacketType::PingResp) {
        ensure!(
            header.remaining_length == 0,
            DecodeError::InvalidRemainingLength {
                packet: packet_type,
                expected: 0,
                actual: header.remaining_length,
            }
        );
    }
    ensure!(
        usize::from(header.header_len)
            == 1 + remaining_length_len(header.remaining_length as usize),
        DecodeError::NonMinimalVariableByteInteger {
            field: "remaining length"
        }
    );
    Ok(())
}

/// Decodes one framed packet. The fixed header must already have passed
/// [`check_fixed_header`]; the body checks do not rely on it, so any input is safe.
pub(super) fn decode_frame(frame: Frame) -> Result<Packet, DecodeError> {
    let Frame { header, mut body } = frame;
    let nibble = header.type_nibble();
    let packet_type =
        PacketType::from_nibble(nibble).ok_or(DecodeError::InvalidPacketType(nibble))?;
    let src = &mut body;
    let packet = match packet_type {
        PacketType::Connect => Packet::Connect(Box::new(connect::decode_connect(src)?)),
        PacketType::ConnAck => Packet::ConnAck(Box::new(connect::decode_connack(src)?)),
        PacketType::Publish => Packet::Publish(publish::decode_publish(header.flags(), src)?),
        PacketType::PubAck => Packet::PubAck(publish::decode_response(packet_type, src)?),
        PacketType::PubRec => Packet::PubRec(publish::decode_response(packet_type, src)?),
        PacketType::PubRel => Packet::PubRel(publish::decode_response(packet_type, src)?),
        PacketType::PubComp => Packet::PubComp(publish::decode_response(packet_type, src)?),
        PacketType::Subscribe => Packet::Subscribe(subscribe::decode_subscribe(src)?),
        PacketType::SubAck => Packet::SubAck(subscribe::decode_suback(src)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(subscribe::decode_unsubscribe(src)?),
        PacketType::UnsubAck => Packet::UnsubAck(subscribe::decode_unsuback(src)?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(control::decode_disconnect(src)?),
        PacketType::Auth => Packet::Auth(control::decode_auth(src)?),
    };
    ensure!(
        body.is_empty(),
        DecodeError::TrailingBytes {
            packet: packet_type,
            count: body.len(),
        }
    );
    Ok(packet)
}

/// Reads a reason code byte that `packet` may carry (Table 2-6).
fn read_reason_code(src: &mut Bytes, packet: PacketType) -> Result<ReasonCode, DecodeError> {
    let code = read_u8(src, "reason code")?;
    reason_code(code, packet)
}

/// Checks a reason code byte that `packet` carries (Table 2-6).
fn reason_code(code: u8, packet: PacketType) -> Result<ReasonCode, DecodeError> {
    ReasonCode::try_from(code)
        .ok()
        .filter(|reason| reason.allowed_in(packet))
        .ok_or(DecodeError::InvalidReasonCode { packet, code })
}

#[cfg(test)]
mod tests;

//! Encoding MQTT 3.1 / 3.1.1 packets (spec §3).
//!
//! The encoder checks only that a packet *can* be written (field and packet sizes, packet
//! identifier presence, protocol version); it trusts the caller for the rest of the spec
//! (topic syntax, flag combinations), so that the broker's delivery path stays cheap. On error
//! the output buffer is left exactly as it was.

use bytes::{BufMut, BytesMut};

use crate::codec::error::EncodeError;
use crate::codec::primitives::{
    MAX_REMAINING_LENGTH, ensure, field_len, remaining_length_len, write_binary,
    write_remaining_length, write_string,
};
use crate::codec::types::{PacketId, PacketType, ProtocolVersion, QoS};
use crate::codec::v4::decode::connect_flags;
use crate::codec::v4::packet::{Connect, Packet, Publish, SubAck, Subscribe, Unsubscribe};

/// Appends `packet` to `dst`.
///
/// Fails, leaving `dst` unchanged, if the packet cannot be represented: a remaining length above
/// 268 435 455, a string or binary field above 65 535 bytes, a PUBLISH whose packet identifier
/// does not match its QoS, or a CONNECT for a protocol version other than 3.1 / 3.1.1.
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
    let result = write_publish(publish, dst);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

/// Encodes `packet`; on error `dst` may hold a partial packet, which the callers cut off.
fn encode_unchecked(packet: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(connect) => write_connect(connect, dst),
        Packet::ConnAck(ack) => {
            write_header(PacketType::ConnAck, 0, 2, dst)?;
            dst.put_u8(u8::from(ack.session_present));
            dst.put_u8(ack.return_code as u8);
            Ok(())
        }
        Packet::Publish(publish) => write_publish(publish, dst),
        Packet::PubAck(id) => write_id_only(PacketType::PubAck, *id, dst),
        Packet::PubRec(id) => write_id_only(PacketType::PubRec, *id, dst),
        Packet::PubRel(id) => write_id_only(PacketType::PubRel, *id, dst),
        Packet::PubComp(id) => write_id_only(PacketType::PubComp, *id, dst),
        Packet::Subscribe(subscribe) => write_subscribe(subscribe, dst),
        Packet::SubAck(ack) => write_suback(ack, dst),
        Packet::Unsubscribe(unsubscribe) => write_unsubscribe(unsubscribe, dst),
        Packet::UnsubAck(id) => write_id_only(PacketType::UnsubAck, *id, dst),
        Packet::PingReq => write_header(PacketType::PingReq, 0, 0, dst),
        Packet::PingResp => write_header(PacketType::PingResp, 0, 0, dst),
        Packet::Disconnect => write_header(PacketType::Disconnect, 0, 0, dst),
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

fn write_id_only(
    packet_type: PacketType,
    id: PacketId,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    write_header(packet_type, 0, 2, dst)?;
    dst.put_u16(id.get());
    Ok(())
}

fn write_connect(connect: &Connect, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let (name, level) = match connect.protocol {
        ProtocolVersion::V311 => ("MQTT", 4),
        ProtocolVersion::V31 => ("MQIsdp", 3),
        other @ ProtocolVersion::V5 => return Err(EncodeError::UnsupportedProtocolVersion(other)),
    };

    let mut bits = 0;
    let mut len = field_len(name.len()) + 1 + 1 + 2 + field_len(connect.client_id.len());
    if connect.clean_session {
        bits |= connect_flags::CLEAN_SESSION;
    }
    if let Some(will) = &connect.will {
        bits |= connect_flags::WILL | (will.qos as u8) << connect_flags::WILL_QOS_SHIFT;
        if will.retain {
            bits |= connect_flags::WILL_RETAIN;
        }
        len += field_len(will.topic.len()) + field_len(will.message.len());
    }
    if let Some(username) = &connect.username {
        bits |= connect_flags::USERNAME;
        len += field_len(username.len());
    }
    if let Some(password) = &connect.password {
        bits |= connect_flags::PASSWORD;
        len += field_len(password.len());
    }

    write_header(PacketType::Connect, 0, len, dst)?;
    write_string("protocol name", name, dst)?;
    dst.put_u8(level);
    dst.put_u8(bits);
    dst.put_u16(connect.keep_alive);
    write_string("client identifier", &connect.client_id, dst)?;
    if let Some(will) = &connect.will {
        write_string("will topic", &will.topic, dst)?;
        write_binary("will message", &will.message, dst)?;
    }
    if let Some(username) = &connect.username {
        write_string("user name", username, dst)?;
    }
    if let Some(password) = &connect.password {
        write_binary("password", password, dst)?;
    }
    Ok(())
}

fn write_publish(publish: &Publish, dst: &mut BytesMut) -> Result<(), EncodeError> {
    ensure!(
        publish.packet_id.is_some() == (publish.qos != QoS::AtMostOnce),
        EncodeError::PacketIdMismatch
    );
    let flags = u8::from(publish.dup) << 3 | (publish.qos as u8) << 1 | u8::from(publish.retain);
    let id_len = if publish.packet_id.is_some() { 2 } else { 0 };
    let len = field_len(publish.topic.len()) + id_len + publish.payload.len();

    write_header(PacketType::Publish, flags, len, dst)?;
    write_string("topic name", &publish.topic, dst)?;
    if let Some(id) = publish.packet_id {
        dst.put_u16(id.get());
    }
    dst.put_slice(&publish.payload);
    Ok(())
}

fn write_subscribe(subscribe: &Subscribe, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let len = 2 + subscribe
        .filters
        .iter()
        .map(|(filter, _)| field_len(filter.len()) + 1)
        .sum::<usize>();
    write_header(PacketType::Subscribe, 0, len, dst)?;
    dst.put_u16(subscribe.packet_id.get());
    for (filter, qos) in &subscribe.filters {
        write_string("topic filter", filter, dst)?;
        dst.put_u8(*qos as u8);
    }
    Ok(())
}

fn write_suback(ack: &SubAck, dst: &mut BytesMut) -> Result<(), EncodeError> {
    write_header(PacketType::SubAck, 0, 2 + ack.return_codes.len(), dst)?;
    dst.put_u16(ack.packet_id.get());
    for code in &ack.return_codes {
        dst.put_u8(code.to_u8());
    }
    Ok(())
}

fn write_unsubscribe(unsubscribe: &Unsubscribe, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let len = 2 + unsubscribe
        .filters
        .iter()
        .map(|filter| field_len(filter.len()))
        .sum::<usize>();
    write_header(PacketType::Unsubscribe, 0, len, dst)?;
    dst.put_u16(unsubscribe.packet_id.get());
    for filter in &unsubscribe.filters {
        write_string("topic filter", filter, dst)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! Decoding MQTT 3.1 / 3.1.1 packet bodies (spec §3), with every packet-level check the spec
//! requires of a receiver.

use bytes::{Buf, Bytes};

use crate::codec::error::DecodeError;
use crate::codec::framing::{FixedHeader, Frame};
use crate::codec::primitives::{
    ensure, read_binary, read_packet_id, read_string, read_u8, read_u16,
};
use crate::codec::topic::{validate_topic_filter, validate_topic_name};
use crate::codec::types::{PacketType, ProtocolVersion, QoS};
use crate::codec::v4::packet::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, Publish, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe,
};

/// Checks everything the fixed header alone decides, so that a bad packet is refused before
/// its body is buffered: the packet type, its flags ([MQTT-2.2.2-2], [MQTT-3.3.1-4],
/// [MQTT-3.3.1-2]) and the size of fixed-size packets.
pub(super) fn check_fixed_header(header: &FixedHeader) -> Result<(), DecodeError> {
    let packet_type = match PacketType::from_nibble(header.type_nibble()) {
        Some(PacketType::Auth) | None => {
            return Err(DecodeError::InvalidPacketType(header.type_nibble()));
        }
        Some(packet_type) => packet_type,
    };
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
            publish_flags(flags)?;
        }
    }
    if let Some(expected) = fixed_body_len(packet_type) {
        ensure!(
            header.remaining_length == expected,
            DecodeError::InvalidRemainingLength {
                packet: packet_type,
                expected,
                actual: header.remaining_length,
            }
        );
    }
    Ok(())
}

/// The only valid remaining length of packet types without a payload of variable size.
fn fixed_body_len(packet_type: PacketType) -> Option<u32> {
    match packet_type {
        PacketType::ConnAck
        | PacketType::PubAck
        | PacketType::PubRec
        | PacketType::PubRel
        | PacketType::PubComp
        | PacketType::UnsubAck => Some(2),
        PacketType::PingReq | PacketType::PingResp | PacketType::Disconnect => Some(0),
        _ => None,
    }
}

/// Splits and checks PUBLISH flags: (DUP, QoS, RETAIN).
fn publish_flags(flags: u8) -> Result<(bool, QoS, bool), DecodeError> {
    let qos = QoS::try_from((flags >> 1) & 0b11).map_err(|_| DecodeError::InvalidQoS)?;
    let dup = flags & 0b1000 != 0;
    ensure!(!dup || qos != QoS::AtMostOnce, DecodeError::DupWithQoS0);
    Ok((dup, qos, flags & 0b0001 != 0))
}

/// Decodes one framed packet. The fixed header must already have passed
/// [`check_fixed_header`]; the body checks do not rely on it, so any input is safe.
pub(super) fn decode_frame(frame: Frame) -> Result<Packet, DecodeError> {
    let Frame { header, mut body } = frame;
    let packet_type = PacketType::from_nibble(header.type_nibble())
        .ok_or(DecodeError::InvalidPacketType(header.type_nibble()))?;
    let src = &mut body;
    let packet = match packet_type {
        PacketType::Connect => Packet::Connect(Box::new(decode_connect(src)?)),
        PacketType::ConnAck => Packet::ConnAck(decode_connack(src)?),
        PacketType::Publish => Packet::Publish(decode_publish(header.flags(), src)?),
        PacketType::PubAck => Packet::PubAck(read_packet_id(src)?),
        PacketType::PubRec => Packet::PubRec(read_packet_id(src)?),
        PacketType::PubRel => Packet::PubRel(read_packet_id(src)?),
        PacketType::PubComp => Packet::PubComp(read_packet_id(src)?),
        PacketType::Subscribe => Packet::Subscribe(decode_subscribe(src)?),
        PacketType::SubAck => Packet::SubAck(decode_suback(src)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(decode_unsubscribe(src)?),
        PacketType::UnsubAck => Packet::UnsubAck(read_packet_id(src)?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect,
        PacketType::Auth => return Err(DecodeError::InvalidPacketType(header.type_nibble())),
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

/// CONNECT flag bits (spec §3.1.2.3).
pub(in crate::codec::v4) mod connect_flags {
    pub(in crate::codec::v4) const RESERVED: u8 = 0b0000_0001;
    pub(in crate::codec::v4) const CLEAN_SESSION: u8 = 0b0000_0010;
    pub(in crate::codec::v4) const WILL: u8 = 0b0000_0100;
    pub(in crate::codec::v4) const WILL_QOS_SHIFT: u8 = 3;
    pub(in crate::codec::v4) const WILL_RETAIN: u8 = 0b0010_0000;
    pub(in crate::codec::v4) const PASSWORD: u8 = 0b0100_0000;
    pub(in crate::codec::v4) const USERNAME: u8 = 0b1000_0000;
}

fn decode_connect(src: &mut Bytes) -> Result<Connect, DecodeError> {
    // The level is checked right after the name, before anything a later protocol version
    // might lay out differently, so that an MQTT 5 client still gets its CONNACK 0x01.
    let name = read_string(src, "protocol name")?;
    let level = read_u8(src, "protocol level")?;
    let protocol = match (&*name, level) {
        ("MQTT", 4) => ProtocolVersion::V311,
        ("MQIsdp", 3) => ProtocolVersion::V31,
        ("MQTT" | "MQIsdp", other) => return Err(DecodeError::UnsupportedProtocolLevel(other)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };

    let bits = read_u8(src, "connect flags")?;
    let has = |bit: u8| bits & bit != 0;
    ensure!(
        !has(connect_flags::RESERVED),
        DecodeError::ConnectReservedFlag
    );
    let will_qos_bits = (bits >> connect_flags::WILL_QOS_SHIFT) & 0b11;
    let will_qos = if has(connect_flags::WILL) {
        Some(QoS::try_from(will_qos_bits).map_err(|_| DecodeError::InvalidWillQoS)?)
    } else {
        ensure!(will_qos_bits == 0, DecodeError::WillQoSWithoutWill);
        ensure!(
            !has(connect_flags::WILL_RETAIN),
            DecodeError::WillRetainWithoutWill
        );
        None
    };
    // [MQTT-3.1.2-22] is a 3.1.1 rule; 3.1 brokers accept a password without a user name.
    ensure!(
        has(connect_flags::USERNAME)
            || !has(connect_flags::PASSWORD)
            || protocol == ProtocolVersion::V31,
        DecodeError::PasswordWithoutUsername
    );
    let clean_session = has(connect_flags::CLEAN_SESSION);
    let keep_alive = read_u16(src, "keep alive")?;

    let client_id = read_string(src, "client identifier")?;
    let will = if let Some(qos) = will_qos {
        let topic = read_string(src, "will topic")?;
        validate_topic_name(&topic)?;
        let message = read_binary(src, "will message")?;
        Some(LastWill {
            topic,
            message,
            qos,
            retain: has(connect_flags::WILL_RETAIN),
        })
    } else {
        None
    };
    let username = has(connect_flags::USERNAME)
        .then(|| read_string(src, "user name"))
        .transpose()?;
    let password = has(connect_flags::PASSWORD)
        .then(|| read_binary(src, "password"))
        .transpose()?;
    ensure!(
        src.is_empty(),
        DecodeError::TrailingBytes {
            packet: PacketType::Connect,
            count: src.len(),
        }
    );

    // Checked last: a CONNACK may only be sent for an otherwise well-formed CONNECT
    // ([MQTT-3.1.4-1]). 3.1.1 allows an empty identifier only with a clean session
    // ([MQTT-3.1.3-8]); 3.1 requires 1 to 23 characters, and brokers accept longer ones.
    let empty_id_allowed = protocol == ProtocolVersion::V311 && clean_session;
    ensure!(
        !client_id.is_empty() || empty_id_allowed,
        DecodeError::EmptyClientId(protocol)
    );

    Ok(Connect {
        protocol,
        clean_session,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

fn decode_connack(src: &mut Bytes) -> Result<ConnAck, DecodeError> {
    let ack_flags = read_u8(src, "connect acknowledge flags")?;
    ensure!(
        ack_flags & 0b1111_1110 == 0,
        DecodeError::InvalidConnAckFlags(ack_flags)
    );
    let code = read_u8(src, "connect return code")?;
    let return_code =
        ConnectReturnCode::try_from(code).map_err(DecodeError::InvalidConnectReturnCode)?;
    let session_present = ack_flags == 1;
    ensure!(
        !session_present || return_code == ConnectReturnCode::Accepted,
        DecodeError::SessionPresentOnRefusal
    );
    Ok(ConnAck {
        session_present,
        return_code,
    })
}

fn decode_publish(header_flags: u8, src: &mut Bytes) -> Result<Publish, DecodeError> {
    let (dup, qos, retain) = publish_flags(header_flags)?;
    let topic = read_string(src, "topic name")?;
    validate_topic_name(&topic)?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(read_packet_id(src)?),
    };
    // The payload is the rest of the packet, and may be empty.
    let payload = std::mem::take(src);
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload,
    })
}

fn decode_subscribe(src: &mut Bytes) -> Result<Subscribe, DecodeError> {
    let packet_id = read_packet_id(src)?;
    let mut filters = Vec::new();
    while src.has_remaining() {
        let filter = read_string(src, "topic filter")?;
        validate_topic_filter(&filter)?;
        let requested = read_u8(src, "requested QoS")?;
        // Bits 7..2 are reserved and QoS 3 is invalid ([MQTT-3-8.3-4]).
        let qos = QoS::try_from(requested).map_err(DecodeError::InvalidRequestedQoS)?;
        filters.push((filter, qos));
    }
    ensure!(!filters.is_empty(), DecodeError::EmptySubscribe);
    Ok(Subscribe { packet_id, filters })
}

fn decode_suback(src: &mut Bytes) -> Result<SubAck, DecodeError> {
    let packet_id = read_packet_id(src)?;
    let return_codes = std::mem::take(src)
        .iter()
        .map(|&code| {
            SubscribeReturnCode::try_from(code)
                .map_err(|_| DecodeError::InvalidSubAckReturnCode(code))
        })
        .collect::<Result<_, _>>()?;
    Ok(SubAck {
        packet_id,
        return_codes,
    })
}

fn decode_unsubscribe(src: &mut Bytes) -> Result<Unsubscribe, DecodeError> {
    let packet_id = read_packet_id(src)?;
    let mut filters = Vec::new();
    while src.has_remaining() {
        let filter = read_string(src, "topic filter")?;
        validate_topic_filter(&filter)?;
        filters.push(filter);
    }
    ensure!(!filters.is_empty(), DecodeError::EmptyUnsubscribe);
    Ok(Unsubscribe { packet_id, filters })
}

#[cfg(test)]
mod tests;

//! Byte-literal decoding tests: every packet type, and every way a packet can be bad.

use bytes::BytesMut;

use crate::codec::error::DecodeError;
use crate::codec::types::{PacketType, ProtocolVersion};
use crate::codec::v4::tests::fixtures::valid_packets;
use crate::codec::v4::{ConnectReturnCode, Decoder, Packet};

/// Decodes `bytes`, which must hold exactly one packet (or fail).
fn decode_one(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = Decoder::new(1 << 20).decode(&mut buf)?;
    let packet = packet.unwrap_or_else(|| panic!("incomplete packet {bytes:02X?}"));
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(packet)
}

/// A packet with the given first byte and a body shorter than 128 bytes.
fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let len = u8::try_from(body.len())
        .ok()
        .filter(|&len| len < 0x80)
        .unwrap();
    [&[first_byte, len][..], body].concat()
}

/// A CONNECT with the given protocol name, level, flags and payload (keep alive 60).
fn connect_with(name: &[u8], level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let name_len = u8::try_from(name.len()).unwrap();
    let body = [&[0, name_len][..], name, &[level, flags, 0, 60], payload].concat();
    packet(0x10, &body)
}

/// A 3.1.1 CONNECT with the given flags and payload.
fn connect(flags: u8, payload: &[u8]) -> Vec<u8> {
    connect_with(b"MQTT", 4, flags, payload)
}

#[test]
fn decodes_every_packet_type() {
    for fixture in valid_packets() {
        assert_eq!(
            decode_one(fixture.bytes).as_ref(),
            Ok(&fixture.packet),
            "{}",
            fixture.name
        );
    }
}

#[test]
fn accepts_non_minimal_remaining_length() {
    assert_eq!(decode_one(b"\xC0\x80\x80\x00"), Ok(Packet::PingReq));
}

#[test]
fn publish_topic_and_payload_share_the_read_buffer() {
    let mut buf = BytesMut::from(&b"\x30\x07\x00\x03a/bhi"[..]);
    let base = buf.as_ptr();
    let Some(Packet::Publish(publish)) = Decoder::new(64).decode(&mut buf).unwrap() else {
        panic!("expected PUBLISH");
    };
    assert_eq!(publish.topic.as_bytes().as_ptr(), base.wrapping_add(4));
    assert_eq!(publish.payload.as_ptr(), base.wrapping_add(7));
}

/// Asserts that each `(name, bytes, error)` case fails to decode with exactly that error.
fn assert_rejected(cases: &[(&str, Vec<u8>, DecodeError)]) {
    for (name, bytes, expected) in cases {
        assert_eq!(
            decode_one(bytes).as_ref(),
            Err(expected),
            "{name}: {bytes:02X?}"
        );
    }
}

fn invalid_flags(packet: PacketType, flags: u8) -> DecodeError {
    DecodeError::InvalidFlags { packet, flags }
}

fn invalid_len(packet: PacketType, expected: u32, actual: u32) -> DecodeError {
    DecodeError::InvalidRemainingLength {
        packet,
        expected,
        actual,
    }
}

fn truncated(field: &'static str) -> DecodeError {
    DecodeError::Truncated { field }
}

#[test]
fn rejects_framing_violations() {
    use DecodeError as E;
    use PacketType as T;
    #[rustfmt::skip]
    let cases = [
        ("remaining length of 5 bytes", b"\x30\xFF\xFF\xFF\xFF\x01".to_vec(), E::MalformedRemainingLength),
        ("reserved type 0", packet(0x00, b""), E::InvalidPacketType(0)),
        ("AUTH is MQTT 5 only", packet(0xF0, b""), E::InvalidPacketType(15)),
        ("CONNECT flags", packet(0x11, b""), invalid_flags(T::Connect, 1)),
        ("PUBREL flags", packet(0x60, b"\x00\x01"), invalid_flags(T::PubRel, 0)),
        ("SUBSCRIBE flags", packet(0x80, b"\x00\x01\x00\x01a\x00"), invalid_flags(T::Subscribe, 0)),
        ("UNSUBSCRIBE flags", packet(0xA3, b"\x00\x01\x00\x01a"), invalid_flags(T::Unsubscribe, 3)),
        ("PINGREQ flags", packet(0xC8, b""), invalid_flags(T::PingReq, 8)),
        ("PUBACK too long", packet(0x40, b"\x00\x01\x00"), invalid_len(T::PubAck, 2, 3)),
        ("CONNACK too short", packet(0x20, b"\x00"), invalid_len(T::ConnAck, 2, 1)),
        ("DISCONNECT with a body", packet(0xE0, b"\x00"), invalid_len(T::Disconnect, 0, 1)),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_bad_strings_and_packet_ids() {
    use DecodeError as E;
    #[rustfmt::skip]
    let cases = [
        ("topic truncated", packet(0x30, b"\x00\x05ab"), truncated("topic name")),
        ("topic length truncated", packet(0x30, b"\x00"), truncated("topic name")),
        ("ill-formed UTF-8", packet(0x30, b"\x00\x02\xC3\x28"), E::InvalidUtf8 { field: "topic name" }),
        ("encoded surrogate", packet(0x30, b"\x00\x03\xED\xA0\x80"), E::InvalidUtf8 { field: "topic name" }),
        ("U+0000 in topic", packet(0x30, b"\x00\x02a\x00"), E::NullCharacter { field: "topic name" }),
        ("PUBLISH QoS 1 without id", packet(0x32, b"\x00\x01a"), E::PacketIdRequired),
        ("PUBLISH QoS 2 with id 0", packet(0x34, b"\x00\x01a\x00\x00"), E::PacketIdRequired),
        ("PUBACK id 0", packet(0x40, b"\x00\x00"), E::PacketIdRequired),
        ("SUBSCRIBE id 0", packet(0x82, b"\x00\x00\x00\x01a\x00"), E::PacketIdRequired),
        ("UNSUBSCRIBE without id", packet(0xA2, b"\x00"), E::PacketIdRequired),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_publish_violations() {
    use DecodeError as E;
    #[rustfmt::skip]
    let cases = [
        ("PUBLISH QoS 3", packet(0x36, b"\x00\x01a\x00\x01"), E::InvalidQoS),
        ("DUP on QoS 0", packet(0x38, b"\x00\x01a"), E::DupWithQoS0),
        ("wildcard + in topic name", packet(0x30, b"\x00\x03a/+"), E::WildcardInTopicName),
        ("wildcard # in topic name", packet(0x30, b"\x00\x01#"), E::WildcardInTopicName),
        ("empty topic name", packet(0x30, b"\x00\x00hi"), E::EmptyTopic),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_connect_violations() {
    use DecodeError as E;
    #[rustfmt::skip]
    let cases = [
        ("unknown protocol name", connect_with(b"MQTX", 4, 2, b"\x00\x00"), E::InvalidProtocolName),
        ("MQTT 5", connect_with(b"MQTT", 5, 2, b"\x00\x00\x00"), E::UnsupportedProtocolLevel(5)),
        ("level 3 under the 3.1.1 name", connect_with(b"MQTT", 3, 2, b"\x00\x00"), E::UnsupportedProtocolLevel(3)),
        ("level 4 under the 3.1 name", connect_with(b"MQIsdp", 4, 2, b"\x00\x00"), E::UnsupportedProtocolLevel(4)),
        ("reserved flag", connect(0x03, b"\x00\x01a"), E::ConnectReservedFlag),
        ("will QoS 1 without will", connect(0x0A, b"\x00\x01a"), E::WillQoSWithoutWill),
        ("will QoS 2 without will", connect(0x12, b"\x00\x01a"), E::WillQoSWithoutWill),
        ("will retain without will", connect(0x22, b"\x00\x01a"), E::WillRetainWithoutWill),
        ("will QoS 3", connect(0x1E, b"\x00\x01a\x00\x01t\x00\x00"), E::InvalidWillQoS),
        ("password without user name", connect(0x42, b"\x00\x01a\x00\x01p"), E::PasswordWithoutUsername),
        ("will topic with wildcard", connect(0x06, b"\x00\x01a\x00\x01#\x00\x00"), E::WildcardInTopicName),
        ("empty will topic", connect(0x06, b"\x00\x01a\x00\x00\x00\x00"), E::EmptyTopic),
        ("user name flag, no user name", connect(0x82, b"\x00\x01a"), truncated("user name")),
        ("client id missing", connect(0x02, b""), truncated("client identifier")),
        ("bytes after the password", connect(0xC2, b"\x00\x01a\x00\x01u\x00\x01p!"), E::TrailingBytes { packet: PacketType::Connect, count: 1 }),
        ("empty client id, persistent session", connect(0x00, b"\x00\x00"), E::EmptyClientId(ProtocolVersion::V311)),
        ("empty client id under 3.1", connect_with(b"MQIsdp", 3, 0x02, b"\x00\x00"), E::EmptyClientId(ProtocolVersion::V31)),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_acknowledgement_violations() {
    use DecodeError as E;
    #[rustfmt::skip]
    let cases = [
        ("CONNACK reserved flags", packet(0x20, b"\x02\x00"), E::InvalidConnAckFlags(2)),
        ("CONNACK reserved code", packet(0x20, b"\x00\x06"), E::InvalidConnectReturnCode(6)),
        ("session present on refusal", packet(0x20, b"\x01\x01"), E::SessionPresentOnRefusal),
        ("SUBACK reserved code", packet(0x90, b"\x00\x01\x03"), E::InvalidSubAckReturnCode(3)),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_subscription_violations() {
    use DecodeError as E;
    #[rustfmt::skip]
    let cases = [
        ("SUBSCRIBE without filters", packet(0x82, b"\x00\x01"), E::EmptySubscribe),
        ("SUBSCRIBE reserved bits", packet(0x82, b"\x00\x01\x00\x01a\x04"), E::InvalidRequestedQoS(4)),
        ("SUBSCRIBE QoS 3", packet(0x82, b"\x00\x01\x00\x01a\x03"), E::InvalidRequestedQoS(3)),
        ("SUBSCRIBE missing QoS", packet(0x82, b"\x00\x01\x00\x01a"), truncated("requested QoS")),
        ("SUBSCRIBE empty filter", packet(0x82, b"\x00\x01\x00\x00\x00"), E::EmptyTopic),
        ("SUBSCRIBE # not last", packet(0x82, b"\x00\x01\x00\x03#/a\x00"), E::MisplacedMultiLevelWildcard),
        ("SUBSCRIBE # not alone", packet(0x82, b"\x00\x01\x00\x02a#\x00"), E::MisplacedMultiLevelWildcard),
        ("SUBSCRIBE + not alone", packet(0x82, b"\x00\x01\x00\x03a+/\x00"), E::MisplacedSingleLevelWildcard),
        ("UNSUBSCRIBE without filters", packet(0xA2, b"\x00\x01"), E::EmptyUnsubscribe),
        ("UNSUBSCRIBE + not alone", packet(0xA2, b"\x00\x01\x00\x02+a"), E::MisplacedSingleLevelWildcard),
        ("UNSUBSCRIBE truncated filter", packet(0xA2, b"\x00\x01\x00\x02+"), truncated("topic filter")),
    ];
    assert_rejected(&cases);
}

#[test]
fn errors_name_their_spec_statement() {
    use DecodeError as E;
    let cases = [
        (
            E::InvalidFlags {
                packet: PacketType::PubRel,
                flags: 0,
            },
            Some("MQTT-2.2.2-2"),
        ),
        (E::InvalidQoS, Some("MQTT-3.3.1-4")),
        (E::DupWithQoS0, Some("MQTT-3.3.1-2")),
        (E::PacketIdRequired, Some("MQTT-2.3.1-1")),
        (E::InvalidUtf8 { field: "f" }, Some("MQTT-1.5.3-1")),
        (E::NullCharacter { field: "f" }, Some("MQTT-1.5.3-2")),
        (E::UnsupportedProtocolLevel(5), Some("MQTT-3.1.2-2")),
        (E::ConnectReservedFlag, Some("MQTT-3.1.2-3")),
        (E::WillQoSWithoutWill, Some("MQTT-3.1.2-13")),
        (E::InvalidWillQoS, Some("MQTT-3.1.2-14")),
        (E::WillRetainWithoutWill, Some("MQTT-3.1.2-15")),
        (E::PasswordWithoutUsername, Some("MQTT-3.1.2-22")),
        (
            E::EmptyClientId(ProtocolVersion::V311),
            Some("MQTT-3.1.3-8"),
        ),
        (E::EmptyClientId(ProtocolVersion::V31), None),
        (E::EmptySubscribe, Some("MQTT-3.8.3-3")),
        (E::InvalidRequestedQoS(4), Some("MQTT-3-8.3-4")),
        (E::EmptyUnsubscribe, Some("MQTT-3.10.3-2")),
        (E::WildcardInTopicName, Some("MQTT-3.3.2-2")),
        (E::EmptyTopic, Some("MQTT-4.7.3-1")),
        (E::MisplacedMultiLevelWildcard, Some("MQTT-4.7.1-2")),
        (E::MisplacedSingleLevelWildcard, Some("MQTT-4.7.1-3")),
        (E::MalformedRemainingLength, None),
        (E::PacketTooLarge { size: 11, max: 10 }, None),
    ];
    for (error, statement) in cases {
        assert_eq!(error.spec_statement(), statement, "{error:?}");
    }
}

#[test]
fn only_level_and_client_id_errors_are_answered_with_connack() {
    let level = decode_one(&connect_with(b"MQTT", 5, 2, b"\x00\x00")).unwrap_err();
    assert_eq!(
        level.connack_code(),
        Some(ConnectReturnCode::UnacceptableProtocolVersion)
    );

    let client_id = decode_one(&connect(0x00, b"\x00\x00")).unwrap_err();
    assert_eq!(
        client_id.connack_code(),
        Some(ConnectReturnCode::IdentifierRejected)
    );

    // A malformed packet is never answered, even if its client id is also bad ([MQTT-3.1.4-1]).
    let malformed = decode_one(&connect(0x00, b"\x00\x00!")).unwrap_err();
    assert_eq!(malformed.connack_code(), None);
    for error in [
        DecodeError::InvalidProtocolName,
        DecodeError::ConnectReservedFlag,
    ] {
        assert_eq!(error.connack_code(), None, "{error:?}");
    }
}

#[test]
fn errors_display_a_useful_message() {
    let error = DecodeError::InvalidFlags {
        packet: PacketType::PubRel,
        flags: 0,
    };
    assert_eq!(
        error.to_string(),
        "invalid fixed header flags 0b0000 for PUBREL"
    );
    let error = DecodeError::PacketTooLarge { size: 11, max: 10 };
    assert_eq!(
        error.to_string(),
        "packet of 11 bytes exceeds the maximum packet size of 10 bytes"
    );
}

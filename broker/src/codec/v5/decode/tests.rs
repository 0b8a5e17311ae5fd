//! Byte-literal decoding tests: every packet type, and every way a packet can be bad, with the
//! reason code and spec statement each error maps to.

use bytes::BytesMut;

use crate::codec::error::DecodeError;
use crate::codec::types::PacketType;
use crate::codec::v5::tests::fixtures::valid_packets;
use crate::codec::v5::{Decoder, Packet, PropertyContext, PropertyId, ReasonCode};

use DecodeError as E;
use PacketType as T;

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
    let len = u8::try_from(body.len()).ok().filter(|&len| len < 0x80);
    let len = len.unwrap_or_else(|| panic!("body too long"));
    [&[first_byte, len][..], body].concat()
}

/// An MQTT 5 CONNECT with the given flags, then `rest` (properties, payload).
fn connect(flags: u8, rest: &[u8]) -> Vec<u8> {
    packet(
        0x10,
        &[&b"\x00\x04MQTT\x05"[..], &[flags, 0, 60], rest].concat(),
    )
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

fn truncated(field: &'static str) -> DecodeError {
    E::Truncated { field }
}

fn invalid_value(property: PropertyId, packet: PacketType, value: u32) -> DecodeError {
    E::InvalidPropertyValue {
        property,
        context: PropertyContext::Packet(packet),
        value,
    }
}

fn bad_reason(packet: PacketType, code: u8) -> DecodeError {
    E::InvalidReasonCode { packet, code }
}

#[test]
fn decodes_every_packet_type() {
    for fixture in valid_packets() {
        let got = decode_one(&fixture.bytes);
        assert_eq!(got.as_ref(), Ok(&fixture.packet), "{}", fixture.name);
    }
}

#[test]
fn rejects_connect_violations() {
    use PropertyId as P;
    #[rustfmt::skip]
    let cases = [
        ("MQTT 3.1.1", packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3C\x00\x00"), E::UnsupportedProtocolLevel(4)),
        ("MQTT 3.1", packet(0x10, b"\x00\x06MQIsdp\x03\x02\x00\x3C\x00\x00"), E::UnsupportedProtocolLevel(3)),
        ("unknown protocol name", packet(0x10, b"\x00\x04MQTX\x05\x02\x00\x3C\x00\x00\x00"), E::InvalidProtocolName),
        ("reserved flag", connect(0x03, b"\x00\x00\x00"), E::ConnectReservedFlag),
        ("will QoS without will", connect(0x0A, b"\x00\x00\x00"), E::WillQoSWithoutWill),
        ("will retain without will", connect(0x22, b"\x00\x00\x00"), E::WillRetainWithoutWill),
        ("will QoS 3", connect(0x1E, b"\x00\x00\x00\x00\x00\x01t\x00\x00"), E::InvalidWillQoS),
        ("will topic with wildcard", connect(0x06, b"\x00\x00\x00\x00\x00\x01#\x00\x00"), E::WildcardInTopicName),
        ("empty will topic", connect(0x06, b"\x00\x00\x00\x00\x00\x00\x00\x00"), E::EmptyTopic),
        ("will properties missing", connect(0x06, b"\x00\x00\x00"), truncated("property length")),
        ("will property for PUBLISH only", connect(0x06, b"\x00\x00\x00\x03\x23\x00\x01\x00\x01t\x00\x00"),
            E::PropertyNotAllowed { property: P::TopicAlias, context: PropertyContext::Will }),
        ("will response topic with wildcard", connect(0x06, b"\x00\x00\x00\x04\x08\x00\x01+\x00\x01t\x00\x00"), E::WildcardInTopicName),
        ("properties missing", connect(0x02, b""), truncated("property length")),
        ("properties run past the packet", connect(0x02, b"\x05\x11\x00\x00"), truncated("properties")),
        ("property value cut short", connect(0x02, b"\x03\x11\x00\x00\x00\x00"), truncated("Session Expiry Interval")),
        ("property length not minimal", connect(0x02, b"\x80\x00\x00\x00"), E::NonMinimalVariableByteInteger { field: "property length" }),
        ("property length of 5 bytes", connect(0x02, b"\x80\x80\x80\x80\x01"), E::MalformedVariableByteInteger { field: "property length" }),
        ("receive maximum 0", connect(0x02, b"\x03\x21\x00\x00\x00\x00"), invalid_value(P::ReceiveMaximum, T::Connect, 0)),
        ("maximum packet size 0", connect(0x02, b"\x05\x27\x00\x00\x00\x00\x00\x00"), invalid_value(P::MaximumPacketSize, T::Connect, 0)),
        ("request problem information 2", connect(0x02, b"\x02\x17\x02\x00\x00"), invalid_value(P::RequestProblemInformation, T::Connect, 2)),
        ("authentication data without method", connect(0x02, b"\x04\x16\x00\x01x\x00\x00"), E::MissingAuthenticationMethod(T::Connect)),
        ("user property name not UTF-8", connect(0x02, b"\x07\x26\x00\x01\xFF\x00\x01v\x00\x00"), E::InvalidUtf8 { field: "user property name" }),
        ("client id missing", connect(0x02, b"\x00"), truncated("client identifier")),
        ("user name flag, no user name", connect(0x82, b"\x00\x00\x00"), truncated("user name")),
        ("bytes after the password", connect(0x42, b"\x00\x00\x00\x00\x01p!"), E::TrailingBytes { packet: T::Connect, count: 1 }),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_connack_violations() {
    #[rustfmt::skip]
    let cases = [
        ("reserved flags", packet(0x20, b"\x02\x00\x00"), E::InvalidConnAckFlags(2)),
        ("DISCONNECT-only reason code", packet(0x20, b"\x00\x8B\x00"), bad_reason(T::ConnAck, 0x8B)),
        ("unknown reason code", packet(0x20, b"\x00\x05\x00"), bad_reason(T::ConnAck, 0x05)),
        ("session present on refusal", packet(0x20, b"\x01\x80\x00"), E::SessionPresentOnRefusal),
        ("no property length", packet(0x20, b"\x00\x00"), truncated("property length")),
        ("maximum QoS 2", packet(0x20, b"\x00\x00\x02\x24\x02"), invalid_value(PropertyId::MaximumQoS, T::ConnAck, 2)),
        ("retain available 2", packet(0x20, b"\x00\x00\x02\x25\x02"), invalid_value(PropertyId::RetainAvailable, T::ConnAck, 2)),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_publish_violations() {
    use PropertyId as P;
    #[rustfmt::skip]
    let cases = [
        ("QoS 3", packet(0x36, b"\x00\x01a\x00\x01\x00"), E::InvalidQoS),
        ("DUP on QoS 0", packet(0x38, b"\x00\x01a\x00"), E::DupWithQoS0),
        ("wildcard in topic name", packet(0x30, b"\x00\x03a/+\x00"), E::WildcardInTopicName),
        ("empty topic without alias", packet(0x30, b"\x00\x00\x00hi"), E::EmptyTopic),
        ("topic alias 0", packet(0x30, b"\x00\x01a\x03\x23\x00\x00"), invalid_value(P::TopicAlias, T::Publish, 0)),
        ("subscription identifier 0", packet(0x30, b"\x00\x01a\x02\x0B\x00"), invalid_value(P::SubscriptionIdentifier, T::Publish, 0)),
        ("subscription identifier not minimal", packet(0x30, b"\x00\x01a\x03\x0B\x81\x00"),
            E::NonMinimalVariableByteInteger { field: "Subscription Identifier" }),
        ("payload format indicator 2", packet(0x30, b"\x00\x01a\x02\x01\x02"), invalid_value(P::PayloadFormatIndicator, T::Publish, 2)),
        ("response topic with wildcard", packet(0x30, b"\x00\x01a\x04\x08\x00\x01#"), E::WildcardInTopicName),
        ("QoS 1 without packet id", packet(0x32, b"\x00\x01a"), E::PacketIdRequired),
        ("QoS 2 with packet id 0", packet(0x34, b"\x00\x01a\x00\x00\x00"), E::PacketIdRequired),
        ("no property length", packet(0x30, b"\x00\x01a"), truncated("property length")),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_acknowledgement_violations() {
    #[rustfmt::skip]
    let cases = [
        ("PUBACK id 0", packet(0x40, b"\x00\x00"), E::PacketIdRequired),
        ("PUBACK with a PUBREL code", packet(0x40, b"\x00\x01\x92"), bad_reason(T::PubAck, 0x92)),
        ("PUBREC with an unknown code", packet(0x50, b"\x00\x01\x05"), bad_reason(T::PubRec, 0x05)),
        ("PUBREL with a PUBACK code", packet(0x62, b"\x00\x01\x10"), bad_reason(T::PubRel, 0x10)),
        ("PUBCOMP with an error code", packet(0x70, b"\x00\x01\x80"), bad_reason(T::PubComp, 0x80)),
        ("PUBACK properties run past the packet", packet(0x40, b"\x00\x01\x00\x04\x1F\x00"), truncated("properties")),
        ("PUBACK topic alias", packet(0x40, b"\x00\x01\x00\x03\x23\x00\x01"),
            E::PropertyNotAllowed { property: PropertyId::TopicAlias, context: PropertyContext::Packet(T::PubAck) }),
        ("PUBREL flags", packet(0x60, b"\x00\x01"), E::InvalidFlags { packet: T::PubRel, flags: 0 }),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_subscription_violations() {
    #[rustfmt::skip]
    let cases = [
        ("SUBSCRIBE without filters", packet(0x82, b"\x00\x01\x00"), E::EmptySubscribe),
        ("options reserved bit 6", packet(0x82, b"\x00\x01\x00\x00\x01a\x40"), E::InvalidSubscriptionOptions(0x40)),
        ("options reserved bit 7", packet(0x82, b"\x00\x01\x00\x00\x01a\x80"), E::InvalidSubscriptionOptions(0x80)),
        ("options QoS 3", packet(0x82, b"\x00\x01\x00\x00\x01a\x03"), E::InvalidSubscriptionOptions(0x03)),
        ("options retain handling 3", packet(0x82, b"\x00\x01\x00\x00\x01a\x30"), E::InvalidSubscriptionOptions(0x30)),
        ("no local on a shared subscription", packet(0x82, b"\x00\x01\x00\x00\x0A$share/g/a\x04"), E::NoLocalOnSharedSubscription),
        ("options missing", packet(0x82, b"\x00\x01\x00\x00\x01a"), truncated("subscription options")),
        ("subscription identifier 0", packet(0x82, b"\x00\x01\x02\x0B\x00\x00\x01a\x00"),
            invalid_value(PropertyId::SubscriptionIdentifier, T::Subscribe, 0)),
        ("filter with # not last", packet(0x82, b"\x00\x01\x00\x00\x03#/a\x00"), E::MisplacedMultiLevelWildcard),
        ("SUBACK with a PUBACK code", packet(0x90, b"\x00\x01\x00\x10"), bad_reason(T::SubAck, 0x10)),
        ("UNSUBSCRIBE without filters", packet(0xA2, b"\x00\x01\x00"), E::EmptyUnsubscribe),
        ("UNSUBSCRIBE with + not alone", packet(0xA2, b"\x00\x01\x00\x00\x02+a"), E::MisplacedSingleLevelWildcard),
        ("UNSUBSCRIBE reason string", packet(0xA2, b"\x00\x01\x04\x1F\x00\x01x\x00\x01a"),
            E::PropertyNotAllowed { property: PropertyId::ReasonString, context: PropertyContext::Packet(T::Unsubscribe) }),
        ("UNSUBACK with a SUBACK code", packet(0xB0, b"\x00\x01\x00\x01"), bad_reason(T::UnsubAck, 0x01)),
    ];
    assert_rejected(&cases);
}

#[test]
fn rejects_disconnect_and_auth_violations() {
    #[rustfmt::skip]
    let cases = [
        ("DISCONNECT with a CONNACK-only code", packet(0xE0, b"\x84"), bad_reason(T::Disconnect, 0x84)),
        ("DISCONNECT flags", packet(0xE1, b""), E::InvalidFlags { packet: T::Disconnect, flags: 1 }),
        ("DISCONNECT assigned client id", packet(0xE0, b"\x00\x04\x12\x00\x01a"),
            E::PropertyNotAllowed { property: PropertyId::AssignedClientIdentifier, context: PropertyContext::Packet(T::Disconnect) }),
        ("AUTH with an error code", packet(0xF0, b"\x80\x00"), bad_reason(T::Auth, 0x80)),
        ("AUTH reason code without properties", packet(0xF0, b"\x18"), truncated("property length")),
        ("AUTH without a method", packet(0xF0, b"\x18\x00"), E::MissingAuthenticationMethod(T::Auth)),
        ("AUTH with data but no method", packet(0xF0, b"\x19\x04\x16\x00\x01x"), E::MissingAuthenticationMethod(T::Auth)),
        ("PINGREQ with a body", packet(0xC0, b"\x00"), E::InvalidRemainingLength { packet: T::PingReq, expected: 0, actual: 1 }),
    ];
    assert_rejected(&cases);
}

#[test]
fn errors_map_to_the_reason_code_and_statement_of_mqtt_5() {
    use PropertyId as P;
    use ReasonCode as R;
    let connect = PropertyContext::Packet(T::Connect);
    #[rustfmt::skip]
    let cases = [
        (E::PacketTooLarge { size: 11, max: 10 }, R::PacketTooLarge, None),
        (E::MalformedRemainingLength, R::MalformedPacket, None),
        (E::NonMinimalVariableByteInteger { field: "f" }, R::MalformedPacket, Some("MQTT-1.5.5-1")),
        (E::InvalidFlags { packet: T::PubRel, flags: 0 }, R::MalformedPacket, Some("MQTT-2.1.3-1")),
        (E::InvalidUtf8 { field: "f" }, R::MalformedPacket, Some("MQTT-1.5.4-1")),
        (E::NullCharacter { field: "f" }, R::MalformedPacket, Some("MQTT-1.5.4-2")),
        (E::InvalidPropertyId(0x30), R::MalformedPacket, Some("§2.2.2.2")),
        (E::PropertyNotAllowed { property: P::TopicAlias, context: connect }, R::MalformedPacket, Some("§2.2.2.2")),
        (E::DuplicateProperty { property: P::ReceiveMaximum, context: connect }, R::ProtocolError, Some("§3.1.2.11.3")),
        (E::InvalidPropertyValue { property: P::MaximumPacketSize, context: connect, value: 0 }, R::ProtocolError, Some("§3.1.2.11.4")),
        (invalid_value(P::TopicAlias, T::Publish, 0), R::TopicAliasInvalid, Some("MQTT-3.3.2-8")),
        (bad_reason(T::PubAck, 0x92), R::ProtocolError, Some("MQTT-3.4.2-1")),
        (bad_reason(T::Auth, 0x80), R::ProtocolError, Some("MQTT-3.15.2-1")),
        (E::MissingAuthenticationMethod(T::Connect), R::ProtocolError, Some("§3.1.2.11.10")),
        (E::MissingAuthenticationMethod(T::Auth), R::ProtocolError, Some("§3.15.2.2.2")),
        (E::InvalidSubscriptionOptions(0x40), R::MalformedPacket, Some("MQTT-3.8.3-5")),
        (E::InvalidSubscriptionOptions(0x30), R::ProtocolError, Some("§3.8.3.1")),
        (E::NoLocalOnSharedSubscription, R::ProtocolError, Some("MQTT-3.8.3-4")),
        (E::EmptySubscribe, R::ProtocolError, Some("MQTT-3.8.3-2")),
        (E::EmptyUnsubscribe, R::ProtocolError, Some("MQTT-3.10.3-2")),
        (E::PacketIdRequired, R::ProtocolError, Some("MQTT-2.2.1-3")),
        (E::EmptyTopic, R::ProtocolError, Some("MQTT-4.7.3-1")),
        (E::WildcardInTopicName, R::TopicNameInvalid, Some("MQTT-4.7.0-1")),
        (E::MisplacedMultiLevelWildcard, R::TopicFilterInvalid, Some("MQTT-4.7.1-1")),
        (E::MisplacedSingleLevelWildcard, R::TopicFilterInvalid, Some("MQTT-4.7.1-2")),
        (E::InvalidQoS, R::MalformedPacket, Some("MQTT-3.3.1-4")),
        (E::DupWithQoS0, R::MalformedPacket, Some("MQTT-3.3.1-2")),
        (E::UnsupportedProtocolLevel(4), R::UnsupportedProtocolVersion, Some("MQTT-3.1.2-2")),
        (E::InvalidProtocolName, R::UnsupportedProtocolVersion, Some("MQTT-3.1.2-1")),
        (E::ConnectReservedFlag, R::MalformedPacket, Some("MQTT-3.1.2-3")),
        (E::WillQoSWithoutWill, R::MalformedPacket, Some("MQTT-3.1.2-13")),
        (E::InvalidWillQoS, R::MalformedPacket, Some("MQTT-3.1.2-14")),
        (E::WillRetainWithoutWill, R::MalformedPacket, Some("MQTT-3.1.2-15")),
        (E::InvalidConnAckFlags(2), R::MalformedPacket, Some("MQTT-3.2.2-1")),
        (E::SessionPresentOnRefusal, R::ProtocolError, Some("MQTT-3.2.2-6")),
        (E::ExpectedConnect(T::Publish), R::ProtocolError, Some("MQTT-3.1.0-1")),
        (E::Truncated { field: "f" }, R::MalformedPacket, None),
    ];
    for (error, reason, statement) in cases {
        assert_eq!(error.v5_reason(), reason, "{error:?}");
        assert_eq!(error.v5_spec_reference(), statement, "{error:?}");
        assert!(
            reason.allowed_in(T::Disconnect) || reason.allowed_in(T::ConnAck),
            "{error:?}: {reason} fits neither DISCONNECT nor CONNACK"
        );
    }
}

#[test]
fn every_connect_error_can_be_answered_with_connack() {
    // Whatever is wrong with a CONNECT, its reason code is one CONNACK may carry.
    let bad_connects = [
        connect(0x03, b"\x00\x00\x00"),
        connect(0x06, b"\x00\x00\x00\x00\x00\x01#\x00\x00"),
        connect(0x06, b"\x00\x00\x00\x00\x00\x00\x00\x00"),
        connect(0x02, b"\x03\x21\x00\x00\x00\x00"),
        connect(0x02, b"\x03\x23\x00\x01\x00\x00"),
        connect(0x02, b"\x06\x21\x00\x01\x21\x00\x01\x00\x00"),
        connect(0x02, b"\x04\x16\x00\x01x\x00\x00"),
        packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3C\x00\x00"),
        packet(0x10, b"\x00\x04MQTX\x05\x02\x00\x3C\x00\x00\x00"),
        packet(0x10, b"\x00\x04MQTT\x05\x02\x00\x3C\x00\x00\x00!"),
    ];
    for bytes in bad_connects {
        let error = decode_one(&bytes).unwrap_err();
        let reason = error.v5_reason();
        assert!(reason.allowed_in(T::ConnAck), "{error:?} -> {reason}");
    }
}

//! Byte-literal encoding tests: canonical bytes, short forms, and what the encoder refuses.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::codec::error::EncodeError;
use crate::codec::primitives::MAX_REMAINING_LENGTH;
use crate::codec::types::{PacketType, QoS};
use crate::codec::v5::tests::fixtures::{id, minimal_connect, s, valid_packets};
use crate::codec::v5::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, Packet, PropertyId, PubResponse, Publish, PublishProperties, ReasonCode, SubAck,
    encode, encode_publish,
};

fn publish(qos: QoS, packet_id: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s("t"),
        packet_id: packet_id.map(id),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"p"),
    }
}

fn encoded(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, &mut buf).unwrap_or_else(|e| panic!("{e}: {packet:?}"));
    buf.to_vec()
}

#[test]
fn encodes_every_packet_type() {
    for fixture in valid_packets() {
        assert_eq!(encoded(&fixture.packet), fixture.bytes, "{}", fixture.name);
    }
}

#[test]
fn encode_publish_matches_encode() {
    for fixture in valid_packets() {
        let Packet::Publish(publish) = &fixture.packet else {
            continue;
        };
        let mut buf = BytesMut::new();
        encode_publish(publish, &mut buf).unwrap();
        assert_eq!(&buf[..], fixture.bytes, "{}", fixture.name);
    }
}

#[test]
fn appends_to_the_buffer() {
    let mut buf = BytesMut::from(&b"\xC0\x00"[..]);
    encode(&Packet::PubAck(PubResponse::success(id(7))), &mut buf).unwrap();
    encode_publish(&publish(QoS::AtMostOnce, None), &mut buf).unwrap();
    assert_eq!(&buf[..], b"\xC0\x00\x40\x02\x00\x07\x30\x05\x00\x01t\x00p");
}

#[test]
fn acknowledgements_use_the_shortest_form() {
    let reason_string = AckProperties {
        reason_string: Some(s("r")),
        user_properties: Vec::new(),
    };
    let response = |reason_code, properties| PubResponse {
        packet_id: id(1),
        reason_code,
        properties,
    };
    #[rustfmt::skip]
    let cases: [(Packet, &[u8]); 8] = [
        (Packet::PubAck(response(ReasonCode::Success, AckProperties::default())), b"\x40\x02\x00\x01"),
        (Packet::PubRec(response(ReasonCode::QuotaExceeded, AckProperties::default())), b"\x50\x03\x00\x01\x97"),
        (Packet::PubComp(response(ReasonCode::Success, reason_string.clone())), b"\x70\x08\x00\x01\x00\x04\x1F\x00\x01r"),
        (Packet::Disconnect(Disconnect::default()), b"\xE0\x00"),
        (Packet::Disconnect(Disconnect { reason_code: ReasonCode::KeepAliveTimeout, ..Disconnect::default() }), b"\xE0\x01\x8D"),
        (Packet::Auth(Auth { reason_code: ReasonCode::Success, properties: AuthProperties::default() }), b"\xF0\x00"),
        // CONNACK and SUBACK have no short form: the property length is always there.
        (Packet::ConnAck(Box::new(ConnAck { session_present: false, reason_code: ReasonCode::Banned, properties: ConnAckProperties::default() })), b"\x20\x03\x00\x8A\x00"),
        (Packet::SubAck(SubAck { packet_id: id(1), properties: AckProperties::default(), reason_codes: vec![ReasonCode::GrantedQoS1] }), b"\x90\x04\x00\x01\x00\x01"),
    ];
    for (packet, bytes) in cases {
        assert_eq!(encoded(&packet), bytes, "{packet:?}");
    }
}

#[test]
fn uses_multi_byte_lengths() {
    let mut big = publish(QoS::AtMostOnce, None);
    big.payload = Bytes::from(vec![0xAB; 200]);
    big.properties.user_properties = vec![(s("k"), ByteString::from("v".repeat(130)))];
    let bytes = encoded(&Packet::Publish(big));
    // Properties: 1 + 2 + 1 + 2 + 130 = 136 = 0x08 + 1 * 128 (2-byte property length).
    // Remaining length: 3 (topic) + 2 + 136 + 200 = 341 = 0x55 + 2 * 128.
    assert_eq!(&bytes[..8], b"\x30\xD5\x02\x00\x01t\x88\x01");
    assert_eq!(bytes.len(), 3 + 341);
}

#[test]
fn rejects_unencodable_packets_and_leaves_the_buffer_unchanged() {
    let long = || ByteString::from("x".repeat(usize::from(u16::MAX) + 1));
    let auth_data_only = ConnectProperties {
        authentication_data: Some(Bytes::from_static(b"d")),
        ..ConnectProperties::default()
    };
    let connack = |reason_code, properties| ConnAck {
        session_present: false,
        reason_code,
        properties,
    };
    let cases: Vec<(&str, Packet, EncodeError)> = vec![
        (
            "QoS 0 with a packet id",
            Packet::Publish(publish(QoS::AtMostOnce, Some(1))),
            EncodeError::PacketIdMismatch,
        ),
        (
            "QoS 2 without a packet id",
            Packet::Publish(publish(QoS::ExactlyOnce, None)),
            EncodeError::PacketIdMismatch,
        ),
        (
            "content type longer than 65535 bytes",
            Packet::Publish(Publish {
                properties: PublishProperties {
                    content_type: Some(long()),
                    ..PublishProperties::default()
                },
                ..publish(QoS::AtMostOnce, None)
            }),
            EncodeError::FieldTooLong {
                field: "Content Type",
                len: 65_536,
            },
        ),
        (
            "remaining length above 268435455",
            Packet::Publish(Publish {
                payload: Bytes::from(vec![0; MAX_REMAINING_LENGTH]),
                ..publish(QoS::AtMostOnce, None)
            }),
            EncodeError::PacketTooLarge(MAX_REMAINING_LENGTH + 4),
        ),
        (
            "PUBACK with a PUBREL code",
            Packet::PubAck(PubResponse {
                reason_code: ReasonCode::PacketIdentifierNotFound,
                ..PubResponse::success(id(1))
            }),
            EncodeError::ReasonCodeNotAllowed {
                packet: PacketType::PubAck,
                code: ReasonCode::PacketIdentifierNotFound,
            },
        ),
        (
            "SUBACK with an UNSUBACK code",
            Packet::SubAck(SubAck {
                packet_id: id(1),
                properties: AckProperties::default(),
                reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
            }),
            EncodeError::ReasonCodeNotAllowed {
                packet: PacketType::SubAck,
                code: ReasonCode::NoSubscriptionExisted,
            },
        ),
        (
            "CONNACK maximum QoS 2",
            Packet::ConnAck(Box::new(connack(
                ReasonCode::Success,
                ConnAckProperties {
                    maximum_qos: Some(QoS::ExactlyOnce),
                    ..ConnAckProperties::default()
                },
            ))),
            EncodeError::InvalidPropertyValue(PropertyId::MaximumQoS),
        ),
        (
            "CONNECT authentication data without a method",
            Packet::Connect(Box::new(Connect {
                properties: auth_data_only,
                ..minimal_connect()
            })),
            EncodeError::MissingAuthenticationMethod(PacketType::Connect),
        ),
        (
            "AUTH step without a method",
            Packet::Auth(Auth {
                reason_code: ReasonCode::ContinueAuthentication,
                properties: AuthProperties::default(),
            }),
            EncodeError::MissingAuthenticationMethod(PacketType::Auth),
        ),
        (
            "password too long, after other fields were written",
            Packet::Connect(Box::new(Connect {
                password: Some(Bytes::from(vec![0; 70_000])),
                ..minimal_connect()
            })),
            EncodeError::FieldTooLong {
                field: "password",
                len: 70_000,
            },
        ),
    ];
    for (name, packet, expected) in cases {
        let mut buf = BytesMut::from(&b"prefix"[..]);
        assert_eq!(encode(&packet, &mut buf), Err(expected.clone()), "{name}");
        assert_eq!(&buf[..], b"prefix", "{name}");
        if let Packet::Publish(publish) = &packet {
            assert_eq!(encode_publish(publish, &mut buf), Err(expected), "{name}");
            assert_eq!(&buf[..], b"prefix", "{name}");
        }
    }
}

#[test]
fn secrets_and_payloads_are_redacted_in_debug() {
    let connect = Connect {
        password: Some(Bytes::from_static(b"hunter2")),
        properties: ConnectProperties {
            authentication_method: Some(s("PLAIN")),
            authentication_data: Some(Bytes::from_static(b"s3cret")),
            ..ConnectProperties::default()
        },
        ..minimal_connect()
    };
    let debug = format!("{connect:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("s3cret"),
        "{debug}"
    );
    assert!(debug.contains("PLAIN"), "{debug}");
    let debug = format!("{:?}", publish(QoS::AtMostOnce, None));
    assert!(debug.contains("<1 bytes>"), "{debug}");
}

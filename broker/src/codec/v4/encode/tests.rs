//! Byte-literal encoding tests.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::codec::error::EncodeError;
use crate::codec::primitives::MAX_REMAINING_LENGTH;
use crate::codec::types::{ProtocolVersion, QoS};
use crate::codec::v4::tests::fixtures::{id, valid_packets};
use crate::codec::v4::{Connect, Packet, Publish, encode, encode_publish};

fn publish(qos: QoS, packet_id: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteString::from_static("t"),
        packet_id: packet_id.map(id),
        payload: Bytes::from_static(b"p"),
    }
}

#[test]
fn encodes_every_packet_type() {
    for fixture in valid_packets() {
        let mut buf = BytesMut::new();
        encode(&fixture.packet, &mut buf).unwrap();
        assert_eq!(&buf[..], fixture.bytes, "{}", fixture.name);
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
    encode(&Packet::PubAck(id(7)), &mut buf).unwrap();
    encode_publish(&publish(QoS::AtMostOnce, None), &mut buf).unwrap();
    assert_eq!(&buf[..], b"\xC0\x00\x40\x02\x00\x07\x30\x04\x00\x01tp");
}

#[test]
fn uses_multi_byte_remaining_length() {
    let mut big = publish(QoS::AtMostOnce, None);
    big.payload = Bytes::from(vec![0xAB; 200]);
    let mut buf = BytesMut::new();
    encode_publish(&big, &mut buf).unwrap();
    // 2 + 1 + 200 = 203 = 0x4B + 1 * 128.
    assert_eq!(&buf[..5], b"\x30\xCB\x01\x00\x01");
    assert_eq!(buf.len(), 3 + 203);
}

#[test]
fn rejects_unencodable_packets_and_leaves_the_buffer_unchanged() {
    let long = || ByteString::from("x".repeat(usize::from(u16::MAX) + 1));
    let huge_payload = Bytes::from(vec![0; MAX_REMAINING_LENGTH]);
    let connect = Connect {
        protocol: ProtocolVersion::V311,
        clean_session: true,
        keep_alive: 0,
        client_id: ByteString::from_static("c"),
        will: None,
        username: None,
        password: None,
    };
    let cases: Vec<(&str, Packet, EncodeError)> = vec![
        (
            "QoS 0 with a packet id",
            Packet::Publish(publish(QoS::AtMostOnce, Some(1))),
            EncodeError::PacketIdMismatch,
        ),
        (
            "QoS 1 without a packet id",
            Packet::Publish(publish(QoS::AtLeastOnce, None)),
            EncodeError::PacketIdMismatch,
        ),
        (
            "topic longer than 65535 bytes",
            Packet::Publish(Publish {
                topic: long(),
                ..publish(QoS::AtMostOnce, None)
            }),
            EncodeError::FieldTooLong {
                field: "topic name",
                len: 65_536,
            },
        ),
        (
            "remaining length above 268435455",
            Packet::Publish(Publish {
                payload: huge_payload,
                ..publish(QoS::AtMostOnce, None)
            }),
            EncodeError::PacketTooLarge(MAX_REMAINING_LENGTH + 3),
        ),
        (
            "password too long, after other fields were written",
            Packet::Connect(Box::new(Connect {
                username: Some(ByteString::from_static("u")),
                password: Some(Bytes::from(vec![0; 70_000])),
                ..connect.clone()
            })),
            EncodeError::FieldTooLong {
                field: "password",
                len: 70_000,
            },
        ),
        (
            "CONNECT for MQTT 5",
            Packet::Connect(Box::new(Connect {
                protocol: ProtocolVersion::V5,
                ..connect
            })),
            EncodeError::UnsupportedProtocolVersion(ProtocolVersion::V5),
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

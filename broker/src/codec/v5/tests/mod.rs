//! Tests of the streaming [`Decoder`]: partial input, several packets per read, size limits.

use bytes::BytesMut;

use crate::codec::error::DecodeError;
use crate::codec::types::PacketType;
use crate::codec::v5::{Decoder, Packet, encode};

pub(crate) mod fixtures;
mod proptests;
mod strategies;

use fixtures::valid_packets;

#[test]
fn every_strict_prefix_needs_more_bytes() {
    for fixture in valid_packets() {
        for len in 0..fixture.bytes.len() {
            let mut buf = BytesMut::from(&fixture.bytes[..len]);
            let got = Decoder::new(1024).decode(&mut buf);
            assert_eq!(got, Ok(None), "{} cut at {len}", fixture.name);
            assert_eq!(
                buf.len(),
                len,
                "{}: need-more must not consume",
                fixture.name
            );
        }
    }
}

#[test]
fn byte_at_a_time_yields_each_packet_once() {
    let fixtures = valid_packets();
    let stream: Vec<u8> = fixtures.iter().flat_map(|f| f.bytes.clone()).collect();
    let mut decoder = Decoder::new(1024);
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for &byte in &stream {
        buf.extend_from_slice(&[byte]);
        while let Some(packet) = decoder.decode(&mut buf).unwrap() {
            decoded.push(packet);
        }
    }
    let expected: Vec<Packet> = fixtures.into_iter().map(|f| f.packet).collect();
    assert_eq!(decoded, expected);
    assert!(buf.is_empty());
}

#[test]
fn several_packets_in_one_read() {
    let mut buf = BytesMut::new();
    for packet in [Packet::PingReq, Packet::PingResp] {
        encode(&packet, &mut buf).unwrap();
    }
    buf.extend_from_slice(b"\xE0"); // the start of a third packet
    let mut decoder = Decoder::new(16);
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingResp)));
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], b"\xE0");
}

#[test]
fn oversize_is_rejected_from_the_fixed_header_alone() {
    // A PUBLISH announcing 268 435 455 bytes of body, of which nothing has arrived.
    let mut buf = BytesMut::from(&b"\x30\xFF\xFF\xFF\x7F"[..]);
    let err = Decoder::new(1 << 20).decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 268_435_460,
            max: 1 << 20
        }
    );
    assert!(
        buf.capacity() < 1 << 20,
        "must not reserve for a refused body"
    );
}

#[test]
fn packet_size_limit_counts_the_fixed_header() {
    // PUBLISH "a", no properties, a 3-byte payload: 2 + 7 = 9 bytes in total.
    let bytes = b"\x30\x07\x00\x01a\x00xyz";
    let fits = Decoder::new(9).decode(&mut BytesMut::from(&bytes[..]));
    assert!(matches!(fits, Ok(Some(Packet::Publish(_)))), "{fits:?}");
    assert_eq!(
        Decoder::new(8).decode(&mut BytesMut::from(&bytes[..2])),
        Err(DecodeError::PacketTooLarge { size: 9, max: 8 })
    );
}

#[test]
fn bad_headers_are_refused_before_the_body_arrives() {
    let cases: [(&[u8], DecodeError); 6] = [
        (b"\x36\x10", DecodeError::InvalidQoS),
        (b"\x38\x10", DecodeError::DupWithQoS0),
        (b"\x00\x10", DecodeError::InvalidPacketType(0)),
        (
            b"\x60\x02",
            DecodeError::InvalidFlags {
                packet: PacketType::PubRel,
                flags: 0,
            },
        ),
        (
            b"\xF1\x10",
            DecodeError::InvalidFlags {
                packet: PacketType::Auth,
                flags: 1,
            },
        ),
        (
            b"\xC0\x01",
            DecodeError::InvalidRemainingLength {
                packet: PacketType::PingReq,
                expected: 0,
                actual: 1,
            },
        ),
    ];
    for (header, expected) in cases {
        let got = Decoder::new(1024).decode(&mut BytesMut::from(header));
        assert_eq!(got, Err(expected), "{header:02X?}");
    }
}

#[test]
fn remaining_length_must_be_minimal() {
    // MQTT 3.1.1 accepts this PINGREQ; MQTT 5 does not ([MQTT-1.5.5-1]).
    let got = Decoder::new(1024).decode(&mut BytesMut::from(&b"\xC0\x80\x00"[..]));
    assert_eq!(
        got,
        Err(DecodeError::NonMinimalVariableByteInteger {
            field: "remaining length"
        })
    );
}

#[test]
fn reserves_only_what_the_pending_packet_needs() {
    let mut buf = BytesMut::with_capacity(2);
    buf.extend_from_slice(b"\x30\xE8\x07"); // PUBLISH with 1000 bytes of body
    let mut decoder = Decoder::new(4096);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.capacity() >= 1003);
    assert!(buf.capacity() < 4096, "capacity {}", buf.capacity());
}

#[test]
fn topics_payloads_and_properties_share_the_read_buffer() {
    // PUBLISH "a/b", content type "ct", payload "hi".
    let mut buf = BytesMut::from(&b"\x30\x0D\x00\x03a/b\x05\x03\x00\x02cthi"[..]);
    let base = buf.as_ptr();
    let Some(Packet::Publish(publish)) = Decoder::new(64).decode(&mut buf).unwrap() else {
        panic!("expected PUBLISH");
    };
    assert_eq!(publish.topic.as_bytes().as_ptr(), base.wrapping_add(4));
    let content_type = publish.properties.content_type.unwrap_or_default();
    assert_eq!(content_type, "ct");
    assert_eq!(content_type.as_bytes().as_ptr(), base.wrapping_add(11));
    assert_eq!(publish.payload.as_ptr(), base.wrapping_add(13));
}

#[test]
fn max_packet_size_is_reported() {
    assert_eq!(Decoder::new(1234).max_packet_size(), 1234);
}

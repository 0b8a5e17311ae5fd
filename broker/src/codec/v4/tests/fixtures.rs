//! Hand-written wire bytes of every packet type, checked against the spec by hand, shared by the
//! decode and encode tests.

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::types::{PacketId, ProtocolVersion, QoS};
use crate::codec::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, Publish, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe,
};

pub(crate) fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn s(value: &'static str) -> ByteString {
    ByteString::from_static(value)
}

/// A packet identified by a short name, its canonical encoding, and its value.
pub(crate) struct Fixture {
    pub(crate) name: &'static str,
    pub(crate) bytes: &'static [u8],
    pub(crate) packet: Packet,
}

fn connect(protocol: ProtocolVersion, clean_session: bool, client_id: &'static str) -> Connect {
    Connect {
        protocol,
        clean_session,
        keep_alive: 60,
        client_id: s(client_id),
        will: None,
        username: None,
        password: None,
    }
}

fn publish(qos: QoS, packet_id: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s("a"),
        packet_id: packet_id.map(id),
        payload: Bytes::new(),
    }
}

/// One fixture per packet type, plus the interesting variants.
pub(crate) fn valid_packets() -> Vec<Fixture> {
    let fixture = |name, bytes, packet| Fixture {
        name,
        bytes,
        packet,
    };
    vec![
        fixture(
            "CONNECT 3.1.1 minimal",
            b"\x10\x0C\x00\x04MQTT\x04\x02\x00\x3C\x00\x00",
            Packet::Connect(Box::new(connect(ProtocolVersion::V311, true, ""))),
        ),
        fixture(
            "CONNECT 3.1.1 with will, user name and password",
            b"\x10\x1F\x00\x04MQTT\x04\xEE\x00\x3C\x00\x02c1\x00\x03w/t\x00\x03bye\x00\x01u\x00\x02\x00\xFF",
            Packet::Connect(Box::new(Connect {
                will: Some(LastWill {
                    topic: s("w/t"),
                    message: Bytes::from_static(b"bye"),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                }),
                username: Some(s("u")),
                password: Some(Bytes::from_static(b"\x00\xFF")),
                ..connect(ProtocolVersion::V311, true, "c1")
            })),
        ),
        fixture(
            "CONNECT 3.1 without clean session",
            b"\x10\x0F\x00\x06MQIsdp\x03\x00\x00\x3C\x00\x01a",
            Packet::Connect(Box::new(connect(ProtocolVersion::V31, false, "a"))),
        ),
        fixture(
            "CONNECT 3.1 with a password but no user name",
            b"\x10\x12\x00\x06MQIsdp\x03\x40\x00\x3C\x00\x01a\x00\x01p",
            Packet::Connect(Box::new(Connect {
                password: Some(Bytes::from_static(b"p")),
                ..connect(ProtocolVersion::V31, false, "a")
            })),
        ),
        fixture(
            "CONNACK accepted, session present",
            b"\x20\x02\x01\x00",
            Packet::ConnAck(ConnAck {
                session_present: true,
                return_code: ConnectReturnCode::Accepted,
            }),
        ),
        fixture(
            "CONNACK not authorized",
            b"\x20\x02\x00\x05",
            Packet::ConnAck(ConnAck {
                session_present: false,
                return_code: ConnectReturnCode::NotAuthorized,
            }),
        ),
        fixture(
            "PUBLISH QoS 0",
            b"\x30\x07\x00\x03a/bhi",
            Packet::Publish(Publish {
                topic: s("a/b"),
                payload: Bytes::from_static(b"hi"),
                ..publish(QoS::AtMostOnce, None)
            }),
        ),
        fixture(
            "PUBLISH QoS 1, DUP and RETAIN",
            b"\x3B\x06\x00\x01a\x00\x0Ax",
            Packet::Publish(Publish {
                dup: true,
                retain: true,
                payload: Bytes::from_static(b"x"),
                ..publish(QoS::AtLeastOnce, Some(10))
            }),
        ),
        fixture(
            "PUBLISH QoS 2, empty payload",
            b"\x34\x05\x00\x01a\x12\x34",
            Packet::Publish(publish(QoS::ExactlyOnce, Some(0x1234))),
        ),
        fixture("PUBACK", b"\x40\x02\x00\x01", Packet::PubAck(id(1))),
        fixture("PUBREC", b"\x50\x02\x00\x02", Packet::PubRec(id(2))),
        fixture("PUBREL", b"\x62\x02\x00\x03", Packet::PubRel(id(3))),
        fixture("PUBCOMP", b"\x70\x02\xFF\xFF", Packet::PubComp(id(0xFFFF))),
        fixture(
            "SUBSCRIBE",
            b"\x82\x0C\x00\x05\x00\x03a/#\x01\x00\x01+\x02",
            Packet::Subscribe(Subscribe {
                packet_id: id(5),
                filters: vec![(s("a/#"), QoS::AtLeastOnce), (s("+"), QoS::ExactlyOnce)],
            }),
        ),
        fixture(
            "SUBACK",
            b"\x90\x05\x00\x05\x00\x02\x80",
            Packet::SubAck(SubAck {
                packet_id: id(5),
                return_codes: vec![
                    SubscribeReturnCode::Success(QoS::AtMostOnce),
                    SubscribeReturnCode::Success(QoS::ExactlyOnce),
                    SubscribeReturnCode::Failure,
                ],
            }),
        ),
        fixture(
            "UNSUBSCRIBE",
            b"\xA2\x09\x00\x06\x00\x01a\x00\x02+/",
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(6),
                filters: vec![s("a"), s("+/")],
            }),
        ),
        fixture("UNSUBACK", b"\xB0\x02\x00\x06", Packet::UnsubAck(id(6))),
        fixture("PINGREQ", b"\xC0\x00", Packet::PingReq),
        fixture("PINGRESP", b"\xD0\x00", Packet::PingResp),
        fixture("DISCONNECT", b"\xE0\x00", Packet::Disconnect),
    ]
}

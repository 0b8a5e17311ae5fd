//! Hand-written wire bytes of every MQTT 5 packet type and short form, checked against the spec
//! by hand (each group of bytes is commented), shared by the decode and encode tests.

use std::num::NonZeroU16;

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::types::{PacketId, QoS};
use crate::codec::v5::{
    AckProperties, Auth, AuthProperties, Connect, ConnectProperties, Disconnect,
    DisconnectProperties, Packet, PubResponse, Publish, PublishProperties, ReasonCode,
    RetainHandling, SubAck, Subscribe, SubscribeProperties, SubscriptionId, SubscriptionOptions,
    UnsubAck, Unsubscribe, UnsubscribeProperties,
};

pub(crate) fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap_or(PacketId::MIN)
}

pub(crate) fn s(value: &'static str) -> ByteString {
    ByteString::from_static(value)
}

fn b(value: &'static [u8]) -> Bytes {
    Bytes::from_static(value)
}

fn kv() -> Vec<(ByteString, ByteString)> {
    vec![(s("k"), s("v"))]
}

fn sub_id(n: u32) -> SubscriptionId {
    SubscriptionId::new(n).unwrap_or_else(|| panic!("bad subscription id {n}"))
}

/// A packet identified by a short name, its canonical encoding, and its value.
pub(crate) struct Fixture {
    pub(crate) name: &'static str,
    pub(crate) bytes: Vec<u8>,
    pub(crate) packet: Packet,
}

fn fixture(name: &'static str, pieces: &[&[u8]], packet: Packet) -> Fixture {
    Fixture {
        name,
        bytes: pieces.concat(),
        packet,
    }
}

/// `User Property ("k", "v")`: 7 bytes.
const KV: &[u8] = b"\x26\x00\x01k\x00\x01v";

pub(crate) fn minimal_connect() -> Connect {
    Connect {
        clean_start: true,
        keep_alive: 60,
        properties: ConnectProperties::default(),
        client_id: s(""),
        will: None,
        username: None,
        password: None,
    }
}

fn ack(packet_id: u16, reason_code: ReasonCode, properties: AckProperties) -> PubResponse {
    PubResponse {
        packet_id: id(packet_id),
        reason_code,
        properties,
    }
}

fn publish(qos: QoS, packet_id: Option<u16>, topic: &'static str) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s(topic),
        packet_id: packet_id.map(id),
        properties: PublishProperties::default(),
        payload: Bytes::new(),
    }
}

mod connect;

/// One fixture per packet type and short form, plus the interesting variants.
pub(crate) fn valid_packets() -> Vec<Fixture> {
    let mut all = connect::connect_packets();
    all.extend(publish_packets());
    all.extend(subscribe_packets());
    all.extend(control_packets());
    all
}

fn publish_packets() -> Vec<Fixture> {
    vec![
        fixture(
            "PUBLISH QoS 0, no properties",
            &[b"\x30\x08", b"\x00\x03a/b", b"\x00", b"hi"],
            Packet::Publish(Publish {
                topic: s("a/b"),
                payload: b(b"hi"),
                ..publish(QoS::AtMostOnce, None, "a/b")
            }),
        ),
        fixture(
            "PUBLISH QoS 1, DUP and RETAIN, every property",
            &[
                b"\x3B\x35",               // DUP, QoS 1, RETAIN; remaining length 53
                b"\x00\x01a",              // topic
                b"\x00\x0A",               // packet id 10
                b"\x2E",                   // 46 bytes of properties
                b"\x01\x01",               // payload is UTF-8
                b"\x02\x00\x00\x0E\x10",   // message expiry 3600
                b"\x23\x00\x07",           // topic alias 7
                b"\x08\x00\x03r/1",        // response topic
                b"\x09\x00\x01\x07",       // correlation data
                b"\x26\x00\x01a\x00\x011", // user property a=1
                b"\x26\x00\x01a\x00\x012", // user property a=2: same name, order kept
                b"\x0B\x01",               // subscription identifier 1
                b"\x0B\x80\x01",           // subscription identifier 128
                b"\x03\x00\x04json",       // content type
                b"x",                      // payload
            ],
            Packet::Publish(Publish {
                dup: true,
                retain: true,
                properties: PublishProperties {
                    payload_format_indicator: Some(true),
                    message_expiry_interval: Some(3600),
                    topic_alias: NonZeroU16::new(7),
                    response_topic: Some(s("r/1")),
                    correlation_data: Some(b(b"\x07")),
                    user_properties: vec![(s("a"), s("1")), (s("a"), s("2"))],
                    subscription_identifiers: vec![sub_id(1), sub_id(128)],
                    content_type: Some(s("json")),
                },
                payload: b(b"x"),
                ..publish(QoS::AtLeastOnce, Some(10), "a")
            }),
        ),
        fixture(
            "PUBLISH QoS 2, empty topic with a topic alias",
            &[b"\x34\x08", b"\x00\x00", b"\x12\x34", b"\x03\x23\x00\x01"],
            Packet::Publish(Publish {
                properties: PublishProperties {
                    topic_alias: NonZeroU16::new(1),
                    ..PublishProperties::default()
                },
                ..publish(QoS::ExactlyOnce, Some(0x1234), "")
            }),
        ),
        fixture(
            "PUBACK short form",
            &[b"\x40\x02\x00\x01"],
            Packet::PubAck(PubResponse::success(id(1))),
        ),
        fixture(
            "PUBACK reason code without properties",
            &[b"\x40\x03\x00\x01\x10"],
            Packet::PubAck(ack(
                1,
                ReasonCode::NoMatchingSubscribers,
                AckProperties::default(),
            )),
        ),
        fixture(
            "PUBREC with a reason string",
            &[b"\x50\x0A", b"\x00\x02", b"\x80", b"\x06\x1F\x00\x03bad"],
            Packet::PubRec(ack(
                2,
                ReasonCode::UnspecifiedError,
                AckProperties {
                    reason_string: Some(s("bad")),
                    user_properties: Vec::new(),
                },
            )),
        ),
        fixture(
            "PUBREL short form",
            &[b"\x62\x02\x00\x03"],
            Packet::PubRel(PubResponse::success(id(3))),
        ),
        fixture(
            "PUBREL packet identifier not found",
            &[b"\x62\x03\x00\x03\x92"],
            Packet::PubRel(ack(
                3,
                ReasonCode::PacketIdentifierNotFound,
                AckProperties::default(),
            )),
        ),
        fixture(
            "PUBCOMP success with a user property",
            &[b"\x70\x0B", b"\xFF\xFF", b"\x00", b"\x07", KV],
            Packet::PubComp(ack(
                0xFFFF,
                ReasonCode::Success,
                AckProperties {
                    reason_string: None,
                    user_properties: kv(),
                },
            )),
        ),
    ]
}

fn subscribe_packets() -> Vec<Fixture> {
    vec![
        fixture(
            "SUBSCRIBE with every option",
            &[
                b"\x82\x23",     // remaining length 35
                b"\x00\x05",     // packet id 5
                b"\x09\x0B\x05", // 9 bytes of properties; subscription id 5
                KV,
                b"\x00\x03a/#\x01",        // QoS 1
                b"\x00\x01+\x2E",          // QoS 2, no local, retain as published, handling 2
                b"\x00\x0A$share/g/t\x10", // QoS 0, retain handling 1
            ],
            Packet::Subscribe(Subscribe {
                packet_id: id(5),
                properties: SubscribeProperties {
                    subscription_identifier: Some(sub_id(5)),
                    user_properties: kv(),
                },
                filters: vec![
                    (s("a/#"), SubscriptionOptions::new(QoS::AtLeastOnce)),
                    (
                        s("+"),
                        SubscriptionOptions {
                            qos: QoS::ExactlyOnce,
                            no_local: true,
                            retain_as_published: true,
                            retain_handling: RetainHandling::DoNotSend,
                        },
                    ),
                    (
                        s("$share/g/t"),
                        SubscriptionOptions {
                            retain_handling: RetainHandling::SendAtNewSubscribe,
                            ..SubscriptionOptions::new(QoS::AtMostOnce)
                        },
                    ),
                ],
            }),
        ),
        fixture(
            "SUBACK",
            &[b"\x90\x08", b"\x00\x05", b"\x00", b"\x00\x01\x02\x80\xA2"],
            Packet::SubAck(SubAck {
                packet_id: id(5),
                properties: AckProperties::default(),
                reason_codes: vec![
                    ReasonCode::GRANTED_QOS_0,
                    ReasonCode::GrantedQoS1,
                    ReasonCode::GrantedQoS2,
                    ReasonCode::UnspecifiedError,
                    ReasonCode::WildcardSubscriptionsNotSupported,
                ],
            }),
        ),
        fixture(
            "UNSUBSCRIBE with a user property",
            &[
                b"\xA2\x11",
                b"\x00\x06",
                b"\x07",
                KV,
                b"\x00\x01a",
                b"\x00\x02+/",
            ],
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(6),
                properties: UnsubscribeProperties {
                    user_properties: kv(),
                },
                filters: vec![s("a"), s("+/")],
            }),
        ),
        fixture(
            "UNSUBACK with a reason string",
            &[
                b"\xB0\x0A",
                b"\x00\x06",
                b"\x04\x1F\x00\x01x",
                b"\x00\x11\x8F",
            ],
            Packet::UnsubAck(UnsubAck {
                packet_id: id(6),
                properties: AckProperties {
                    reason_string: Some(s("x")),
                    user_properties: Vec::new(),
                },
                reason_codes: vec![
                    ReasonCode::Success,
                    ReasonCode::NoSubscriptionExisted,
                    ReasonCode::TopicFilterInvalid,
                ],
            }),
        ),
    ]
}

fn control_packets() -> Vec<Fixture> {
    vec![
        fixture("PINGREQ", &[b"\xC0\x00"], Packet::PingReq),
        fixture("PINGRESP", &[b"\xD0\x00"], Packet::PingResp),
        fixture(
            "DISCONNECT short form",
            &[b"\xE0\x00"],
            Packet::Disconnect(Disconnect::default()),
        ),
        fixture(
            "DISCONNECT reason code without properties",
            &[b"\xE0\x01\x04"],
            Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::DisconnectWithWillMessage,
                properties: DisconnectProperties::default(),
            }),
        ),
        fixture(
            "DISCONNECT with every property",
            &[
                b"\xE0\x18",             // remaining length 24
                b"\x8B",                 // server shutting down
                b"\x16",                 // 22 bytes of properties
                b"\x11\x00\x00\x00\x00", // session expiry 0
                b"\x1F\x00\x03bye",      // reason string
                KV,
                b"\x1C\x00\x01x", // server reference
            ],
            Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::ServerShuttingDown,
                properties: DisconnectProperties {
                    session_expiry_interval: Some(0),
                    reason_string: Some(s("bye")),
                    user_properties: kv(),
                    server_reference: Some(s("x")),
                },
            }),
        ),
        fixture(
            "AUTH short form",
            &[b"\xF0\x00"],
            Packet::Auth(Auth {
                reason_code: ReasonCode::Success,
                properties: AuthProperties::default(),
            }),
        ),
        fixture(
            "AUTH continue with every property",
            &[
                b"\xF0\x1B",                 // remaining length 27
                b"\x18",                     // continue authentication
                b"\x19",                     // 25 bytes of properties
                b"\x15\x00\x05SCRAM",        // authentication method
                b"\x16\x00\x03\x01\x02\x03", // authentication data
                b"\x1F\x00\x01r",            // reason string
                KV,
            ],
            Packet::Auth(Auth {
                reason_code: ReasonCode::ContinueAuthentication,
                properties: AuthProperties {
                    authentication_method: Some(s("SCRAM")),
                    authentication_data: Some(b(b"\x01\x02\x03")),
                    reason_string: Some(s("r")),
                    user_properties: kv(),
                },
            }),
        ),
        fixture(
            "AUTH re-authenticate",
            &[b"\xF0\x07", b"\x19", b"\x05\x15\x00\x02m1"],
            Packet::Auth(Auth {
                reason_code: ReasonCode::ReAuthenticate,
                properties: AuthProperties {
                    authentication_method: Some(s("m1")),
                    ..AuthProperties::default()
                },
            }),
        ),
    ]
}

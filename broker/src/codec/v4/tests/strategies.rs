//! Proptest strategies producing every *valid* MQTT 3.1 / 3.1.1 packet: values the decoder
//! accepts, and so exactly the values that must survive an encode/decode round trip.

use bytes::Bytes;
use bytestring::ByteString;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::codec::types::{PacketId, ProtocolVersion, QoS};
use crate::codec::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, Publish, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe,
};

pub(super) fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

pub(super) fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|n| PacketId::new(n).unwrap_or(PacketId::MIN))
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Any string of `min..=max` characters without U+0000, including multi-byte characters.
fn string(min: usize, max: usize) -> impl Strategy<Value = ByteString> {
    proptest::string::string_regex(&format!("[^\\x00]{{{min},{max}}}"))
        .unwrap_or_else(|e| panic!("bad regex: {e}"))
        .prop_map(ByteString::from)
}

/// A topic level without wildcards or separators; may be empty.
fn level() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9$]{0,6}", "[^\\x00/+#]{0,4}",]
}

pub(super) fn topic_name() -> impl Strategy<Value = ByteString> {
    vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topic names are not empty", |topic| !topic.is_empty())
        .prop_map(ByteString::from)
}

pub(super) fn topic_filter() -> impl Strategy<Value = ByteString> {
    let level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (vec(level, 1..5), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi {
                levels.push("#".to_owned());
            }
            levels.join("/")
        })
        .prop_filter("topic filters are not empty", |filter| !filter.is_empty())
        .prop_map(ByteString::from)
}

fn will() -> impl Strategy<Value = LastWill> {
    (topic_name(), bytes(64), qos(), any::<bool>()).prop_map(|(topic, message, qos, retain)| {
        LastWill {
            topic,
            message,
            qos,
            retain,
        }
    })
}

fn connect() -> impl Strategy<Value = Connect> {
    let protocol = prop_oneof![Just(ProtocolVersion::V31), Just(ProtocolVersion::V311)];
    (
        protocol,
        any::<bool>(),
        any::<u16>(),
        string(0, 23),
        option::of(will()),
        option::of(string(0, 16)),
        option::of(bytes(32)),
    )
        .prop_filter_map(
            "CONNECT rules",
            |(protocol, clean, keep_alive, id, will, user, pass)| {
                let v311 = protocol == ProtocolVersion::V311;
                // [MQTT-3.1.3-8] and 3.1's non-empty identifiers; [MQTT-3.1.2-22] for 3.1.1.
                let id_ok = !id.is_empty() || (v311 && clean);
                let credentials_ok = user.is_some() || pass.is_none() || !v311;
                (id_ok && credentials_ok).then(|| Connect {
                    protocol,
                    clean_session: clean,
                    keep_alive,
                    client_id: id,
                    will,
                    username: user,
                    password: pass,
                })
            },
        )
}

fn connack() -> impl Strategy<Value = ConnAck> {
    let code = prop_oneof![
        Just(ConnectReturnCode::Accepted),
        Just(ConnectReturnCode::UnacceptableProtocolVersion),
        Just(ConnectReturnCode::IdentifierRejected),
        Just(ConnectReturnCode::ServerUnavailable),
        Just(ConnectReturnCode::BadUserNameOrPassword),
        Just(ConnectReturnCode::NotAuthorized),
    ];
    (any::<bool>(), code).prop_map(|(session_present, return_code)| ConnAck {
        // [MQTT-3.2.2-4]: never set on a refusal.
        session_present: session_present && return_code == ConnectReturnCode::Accepted,
        return_code,
    })
}

pub(super) fn publish() -> impl Strategy<Value = Publish> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        bytes(256),
    )
        .prop_map(|(qos, dup, retain, topic, id, payload)| {
            let acknowledged = qos != QoS::AtMostOnce;
            Publish {
                // [MQTT-3.3.1-2], [MQTT-2.3.1-1], [MQTT-2.3.1-5].
                dup: dup && acknowledged,
                qos,
                retain,
                topic,
                packet_id: acknowledged.then_some(id),
                payload,
            }
        })
}

fn suback_code() -> impl Strategy<Value = SubscribeReturnCode> {
    prop_oneof![
        qos().prop_map(SubscribeReturnCode::Success),
        Just(SubscribeReturnCode::Failure)
    ]
}

/// Every valid packet, each type about equally likely.
pub(super) fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect().prop_map(|c| Packet::Connect(Box::new(c))),
        connack().prop_map(Packet::ConnAck),
        publish().prop_map(Packet::Publish),
        packet_id().prop_map(Packet::PubAck),
        packet_id().prop_map(Packet::PubRec),
        packet_id().prop_map(Packet::PubRel),
        packet_id().prop_map(Packet::PubComp),
        (packet_id(), vec((topic_filter(), qos()), 1..6))
            .prop_map(|(packet_id, filters)| Packet::Subscribe(Subscribe { packet_id, filters })),
        (packet_id(), vec(suback_code(), 0..6)).prop_map(|(packet_id, return_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                return_codes,
            })
        }),
        (packet_id(), vec(topic_filter(), 1..6)).prop_map(|(packet_id, filters)| {
            Packet::Unsubscribe(Unsubscribe { packet_id, filters })
        }),
        packet_id().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

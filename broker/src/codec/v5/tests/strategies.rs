//! Proptest strategies producing every *valid* MQTT 5 packet, properties included: values the
//! decoder accepts, and so exactly the values that must survive an encode/decode round trip.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use crate::codec::types::{PacketId, PacketType, QoS};
use crate::codec::v5::{
    AckProperties, Auth, AuthProperties, Disconnect, DisconnectProperties, Packet, PubResponse,
    Publish, PublishProperties, ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeProperties,
    SubscriptionId, SubscriptionOptions, UnsubAck, Unsubscribe, UnsubscribeProperties,
    UserProperties,
};

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn packet_id() -> impl Strategy<Value = PacketId> {
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

fn short_string() -> impl Strategy<Value = ByteString> {
    string(0, 8)
}

/// A topic level without wildcards or separators; may be empty.
fn level() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9$]{0,6}", "[^\\x00/+#]{0,4}"]
}

fn topic_name() -> impl Strategy<Value = ByteString> {
    vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topic names are not empty", |topic| !topic.is_empty())
        .prop_map(ByteString::from)
}

fn topic_filter() -> impl Strategy<Value = ByteString> {
    let level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (vec(level, 1..5), any::<bool>(), any::<bool>())
        .prop_map(|(mut levels, multi, shared)| {
            if multi {
                levels.push("#".to_owned());
            }
            let filter = levels.join("/");
            if shared {
                format!("$share/g/{filter}")
            } else {
                filter
            }
        })
        .prop_filter("topic filters are not empty", |filter| !filter.is_empty())
        .prop_map(ByteString::from)
}

fn user_properties() -> impl Strategy<Value = UserProperties> {
    vec((short_string(), short_string()), 0..3)
}

fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    prop_oneof![1..200u32, 1..=SubscriptionId::MAX]
        .prop_map(|n| SubscriptionId::new(n).unwrap_or_else(|| panic!("{n}")))
}

fn non_zero_u16() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|n| NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN))
}

fn non_zero_u32() -> impl Strategy<Value = NonZeroU32> {
    (1..=u32::MAX).prop_map(|n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

/// Any reason code `packet` may carry.
fn reason_code(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    let allowed: Vec<ReasonCode> = ReasonCode::ALL
        .iter()
        .copied()
        .filter(|code| code.allowed_in(packet))
        .collect();
    select(allowed)
}

mod connect;

pub(super) fn publish() -> impl Strategy<Value = Publish> {
    let properties = (
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(non_zero_u16()),
        option::of(topic_name()),
        option::of(bytes(8)),
        user_properties(),
        vec(subscription_id(), 0..3),
        option::of(short_string()),
    )
        .prop_map(
            |(format, expiry, alias, response, correlation, user, ids, content)| {
                PublishProperties {
                    payload_format_indicator: format,
                    message_expiry_interval: expiry,
                    topic_alias: alias,
                    response_topic: response,
                    correlation_data: correlation,
                    user_properties: user,
                    subscription_identifiers: ids,
                    content_type: content,
                }
            },
        );
    let flags = (qos(), any::<bool>(), any::<bool>(), any::<bool>());
    (flags, topic_name(), packet_id(), properties, bytes(128)).prop_map(
        |((qos, dup, retain, alias_only), topic, id, properties, payload)| {
            let acknowledged = qos != QoS::AtMostOnce;
            // §3.3.2.1: the topic may be empty only when a topic alias stands for it.
            let empty_topic = alias_only && properties.topic_alias.is_some();
            Publish {
                // [MQTT-3.3.1-2], [MQTT-2.2.1-2], [MQTT-2.2.1-3].
                dup: dup && acknowledged,
                qos,
                retain,
                topic: if empty_topic {
                    ByteString::new()
                } else {
                    topic
                },
                packet_id: acknowledged.then_some(id),
                properties,
                payload,
            }
        },
    )
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (option::of(short_string()), user_properties()).prop_map(|(reason_string, user)| {
        AckProperties {
            reason_string,
            user_properties: user,
        }
    })
}

fn response(packet: PacketType) -> impl Strategy<Value = PubResponse> {
    (packet_id(), reason_code(packet), ack_properties()).prop_map(
        |(packet_id, reason_code, properties)| PubResponse {
            packet_id,
            reason_code,
            properties,
        },
    )
}

fn subscription_options() -> impl Strategy<Value = SubscriptionOptions> {
    let handling = select(vec![
        RetainHandling::SendAtSubscribe,
        RetainHandling::SendAtNewSubscribe,
        RetainHandling::DoNotSend,
    ]);
    (qos(), any::<bool>(), any::<bool>(), handling).prop_map(
        |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
            qos,
            no_local,
            retain_as_published,
            retain_handling,
        },
    )
}

fn subscribe() -> impl Strategy<Value = Subscribe> {
    let properties = (option::of(subscription_id()), user_properties()).prop_map(|(id, user)| {
        SubscribeProperties {
            subscription_identifier: id,
            user_properties: user,
        }
    });
    let filter = (topic_filter(), subscription_options()).prop_map(|(filter, mut options)| {
        // [MQTT-3.8.3-4]: no No Local on a shared subscription.
        options.no_local &= !filter.starts_with("$share/");
        (filter, options)
    });
    (packet_id(), properties, vec(filter, 1..5)).prop_map(|(packet_id, properties, filters)| {
        Subscribe {
            packet_id,
            properties,
            filters,
        }
    })
}

fn disconnect() -> impl Strategy<Value = Disconnect> {
    let properties = (
        option::of(any::<u32>()),
        option::of(short_string()),
        user_properties(),
        option::of(short_string()),
    )
        .prop_map(|(expiry, reason, user, server)| DisconnectProperties {
            session_expiry_interval: expiry,
            reason_string: reason,
            user_properties: user,
            server_reference: server,
        });
    (reason_code(PacketType::Disconnect), properties).prop_map(|(reason_code, properties)| {
        Disconnect {
            reason_code,
            properties,
        }
    })
}

fn auth() -> impl Strategy<Value = Auth> {
    let properties = (
        short_string(),
        option::of(bytes(16)),
        option::of(short_string()),
        user_properties(),
    )
        .prop_map(|(method, data, reason, user)| AuthProperties {
            // §3.15.2.2.2: required unless the AUTH is the short form.
            authentication_method: Some(method),
            authentication_data: data,
            reason_string: reason,
            user_properties: user,
        });
    let short = Just(Auth {
        reason_code: ReasonCode::Success,
        properties: AuthProperties::default(),
    });
    let full =
        (reason_code(PacketType::Auth), properties).prop_map(|(reason_code, properties)| Auth {
            reason_code,
            properties,
        });
    prop_oneof![1 => short, 3 => full]
}

/// Every valid packet, each type about equally likely.
pub(super) fn packet() -> impl Strategy<Value = Packet> {
    let sub_ack = (
        packet_id(),
        ack_properties(),
        vec(reason_code(PacketType::SubAck), 0..5),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reason_codes,
            })
        });
    let unsubscribe = (packet_id(), user_properties(), vec(topic_filter(), 1..5)).prop_map(
        |(packet_id, user, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties: UnsubscribeProperties {
                    user_properties: user,
                },
                filters,
            })
        },
    );
    let unsub_ack = (
        packet_id(),
        ack_properties(),
        vec(reason_code(PacketType::UnsubAck), 0..5),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reason_codes,
            })
        });
    prop_oneof![
        connect::connect().prop_map(|c| Packet::Connect(Box::new(c))),
        connect::connack().prop_map(|c| Packet::ConnAck(Box::new(c))),
        publish().prop_map(Packet::Publish),
        response(PacketType::PubAck).prop_map(Packet::PubAck),
        response(PacketType::PubRec).prop_map(Packet::PubRec),
        response(PacketType::PubRel).prop_map(Packet::PubRel),
        response(PacketType::PubComp).prop_map(Packet::PubComp),
        subscribe().prop_map(Packet::Subscribe),
        sub_ack,
        unsubscribe,
        unsub_ack,
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect().prop_map(Packet::Disconnect),
        auth().prop_map(Packet::Auth),
    ]
}

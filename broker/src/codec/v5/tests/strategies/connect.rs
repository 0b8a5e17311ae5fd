//! Strategies for CONNECT (with its will) and CONNACK.

use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use super::{
    bytes, non_zero_u16, non_zero_u32, qos, reason_code, short_string, string, topic_name,
    user_properties,
};
use crate::codec::types::{PacketType, QoS};
use crate::codec::v5::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, LastWill, ReasonCode, WillProperties,
};

fn will() -> impl Strategy<Value = LastWill> {
    let properties = (
        option::of(any::<u32>()),
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(short_string()),
        option::of(topic_name()),
        option::of(bytes(8)),
        user_properties(),
    )
        .prop_map(
            |(delay, format, expiry, content, response, correlation, user)| WillProperties {
                will_delay_interval: delay,
                payload_format_indicator: format,
                message_expiry_interval: expiry,
                content_type: content,
                response_topic: response,
                correlation_data: correlation,
                user_properties: user,
            },
        );
    (topic_name(), bytes(32), qos(), any::<bool>(), properties).prop_map(
        |(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    )
}

pub(super) fn connect() -> impl Strategy<Value = Connect> {
    let properties = (
        option::of(any::<u32>()),
        option::of(non_zero_u16()),
        option::of(non_zero_u32()),
        option::of(any::<u16>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        user_properties(),
        option::of(short_string()),
        option::of(bytes(16)),
    )
        .prop_map(
            |(expiry, receive, size, alias, response, problem, user, method, data)| {
                ConnectProperties {
                    session_expiry_interval: expiry,
                    receive_maximum: receive,
                    maximum_packet_size: size,
                    topic_alias_maximum: alias,
                    request_response_information: response,
                    request_problem_information: problem,
                    user_properties: user,
                    // §3.1.2.11.10: no authentication data without a method.
                    authentication_data: data.filter(|_| method.is_some()),
                    authentication_method: method,
                }
            },
        );
    (
        any::<bool>(),
        any::<u16>(),
        properties,
        string(0, 23),
        option::of(will()),
        option::of(short_string()),
        option::of(bytes(16)),
    )
        .prop_map(
            |(clean_start, keep_alive, properties, client_id, will, user, pass)| Connect {
                clean_start,
                keep_alive,
                properties,
                client_id,
                will,
                username: user,
                password: pass,
            },
        )
}

pub(super) fn connack() -> impl Strategy<Value = ConnAck> {
    let limits = (
        option::of(any::<u32>()),
        option::of(non_zero_u16()),
        option::of(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
        option::of(any::<bool>()),
        option::of(non_zero_u32()),
        option::of(short_string()),
        option::of(any::<u16>()),
        option::of(short_string()),
        user_properties(),
    );
    let features = (
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<u16>()),
        option::of(short_string()),
        option::of(short_string()),
        option::of(short_string()),
        option::of(bytes(16)),
    );
    let properties = (limits, features).prop_map(|(limits, features)| {
        let (expiry, receive, max_qos, retain, size, assigned, alias, reason, user) = limits;
        let (wildcard, sub_ids, shared, keep_alive, response, server, method, data) = features;
        ConnAckProperties {
            session_expiry_interval: expiry,
            receive_maximum: receive,
            maximum_qos: max_qos,
            retain_available: retain,
            maximum_packet_size: size,
            assigned_client_identifier: assigned,
            topic_alias_maximum: alias,
            reason_string: reason,
            user_properties: user,
            wildcard_subscription_available: wildcard,
            subscription_identifiers_available: sub_ids,
            shared_subscription_available: shared,
            server_keep_alive: keep_alive,
            response_information: response,
            server_reference: server,
            authentication_method: method,
            authentication_data: data,
        }
    });
    (any::<bool>(), reason_code(PacketType::ConnAck), properties).prop_map(
        |(session_present, reason_code, properties)| ConnAck {
            // [MQTT-3.2.2-6]: never set on a refusal.
            session_present: session_present && reason_code == ReasonCode::Success,
            reason_code,
            properties,
        },
    )
}

//! Decoding CONNECT (§3.1) and CONNACK (§3.2).

use bytes::Bytes;

use crate::codec::error::DecodeError;
use crate::codec::primitives::{ensure, read_binary, read_string, read_u8, read_u16};
use crate::codec::topic::validate_topic_name;
use crate::codec::types::{PacketType, QoS};
use crate::codec::v5::decode::read_reason_code;
use crate::codec::v5::packet::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, LastWill, WillProperties,
};
use crate::codec::v5::properties::read::read_properties;
use crate::codec::v5::properties::{PropertyContext, PropertyId as P};
use crate::codec::v5::reason::ReasonCode;

/// CONNECT flag bits (spec §3.1.2.3).
pub(in crate::codec::v5) mod connect_flags {
    pub(in crate::codec::v5) const RESERVED: u8 = 0b0000_0001;
    pub(in crate::codec::v5) const CLEAN_START: u8 = 0b0000_0010;
    pub(in crate::codec::v5) const WILL: u8 = 0b0000_0100;
    pub(in crate::codec::v5) const WILL_QOS_SHIFT: u8 = 3;
    pub(in crate::codec::v5) const WILL_RETAIN: u8 = 0b0010_0000;
    pub(in crate::codec::v5) const PASSWORD: u8 = 0b0100_0000;
    pub(in crate::codec::v5) const USERNAME: u8 = 0b1000_0000;
}

pub(super) fn decode_connect(src: &mut Bytes) -> Result<Connect, DecodeError> {
    let name = read_string(src, "protocol name")?;
    let level = read_u8(src, "protocol version")?;
    match (&*name, level) {
        ("MQTT", 5) => {}
        ("MQTT" | "MQIsdp", other) => return Err(DecodeError::UnsupportedProtocolLevel(other)),
        _ => return Err(DecodeError::InvalidProtocolName),
    }

    let bits = read_u8(src, "connect flags")?;
    let has = |bit: u8| bits & bit != 0;
    ensure!(
        !has(connect_flags::RESERVED),
        DecodeError::ConnectReservedFlag
    );
    let will_qos_bits = (bits >> connect_flags::WILL_QOS_SHIFT) & 0b11;
    let will_qos = if has(connect_flags::WILL) {
        Some(QoS::try_from(will_qos_bits).map_err(|_| DecodeError::InvalidWillQoS)?)
    } else {
        ensure!(will_qos_bits == 0, DecodeError::WillQoSWithoutWill);
        ensure!(
            !has(connect_flags::WILL_RETAIN),
            DecodeError::WillRetainWithoutWill
        );
        None
    };
    let keep_alive = read_u16(src, "keep alive")?;
    let properties = connect_properties(src)?;

    let client_id = read_string(src, "client identifier")?;
    let will = if let Some(qos) = will_qos {
        let properties = will_properties(src)?;
        let topic = read_string(src, "will topic")?;
        validate_topic_name(&topic)?;
        let payload = read_binary(src, "will payload")?;
        Some(LastWill {
            topic,
            payload,
            qos,
            retain: has(connect_flags::WILL_RETAIN),
            properties,
        })
    } else {
        None
    };
    let username = has(connect_flags::USERNAME)
        .then(|| read_string(src, "user name"))
        .transpose()?;
    let password = has(connect_flags::PASSWORD)
        .then(|| read_binary(src, "password"))
        .transpose()?;
    Ok(Connect {
        clean_start: has(connect_flags::CLEAN_START),
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

fn connect_properties(src: &mut Bytes) -> Result<ConnectProperties, DecodeError> {
    let mut p = ConnectProperties::default();
    read_properties(src, PropertyContext::Packet(PacketType::Connect), |v| {
        match v.id() {
            P::SessionExpiryInterval => p.session_expiry_interval = Some(v.four()?),
            P::ReceiveMaximum => p.receive_maximum = Some(v.non_zero_two()?),
            P::MaximumPacketSize => p.maximum_packet_size = Some(v.non_zero_four()?),
            P::TopicAliasMaximum => p.topic_alias_maximum = Some(v.two()?),
            P::RequestResponseInformation => p.request_response_information = Some(v.flag()?),
            P::RequestProblemInformation => p.request_problem_information = Some(v.flag()?),
            P::UserProperty => p.user_properties.push(v.pair()?),
            P::AuthenticationMethod => p.authentication_method = Some(v.string()?),
            P::AuthenticationData => p.authentication_data = Some(v.binary()?),
            _ => return Err(v.not_allowed()),
        }
        Ok(())
    })?;
    // §3.1.2.11.10: "It is a Protocol Error to include Authentication Data if there is no
    // Authentication Method".
    ensure!(
        p.authentication_data.is_none() || p.authentication_method.is_some(),
        DecodeError::MissingAuthenticationMethod(PacketType::Connect)
    );
    Ok(p)
}

fn will_properties(src: &mut Bytes) -> Result<WillProperties, DecodeError> {
    let mut p = WillProperties::default();
    read_properties(src, PropertyContext::Will, |v| {
        match v.id() {
            P::WillDelayInterval => p.will_delay_interval = Some(v.four()?),
            P::PayloadFormatIndicator => p.payload_format_indicator = Some(v.flag()?),
            P::MessageExpiryInterval => p.message_expiry_interval = Some(v.four()?),
            P::ContentType => p.content_type = Some(v.string()?),
            P::ResponseTopic => p.response_topic = Some(v.topic_name()?),
            P::CorrelationData => p.correlation_data = Some(v.binary()?),
            P::UserProperty => p.user_properties.push(v.pair()?),
            _ => return Err(v.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

pub(super) fn decode_connack(src: &mut Bytes) -> Result<ConnAck, DecodeError> {
    let ack_flags = read_u8(src, "connect acknowledge flags")?;
    ensure!(
        ack_flags & 0b1111_1110 == 0,
        DecodeError::InvalidConnAckFlags(ack_flags)
    );
    let reason_code = read_reason_code(src, PacketType::ConnAck)?;
    let session_present = ack_flags == 1;
    ensure!(
        !session_present || reason_code == ReasonCode::Success,
        DecodeError::SessionPresentOnRefusal
    );
    let properties = connack_properties(src)?;
    Ok(ConnAck {
        session_present,
        reason_code,
        properties,
    })
}

fn connack_properties(src: &mut Bytes) -> Result<ConnAckProperties, DecodeError> {
    let mut p = ConnAckProperties::default();
    read_properties(src, PropertyContext::Packet(PacketType::ConnAck), |v| {
        match v.id() {
            P::SessionExpiryInterval => p.session_expiry_interval = Some(v.four()?),
            P::ReceiveMaximum => p.receive_maximum = Some(v.non_zero_two()?),
            P::MaximumQoS => p.maximum_qos = Some(maximum_qos(v.flag()?)),
            P::RetainAvailable => p.retain_available = Some(v.flag()?),
            P::MaximumPacketSize => p.maximum_packet_size = Some(v.non_zero_four()?),
            P::AssignedClientIdentifier => p.assigned_client_identifier = Some(v.string()?),
            P::TopicAliasMaximum => p.topic_alias_maximum = Some(v.two()?),
            P::ReasonString => p.reason_string = Some(v.string()?),
            P::UserProperty => p.user_properties.push(v.pair()?),
            P::WildcardSubscriptionAvailable => {
                p.wildcard_subscription_available = Some(v.flag()?);
            }
            P::SubscriptionIdentifierAvailable => {
                p.subscription_identifiers_available = Some(v.flag()?);
            }
            P::SharedSubscriptionAvailable => p.shared_subscription_available = Some(v.flag()?),
            P::ServerKeepAlive => p.server_keep_alive = Some(v.two()?),
            P::ResponseInformation => p.response_information = Some(v.string()?),
            P::ServerReference => p.server_reference = Some(v.string()?),
            P::AuthenticationMethod => p.authentication_method = Some(v.string()?),
            P::AuthenticationData => p.authentication_data = Some(v.binary()?),
            _ => return Err(v.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

/// Maximum QoS is 0 or 1 (§3.2.2.3.4), read like a flag.
fn maximum_qos(at_least_once: bool) -> QoS {
    if at_least_once {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    }
}

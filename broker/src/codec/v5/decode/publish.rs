//! Decoding PUBLISH (§3.3) and PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4 to §3.7).

use bytes::Bytes;

use crate::codec::error::DecodeError;
use crate::codec::primitives::{ensure, read_packet_id, read_string};
use crate::codec::topic::validate_topic_name;
use crate::codec::types::{PacketType, QoS};
use crate::codec::v5::decode::read_reason_code;
use crate::codec::v5::packet::{AckProperties, PubResponse, Publish, PublishProperties};
use crate::codec::v5::properties::read::read_properties;
use crate::codec::v5::properties::{PropertyContext, PropertyId as P};

/// Splits and checks PUBLISH flags: (DUP, QoS, RETAIN).
pub(super) fn publish_flags(flags: u8) -> Result<(bool, QoS, bool), DecodeError> {
    let qos = QoS::try_from((flags >> 1) & 0b11).map_err(|_| DecodeError::InvalidQoS)?;
    let dup = flags & 0b1000 != 0;
    ensure!(!dup || qos != QoS::AtMostOnce, DecodeError::DupWithQoS0);
    Ok((dup, qos, flags & 0b0001 != 0))
}

pub(super) fn decode_publish(header_flags: u8, src: &mut Bytes) -> Result<Publish, DecodeError> {
    let (dup, qos, retain) = publish_flags(header_flags)?;
    let topic = read_string(src, "topic name")?;
    if !topic.is_empty() {
        validate_topic_name(&topic)?;
    }
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(read_packet_id(src)?),
    };
    let properties = publish_properties(src)?;
    // §3.3.2.1: an empty topic name needs a topic alias ([MQTT-4.7.3-1] otherwise).
    ensure!(
        !topic.is_empty() || properties.topic_alias.is_some(),
        DecodeError::EmptyTopic
    );
    // The payload is the rest of the packet, and may be empty.
    let payload = std::mem::take(src);
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        properties,
        payload,
    })
}

fn publish_properties(src: &mut Bytes) -> Result<PublishProperties, DecodeError> {
    let mut p = PublishProperties::default();
    read_properties(src, PropertyContext::Packet(PacketType::Publish), |v| {
        match v.id() {
            P::PayloadFormatIndicator => p.payload_format_indicator = Some(v.flag()?),
            P::MessageExpiryInterval => p.message_expiry_interval = Some(v.four()?),
            P::TopicAlias => p.topic_alias = Some(v.non_zero_two()?),
            P::ResponseTopic => p.response_topic = Some(v.topic_name()?),
            P::CorrelationData => p.correlation_data = Some(v.binary()?),
            P::UserProperty => p.user_properties.push(v.pair()?),
            P::SubscriptionIdentifier => p.subscription_identifiers.push(v.subscription_id()?),
            P::ContentType => p.content_type = Some(v.string()?),
            _ => return Err(v.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

/// Decodes PUBACK, PUBREC, PUBREL or PUBCOMP, including the short forms: remaining length 2
/// is Success without properties, and a reason code without a property length means no
/// properties (§3.4.2.1).
pub(super) fn decode_response(
    packet: PacketType,
    src: &mut Bytes,
) -> Result<PubResponse, DecodeError> {
    let packet_id = read_packet_id(src)?;
    if src.is_empty() {
        return Ok(PubResponse::success(packet_id));
    }
    let reason_code = read_reason_code(src, packet)?;
    let properties = if src.is_empty() {
        AckProperties::default()
    } else {
        ack_properties(src, packet)?
    };
    Ok(PubResponse {
        packet_id,
        reason_code,
        properties,
    })
}

/// Reads the properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK or UNSUBACK.
pub(super) fn ack_properties(
    src: &mut Bytes,
    packet: PacketType,
) -> Result<AckProperties, DecodeError> {
    let mut p = AckProperties::default();
    read_properties(src, PropertyContext::Packet(packet), |v| {
        match v.id() {
            P::ReasonString => p.reason_string = Some(v.string()?),
            P::UserProperty => p.user_properties.push(v.pair()?),
            _ => return Err(v.not_allowed()),
        }
        Ok(())
    })?;
    Ok(p)
}

//! Decoding SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (§3.8 to §3.11).

use bytes::{Buf, Bytes};

use crate::codec::error::DecodeError;
use crate::codec::primitives::{ensure, read_packet_id, read_string, read_u8};
use crate::codec::topic::validate_topic_filter;
use crate::codec::types::PacketType;
use crate::codec::v5::decode::publish::ack_properties;
use crate::codec::v5::decode::reason_code;
use crate::codec::v5::packet::{
    SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck, Unsubscribe,
    UnsubscribeProperties,
};
use crate::codec::v5::properties::read::read_properties;
use crate::codec::v5::properties::{PropertyContext, PropertyId as P};
use crate::codec::v5::reason::ReasonCode;

/// The prefix of a shared subscription's topic filter (§4.8.2).
const SHARED_PREFIX: &str = "$share/";

pub(super) fn decode_subscribe(src: &mut Bytes) -> Result<Subscribe, DecodeError> {
    let packet_id = read_packet_id(src)?;
    let mut properties = SubscribeProperties::default();
    read_properties(src, PropertyContext::Packet(PacketType::Subscribe), |v| {
        match v.id() {
            P::SubscriptionIdentifier => {
                properties.subscription_identifier = Some(v.subscription_id()?);
            }
            P::UserProperty => properties.user_properties.push(v.pair()?),
            _ => return Err(v.not_allowed()),
        }
        Ok(())
    })?;
    let mut filters = Vec::new();
    while src.has_remaining() {
        let filter = read_string(src, "topic filter")?;
        validate_topic_filter(&filter)?;
        let byte = read_u8(src, "subscription options")?;
        let options =
            SubscriptionOptions::try_from(byte).map_err(DecodeError::InvalidSubscriptionOptions)?;
        ensure!(
            !(options.no_local && filter.starts_with(SHARED_PREFIX)),
            DecodeError::NoLocalOnSharedSubscription
        );
        filters.push((filter, options));
    }
    ensure!(!filters.is_empty(), DecodeError::EmptySubscribe);
    Ok(Subscribe {
        packet_id,
        properties,
        filters,
    })
}

pub(super) fn decode_suback(src: &mut Bytes) -> Result<SubAck, DecodeError> {
    let packet_id = read_packet_id(src)?;
    let properties = ack_properties(src, PacketType::SubAck)?;
    let reason_codes = reason_codes(src, PacketType::SubAck)?;
    Ok(SubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

pub(super) fn decode_unsubscribe(src: &mut Bytes) -> Result<Unsubscribe, DecodeError> {
    let packet_id = read_packet_id(src)?;
    let mut properties = UnsubscribeProperties::default();
    read_properties(src, PropertyContext::Packet(PacketType::Unsubscribe), |v| {
        match v.id() {
            P::UserProperty => properties.user_properties.push(v.pair()?),
            _ => return Err(v.not_allowed()),
        }
        Ok(())
    })?;
    let mut filters = Vec::new();
    while src.has_remaining() {
        let filter = read_string(src, "topic filter")?;
        validate_topic_filter(&filter)?;
        filters.push(filter);
    }
    ensure!(!filters.is_empty(), DecodeError::EmptyUnsubscribe);
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters,
    })
}

pub(super) fn decode_unsuback(src: &mut Bytes) -> Result<UnsubAck, DecodeError> {
    let packet_id = read_packet_id(src)?;
    let properties = ack_properties(src, PacketType::UnsubAck)?;
    let reason_codes = reason_codes(src, PacketType::UnsubAck)?;
    Ok(UnsubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

/// The payload of SUBACK or UNSUBACK: one reason code per byte, to the end of the packet.
fn reason_codes(src: &mut Bytes, packet: PacketType) -> Result<Vec<ReasonCode>, DecodeError> {
    std::mem::take(src)
        .iter()
        .map(|&code| reason_code(code, packet))
        .collect()
}

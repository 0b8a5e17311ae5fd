//! Encoding SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (§3.8 to §3.11).

use bytes::{BufMut, BytesMut};

use crate::codec::error::EncodeError;
use crate::codec::primitives::{field_len, write_string};
use crate::codec::types::PacketType;
use crate::codec::v5::encode::{check_reason_code, write_header};
use crate::codec::v5::packet::{
    AckProperties, SubAck, Subscribe, SubscribeProperties, UnsubAck, Unsubscribe,
    UnsubscribeProperties,
};
use crate::codec::v5::properties::PropertyId as P;
use crate::codec::v5::properties::write::{
    PropertyWriter, WriteProperties, properties_len, section_len, write_properties,
};
use crate::codec::v5::reason::ReasonCode;

pub(super) fn write_subscribe(
    subscribe: &Subscribe,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let props_len = properties_len(&subscribe.properties)?;
    let filters_len = subscribe
        .filters
        .iter()
        .map(|(filter, _)| field_len(filter.len()) + 1)
        .sum::<usize>();
    write_header(
        PacketType::Subscribe,
        0,
        2 + section_len(props_len) + filters_len,
        dst,
    )?;
    dst.put_u16(subscribe.packet_id.get());
    write_properties(&subscribe.properties, props_len, dst)?;
    for (filter, options) in &subscribe.filters {
        write_string("topic filter", filter, dst)?;
        dst.put_u8(options.to_u8());
    }
    Ok(())
}

impl WriteProperties for SubscribeProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.variable(
            P::SubscriptionIdentifier,
            self.subscription_identifier.map(|id| id.get()),
        )?;
        w.user_properties(&self.user_properties)
    }
}

pub(super) fn write_suback(ack: &SubAck, dst: &mut BytesMut) -> Result<(), EncodeError> {
    write_ack(
        PacketType::SubAck,
        ack.packet_id.get(),
        &ack.properties,
        &ack.reason_codes,
        dst,
    )
}

pub(super) fn write_unsuback(ack: &UnsubAck, dst: &mut BytesMut) -> Result<(), EncodeError> {
    write_ack(
        PacketType::UnsubAck,
        ack.packet_id.get(),
        &ack.properties,
        &ack.reason_codes,
        dst,
    )
}

/// SUBACK and UNSUBACK: packet identifier, properties, one reason code per filter.
fn write_ack(
    packet_type: PacketType,
    packet_id: u16,
    properties: &AckProperties,
    reason_codes: &[ReasonCode],
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    for &code in reason_codes {
        check_reason_code(packet_type, code)?;
    }
    let props_len = properties_len(properties)?;
    let len = 2 + section_len(props_len) + reason_codes.len();
    write_header(packet_type, 0, len, dst)?;
    dst.put_u16(packet_id);
    write_properties(properties, props_len, dst)?;
    for &code in reason_codes {
        dst.put_u8(code as u8);
    }
    Ok(())
}

pub(super) fn write_unsubscribe(
    unsubscribe: &Unsubscribe,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let props_len = properties_len(&unsubscribe.properties)?;
    let filters_len = unsubscribe
        .filters
        .iter()
        .map(|filter| field_len(filter.len()))
        .sum::<usize>();
    write_header(
        PacketType::Unsubscribe,
        0,
        2 + section_len(props_len) + filters_len,
        dst,
    )?;
    dst.put_u16(unsubscribe.packet_id.get());
    write_properties(&unsubscribe.properties, props_len, dst)?;
    for filter in &unsubscribe.filters {
        write_string("topic filter", filter, dst)?;
    }
    Ok(())
}

impl WriteProperties for UnsubscribeProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.user_properties(&self.user_properties)
    }
}

//! Encoding PUBLISH (§3.3) and PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4 to §3.7).

use bytes::{BufMut, BytesMut};

use crate::codec::error::EncodeError;
use crate::codec::primitives::{ensure, field_len, write_string};
use crate::codec::types::{PacketType, QoS};
use crate::codec::v5::encode::{check_reason_code, write_header};
use crate::codec::v5::packet::{AckProperties, PubResponse, Publish, PublishProperties};
use crate::codec::v5::properties::PropertyId as P;
use crate::codec::v5::properties::write::{
    PropertyWriter, WriteProperties, properties_len, section_len, write_properties,
};
use crate::codec::v5::reason::ReasonCode;

pub(super) fn write_publish(publish: &Publish, dst: &mut BytesMut) -> Result<(), EncodeError> {
    ensure!(
        publish.packet_id.is_some() == (publish.qos != QoS::AtMostOnce),
        EncodeError::PacketIdMismatch
    );
    let flags = u8::from(publish.dup) << 3 | (publish.qos as u8) << 1 | u8::from(publish.retain);
    let id_len = if publish.packet_id.is_some() { 2 } else { 0 };
    let props_len = properties_len(&publish.properties)?;
    let len =
        field_len(publish.topic.len()) + id_len + section_len(props_len) + publish.payload.len();

    write_header(PacketType::Publish, flags, len, dst)?;
    write_string("topic name", &publish.topic, dst)?;
    if let Some(id) = publish.packet_id {
        dst.put_u16(id.get());
    }
    write_properties(&publish.properties, props_len, dst)?;
    dst.put_slice(&publish.payload);
    Ok(())
}

impl WriteProperties for PublishProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.flag(P::PayloadFormatIndicator, self.payload_format_indicator);
        w.four(P::MessageExpiryInterval, self.message_expiry_interval);
        w.two(P::TopicAlias, self.topic_alias.map(|alias| alias.get()));
        w.string(P::ResponseTopic, self.response_topic.as_deref())?;
        w.binary(P::CorrelationData, self.correlation_data.as_deref())?;
        w.user_properties(&self.user_properties)?;
        for id in &self.subscription_identifiers {
            w.variable(P::SubscriptionIdentifier, Some(id.get()))?;
        }
        w.string(P::ContentType, self.content_type.as_deref())
    }
}

/// Writes PUBACK, PUBREC, PUBREL or PUBCOMP in its shortest form: the packet identifier alone
/// for Success without properties, no property length when there are no properties
/// (§3.4.2.1).
pub(super) fn write_response(
    packet_type: PacketType,
    response: &PubResponse,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_reason_code(packet_type, response.reason_code)?;
    let props_len = properties_len(&response.properties)?;
    let len = match (props_len, response.reason_code) {
        (0, ReasonCode::Success) => 2,
        (0, _) => 3,
        _ => 3 + section_len(props_len),
    };
    write_header(packet_type, 0, len, dst)?;
    dst.put_u16(response.packet_id.get());
    if len > 2 {
        dst.put_u8(response.reason_code as u8);
    }
    if props_len > 0 {
        write_properties(&response.properties, props_len, dst)?;
    }
    Ok(())
}

impl WriteProperties for AckProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.string(P::ReasonString, self.reason_string.as_deref())?;
        w.user_properties(&self.user_properties)
    }
}

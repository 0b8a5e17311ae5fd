//! Encoding CONNECT (§3.1) and CONNACK (§3.2).

use bytes::{BufMut, BytesMut};

use crate::codec::error::EncodeError;
use crate::codec::primitives::{ensure, field_len, write_binary, write_string};
use crate::codec::types::{PacketType, QoS};
use crate::codec::v5::decode::connect_flags;
use crate::codec::v5::encode::{check_reason_code, write_header};
use crate::codec::v5::packet::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, WillProperties,
};
use crate::codec::v5::properties::PropertyId as P;
use crate::codec::v5::properties::write::{
    PropertyWriter, WriteProperties, properties_len, section_len, write_properties,
};

/// The protocol name and version of MQTT 5.
const PROTOCOL_NAME: &str = "MQTT";
const PROTOCOL_VERSION: u8 = 5;

pub(super) fn write_connect(connect: &Connect, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let props = &connect.properties;
    ensure!(
        props.authentication_data.is_none() || props.authentication_method.is_some(),
        EncodeError::MissingAuthenticationMethod(PacketType::Connect)
    );
    let props_len = properties_len(props)?;
    let mut bits = 0;
    let mut len = field_len(PROTOCOL_NAME.len())
        + 1
        + 1
        + 2
        + section_len(props_len)
        + field_len(connect.client_id.len());
    if connect.clean_start {
        bits |= connect_flags::CLEAN_START;
    }
    let will_props_len = match &connect.will {
        Some(will) => {
            bits |= connect_flags::WILL | (will.qos as u8) << connect_flags::WILL_QOS_SHIFT;
            if will.retain {
                bits |= connect_flags::WILL_RETAIN;
            }
            let will_props_len = properties_len(&will.properties)?;
            len += section_len(will_props_len)
                + field_len(will.topic.len())
                + field_len(will.payload.len());
            will_props_len
        }
        None => 0,
    };
    if let Some(username) = &connect.username {
        bits |= connect_flags::USERNAME;
        len += field_len(username.len());
    }
    if let Some(password) = &connect.password {
        bits |= connect_flags::PASSWORD;
        len += field_len(password.len());
    }

    write_header(PacketType::Connect, 0, len, dst)?;
    write_string("protocol name", PROTOCOL_NAME, dst)?;
    dst.put_u8(PROTOCOL_VERSION);
    dst.put_u8(bits);
    dst.put_u16(connect.keep_alive);
    write_properties(props, props_len, dst)?;
    write_string("client identifier", &connect.client_id, dst)?;
    if let Some(will) = &connect.will {
        write_properties(&will.properties, will_props_len, dst)?;
        write_string("will topic", &will.topic, dst)?;
        write_binary("will payload", &will.payload, dst)?;
    }
    if let Some(username) = &connect.username {
        write_string("user name", username, dst)?;
    }
    if let Some(password) = &connect.password {
        write_binary("password", password, dst)?;
    }
    Ok(())
}

impl WriteProperties for ConnectProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.four(P::SessionExpiryInterval, self.session_expiry_interval);
        w.two(P::ReceiveMaximum, self.receive_maximum.map(|v| v.get()));
        w.four(
            P::MaximumPacketSize,
            self.maximum_packet_size.map(|v| v.get()),
        );
        w.two(P::TopicAliasMaximum, self.topic_alias_maximum);
        w.flag(
            P::RequestResponseInformation,
            self.request_response_information,
        );
        w.flag(
            P::RequestProblemInformation,
            self.request_problem_information,
        );
        w.user_properties(&self.user_properties)?;
        w.string(
            P::AuthenticationMethod,
            self.authentication_method.as_deref(),
        )?;
        w.binary(P::AuthenticationData, self.authentication_data.as_deref())
    }
}

impl WriteProperties for WillProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.four(P::WillDelayInterval, self.will_delay_interval);
        w.flag(P::PayloadFormatIndicator, self.payload_format_indicator);
        w.four(P::MessageExpiryInterval, self.message_expiry_interval);
        w.string(P::ContentType, self.content_type.as_deref())?;
        w.string(P::ResponseTopic, self.response_topic.as_deref())?;
        w.binary(P::CorrelationData, self.correlation_data.as_deref())?;
        w.user_properties(&self.user_properties)
    }
}

pub(super) fn write_connack(ack: &ConnAck, dst: &mut BytesMut) -> Result<(), EncodeError> {
    check_reason_code(PacketType::ConnAck, ack.reason_code)?;
    ensure!(
        ack.properties.maximum_qos != Some(QoS::ExactlyOnce),
        EncodeError::InvalidPropertyValue(P::MaximumQoS)
    );
    let props_len = properties_len(&ack.properties)?;
    write_header(PacketType::ConnAck, 0, 2 + section_len(props_len), dst)?;
    dst.put_u8(u8::from(ack.session_present));
    dst.put_u8(ack.reason_code as u8);
    write_properties(&ack.properties, props_len, dst)
}

impl WriteProperties for ConnAckProperties {
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError> {
        w.four(P::SessionExpiryInterval, self.session_expiry_interval);
        w.two(P::ReceiveMaximum, self.receive_maximum.map(|v| v.get()));
        w.byte(P::MaximumQoS, self.maximum_qos.map(|qos| qos as u8));
        w.flag(P::RetainAvailable, self.retain_available);
        w.four(
            P::MaximumPacketSize,
            self.maximum_packet_size.map(|v| v.get()),
        );
        w.string(
            P::AssignedClientIdentifier,
            self.assigned_client_identifier.as_deref(),
        )?;
        w.two(P::TopicAliasMaximum, self.topic_alias_maximum);
        w.string(P::ReasonString, self.reason_string.as_deref())?;
        w.user_properties(&self.user_properties)?;
        w.flag(
            P::WildcardSubscriptionAvailable,
            self.wildcard_subscription_available,
        );
        w.flag(
            P::SubscriptionIdentifierAvailable,
            self.subscription_identifiers_available,
        );
        w.flag(
            P::SharedSubscriptionAvailable,
            self.shared_subscription_available,
        );
        w.two(P::ServerKeepAlive, self.server_keep_alive);
        w.string(P::ResponseInformation, self.response_information.as_deref())?;
        w.string(P::ServerReference, self.server_reference.as_deref())?;
        w.string(
            P::AuthenticationMethod,
            self.authentication_method.as_deref(),
        )?;
        w.binary(P::AuthenticationData, self.authentication_data.as_deref())
    }
}

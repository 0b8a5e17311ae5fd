//! Control messages plugins send on their event streams, read into the broker's terms:
//! publish a message, disconnect a client, invalidate cached decisions. A plugin's answer is
//! untrusted input: strings are cleaned ([`super::sanitize`]) and a publish with a bad topic,
//! QoS or size is refused here, logged, and never reaches the broker.

use std::sync::Arc;

use bytes::Bytes;
use midge_proto::plugin::v1 as pb;
use tracing::warn;

use super::emit;
use super::sanitize::{self, MAX_FIELD};
use crate::codec::QoS;
use crate::message::Message;
use crate::topic;

/// A control message, tagged with the alias of the plugin that sent it.
#[derive(Debug)]
pub(crate) struct ControlRequest {
    /// Alias of the plugin that sent it.
    pub(crate) alias: Arc<str>,
    /// What it asks for.
    pub(crate) control: Control,
}

/// What a plugin asks the broker to do.
#[derive(Debug)]
pub(crate) enum Control {
    /// Publish this message (valid topic name, QoS and sizes), as the broker.
    Publish(Message),
    /// Disconnect the client with this id, saying why.
    Disconnect {
        /// The client's id.
        client_id: String,
        /// Why (for the log and the MQTT 5 DISCONNECT).
        reason: String,
    },
    /// Forget this plugin's cached decisions for a client id and/or user name (neither: all).
    Invalidate {
        /// Only this client id's.
        client_id: Option<String>,
        /// Only this user name's.
        username: Option<String>,
    },
}

/// Reads a plugin's control message; `None` (logged) when it is empty or invalid.
pub(super) fn from_pb(alias: &str, mut control: pb::Control) -> Option<Control> {
    sanitize::control(&mut control);
    match control.action? {
        pb::control::Action::Publish(publish) => {
            let qos = u8::try_from(publish.qos)
                .ok()
                .and_then(|q| QoS::try_from(q).ok());
            // MQTT strings and binary fields are at most 65,535 bytes: a longer topic or
            // correlation data could not be sent to anyone.
            let fits = publish.topic.len() <= MAX_FIELD
                && publish
                    .properties
                    .as_ref()
                    .is_none_or(|p| p.correlation_data.len() <= MAX_FIELD);
            let (Some(qos), true) = (qos, fits && topic::is_valid_topic_name(&publish.topic))
            else {
                let shown = sanitize::truncate(&publish.topic, 256);
                warn!(%alias, topic = %shown, qos = publish.qos, "plugin publish refused: bad topic, qos or size");
                return None;
            };
            let (properties, expires_at) = emit::from_pb_properties(publish.properties.as_ref());
            let mut message = Message::new(
                publish.topic.into(),
                Bytes::from(publish.payload),
                qos,
                publish.retain,
            );
            message.properties = properties;
            message.expires_at = expires_at;
            Some(Control::Publish(message))
        }
        pb::control::Action::Disconnect(disconnect) => Some(Control::Disconnect {
            client_id: disconnect.client_id,
            reason: disconnect.reason,
        }),
        pb::control::Action::Invalidate(invalidate) => Some(Control::Invalidate {
            client_id: Some(invalidate.client_id).filter(|c| !c.is_empty()),
            username: Some(invalidate.username).filter(|u| !u.is_empty()),
        }),
    }
}

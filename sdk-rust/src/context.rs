//! [`Context`]: what an event handler knows about the event it handles, and its way back to the
//! broker (control messages on the same stream).

use std::{sync::Arc, time::SystemTime};

use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tonic::Status;

use crate::{ConfigError, PluginConfig, config::ConfigStore, pb};

/// The sending half of a stream's replies (acks and controls). Bounded: see
/// `event_stream::REPLY_CAPACITY`.
pub(crate) type ReplySender = mpsc::Sender<Result<pb::StreamReply, Status>>;

/// Handed to every [`crate::EventHandler`] call.
///
/// Cheap to clone. A clone kept after the handler returns can still send control messages for
/// as long as the stream it came from is open.
#[derive(Debug, Clone)]
pub struct Context {
    stream_id: Arc<str>,
    sequence: u64,
    time: Option<SystemTime>,
    replies: ReplySender,
    config: ConfigStore,
}

impl Context {
    pub(crate) fn new(
        stream_id: Arc<str>,
        event: &pb::Event,
        replies: ReplySender,
        config: ConfigStore,
    ) -> Self {
        Context {
            stream_id,
            sequence: event.sequence,
            time: event.time.and_then(|t| SystemTime::try_from(t).ok()),
            replies,
            config,
        }
    }

    /// The broker's stream id (stable across reconnects within one broker run).
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// The current event's sequence number.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When the current event happened (broker clock), if the broker sent a valid time.
    pub fn time(&self) -> Option<SystemTime> {
        self.time
    }

    /// The latest config the broker sent in `Describe` (empty before the first one).
    pub fn plugin_config(&self) -> PluginConfig {
        self.config.get()
    }

    /// The latest config section, deserialized into `T` (see [`PluginConfig::parse`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the section does not fit `T`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.config.get().parse()
    }

    /// Asks the broker to publish a message (no PUBLISH check; RECEIVE checks apply).
    ///
    /// # Errors
    ///
    /// [`ControlError::StreamClosed`] when the stream has ended.
    pub async fn publish(&self, message: Publish) -> Result<(), ControlError> {
        self.send(pb::control::Action::Publish(message.into()))
            .await
    }

    /// Asks the broker to disconnect a client (MQTT 5: reason 0x98, with `reason` as the reason
    /// string). Unknown or offline clients are ignored by the broker.
    ///
    /// # Errors
    ///
    /// [`ControlError::StreamClosed`] when the stream has ended.
    pub async fn disconnect_client(
        &self,
        client_id: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<(), ControlError> {
        let action = pb::control::Action::Disconnect(pb::DisconnectControl {
            client_id: client_id.into(),
            reason: reason.into(),
        });
        self.send(action).await
    }

    /// Asks the broker to forget decisions it cached from this plugin for a client id.
    ///
    /// # Errors
    ///
    /// [`ControlError::StreamClosed`] when the stream has ended.
    pub async fn invalidate_client(
        &self,
        client_id: impl Into<String>,
    ) -> Result<(), ControlError> {
        self.invalidate(client_id.into(), String::new()).await
    }

    /// Asks the broker to forget decisions it cached from this plugin for a user name.
    ///
    /// # Errors
    ///
    /// [`ControlError::StreamClosed`] when the stream has ended.
    pub async fn invalidate_username(
        &self,
        username: impl Into<String>,
    ) -> Result<(), ControlError> {
        self.invalidate(String::new(), username.into()).await
    }

    /// Asks the broker to forget every decision it cached from this plugin.
    ///
    /// # Errors
    ///
    /// [`ControlError::StreamClosed`] when the stream has ended.
    pub async fn invalidate_all(&self) -> Result<(), ControlError> {
        self.invalidate(String::new(), String::new()).await
    }

    async fn invalidate(&self, client_id: String, username: String) -> Result<(), ControlError> {
        let action = pb::control::Action::Invalidate(pb::InvalidateControl {
            client_id,
            username,
        });
        self.send(action).await
    }

    /// Sends one control message as is. It goes out before the ack of the event being handled.
    ///
    /// Waits while the reply buffer is full (the broker is not reading).
    ///
    /// # Errors
    ///
    /// [`ControlError::StreamClosed`] when the stream has ended.
    pub async fn send(&self, action: pb::control::Action) -> Result<(), ControlError> {
        let reply = pb::StreamReply {
            ack: 0,
            controls: vec![pb::Control {
                action: Some(action),
            }],
        };
        self.replies
            .send(Ok(reply))
            .await
            .map_err(|_| ControlError::StreamClosed)
    }
}

/// A control message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The event stream it belongs to has ended (broker gone, or this server shutting down).
    #[error("the event stream is closed")]
    StreamClosed,
}

impl From<ControlError> for Status {
    fn from(e: ControlError) -> Self {
        Status::unavailable(e.to_string())
    }
}

/// A message for [`Context::publish`].
///
/// ```
/// use midge_plugin::Publish;
///
/// let p = Publish::new("alerts/door", "open").qos(1).retain(true);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// A topic name (no wildcards).
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// 0, 1 or 2.
    pub qos: u8,
    /// The RETAIN flag.
    pub retain: bool,
    /// MQTT 5 user properties, in order.
    pub user_properties: Vec<(String, String)>,
}

impl Publish {
    /// A QoS 0, non-retained message.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            qos: 0,
            retain: false,
            user_properties: Vec::new(),
        }
    }

    /// Set the QoS (0, 1 or 2).
    #[must_use]
    pub fn qos(mut self, qos: u8) -> Self {
        self.qos = qos;
        self
    }

    /// Set the RETAIN flag.
    #[must_use]
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Add an MQTT 5 user property.
    #[must_use]
    pub fn user_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_properties.push((key.into(), value.into()));
        self
    }
}

impl From<Publish> for pb::PublishControl {
    fn from(p: Publish) -> Self {
        let properties = (!p.user_properties.is_empty()).then(|| pb::MessageProperties {
            user_properties: p
                .user_properties
                .into_iter()
                .map(|(key, value)| pb::UserProperty { key, value })
                .collect(),
            ..pb::MessageProperties::default()
        });
        pb::PublishControl {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos.into(),
            retain: p.retain,
            properties,
        }
    }
}

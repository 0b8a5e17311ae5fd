//! The `midge.plugin.v1.EventSink` service as a trait: react to broker events.

use std::future::Future;

use tonic::Status;

use crate::{Context, PluginConfig, pb, pb::EventKind, pb::event::Body};

/// Reacts to broker events (aMQTT's `on_*` plugin methods). Register it with
/// [`crate::Server::event_handler`].
///
/// Override the `on_*` methods for the events you care about, or [`EventHandler::on_event`] to
/// see every event. The SDK does the stream bookkeeping: it drops duplicates (the broker
/// delivers at least once), calls the handler one event at a time in sequence order, and acks
/// cumulatively after each batch. Use the [`Context`] to send the broker control messages
/// (publish, disconnect a client, invalidate cached decisions) or to read the plugin's config.
///
/// A handler error is logged and the event still counts as handled, as aMQTT swallows handler
/// exceptions: the broker never re-sends an event because a handler failed.
///
/// ```
/// use midge_plugin::{pb, Context, EventHandler, EventInterest, Status};
///
/// struct Logger;
///
/// impl EventHandler for Logger {
///     fn interest(&self) -> EventInterest {
///         EventInterest::kinds([pb::EventKind::ClientConnected]).without_payload()
///     }
///
///     async fn on_client_connected(&self, _ctx: &Context, ev: &pb::ClientConnected) -> Result<(), Status> {
///         let client = ev.session.as_ref().map_or("?", |s| s.client_id.as_str());
///         println!("connected: {client}");
///         Ok(())
///     }
/// }
/// ```
#[allow(unused_variables)] // the default bodies ignore their arguments
pub trait EventHandler: Send + Sync + 'static {
    /// What the broker should send (`DescribeResponse.events`, `topic_filters`,
    /// `omit_payload`, `packet_bytes`); asked on every `Describe`. The default is every kind
    /// except the high-volume packet kinds, all topics, with payloads.
    fn interest(&self) -> EventInterest {
        EventInterest::default()
    }

    /// Called with the plugin's config section on every `Describe`. The default accepts anything.
    ///
    /// # Errors
    ///
    /// An error is returned to the broker, which then treats the plugin as unavailable.
    fn on_configure(
        &self,
        config: &PluginConfig,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// Every event, in order. The default dispatches to the `on_*` method for the body; events
    /// with a body unknown to this SDK are skipped.
    ///
    /// # Errors
    ///
    /// Logged by the SDK; the event is acked anyway.
    fn on_event(
        &self,
        ctx: &Context,
        event: &pb::Event,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async move {
            let Some(body) = &event.body else {
                return Ok(());
            };
            match body {
                Body::PreStart(b) => self.on_broker_pre_start(ctx, b).await,
                Body::PostStart(b) => self.on_broker_post_start(ctx, b).await,
                Body::PreShutdown(b) => self.on_broker_pre_shutdown(ctx, b).await,
                Body::PostShutdown(b) => self.on_broker_post_shutdown(ctx, b).await,
                Body::ClientConnected(b) => self.on_client_connected(ctx, b).await,
                Body::ClientDisconnected(b) => self.on_client_disconnected(ctx, b).await,
                Body::ClientSubscribed(b) => self.on_client_subscribed(ctx, b).await,
                Body::ClientUnsubscribed(b) => self.on_client_unsubscribed(ctx, b).await,
                Body::MessageReceived(b) => self.on_message_received(ctx, b).await,
                Body::MessageBroadcast(b) => self.on_message_broadcast(ctx, b).await,
                Body::RetainedStored(b) => self.on_retained_stored(ctx, b).await,
                Body::RetainedCleared(b) => self.on_retained_cleared(ctx, b).await,
                Body::PacketReceived(b) => self.on_packet_received(ctx, b).await,
                Body::PacketSent(b) => self.on_packet_sent(ctx, b).await,
            }
        }
    }

    /// Before the listeners start (awaited by the broker).
    fn on_broker_pre_start(
        &self,
        ctx: &Context,
        ev: &pb::BrokerLifecycle,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// After every listener is up (awaited by the broker).
    fn on_broker_post_start(
        &self,
        ctx: &Context,
        ev: &pb::BrokerLifecycle,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// First step of a graceful shutdown (awaited by the broker).
    fn on_broker_pre_shutdown(
        &self,
        ctx: &Context,
        ev: &pb::BrokerLifecycle,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// Last event of the stream (awaited by the broker).
    fn on_broker_post_shutdown(
        &self,
        ctx: &Context,
        ev: &pb::BrokerLifecycle,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// After the accepting CONNACK.
    fn on_client_connected(
        &self,
        ctx: &Context,
        ev: &pb::ClientConnected,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// After the connection closed (and the will, if any, was published).
    fn on_client_disconnected(
        &self,
        ctx: &Context,
        ev: &pb::ClientDisconnected,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// After the SUBACK, once per granted filter.
    fn on_client_subscribed(
        &self,
        ctx: &Context,
        ev: &pb::ClientSubscribed,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// Per filter of an UNSUBSCRIBE, before the UNSUBACK.
    fn on_client_unsubscribed(
        &self,
        ctx: &Context,
        ev: &pb::ClientUnsubscribed,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// A client's PUBLISH once read: before the PUBLISH topic check and before its PUBACK /
    /// PUBREC (denied ones too; `events.proto`, EVENT_KIND_MESSAGE_RECEIVED).
    fn on_message_received(
        &self,
        ctx: &Context,
        ev: &pb::MessageEvent,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// A message that passed the PUBLISH topic check, before retaining and routing and before
    /// its PUBACK / PUBREC.
    fn on_message_broadcast(
        &self,
        ctx: &Context,
        ev: &pb::MessageEvent,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// A retained message was stored.
    fn on_retained_stored(
        &self,
        ctx: &Context,
        ev: &pb::MessageEvent,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// A retained message was cleared.
    fn on_retained_cleared(
        &self,
        ctx: &Context,
        ev: &pb::MessageEvent,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// An MQTT packet read from a client (only when asked for in [`EventHandler::interest`]).
    fn on_packet_received(
        &self,
        ctx: &Context,
        ev: &pb::PacketEvent,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }

    /// An MQTT packet written to a client (only when asked for in [`EventHandler::interest`]).
    fn on_packet_sent(
        &self,
        ctx: &Context,
        ev: &pb::PacketEvent,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        async { Ok(()) }
    }
}

/// What a plugin asks the broker to send on its event stream.
///
/// ```
/// use midge_plugin::{pb::EventKind, EventInterest};
///
/// let i = EventInterest::kinds([EventKind::MessageBroadcast])
///     .topics(["sensors/#"])
///     .without_payload();
/// assert!(!i.payload);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInterest {
    /// The event kinds. Empty: no events at all.
    pub kinds: Vec<EventKind>,
    /// Topic filters for the message kinds; empty = every topic.
    pub topic_filters: Vec<String>,
    /// Send message payloads (`false` = only their size).
    pub payload: bool,
    /// Send the raw bytes of packet events.
    pub packet_bytes: bool,
}

impl Default for EventInterest {
    /// Every kind but the packet kinds, every topic, with payloads.
    fn default() -> Self {
        EventInterest::kinds(EventKind::ALL_BUT_PACKETS)
    }
}

impl EventInterest {
    /// Exactly these kinds, every topic, with payloads.
    pub fn kinds(kinds: impl IntoIterator<Item = EventKind>) -> Self {
        EventInterest {
            kinds: kinds.into_iter().collect(),
            topic_filters: Vec::new(),
            payload: true,
            packet_bytes: false,
        }
    }

    /// No events.
    pub fn none() -> Self {
        EventInterest::kinds([])
    }

    /// Only message events whose topic matches one of these MQTT filters.
    #[must_use]
    pub fn topics<I: IntoIterator<Item = S>, S: Into<String>>(mut self, filters: I) -> Self {
        self.topic_filters
            .extend(filters.into_iter().map(Into::into));
        self
    }

    /// Message events without payloads.
    #[must_use]
    pub fn without_payload(mut self) -> Self {
        self.payload = false;
        self
    }

    /// Packet events with their raw bytes.
    #[must_use]
    pub fn with_packet_bytes(mut self) -> Self {
        self.packet_bytes = true;
        self
    }
}

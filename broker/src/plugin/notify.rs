//! What the rest of the broker tells plugins, in its own terms: lifecycle moments, message
//! moments, client facts. Only this module (with [`super::emit`] and [`super::packets`]) turns
//! them into the event contract's protobuf.

use std::net::SocketAddr;

use midge_proto::plugin::v1 as pb;
use tokio::time::Instant;

use super::{PluginManager, emit};
use crate::codec::ProtocolVersion;
use crate::message::{Message, Origin};

/// A moment of the broker's life that plugins are told of and that the broker waits for (aMQTT
/// awaits its start and shutdown events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Before the listeners bind.
    PreStart,
    /// After the listeners accept.
    PostStart,
    /// First thing on shutdown.
    PreShutdown,
    /// After the event queues drained.
    PostShutdown,
}

/// A moment of an application message's way through the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageMoment {
    /// A PUBLISH was read, before its topic check.
    Received,
    /// The message passed its checks and is about to be routed.
    Broadcast,
    /// A retained message was stored.
    RetainedStored,
    /// A retained message was cleared.
    RetainedCleared,
}

impl MessageMoment {
    pub(super) fn kind(self) -> pb::EventKind {
        match self {
            MessageMoment::Received => pb::EventKind::MessageReceived,
            MessageMoment::Broadcast => pb::EventKind::MessageBroadcast,
            MessageMoment::RetainedStored => pb::EventKind::RetainedStored,
            MessageMoment::RetainedCleared => pb::EventKind::RetainedCleared,
        }
    }
}

/// Why a client's connection ended, as plugins are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DisconnectReason {
    /// The client sent DISCONNECT.
    Normal,
    /// The connection was lost or closed without DISCONNECT.
    Abnormal,
    /// Nothing arrived within the keep-alive.
    KeepaliveTimeout,
    /// Another connection took the client id over.
    TakenOver,
    /// The broker (or a plugin, or the admin API) disconnected it.
    Kicked,
    /// The broker shut down.
    Shutdown,
    /// A malformed or protocol-violating packet.
    ProtocolError,
}

/// The facts of a client's session that connect and disconnect events carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionFacts<'a> {
    /// The client id.
    pub(crate) client_id: &'a str,
    /// The user name, if any.
    pub(crate) username: Option<&'a str>,
    /// Clean start / clean session.
    pub(crate) clean_start: bool,
    /// The keep-alive in effect, in seconds.
    pub(crate) keep_alive: u16,
    /// The MQTT version.
    pub(crate) protocol: ProtocolVersion,
    /// The client's address.
    pub(crate) remote_addr: SocketAddr,
    /// The listener's name.
    pub(crate) listener: &'a str,
    /// The connection's id.
    pub(crate) connection_id: u64,
}

impl SessionFacts<'_> {
    fn to_pb(self) -> pb::Session {
        pb::Session {
            client_id: self.client_id.to_string(),
            username: self.username.map(str::to_string),
            clean_start: self.clean_start,
            keep_alive_secs: u32::from(self.keep_alive),
            protocol_version: emit::protocol_version(self.protocol) as i32,
            remote_addr: self.remote_addr.to_string(),
            listener: self.listener.to_string(),
            connection_id: self.connection_id.to_string(),
        }
    }
}

impl PluginManager {
    /// Tells the plugins of `moment` and waits, until `deadline`, for the acks of those that are
    /// connected (see [`emit_and_wait`](Self::emit_and_wait)).
    pub(crate) async fn lifecycle(&self, moment: Lifecycle, deadline: Instant) {
        let body = emit::lifecycle();
        let (kind, body) = match moment {
            Lifecycle::PreStart => (
                pb::EventKind::BrokerPreStart,
                pb::event::Body::PreStart(body),
            ),
            Lifecycle::PostStart => (
                pb::EventKind::BrokerPostStart,
                pb::event::Body::PostStart(body),
            ),
            Lifecycle::PreShutdown => (
                pb::EventKind::BrokerPreShutdown,
                pb::event::Body::PreShutdown(body),
            ),
            Lifecycle::PostShutdown => (
                pb::EventKind::BrokerPostShutdown,
                pb::event::Body::PostShutdown(body),
            ),
        };
        self.emit_and_wait(kind, body, deadline).await;
    }

    /// A client connected (after its accepted CONNACK). `facts` is called only if a plugin or
    /// a watcher wants the event.
    pub(crate) fn client_connected<'a>(
        &self,
        facts: impl FnOnce() -> SessionFacts<'a>,
        session_present: bool,
    ) {
        self.emit(pb::EventKind::ClientConnected, || {
            pb::event::Body::ClientConnected(pb::ClientConnected {
                session: Some(facts().to_pb()),
                session_present,
            })
        });
    }

    /// A client's connection ended, for `reason`, with its will published or not.
    pub(crate) fn client_disconnected<'a>(
        &self,
        facts: impl FnOnce() -> SessionFacts<'a>,
        reason: DisconnectReason,
        will_published: bool,
    ) {
        let reason = match reason {
            DisconnectReason::Normal => pb::DisconnectReason::Normal,
            DisconnectReason::Abnormal => pb::DisconnectReason::Abnormal,
            DisconnectReason::KeepaliveTimeout => pb::DisconnectReason::KeepaliveTimeout,
            DisconnectReason::TakenOver => pb::DisconnectReason::TakenOver,
            DisconnectReason::Kicked => pb::DisconnectReason::Kicked,
            DisconnectReason::Shutdown => pb::DisconnectReason::Shutdown,
            DisconnectReason::ProtocolError => pb::DisconnectReason::ProtocolError,
        };
        self.emit(pb::EventKind::ClientDisconnected, || {
            pb::event::Body::ClientDisconnected(pb::ClientDisconnected {
                session: Some(facts().to_pb()),
                reason: reason as i32,
                will_published,
            })
        });
    }

    /// A client was granted `filter` at `qos` (after SUBACK, before retained replay).
    pub(crate) fn client_subscribed(
        &self,
        client_id: &str,
        username: Option<&str>,
        filter: &str,
        qos: crate::codec::QoS,
    ) {
        self.emit(pb::EventKind::ClientSubscribed, || {
            pb::event::Body::ClientSubscribed(pb::ClientSubscribed {
                client_id: client_id.to_string(),
                username: username.map(str::to_string),
                topic_filter: filter.to_string(),
                requested_qos: qos as u32,
                granted_qos: qos as u32,
            })
        });
    }

    /// A client unsubscribed from `filter` (whether or not it was subscribed).
    pub(crate) fn client_unsubscribed(
        &self,
        client_id: &str,
        username: Option<&str>,
        filter: &str,
    ) {
        self.emit(pb::EventKind::ClientUnsubscribed, || {
            pb::event::Body::ClientUnsubscribed(pb::ClientUnsubscribed {
                client_id: client_id.to_string(),
                username: username.map(str::to_string),
                topic_filter: filter.to_string(),
            })
        });
    }

    /// A message reached `moment` (see [`emit_message`](Self::emit_message)).
    pub(crate) fn message(&self, moment: MessageMoment, origin: Origin<'_>, message: &Message) {
        self.emit_message(moment.kind(), origin, message);
    }

    /// [`message`](Self::message) with the event's time from `clock` (shared by the events of
    /// one socket read).
    pub(crate) fn message_at(
        &self,
        moment: MessageMoment,
        origin: Origin<'_>,
        message: &Message,
        clock: &mut emit::EventClock,
    ) {
        self.emit_message_at(moment.kind(), origin, message, clock);
    }
}

//! The admin API: `midge.admin.v1.BrokerAdmin` (see `proto/midge/admin/v1/admin.proto`, whose
//! comments are the contract), `grpc.health.v1.Health` and gRPC server reflection (v1, and
//! v1alpha for older `grpcurl`), on one gRPC server of its own (`admin.bind`).
//!
//! # Layout
//! - [`Runtime`] (this file): what the admin API and the metrics endpoint know of the running
//!   broker beyond [`BrokerContext`]: the bound listeners, the serving phase, and plugin
//!   states with the time they were entered.
//! - `server`: binding, TLS, the bearer token, health, reflection, graceful stop.
//! - `service`: the `BrokerAdmin` methods.
//! - `events`: `WatchEvents`, a live tail of the events plugins get.
//! - `paging`: page sizes and page tokens.
//!
//! # Health
//!
//! The overall status (`""`) and `midge.admin.v1.BrokerAdmin` are NOT_SERVING while the
//! broker starts (until every listener is bound and accepting), SERVING while it runs, and
//! NOT_SERVING again as soon as shutdown begins, so that orchestrators stop routing to it while
//! it drains. The admin server itself keeps answering until the broker has stopped.
//!
//! # Errors
//!
//! Every failure is a `tonic::Status`: NOT_FOUND for an unknown client id or retained topic,
//! INVALID_ARGUMENT for a malformed topic, filter, QoS, event kind or page token,
//! UNAUTHENTICATED for a missing or wrong bearer token. Nothing here panics on input.

mod events;
mod paging;
mod server;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use midge_proto::admin::v1 as admin_pb;
use midge_proto::plugin::v1 as pb;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::{ListenerConfig, ListenerKind};
use crate::context::BrokerContext;
use crate::latency::HistogramSnapshot;
use crate::listener::{BoundListener, ListenerStats};
use crate::plugin::Plugin;
use crate::plugin::breaker::BreakerState;

pub use server::AdminError;
pub(crate) use server::bind;

/// How long the latency percentiles of `ListPlugins` look back: between one and two of these.
const LATENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Where the broker is in its life, as health checks report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Starting: plugins being described, listeners not bound yet. NOT_SERVING.
    Starting,
    /// Every listener accepts clients. SERVING.
    Serving,
    /// Shutting down. NOT_SERVING.
    Draining,
}

/// One bound MQTT listener, as the admin API and the metrics report it.
#[derive(Debug, Clone)]
pub(crate) struct ListenerInfo {
    /// The listener's name from the config.
    pub(crate) name: Arc<str>,
    /// Its transport.
    pub(crate) kind: ListenerKind,
    /// The address actually bound.
    pub(crate) addr: SocketAddr,
    /// `max-connections` (0 = unlimited).
    pub(crate) max_connections: usize,
    /// Its connection counters.
    pub(crate) stats: Arc<ListenerStats>,
}

/// What the admin API and the metrics endpoint know of the running broker beyond
/// [`BrokerContext`]. One per broker, shared as `Arc<Runtime>`.
#[derive(Debug)]
pub(crate) struct Runtime {
    started_at: SystemTime,
    listeners: Mutex<Vec<ListenerInfo>>,
    phase: watch::Sender<Phase>,
    plugins: Mutex<Vec<PluginTrack>>,
}

/// The admin view of one plugin: its last observed state, since when, and the latency
/// snapshots that bound the percentile window.
#[derive(Debug, Clone)]
struct PluginTrack {
    state: PluginState,
    since: SystemTime,
    /// Taken at the start of the current window and of the one before it.
    window_start: (std::time::Instant, HistogramSnapshot),
    previous_window: HistogramSnapshot,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            started_at: SystemTime::now(),
            listeners: Mutex::new(Vec::new()),
            phase: watch::channel(Phase::Starting).0,
            plugins: Mutex::new(Vec::new()),
        }
    }
}

impl Runtime {
    /// When the broker started.
    pub(crate) fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Records the bound listeners (with the `max-connections` of their config) and turns the
    /// health status to SERVING: the broker accepts clients from now on.
    pub(crate) fn listeners_bound(&self, bound: &[BoundListener], configs: &[ListenerConfig]) {
        let infos = bound
            .iter()
            .map(|listener| ListenerInfo {
                name: Arc::from(listener.name()),
                kind: listener.kind(),
                addr: listener.local_addr(),
                max_connections: configs
                    .iter()
                    .find(|c| c.name == listener.name())
                    .map_or(0, |c| c.max_connections),
                stats: listener.stats(),
            })
            .collect();
        *self.listeners.lock() = infos;
        self.set_phase(Phase::Serving);
    }

    /// The bound listeners, in config order (empty while starting).
    pub(crate) fn listeners(&self) -> Vec<ListenerInfo> {
        self.listeners.lock().clone()
    }

    /// Moves to `phase` (a broker never leaves [`Phase::Draining`]).
    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.send_if_modified(|current| {
            let changed = *current != phase && *current != Phase::Draining;
            if changed {
                *current = phase;
            }
            changed
        });
    }

    /// Follows the phase.
    pub(crate) fn watch_phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// Observes every plugin's state now, and returns for each, in config order, the state, since
    /// when it holds (the first observation of it), and the latency recorded over the last one
    /// to two [`LATENCY_WINDOW`]s. Called by `ListPlugins`, the metrics and a 1 s sampler, so a
    /// state change is dated within a second.
    pub(crate) fn observe_plugins(&self, ctx: &BrokerContext) -> Vec<PluginView> {
        let now = SystemTime::now();
        let instant = std::time::Instant::now();
        let plugins = ctx.plugins.plugins();
        let mut tracks = self.plugins.lock();
        if tracks.len() != plugins.len() {
            *tracks = plugins
                .iter()
                .map(|p| PluginTrack {
                    state: plugin_state(p),
                    since: self.started_at,
                    window_start: (instant, HistogramSnapshot::default()),
                    previous_window: HistogramSnapshot::default(),
                })
                .collect();
        }
        plugins
            .iter()
            .zip(tracks.iter_mut())
            .map(|(plugin, track)| {
                let state = plugin_state(plugin);
                if state != track.state {
                    track.state = state;
                    track.since = now;
                }
                let latency = plugin.stats().latency.snapshot();
                if instant.duration_since(track.window_start.0) >= LATENCY_WINDOW {
                    track.previous_window = track.window_start.1;
                    track.window_start = (instant, latency);
                }
                PluginView {
                    state,
                    since: track.since,
                    recent_latency: latency.since(&track.previous_window),
                }
            })
            .collect()
    }
}

/// One plugin as [`Runtime::observe_plugins`] saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PluginView {
    /// Its state now.
    pub(crate) state: PluginState,
    /// Since when.
    pub(crate) since: SystemTime,
    /// Latency of its answered calls over the last one to two minutes.
    pub(crate) recent_latency: HistogramSnapshot,
}

/// A plugin's state from the broker's signals: the circuit breaker first (open or probing:
/// calls take the fallback at once), then whether it answered `Describe` and, when it gets
/// events, whether its event stream is open.
pub(crate) fn plugin_state(plugin: &Plugin) -> PluginState {
    if plugin.breaker_state() != BreakerState::Closed {
        return PluginState::BreakerOpen;
    }
    let pipeline = plugin.pipeline();
    let wants_events = pb::EventKind::ALL_BUT_PACKETS
        .iter()
        .chain(&pb::EventKind::PACKET_KINDS)
        .any(|kind| pipeline.wants(*kind));
    if plugin.is_described() && (!wants_events || pipeline.stats().connected) {
        PluginState::Connected
    } else {
        PluginState::Reconnecting
    }
}

/// A plugin's state as the admin API and the metrics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PluginState {
    /// It answered `Describe` and, if it gets events, its event stream is open.
    Connected,
    /// Not (yet, or no longer) reachable: calls take `on-unavailable`.
    Reconnecting,
    /// Its circuit breaker is open or probing: calls take the fallback at once.
    BreakerOpen,
}

impl PluginState {
    /// The admin API's value.
    pub(crate) fn to_pb(self) -> admin_pb::PluginState {
        match self {
            PluginState::Connected => admin_pb::PluginState::Connected,
            PluginState::Reconnecting => admin_pb::PluginState::Reconnecting,
            PluginState::BreakerOpen => admin_pb::PluginState::BreakerOpen,
        }
    }
}

/// The event kinds a plugin is sent now.
pub(crate) fn plugin_event_kinds(plugin: &Plugin) -> Vec<pb::EventKind> {
    let pipeline = plugin.pipeline();
    pb::EventKind::ALL_BUT_PACKETS
        .iter()
        .chain(&pb::EventKind::PACKET_KINDS)
        .copied()
        .filter(|kind| pipeline.wants(*kind))
        .collect()
}

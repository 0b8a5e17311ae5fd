//! The plugin manager: plugins registered by alias and endpoint, asked to authenticate and to
//! check topics with unary gRPC calls (deadline, fallback per failure class, circuit breaker,
//! decision cache), and fed broker events through one bounded pipeline each.
//!
//! # Layout
//! - [`decision`]: how votes combine (the rule, tested case by case).
//! - [`client`]: one plugin: channel, calls, fallbacks, `Describe`, counters.
//! - [`breaker`]: the circuit breaker.
//! - [`cache`]: decision caches.
//! - [`events`]: the per-plugin event pipeline (queue, batching, acks, replay).
//! - [`emit`]: building events from broker facts.
//! - [`sanitize`]: plugin answers are untrusted input: their strings cleaned on arrival.
//! - [`watch`]: live event watchers (the admin API's `WatchEvents`).

mod anonymous;
mod auth_query;
mod authenticate;
pub(crate) mod breaker;
pub(crate) mod cache;
pub(crate) mod client;
mod control;
pub(crate) mod decision;
pub(crate) mod emit;
pub(crate) mod events;
mod fields;
pub(crate) mod grants;
mod notify;
mod packets;
pub(crate) mod sanitize;
mod supervise;
mod tls;
mod topic_check;
pub(crate) mod watch;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use midge_proto::plugin::v1 as pb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, Overflow as OverflowConfig};
use crate::message::{Message, Origin};
pub(crate) use auth_query::{AuthQuery, ConnectFacts};
pub(crate) use authenticate::AuthOutcome;
use cache::AuthCache;
pub(crate) use client::{Answer, Plugin, Roles};
pub(crate) use control::{Control, ControlRequest};
use events::{EventPipeline, Overflow, PipelineSettings};
pub(crate) use notify::{DisconnectReason, Lifecycle, MessageMoment, SessionFacts};
pub(crate) use packets::PacketSource;
pub(crate) use topic_check::TopicQuery;

/// Control messages from plugins waiting for the broker to apply them. When full, further
/// controls are dropped with a warning (a plugin can send them again).
const CONTROL_QUEUE: usize = 1024;
/// Backoff between `Describe` attempts while a plugin is down: from the first to the last value.
const DESCRIBE_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(10));

/// Why the plugin manager could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The endpoint (or its TLS material) is unusable.
    #[error("plugin `{alias}`: bad endpoint: {reason}")]
    Endpoint {
        /// The plugin's alias.
        alias: String,
        /// What is wrong.
        reason: String,
    },
    /// A mandatory plugin did not answer `Describe` before its startup timeout.
    #[error("mandatory plugin `{alias}` did not answer Describe within {timeout:?}: {last_error}")]
    MandatoryUnavailable {
        /// The plugin's alias.
        alias: String,
        /// The startup timeout that passed.
        timeout: Duration,
        /// What the last attempt saw (e.g. the plugin refusing its config).
        last_error: String,
    },
    /// A mandatory plugin answered `Describe` without a service its chains need.
    #[error("mandatory plugin `{alias}`: {reason}")]
    MandatoryMissingService {
        /// The plugin's alias.
        alias: String,
        /// Which service is missing.
        reason: String,
    },
}

/// All configured plugins and the chains that use them.
#[derive(Debug)]
pub(crate) struct PluginManager {
    plugins: Vec<Arc<Plugin>>,
    auth_chain: Vec<Arc<Plugin>>,
    topic_chain: Vec<Arc<Plugin>>,
    topic_check: bool,
    allow_anonymous: Option<bool>,
    auth_cache: AuthCache,
    controls: mpsc::Sender<ControlRequest>,
    watch: watch::EventWatch,
}

impl PluginManager {
    /// Builds every plugin's lazy channel and pipeline from `config`. Returns the manager and
    /// the receiving end of the control queue, which the broker drains.
    pub(crate) fn new(
        config: &Config,
    ) -> Result<(PluginManager, mpsc::Receiver<ControlRequest>), PluginError> {
        let mut plugins = Vec::with_capacity(config.plugins.len());
        for (index, (alias, plugin)) in config.plugins.iter().enumerate() {
            let settings = PipelineSettings {
                queue_size: plugin.queue_size,
                overflow: match plugin.overflow {
                    OverflowConfig::DropOldest => Overflow::DropOldest,
                    OverflowConfig::DropNewest => Overflow::DropNewest,
                },
                max_batch: 256,
                max_unacked: plugin.queue_size,
            };
            let pipeline = EventPipeline::new(Arc::from(alias.as_str()), settings);
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            let roles = Roles {
                authenticator: config.auth.plugins.contains(alias),
                topic_filter: config.topic_check.plugins.contains(alias),
            };
            plugins.push(Arc::new(Plugin::new(
                index,
                alias,
                plugin.clone(),
                pipeline,
                roles,
            )?));
        }
        let chain = |aliases: &[String]| -> Vec<Arc<Plugin>> {
            aliases
                .iter()
                .filter_map(|alias| {
                    plugins
                        .iter()
                        .find(|p| &**p.alias() == alias.as_str())
                        .cloned()
                })
                .collect()
        };
        let auth_chain = chain(&config.auth.plugins);
        let topic_chain = chain(&config.topic_check.plugins);
        let (controls, receiver) = mpsc::channel(CONTROL_QUEUE);
        let manager = PluginManager {
            // Enabled even without plugins: session grants from authenticators still apply.
            topic_check: config.topic_check.enable,
            plugins,
            auth_chain,
            topic_chain,
            allow_anonymous: config.auth.allow_anonymous,
            auth_cache: AuthCache::default(),
            controls,
            watch: watch::EventWatch::default(),
        };
        Ok((manager, receiver))
    }

    /// Every plugin, in config order.
    pub(crate) fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// The live event watchers: every event emitted for plugins also goes to them.
    pub(crate) fn watch(&self) -> &watch::EventWatch {
        &self.watch
    }

    /// Starts one supervisor per plugin: `Describe` (with backoff, again after every lost
    /// connection) and, once the plugin wants events, its event stream.
    pub(crate) fn start(&self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        for plugin in &self.plugins {
            tracker.spawn(supervise::supervise(
                plugin.clone(),
                self.controls.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
    }

    /// Waits until every `mandatory` plugin answered `Describe`, each within its
    /// `startup-timeout`.
    pub(crate) async fn wait_mandatory(&self) -> Result<(), PluginError> {
        for plugin in self.plugins.iter().filter(|p| p.config().mandatory) {
            let timeout = plugin.config().startup_timeout;
            info!(alias = %plugin.alias(), ?timeout, "waiting for mandatory plugin");
            if tokio::time::timeout(timeout, plugin.wait_described())
                .await
                .is_err()
            {
                return Err(PluginError::MandatoryUnavailable {
                    alias: plugin.alias().to_string(),
                    timeout,
                    last_error: plugin
                        .last_error()
                        .unwrap_or_else(|| "no answer".to_string()),
                });
            }
            if let Some(reason) = plugin.missing_service() {
                return Err(PluginError::MandatoryMissingService {
                    alias: plugin.alias().to_string(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Forgets cached authentication decisions for a client id and/or user name.
    pub(crate) fn invalidate_auth(
        &self,
        alias: &str,
        client_id: Option<&str>,
        username: Option<&str>,
    ) {
        if let Some(plugin) = self.plugin(alias) {
            self.auth_cache
                .invalidate(plugin.index(), client_id, username);
        }
    }

    /// The plugin registered under `alias`.
    pub(crate) fn plugin(&self, alias: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| &**p.alias() == alias)
    }

    /// Whether any plugin wants events of `kind`, or anyone watches events (one atomic load per
    /// plugin, and one for the watchers).
    pub(crate) fn wants(&self, kind: pb::EventKind) -> bool {
        self.watch.is_watched() || self.plugins.iter().any(|p| p.pipeline().wants(kind))
    }

    /// Queues the event built by `body` for every plugin that wants `kind`, and hands it to the
    /// watchers if any. `body` runs only if someone wants it. Never waits.
    pub(crate) fn emit(&self, kind: pb::EventKind, body: impl FnOnce() -> pb::event::Body) {
        let mut body = Some(body);
        let mut built: Option<pb::event::Body> = None;
        for plugin in self.plugins.iter().filter(|p| p.pipeline().wants(kind)) {
            let event_body = match (&built, body.take()) {
                (Some(b), _) => b.clone(),
                (None, Some(make)) => built.insert(make()).clone(),
                (None, None) => continue,
            };
            plugin.pipeline().push(emit::event(event_body));
        }
        if self.watch.is_watched()
            && let Some(event_body) = built.or_else(|| body.map(|make| make()))
        {
            self.watch.send(emit::event(event_body));
        }
    }

    /// Queues a message event for every plugin that wants `kind` on this topic, with or without
    /// the payload as each asked, and hands it (with the payload) to the watchers if any. Never
    /// waits.
    /// Queues a packet event for every plugin that wants `kind`, with the raw bytes for those
    /// that asked for them in `Describe` (`packet_bytes`). Never waits.
    pub(crate) fn emit_packet(&self, kind: pb::EventKind, make: impl Fn(bool) -> pb::event::Body) {
        for plugin in &self.plugins {
            if plugin.pipeline().wants(kind) {
                plugin
                    .pipeline()
                    .push(emit::event(make(plugin.wants_packet_bytes())));
            }
        }
        if self.watch.is_watched() {
            self.watch.send(emit::event(make(false)));
        }
    }

    /// Whether any plugin that wants packet events asked for their raw bytes.
    pub(crate) fn wants_packet_bytes(&self) -> bool {
        self.plugins.iter().any(|p| p.wants_packet_bytes())
    }

    /// Queues a message event of `kind` (message received / broadcast, retained stored /
    /// cleared) about `message` from `origin` for every plugin that wants it on this topic,
    /// with or without the payload as each asked, and hands it (with the payload) to the
    /// watchers if any. Never waits.
    ///
    /// The hot path of every PUBLISH: the event is encoded straight from the message into each
    /// wanting plugin's pipeline, without building a protobuf value or allocating.
    pub(crate) fn emit_message(&self, kind: pb::EventKind, origin: Origin<'_>, message: &Message) {
        self.emit_message_at(kind, origin, message, &mut emit::EventClock::default());
    }

    /// [`emit_message`](Self::emit_message) with the event's time from `clock` (shared by the
    /// events of one socket read), read only if a plugin wants the event.
    pub(crate) fn emit_message_at(
        &self,
        kind: pb::EventKind,
        origin: Origin<'_>,
        message: &Message,
        clock: &mut emit::EventClock,
    ) {
        // Most brokers have no plugin that wants message events: one atomic load each.
        if !self.wants(kind) {
            return;
        }
        let mut time = None;
        for plugin in &self.plugins {
            let pipeline = plugin.pipeline();
            if !pipeline.wants_message(kind, &message.topic) {
                continue;
            }
            let now = *time.get_or_insert_with(|| clock.stamp());
            // Encoded into each pipeline's own arena (see `events::buffer`): sharing one
            // encoding between plugins would let a slow plugin hold a fast one's blocks.
            if let Some(event) = emit::MessageEvent::new(kind, now, origin, message) {
                pipeline.push_message(&event);
            }
        }
        if self.watch.is_watched() {
            let event = emit::message_event(origin.client_id, origin.username, message, true);
            if let Some(body) = emit::message_body(kind, event) {
                let mut event = emit::event(body);
                if let Some(at) = time {
                    event.time = Some(at.time.into());
                }
                self.watch.send(event);
            }
        }
    }

    /// Sends a lifecycle event to every plugin that wants it and waits, until `deadline`, for the
    /// acks of those that are connected (aMQTT awaits start and shutdown events). A plugin that
    /// is down gets the event queued for when it returns, without holding up the broker.
    pub(crate) async fn emit_and_wait(
        &self,
        kind: pb::EventKind,
        body: pb::event::Body,
        deadline: tokio::time::Instant,
    ) {
        if self.watch.is_watched() {
            self.watch.send(emit::event(body.clone()));
        }
        let mut waits = Vec::new();
        for plugin in self.plugins.iter().filter(|p| p.pipeline().wants(kind)) {
            let event = emit::event(body.clone());
            if !plugin.is_described() {
                plugin.pipeline().push(event);
                continue;
            }
            waits.push(async move {
                if !plugin.pipeline().push_and_wait(event, deadline).await {
                    warn!(alias = %plugin.alias(), ?kind, "plugin did not acknowledge a lifecycle event in time");
                }
            });
        }
        join_all(waits).await;
    }

    /// Waits until every pipeline sent and got acks for all it holds, or `deadline` passes.
    pub(crate) async fn drain(&self, deadline: tokio::time::Instant) {
        let drains = self.plugins.iter().map(|p| async move {
            if !p.pipeline().drain(deadline).await {
                warn!(alias = %p.alias(), "event queue not drained before the deadline");
            }
        });
        join_all(drains).await;
    }
}

fn bump(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The pb event kinds a plugin's `events` config names (`all` expanded), if it names any.
pub(crate) fn configured_kinds(config: &crate::config::PluginConfig) -> Option<Vec<pb::EventKind>> {
    let names = config.event_kinds()?;
    Some(names.into_iter().filter_map(event_kind).collect())
}

/// The contract's `EventKind` a config name stands for, by the proto's own names (prost's
/// `from_str_name`: `client_connected` is `EVENT_KIND_CLIENT_CONNECTED`); `None` for `all`.
fn event_kind(name: crate::config::EventKindName) -> Option<pb::EventKind> {
    pb::EventKind::from_str_name(&format!(
        "EVENT_KIND_{}",
        name.as_str().to_ascii_uppercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventKindName;

    #[test]
    fn every_config_event_kind_is_a_contract_event_kind_and_back() {
        let mapped: Vec<pb::EventKind> = EventKindName::KINDS
            .iter()
            .map(|name| event_kind(*name).unwrap_or_else(|| panic!("{name} in the contract")))
            .collect();
        let every: Vec<pb::EventKind> = pb::EventKind::ALL_BUT_PACKETS
            .iter()
            .chain(&pb::EventKind::PACKET_KINDS)
            .copied()
            .collect();
        assert_eq!(
            mapped, every,
            "the config names every contract kind, in order"
        );
        assert_eq!(event_kind(EventKindName::All), None);
    }
}

//! The broker state every connection shares: config, router, sessions, counters, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytestring::ByteString;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::plugin::PluginManager;
use crate::router::Router;
use crate::session::SessionRegistry;
use crate::stats::Stats;

/// Shared broker state, one per broker, behind an `Arc`.
#[derive(Debug)]
pub(crate) struct BrokerContext {
    /// The configuration the broker runs with.
    pub(crate) config: Arc<Config>,
    /// Subscription tree and retained store.
    pub(crate) router: Arc<Router>,
    /// Sessions by client id.
    pub(crate) sessions: Arc<SessionRegistry>,
    /// Broker-wide counters.
    pub(crate) stats: Arc<Stats>,
    /// Plugins: authentication, topic checks, events.
    pub(crate) plugins: Arc<PluginManager>,
    /// Cancelled when the broker closes its connections at shutdown (they close without
    /// publishing wills). A child of the broker's root token (see `broker.rs`), so cancelling
    /// the root cancels it too.
    pub(crate) shutdown: CancellationToken,
    /// The broker's own background tasks that belong to no connection (delayed wills): each
    /// ends when `shutdown` is cancelled, and shutdown waits for them.
    pub(crate) tasks: TaskTracker,
    /// When the broker started (for uptime).
    pub(crate) started: Instant,
    next_connection_id: AtomicU64,
    /// Seed that makes assigned client ids unique across broker restarts.
    id_seed: u64,
}

impl BrokerContext {
    /// Builds the shared state.
    pub(crate) fn new(
        config: Arc<Config>,
        router: Arc<Router>,
        sessions: Arc<SessionRegistry>,
        stats: Arc<Stats>,
        plugins: Arc<PluginManager>,
        shutdown: CancellationToken,
    ) -> Self {
        let id_seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        BrokerContext {
            config,
            router,
            sessions,
            stats,
            plugins,
            shutdown,
            tasks: TaskTracker::new(),
            started: Instant::now(),
            next_connection_id: AtomicU64::new(1),
            id_seed,
        }
    }

    /// A fresh connection id.
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A client id for a client that sent an empty one (clean session only).
    pub(crate) fn assign_client_id(&self) -> ByteString {
        let n = self.next_connection_id();
        ByteString::from(format!("midge-{:x}-{n:x}", self.id_seed))
    }
}

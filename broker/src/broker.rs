//! The broker: binds the listeners, serves connections, runs the background tasks, and shuts it
//! all down in order when the shutdown token is cancelled.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::context::BrokerContext;
use crate::listener::{self, ListenerError};
use crate::retained::MemoryRetainedStore;
use crate::router::Router;
use crate::session::{SessionLimits, SessionRegistry};
use crate::stats::Stats;
use crate::{connection, sys_topics};

/// How long shutdown waits for connections and tasks to finish before giving up on them.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Why the broker could not run.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listener could not be bound or its TLS material loaded.
    #[error(transparent)]
    Listener(#[from] ListenerError),
}

/// An MQTT broker built from a [`Config`].
#[derive(Debug)]
pub struct Broker {
    ctx: Arc<BrokerContext>,
}

impl Broker {
    /// Builds the broker's state from `config`. Nothing is bound until [`run`](Self::run).
    ///
    /// # Errors
    /// None today; the signature leaves room for stores that open files.
    pub fn new(config: Config) -> Result<Broker, BrokerError> {
        let stats = Arc::new(Stats::default());
        let limits = SessionLimits {
            max_inflight: config.limits.max_inflight,
            max_queued: config.limits.max_queued_messages,
            queue_full_policy: config.limits.queue_full_policy,
        };
        let router = Arc::new(Router::new(
            Arc::new(MemoryRetainedStore::default()),
            stats.clone(),
        ));
        let sessions = Arc::new(SessionRegistry::new(limits, stats.clone()));
        let ctx = BrokerContext::new(
            Arc::new(config),
            router,
            sessions,
            stats,
            CancellationToken::new(),
        );
        Ok(Broker { ctx: Arc::new(ctx) })
    }

    /// Binds every listener, serves clients until `shutdown` is cancelled, then stops accepting,
    /// closes every connection (no wills are published for a broker shutdown) and waits for all
    /// tasks under a deadline.
    ///
    /// # Errors
    /// A listener that cannot be bound fails the start before any client is accepted.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BrokerError> {
        let ctx = self.ctx;
        let listeners = listener::bind_all(&ctx.config.listeners).await?;
        let tracker = TaskTracker::new();
        for bound in listeners {
            let handler_ctx = ctx.clone();
            let handler =
                move |transport, peer| connection::serve(handler_ctx.clone(), transport, peer);
            tracker.spawn(bound.serve(handler, shutdown.clone(), tracker.clone()));
        }
        tracker.spawn(sys_topics::run(
            ctx.clone(),
            ctx.config.sys_interval,
            shutdown.clone(),
        ));
        tracker.spawn(expire_sessions(ctx.clone(), shutdown.clone()));

        shutdown.cancelled().await;
        info!("shutting down");
        // Connections watch the context's token; listeners and background tasks watch `shutdown`.
        ctx.shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = tracker.len(),
                "shutdown deadline passed with tasks still running"
            );
        }
        info!("stopped");
        Ok(())
    }
}

/// Drops persistent sessions that stayed offline longer than `limits.session-expiry`.
async fn expire_sessions(ctx: Arc<BrokerContext>, shutdown: CancellationToken) {
    let expiry = ctx.config.limits.session_expiry;
    if expiry.is_zero() {
        return;
    }
    let period = (expiry / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {
                for session in ctx.sessions.expire(expiry) {
                    ctx.router.remove_session(&session);
                }
            }
        }
    }
}

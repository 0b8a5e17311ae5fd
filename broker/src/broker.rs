//! The broker: starts the plugins, binds the listeners, serves connections, runs the background
//! tasks, and shuts it all down in order when the shutdown token is cancelled.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin::{self, AdminError, Runtime};
use crate::config::Config;
use crate::context::BrokerContext;
use crate::listener::{self, ListenerError};
use crate::metrics::{self, MetricsError};
use crate::plugin::{ControlRequest, Lifecycle, PluginError, PluginManager};
use crate::retained::MemoryRetainedStore;
use crate::router::Router;
use crate::session::{SessionLimits, SessionRegistry};
use crate::stats::{DROP_LOG_INTERVAL, Stats};
use crate::{connection, control, sys_topics};

/// How long shutdown waits for connections and tasks to finish before giving up on them.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// How long start and shutdown events wait for plugins' acknowledgements.
const LIFECYCLE_DEADLINE: Duration = Duration::from_secs(5);
/// How long graceful shutdown lets event queues drain to the plugins.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// How long start waits for plugins to answer their first `Describe` (mandatory ones wait their
/// own `startup-timeout`), so that start events reach the plugins that are up.
const DESCRIBE_GRACE: Duration = Duration::from_secs(2);

/// Why the broker could not run.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listener could not be bound or its TLS material loaded.
    #[error(transparent)]
    Listener(#[from] ListenerError),
    /// A plugin is misconfigured, or a mandatory one did not come up.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The admin API could not be set up.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The metrics endpoint could not be set up.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// An MQTT broker built from a [`Config`].
///
/// Its tasks hang off one tree of cancellation tokens, cancelled from the leaves to the root as
/// the shutdown proceeds: `accepting` (listeners and periodic tasks; cancelled when the
/// caller's shutdown token is) ⊂ `ctx.shutdown` (connections and delayed wills) ⊂ `root`
/// (plugins, control messages, admin API, metrics: the last to stop). Cancelling the root stops
/// everything.
#[derive(Debug)]
pub struct Broker {
    ctx: Arc<BrokerContext>,
    controls: mpsc::Receiver<ControlRequest>,
    root: CancellationToken,
}

impl Broker {
    /// Builds the broker's state from `config`. Nothing is bound or connected until
    /// [`run`](Self::run).
    ///
    /// # Errors
    /// A plugin endpoint that cannot be parsed, or plugin TLS files that cannot be read.
    pub fn new(config: Config) -> Result<Broker, BrokerError> {
        let stats = Arc::new(Stats::default());
        let limits = SessionLimits {
            max_inflight: config.limits.max_inflight,
            max_queued: config.limits.max_queued_messages,
            max_queued_bytes: config.limits.max_queued_bytes,
            queue_full_policy: config.limits.queue_full_policy,
        };
        let (plugins, controls) = PluginManager::new(&config)?;
        let router = Arc::new(Router::new(Arc::new(MemoryRetainedStore::default())));
        let sessions = Arc::new(SessionRegistry::new(
            limits,
            config.limits.queued_bytes_budget,
            stats.clone(),
        ));
        let root = CancellationToken::new();
        let ctx = BrokerContext::new(
            Arc::new(config),
            router,
            sessions,
            stats,
            Arc::new(plugins),
            root.child_token(),
        );
        Ok(Broker {
            ctx: Arc::new(ctx),
            controls,
            root,
        })
    }

    /// The shared state of this broker.
    #[cfg(test)]
    pub(crate) fn context(&self) -> &Arc<BrokerContext> {
        &self.ctx
    }

    /// Runs the broker until `shutdown` is cancelled.
    ///
    /// Start: the admin API and the metrics endpoint are bound (health NOT_SERVING), plugins are
    /// described (mandatory ones before anything else), `broker_pre_start` is sent and awaited,
    /// listeners are bound (health SERVING), `broker_post_start` is sent and awaited.
    /// The admin API and the metrics are served until the very end; health turns NOT_SERVING
    /// as soon as `shutdown` is cancelled.
    /// Shutdown: the listeners stop accepting as soon as `shutdown` is cancelled;
    /// `broker_pre_shutdown` is sent once `broker_post_start` was acknowledged and is awaited
    /// while connected clients are still served; then every connection is closed (no wills for
    /// a broker shutdown), connection tasks are awaited, event queues drained,
    /// `broker_post_shutdown` sent (awaited) and the plugin tasks stopped.
    ///
    /// # Errors
    /// A mandatory plugin that does not come up, or a listener that cannot be bound, fails the
    /// start before any client is accepted; so does an `admin` or `metrics` section whose address
    /// cannot be bound.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BrokerError> {
        let Broker {
            ctx,
            controls,
            root,
        } = self;
        let runtime = Arc::new(Runtime::default());
        let admin = admin::bind(&ctx.config.admin).await?;
        let metrics = metrics::bind(&ctx.config.metrics).await?;
        let services = TaskTracker::new();
        let accepting = ctx.shutdown.child_token();
        // The caller's token starts the shutdown: it cancels the leaf of the tree.
        services.spawn({
            let (accepting, root) = (accepting.clone(), root.clone());
            async move {
                tokio::select! {
                    () = shutdown.cancelled() => accepting.cancel(),
                    () = root.cancelled() => {}
                }
            }
        });
        if let Some(admin) = admin {
            services.spawn(admin.serve(
                ctx.clone(),
                runtime.clone(),
                accepting.clone(),
                root.clone(),
            ));
        }
        if let Some(metrics) = metrics {
            services.spawn(metrics.serve(ctx.clone(), runtime.clone(), root.clone()));
        }
        ctx.plugins.start(&services, &root);
        services.spawn(control::run(ctx.clone(), controls, root.clone()));
        let result = serve(&ctx, &runtime, &accepting).await;

        ctx.plugins.drain(Instant::now() + DRAIN_DEADLINE).await;
        ctx.plugins
            .lifecycle(Lifecycle::PostShutdown, Instant::now() + LIFECYCLE_DEADLINE)
            .await;
        root.cancel();
        services.close();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, services.wait())
            .await
            .is_err()
        {
            warn!("plugin tasks did not stop before the deadline");
        }
        info!("stopped");
        result
    }
}

/// Warns, once per listener, when anonymous clients are allowed (`allow-anonymous: true`, also
/// what a config without an `auth` section inherits) on a listener that is not bound to
/// loopback: anyone who can reach it may connect.
fn warn_open_listeners(config: &crate::config::Config) {
    for listener in open_listeners(config) {
        warn!(
            listener = %listener.name,
            bind = %listener.bind,
            "anonymous clients are allowed on a listener that is not bound to loopback; \
             set `auth: {{allow-anonymous: false}}` or list auth plugins to require credentials"
        );
    }
}

/// The listeners [`warn_open_listeners`] warns about.
fn open_listeners(
    config: &crate::config::Config,
) -> impl Iterator<Item = &crate::config::ListenerConfig> {
    let anonymous = config.auth.allow_anonymous == Some(true);
    config
        .listeners
        .iter()
        .filter(move |l| anonymous && !l.bind.ip().is_loopback())
}

/// Logs the sums of dropped messages every [`DROP_LOG_INTERVAL`] until `shutdown`, and once
/// more then (see [`crate::stats::DropLog`]).
async fn log_drops(ctx: Arc<BrokerContext>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(DROP_LOG_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = every.tick() => ctx.stats.drop_log.flush(),
        }
    }
    ctx.stats.drop_log.flush();
}

/// Start, serve until `shutdown`, and close every client. Plugin tasks keep running.
async fn serve(
    ctx: &Arc<BrokerContext>,
    runtime: &Runtime,
    shutdown: &CancellationToken,
) -> Result<(), BrokerError> {
    let plugins = &ctx.plugins;
    tokio::select! {
        result = plugins.wait_mandatory() => result?,
        _ = shutdown.cancelled() => return Ok(()),
    }
    let all_described =
        futures_util::future::join_all(plugins.plugins().iter().map(|p| p.wait_described()));
    let _ = tokio::time::timeout(DESCRIBE_GRACE, all_described).await;
    let lifecycle = |moment| plugins.lifecycle(moment, Instant::now() + LIFECYCLE_DEADLINE);
    lifecycle(Lifecycle::PreStart).await;

    let listeners = listener::bind_all(&ctx.config.listeners).await?;
    runtime.listeners_bound(&listeners, &ctx.config.listeners);
    listener::log_connection_limits(&ctx.config.listeners);
    warn_open_listeners(&ctx.config);
    let tasks = TaskTracker::new();
    for bound in listeners {
        let handler_ctx = ctx.clone();
        let handler =
            move |transport, peer| connection::serve(handler_ctx.clone(), transport, peer);
        tasks.spawn(bound.serve(handler, shutdown.clone(), tasks.clone()));
    }
    tasks.spawn(sys_topics::run(
        ctx.clone(),
        ctx.config.sys_interval,
        shutdown.clone(),
    ));
    tasks.spawn(expire_sessions(ctx.clone(), shutdown.clone()));
    tasks.spawn(log_drops(ctx.clone(), shutdown.clone()));
    lifecycle(Lifecycle::PostStart).await;

    shutdown.cancelled().await;
    info!("shutting down");
    lifecycle(Lifecycle::PreShutdown).await;
    // Listeners and background tasks watch `shutdown`; connections are kicked. Cancelled
    // first: a connection that attaches after `kick_all` finds the token cancelled and kicks
    // itself (both steps take the registry lock, so one of them sees the other).
    ctx.shutdown.cancel();
    ctx.sessions.kick_all();
    tasks.close();
    ctx.tasks.close();
    let deadline = Instant::now() + SHUTDOWN_DEADLINE;
    if tokio::time::timeout_at(deadline, tasks.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = tasks.len(),
            "shutdown deadline passed with connections still open"
        );
    }
    if tokio::time::timeout_at(deadline, ctx.tasks.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = ctx.tasks.len(),
            "shutdown deadline passed with broker tasks still running"
        );
    }
    Ok(())
}

/// Drops sessions that stayed offline longer than their expiry (`limits.session-expiry` for
/// 3.1.1, the Session Expiry Interval for MQTT 5), checking once a second.
async fn expire_sessions(ctx: Arc<BrokerContext>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {
                for session in ctx.sessions.expire() {
                    ctx.router.remove_session(&session);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_yaml;

    fn open(yaml: &str) -> Vec<String> {
        let config = from_yaml(yaml, "t.yaml").expect("valid");
        open_listeners(&config).map(|l| l.name.clone()).collect()
    }

    #[test]
    fn anonymous_clients_on_a_public_listener_are_warned_about() {
        let listeners = "listeners:\n  - {name: public, kind: tcp, bind: '0.0.0.0:1883'}\n  - {name: local, kind: tcp, bind: '127.0.0.1:1884'}\n  - {name: v6, kind: tcp, bind: '[::]:1885'}\n";
        // No `auth` section inherits allow-anonymous: true.
        assert_eq!(open(listeners), ["public", "v6"]);
        assert_eq!(
            open(&format!("{listeners}auth: {{allow-anonymous: true}}\n")),
            ["public", "v6"]
        );
        assert!(open(&format!("{listeners}auth: {{allow-anonymous: false}}\n")).is_empty());
        // The embedded default listens on 0.0.0.0 with anonymous clients: warned.
        assert_eq!(
            open_listeners(&Config::default())
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
            ["default"]
        );
    }
}

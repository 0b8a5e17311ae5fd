//! Stand-in plugins for the plugin-cost scenarios, on the `midge-plugin` SDK: each does the least
//! its role allows, so the numbers measure the broker's side of the plugin call.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use midge_plugin::{
    AuthRequest, Authenticator, Context, Decision, EventHandler, EventInterest, Server, Status,
    TopicChecker, TopicRequest, pb,
};

/// Which plugin to serve.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Event sink: receives `message_received` events and acknowledges them (the SDK acks).
    EventSink,
    /// Topic check: allows everything, cached for `--cache-ms` (0 = not cached).
    TopicCheck,
    /// Authentication: allows every client, not cached.
    Auth,
}

/// Plugin options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Which plugin.
    #[arg(value_enum)]
    pub(crate) kind: Kind,
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:50061")]
    pub(crate) listen: SocketAddr,
    /// Topic check: how long the broker may cache each verdict, in ms; 0 = no caching.
    #[arg(long, default_value_t = 0)]
    pub(crate) cache_ms: u64,
    /// Write the number of events (event sink) or calls (others) to this file every 100 ms.
    #[arg(long)]
    pub(crate) count_file: Option<PathBuf>,
}

/// Counts what the plugin handled.
#[derive(Debug, Default)]
struct Counter(AtomicU64);

#[derive(Debug)]
struct Sink(Arc<Counter>);

impl EventHandler for Sink {
    fn interest(&self) -> EventInterest {
        EventInterest::kinds([pb::EventKind::MessageReceived])
    }

    async fn on_message_received(&self, _: &Context, _: &pb::MessageEvent) -> Result<(), Status> {
        self.0.0.fetch_add(1, Relaxed);
        Ok(())
    }
}

#[derive(Debug)]
struct AllowTopics(Arc<Counter>, Option<Duration>);

impl TopicChecker for AllowTopics {
    async fn check_topic(&self, _: TopicRequest) -> Result<Decision, Status> {
        self.0.0.fetch_add(1, Relaxed);
        Ok(match self.1 {
            Some(ttl) => Decision::allow().cache_for(ttl),
            None => Decision::allow(),
        })
    }
}

#[derive(Debug)]
struct AllowAll(Arc<Counter>);

impl Authenticator for AllowAll {
    async fn authenticate(&self, _: AuthRequest) -> Result<Decision, Status> {
        self.0.0.fetch_add(1, Relaxed);
        Ok(Decision::allow())
    }
}

/// Serves the plugin until SIGTERM or SIGINT.
pub(crate) async fn serve(args: Args) -> anyhow::Result<()> {
    let counter = Arc::new(Counter::default());
    let server = Server::new(format!("bench-{:?}", args.kind), env!("CARGO_PKG_VERSION"));
    let server = match args.kind {
        Kind::EventSink => server.event_handler(Sink(Arc::clone(&counter))),
        Kind::TopicCheck => {
            let ttl = (args.cache_ms > 0).then(|| Duration::from_millis(args.cache_ms));
            server.topic_checker(AllowTopics(Arc::clone(&counter), ttl))
        }
        Kind::Auth => server.authenticator(AllowAll(Arc::clone(&counter))),
    };
    if let Some(path) = args.count_file.clone() {
        let counter = Arc::clone(&counter);
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let n = counter.0.load(Relaxed);
                if last != Some(n) {
                    // Write then rename, so that readers never see a half-written number.
                    let tmp = path.with_extension("tmp");
                    if std::fs::write(&tmp, format!("{n}\n")).is_ok() {
                        let _ = std::fs::rename(&tmp, &path);
                    }
                    last = Some(n);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    eprintln!("plugin {:?} listening on {}", args.kind, args.listen);
    server
        .shutdown_grace(Duration::from_millis(500))
        .serve(args.listen, shutdown)
        .await?;
    eprintln!(
        "plugin {:?}: handled {}",
        args.kind,
        counter.0.load(Relaxed)
    );
    Ok(())
}

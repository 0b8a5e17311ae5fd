//! The `midge` binary: command line, logging, configuration and signals around
//! [`midge::Broker`]. Exit status: 0 after a clean shutdown, 1 when the broker fails, 2 for
//! a bad config file or bad arguments. `--health-check ADDR` probes a running broker instead:
//! 0 if its admin API reports SERVING, 1 otherwise.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use midge::config::{self, Config};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

/// Exit status for an unusable config file or logging setup, as clap uses for bad arguments.
const EXIT_BAD_CONFIG: u8 = 2;
/// How long `--health-check` waits for the answer, connection included.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// An MQTT broker whose plugins are gRPC services.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// YAML config file; without it, the embedded default is used.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate FILE without starting: print `FILE: ok`, or the error and exit with status 2.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Log format, written to stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log level: trace, debug, info, warn, error or off. RUST_LOG, when set, wins.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: LevelFilter,
    /// Do not start: ask the admin API at ADDR (`host:port` or `http://host:port`, plaintext)
    /// for its grpc.health.v1 status, then exit 0 if it is SERVING, 1 otherwise (for container
    /// health checks; needs no admin token).
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["config", "check_config"])]
    health_check: Option<String>,
    /// Threads running connections and plugin calls; 0 (the default): one per CPU this process
    /// may use (affinity and cgroup quota count). With one, the broker runs on a single-threaded
    /// runtime: no work stealing or cross-thread wake-ups (bench: +30 % fan-in on one CPU).
    #[arg(long, value_name = "N", default_value_t = 0)]
    worker_threads: usize,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Readable text, one event per line.
    Human,
    /// One JSON object per line; the message and fields are under `fields`.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let workers = match cli.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    match runtime(workers) {
        Ok(runtime) => runtime.block_on(async_main(cli, workers)),
        Err(err) => {
            eprintln!("midge: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The tokio runtime for `workers` threads: a current-thread runtime for one, a multi-thread
/// one otherwise. Blocking work goes to tokio's blocking pool in both.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder.enable_all().build()
}

/// Everything but the runtime: health probe, config check, or the broker itself.
async fn async_main(cli: Cli, workers: usize) -> ExitCode {
    if let Some(target) = &cli.health_check {
        return health_check(target).await;
    }
    let config = match cli.check_config.as_ref().or(cli.config.as_ref()) {
        Some(path) => match config::load(path) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        },
        None => Config::default(),
    };
    if let Some(path) = &cli.check_config {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    if let Err(err) = init_tracing(&cli) {
        eprintln!("midge: {err:#}");
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        worker_threads = workers,
        "starting"
    );
    raise_fd_limit();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format_args!("{err:#}"), "broker failed");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as nats-server and most servers do at
/// start: the soft limit is often 1024 (for `select`, which the broker does not use) and every
/// connection holds a descriptor. Logs the limit the process ends up with.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let show = |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current == maximum {
        tracing::info!(
            fd_limit = show(current),
            fd_hard_limit = show(maximum),
            "file descriptor limit"
        );
        return;
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: maximum,
            maximum,
        },
    ) {
        Ok(()) => {
            let now = getrlimit(Resource::Nofile);
            tracing::info!(
                fd_limit = show(now.current),
                fd_hard_limit = show(now.maximum),
                was = show(current),
                "file descriptor limit raised to the hard limit"
            );
        }
        Err(error) => tracing::warn!(
            %error,
            fd_limit = show(current),
            fd_hard_limit = show(maximum),
            "cannot raise the file descriptor limit to the hard limit"
        ),
    }
}

/// Logs to stderr, filtered by RUST_LOG when it is set and by `--log-level` otherwise.
fn init_tracing(cli: &Cli) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
            .map_err(|err| anyhow::anyhow!("invalid RUST_LOG `{directives}`: {err}"))?,
        _ => EnvFilter::default().add_directive(cli.log_level.into()),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        // Control characters escaped, as JSON does: a client id or a plugin's reason cannot
        // forge log lines.
        LogFormat::Human => logs.fmt_fields(midge::logging::EscapedFields).try_init(),
        LogFormat::Json => logs.json().try_init(),
    }
    .map_err(|err| anyhow::anyhow!(err))
}

/// Asks the gRPC server at `target` for its overall `grpc.health.v1` status (service `""`) and
/// says so on stdout (SERVING) or stderr (anything else), as the example plugins' probe does.
async fn health_check(target: &str) -> ExitCode {
    let uri = if target.contains("://") {
        target.to_owned()
    } else {
        format!("http://{target}")
    };
    let probe = async {
        let channel = tonic::transport::Endpoint::from_shared(uri.clone())?
            .connect()
            .await?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await?;
        anyhow::Ok(reply.into_inner().status)
    };
    let outcome = match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, probe).await {
        Ok(Ok(status)) if status == ServingStatus::Serving as i32 => {
            println!("{uri}: SERVING");
            return ExitCode::SUCCESS;
        }
        Ok(Ok(status)) => ServingStatus::try_from(status)
            .map_or("UNKNOWN", |s| s.as_str_name())
            .to_owned(),
        Ok(Err(err)) => format!("{err:#}"),
        Err(_) => format!("no answer within {HEALTH_CHECK_TIMEOUT:?}"),
    };
    eprintln!("{uri}: {outcome}");
    ExitCode::FAILURE
}

/// Runs the broker until SIGTERM or SIGINT cancels the root token and it has shut down.
async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let signals = cancel_on_signal(shutdown.clone()).context("cannot install signal handlers")?;
    let broker = midge::Broker::new(config).context("cannot start the broker")?;
    let serve = async {
        let result = broker.run(shutdown.clone()).await;
        shutdown.cancel(); // The broker stopped on its own: stop waiting for signals.
        result
    };
    let (result, ()) = tokio::join!(serve, signals);
    result.context("broker stopped with an error")
}

/// Installs the SIGTERM and SIGINT handlers now (not on first poll, so no signal is missed)
/// and returns a future that cancels `shutdown` on the first of them. Unix only.
fn cancel_on_signal(shutdown: CancellationToken) -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    Ok(async move {
        let signal = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            () = shutdown.cancelled() => return,
        };
        tracing::info!(signal, "signal received");
        shutdown.cancel();
    })
}

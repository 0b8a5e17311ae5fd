//! The `midge` binary: command line, logging, configuration and signals around
//! [`midge::Broker`]. Exit status: 0 after a clean shutdown, 1 when the broker fails, 2 for
//! a bad config file or bad arguments.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use midge::config::{self, Config};
use tokio_util::sync::CancellationToken;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

/// Exit status for an unusable config file or logging setup, as clap uses for bad arguments.
const EXIT_BAD_CONFIG: u8 = 2;

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
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Readable text, one event per line.
    Human,
    /// One JSON object per line; the message and fields are under `fields`.
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
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
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting");
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format_args!("{err:#}"), "broker failed");
            ExitCode::FAILURE
        }
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
        LogFormat::Human => logs.try_init(),
        LogFormat::Json => logs.json().try_init(),
    }
    .map_err(|err| anyhow::anyhow!(err))
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

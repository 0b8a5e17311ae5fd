//! `event-logger`: aMQTT's `EventLoggerPlugin` as a Midge plugin service.
//!
//! Subscribes to every event kind except the packet kinds and writes each event as one line
//! on stdout (`key=value` text, or JSON with `--json`), and appends it as JSON to `--out FILE`.
//! See README.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use midge_examples::{EventSink, ServeArgs, init_tracing, serve};
use midge_plugin::{Context, EventHandler, EventInterest, Server, Status, pb};
use tracing::error;

/// The port `--listen` defaults to.
const DEFAULT_PORT: u16 = 50064;

#[derive(Debug, Parser)]
#[command(name = "event-logger", version, about)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    /// Write events on stdout as JSON objects, one per line (default: `key=value` text).
    #[arg(long)]
    json: bool,
    /// Also append every event, as a JSON line, to FILE (created if missing).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Ask for message events without payloads (only their size).
    #[arg(long)]
    no_payload: bool,
}

/// The event handler.
#[derive(Debug)]
struct EventLogger {
    sink: EventSink,
    payload: bool,
}

impl EventHandler for EventLogger {
    fn interest(&self) -> EventInterest {
        let all = EventInterest::default();
        if self.payload {
            all
        } else {
            all.without_payload()
        }
    }

    async fn on_event(&self, ctx: &Context, event: &pb::Event) -> Result<(), Status> {
        self.sink
            .write(ctx.stream_id(), event)
            .map_err(|e| Status::internal(format!("writing the event: {e}")))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = cli.serve.health_check_mode().await {
        return code;
    }
    init_tracing(cli.serve.log_format);
    let sink = match EventSink::new(cli.json, cli.out.as_deref()) {
        Ok(sink) => sink,
        Err(e) => {
            error!(out = ?cli.out, "cannot open the output file: {e}");
            return ExitCode::FAILURE;
        }
    };
    let logger = EventLogger {
        sink,
        payload: !cli.no_payload,
    };
    let server = Server::new("event-logger", env!("CARGO_PKG_VERSION")).event_handler(logger);
    serve(server, cli.serve.listen_or(DEFAULT_PORT)).await
}

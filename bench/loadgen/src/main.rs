//! `midge-loadgen`: the load generator of `bench/run.sh`.
//!
//! Each scenario subcommand connects to one MQTT 3.1.1 broker, runs once and prints one JSON
//! result line (also appended to `--out`); a lost or duplicated message, a refused connection or
//! a stall makes it print `"ok": false` and exit with status 1. `plugin` serves the stand-in
//! plugins of the plugin-cost scenarios, and `report` turns result lines into medians, ratios
//! and a table. See `bench/README.md`.
//!
//! The client is our own, on raw tokio TCP with the broker's codec, and the scenarios run on a
//! single-threaded runtime: `run.sh` pins the load generator to one core and the broker to the
//! other.

mod connections;
mod latency;
mod mqtt;
mod payload;
mod plugins;
mod record;
mod report;
mod scale;
mod throughput;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load generator for the Midge bench (MQTT 3.1.1, 64-byte payloads).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Many publishers → one subscriber, closed loop: delivered msg/s.
    FanIn(throughput::Args),
    /// One publisher → many subscribers, closed loop: deliveries/s.
    FanOut(throughput::Args),
    /// Fixed-rate end-to-end latency: p50 / p99 / max.
    Latency(latency::Args),
    /// CONNECT / CONNACK exchanges, many in parallel: conn/s and CONNACK latency.
    ConnectStorm(connections::StormArgs),
    /// Broker RSS growth for idle connections.
    Memory(connections::MemoryArgs),
    /// As many idle connections as allowed, held with keep-alives, then one message fanned out
    /// to all: RSS per connection, CONNACK p99, fan-out time, keep-alive misses.
    Connections(scale::Args),
    /// Wait until a broker accepts an MQTT client (exit 1 on timeout).
    Wait(connections::WaitArgs),
    /// Serve a stand-in plugin (event sink, topic check, auth) until SIGTERM.
    Plugin(plugins::Args),
    /// Medians and ratios of a run's result lines, as a table.
    Report(report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report(args) => report::run(&args),
        Command::Plugin(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(plugins::serve(args))),
        scenario => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(async move {
                    match scenario {
                        Command::FanIn(args) => {
                            throughput::run(throughput::Shape::FanIn, args).await
                        }
                        Command::FanOut(args) => {
                            throughput::run(throughput::Shape::FanOut, args).await
                        }
                        Command::Latency(args) => latency::run(args).await,
                        Command::ConnectStorm(args) => connections::storm(args).await,
                        Command::Memory(args) => connections::memory(args).await,
                        Command::Connections(args) => scale::run(args).await,
                        Command::Wait(args) => connections::wait(args).await,
                        Command::Plugin(_) | Command::Report(_) => unreachable!(),
                    }
                })
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("midge-loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! Flags, logging, signals, the health probe and small config helpers shared by every example.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use midge_plugin::Server;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tracing::{error, info};

/// How long `--health-check` waits for the answer, connection included.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The flags every example plugin has.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to serve gRPC on (port 0 picks a free port; the bound address is logged as
    /// `plugin listening addr=...`). Default: 0.0.0.0 and the plugin's own port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Do not serve: ask the plugin at ADDR (`host:port` or `http://host:port`) for its
    /// grpc.health.v1 status, then exit 0 if it is SERVING, 1 otherwise (for container health
    /// checks).
    #[arg(long, value_name = "ADDR")]
    pub health_check: Option<String>,
    /// Diagnostics on stderr as `text` or one JSON object per line (`json`). Filter with
    /// `RUST_LOG` (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How diagnostics are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (`fields.message`, `fields.addr`, ...).
    Json,
}

impl ServeArgs {
    /// `--listen`, or `0.0.0.0:default_port`.
    pub fn listen_or(&self, default_port: u16) -> SocketAddr {
        self.listen
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, default_port)))
    }

    /// With `--health-check ADDR`: probes ADDR and returns the exit code to end with.
    pub async fn health_check_mode(&self) -> Option<ExitCode> {
        let target = self.health_check.as_deref()?;
        Some(if health_check(target).await {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// Logs to stderr in `format`, at `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received"),
                    _ = int.recv() => info!("SIGINT received"),
                }
                return;
            }
            (Err(e), _) | (_, Err(e)) => error!(error = %e, "cannot install signal handlers"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Serves `server` on `addr` until SIGTERM or SIGINT, then shuts down gracefully. Returns the
/// process exit code: 0 after a clean shutdown, 1 when the server failed (e.g. the address is
/// taken).
pub async fn serve(server: Server, addr: SocketAddr) -> ExitCode {
    match server.serve(addr, shutdown_signal()).await {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, %addr, "cannot serve");
            ExitCode::FAILURE
        }
    }
}

/// Asks the gRPC server at `target` (`host:port` or `http://host:port`) for its overall
/// `grpc.health.v1` status (service `""`). True when it answers SERVING within 3 seconds.
pub async fn health_check(target: &str) -> bool {
    let uri = if target.contains("://") {
        target.to_owned()
    } else {
        format!("http://{target}")
    };
    let probe = async {
        let channel = tonic::transport::Endpoint::from_shared(uri.clone())
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| e.message().to_owned())?;
        Ok::<_, String>(reply.into_inner().status)
    };
    match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, probe).await {
        Ok(Ok(status)) if status == ServingStatus::Serving as i32 => {
            println!("{uri}: SERVING");
            true
        }
        Ok(Ok(status)) => {
            let name = ServingStatus::try_from(status).map_or("UNKNOWN", |s| s.as_str_name());
            eprintln!("{uri}: {name}");
            false
        }
        Ok(Err(e)) => {
            eprintln!("{uri}: {e}");
            false
        }
        Err(_) => {
            eprintln!("{uri}: no answer within {HEALTH_CHECK_TIMEOUT:?}");
            false
        }
    }
}

/// Parses a duration with a unit, as the broker's config does: `250ms`, `60s`, `5m`, `1h`, or
/// sums of them (`1m30s`). `0` alone is accepted; other bare numbers are refused.
///
/// # Errors
///
/// A message saying what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err("empty duration".to_owned());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: expected e.g. 250ms, 60s, 1m30s"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "" => return Err(format!("duration {text:?} needs a unit: ms, s, m or h")),
            unit => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("60").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn listen_defaults_to_all_interfaces() {
        let args = ServeArgs {
            listen: None,
            health_check: None,
            log_format: LogFormat::Text,
        };
        assert_eq!(args.listen_or(50061).to_string(), "0.0.0.0:50061");
    }
}

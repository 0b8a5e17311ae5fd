//! # midge-tests
//!
//! End-to-end tests for Midge. Every test starts the real `midge` binary on `127.0.0.1:0`, reads
//! the bound addresses from its JSON `listening` log lines, and talks to it over real sockets with
//! independent clients: the `rumqttc` crate, `mosquitto_pub`/`mosquitto_sub`, Python `paho-mqtt`,
//! and hand-written bytes for malformed input. Nothing is mocked.
//!
//! `scripts/test.sh` installs the external tools (`scripts/test-deps.sh`) and runs
//! `cargo test --workspace`. A test that needs a missing tool fails when `CI=true` and is skipped
//! loudly otherwise (see [`require_tool`]).
//!
//! # Layout
//!
//! - [`broker`]: [`TestBroker`], the `midge` process under test, and its captured log.
//! - [`raw`]: [`RawClient`], MQTT 3.1.1 over a byte stream (TCP, TLS, WebSocket) with
//!   hand-written packets, for exact protocol assertions and malformed input.
//! - [`client`]: [`MqttClient`], a `rumqttc` v3.1.1 client driven by a background task.
//! - [`tls`]: [`TestCerts`], a throwaway CA with server and client certificates.
//! - [`grpcurl`]: the real `grpcurl` binary, an HTTP scrape and a Prometheus text parser.
//! - [`examples`]: for the example plugins' tests: their directory, broker configs, `rumqttc` helpers.
//! - [`tools`]: [`require_tool`] and [`python`], locating the external test clients.
//! - [`tempdir`]: [`TempDir`], a directory removed on drop.

use std::future::Future;
use std::time::Duration;

pub mod admin;
pub mod broker;
pub mod client;
pub mod examples;
pub mod grpcurl;
pub mod plugin;
pub mod raw;
pub mod tempdir;
pub mod tls;
pub mod tools;

pub use broker::TestBroker;
pub use client::MqttClient;
pub use raw::RawClient;
pub use tempdir::TempDir;
pub use tls::TestCerts;
pub use tools::{python, require_tool};

/// How long one step of a test (a connect, an ack, a delivery, a close) may take before the test
/// fails. Generous, so a loaded two-core CI machine passes; bounded, so a broken broker fails the
/// test instead of hanging it.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `fut` for at most [`TIMEOUT`].
///
/// # Panics
///
/// If `fut` does not complete in time; the message names `what` was awaited.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for up to `limit`, and returns what it
/// found.
///
/// # Panics
///
/// When it never does, naming `what`.
pub async fn eventually<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`eventually`] for a check that has to await (e.g. an admin call), up to [`TIMEOUT`].
///
/// # Panics
///
/// When it never returns true, naming `what`.
pub async fn eventually_async<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Real plugins for end-to-end tests of the broker's plugin side, and configs that use them.
//!
//! - [`TestPlugin`]: a plugin built with the `midge-plugin` SDK ([`midge_plugin::Server`]),
//!   serving `Authenticator`, `TopicFilter` and `EventSink` on `127.0.0.1:0`. The test scripts
//!   its answers ([`TestPlugin::on_auth`], [`TestPlugin::on_topic`]: a verdict, a cache
//!   lifetime, a delay, or an error status; [`TestPlugin::hold_answers`] keeps them back until
//!   the test releases them), reads back every call it got and every event it
//!   handled, holds back its acks, sends control messages through the SDK's [`Context`], and
//!   stops, kills or restarts it on the same port.
//! - [`RawEventSink`]: an `EventSink` written directly against the generated tonic traits,
//!   without the SDK, so that a test sees the stream exactly as the broker sends it
//!   (duplicates included) and decides when to ack.
//! - [`PluginProcess`]: the `test-plugin` binary of this crate as a child process, for what
//!   needs a real process (SIGSTOP).
//! - [`plugin_yaml`], [`broker_yaml`]: broker configs pointing at them.
//!
//! Each in-process server runs on its own thread with its own Tokio runtime. Killing it drops
//! that runtime, which closes its listener and every connection at once (what the broker sees
//! when a plugin process dies), independently of the test's runtime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use midge_plugin::{
    Action, AuthRequest, Authenticator, Context, Decision, EventHandler, EventInterest, Publish,
    Server, Status, TopicChecker, TopicRequest, Verdict, pb,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout_at};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Streaming};

use crate::{TIMEOUT, within};

mod process;
mod raw_sink;
mod script;
mod server;
mod test_plugin;

pub use process::PluginProcess;
pub use raw_sink::{Delivery, RawEventSink};
use script::{AuthRule, TopicRule};
pub use script::{Received, Reply, message_event};
use server::{Hosted, Serve, Stop};
pub use test_plugin::TestPlugin;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Configs

/// One entry of a broker's `plugins:` section: `alias` at `endpoint`, plus `extra` keys of that
/// plugin, one YAML line each, written relative to the plugin (for example
/// `"timeout: 200ms\nfallback: {on-error: allow}"`).
pub fn plugin_yaml(alias: &str, endpoint: &str, extra: &str) -> String {
    let mut yaml = format!("  {alias}:\n    endpoint: {endpoint}\n");
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str("    ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

/// A broker config: one TCP listener `default` on an ephemeral loopback port, a `plugins:`
/// section with `plugins` (from [`plugin_yaml`]), then `sections` (top-level YAML such as
/// `auth:` and `topic-check:`). Without an `auth:` section the broker allows anonymous clients.
pub fn broker_yaml(plugins: &[String], sections: &str) -> String {
    let mut yaml =
        String::from("listeners:\n  - name: default\n    kind: tcp\n    bind: 127.0.0.1:0\n");
    if !plugins.is_empty() {
        yaml.push_str("plugins:\n");
        for plugin in plugins {
            yaml.push_str(plugin);
        }
    }
    yaml.push_str(sections);
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    yaml
}

/// A loopback port that was free a moment ago (bound, then released), for configs that need
/// the address before the broker binds it.
///
/// # Panics
///
/// If no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// The broker's Prometheus text (`GET /metrics`), from the address it logged as
/// `metrics listening` (configure `metrics: {bind: 127.0.0.1:0}`).
///
/// # Panics
///
/// If the broker logged no such address or the request fails.
pub async fn metrics_text(broker: &crate::TestBroker) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let line = broker
        .wait_for_log("metrics listening", |l| l.contains("metrics listening"))
        .await;
    let value: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"));
    let addr: SocketAddr = value["fields"]["addr"]
        .as_str()
        .and_then(|a| a.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in {line}"));
    let mut stream = within(
        "connecting to /metrics",
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut response = Vec::new();
    within("GET /metrics", async {
        stream.write_all(request.as_bytes()).await?;
        stream.read_to_end(&mut response).await
    })
    .await
    .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    let response = String::from_utf8_lossy(&response).into_owned();
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.contains(" 200 ") => body.to_owned(),
        _ => panic!("GET /metrics answered {response}"),
    }
}

/// The value of the sample `name{plugin="alias"}` in Prometheus `text`, if present.
pub fn plugin_metric(text: &str, name: &str, alias: &str) -> Option<u64> {
    let label = format!("plugin=\"{alias}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

//! For the example plugins' end-to-end tests (`examples/tests/`): where the examples are, the
//! broker config that wires plugins to a [`TestBroker`], and `rumqttc` helpers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub use crate::plugin::PluginProcess;
pub use crate::{MqttClient, TempDir, TestBroker, eventually, within};
use rumqttc::{ConnectReturnCode, ConnectionError, MqttOptions};

/// The `examples/` directory.
pub fn examples_dir() -> PathBuf {
    crate::tools::repo_root().join("examples")
}

/// One plugin in a broker config: alias, endpoint and the YAML of its `config:` section (may be
/// empty).
#[derive(Debug)]
pub struct PluginEntry<'a> {
    /// The alias in the broker's `plugins:` section.
    pub alias: &'a str,
    /// Its `endpoint`.
    pub endpoint: String,
    /// The YAML of its `config:` section (may be empty).
    pub config: &'a str,
}

/// A broker config: one loopback TCP listener, `auth` with `allow_anonymous` (None: no vote)
/// and `auth_plugins`, topic checks by `topic_plugins` (enabled when there are any), and
/// `plugins`, each mandatory with a generous timeout (debug builds hash slowly).
pub fn broker_config(
    allow_anonymous: Option<bool>,
    auth_plugins: &[&str],
    topic_plugins: &[&str],
    plugins: &[PluginEntry<'_>],
) -> String {
    let mut yaml =
        String::from("listeners:\n  - name: default\n    kind: tcp\n    bind: 127.0.0.1:0\n");
    yaml.push_str("sys-interval: 0s\nauth:\n");
    if let Some(allow) = allow_anonymous {
        yaml.push_str(&format!("  allow-anonymous: {allow}\n"));
    }
    yaml.push_str(&format!("  plugins: [{}]\n", auth_plugins.join(", ")));
    yaml.push_str(&format!(
        "topic-check:\n  enable: {}\n  plugins: [{}]\n",
        !topic_plugins.is_empty(),
        topic_plugins.join(", ")
    ));
    yaml.push_str("plugins:\n");
    for p in plugins {
        yaml.push_str(&format!(
            "  {}:\n    endpoint: {}\n    timeout: 10s\n    mandatory: true\n",
            p.alias, p.endpoint
        ));
        if !p.config.trim().is_empty() {
            yaml.push_str("    config:\n");
            for line in p.config.lines() {
                yaml.push_str(&format!("      {line}\n"));
            }
        }
    }
    yaml
}

/// Options for `client_id` on `broker` with user name and password (`None`: anonymous).
pub fn opts(broker: &TestBroker, client_id: &str, user: Option<(&str, &str)>) -> MqttOptions {
    let mut opts = crate::client::options(broker.mqtt_addr(), client_id);
    if let Some((user, password)) = user {
        opts.set_credentials(user, password);
    }
    opts
}

/// Connects and returns the CONNACK code (`Success`, or the refusal's code).
pub async fn connack(opts: MqttOptions) -> ConnectReturnCode {
    match MqttClient::try_connect_with(opts).await {
        Ok((_, ack)) => ack.code,
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(e) => panic!("connection failed without a CONNACK: {e}"),
    }
}

/// Connects a client that must be accepted.
pub async fn connect(
    broker: &TestBroker,
    client_id: &str,
    user: Option<(&str, &str)>,
) -> MqttClient {
    MqttClient::connect_with(opts(broker, client_id, user)).await
}

/// The JSON lines of `path` so far (a missing file has none).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Runs `setup.sh` once per test process. `false`: python3 is missing (and not under CI).
pub fn python_setup() -> bool {
    static DONE: Mutex<Option<bool>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    *done.get_or_insert_with(|| {
        if crate::require_tool("python3").is_none() {
            return false;
        }
        let script = examples_dir().join("python-event-logger/setup.sh");
        let out = Command::new(&script).output().expect("running setup.sh");
        assert!(
            out.status.success(),
            "{} failed:\n{}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        true
    })
}

/// Starts the Python plugin through `run.sh` with `args` plus `--listen 127.0.0.1:0
/// --log-format json`.
pub fn start_python(args: &[&str]) -> PluginProcess {
    let mut cmd = Command::new(examples_dir().join("python-event-logger/run.sh"));
    cmd.args(args)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
    PluginProcess::sdk_command(cmd)
}

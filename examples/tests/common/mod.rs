//! Shared by the end-to-end tests: [`PluginProcess`], a plugin binary under test, and the
//! broker config that wires plugins to a [`TestBroker`].

#![allow(dead_code, unused_imports, unreachable_pub)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

pub use midge_tests::{MqttClient, TempDir, TestBroker, within};
use rumqttc::{ConnectReturnCode, ConnectionError, MqttOptions};

/// How long a plugin may take from spawn to `plugin listening` (the first start of a debug
/// binary on a loaded two-core machine is slow).
const STARTUP: Duration = Duration::from_secs(30);

/// The `examples/` directory.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running plugin process, killed on drop. Its stderr is collected; its stdout too, when
/// piped.
#[derive(Debug)]
pub struct PluginProcess {
    child: Child,
    /// Where it serves gRPC.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl PluginProcess {
    /// Starts the example binary `bin` (a `CARGO_BIN_EXE_*` path) with `args` plus
    /// `--listen 127.0.0.1:0 --log-format json`.
    pub fn start(bin: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
        Self::spawn(cmd)
    }

    /// Spawns `cmd` (stdout and stderr piped) and waits for its `plugin listening` log line,
    /// a JSON object with `fields.message` and `fields.addr`.
    pub fn spawn(mut cmd: Command) -> Self {
        let name = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for (pipe, prefix) in [
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                "",
            ),
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                "[stdout] ",
            ),
        ] {
            let Some(pipe) = pipe else { continue };
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{prefix}{line}"));
                }
            });
        }
        let deadline = Instant::now() + STARTUP;
        loop {
            let found = lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find_map(|l| parse_listening(l));
            if let Some(addr) = found {
                return PluginProcess {
                    child,
                    addr,
                    lines,
                    name,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{name} exited ({status}) before listening:\n{}",
                    text(&lines)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} not listening within {STARTUP:?}:\n{}",
                text(&lines)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://ADDR`, for the broker's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        text(&self.lines)
    }

    /// Sends `signal` (e.g. `TERM`, `HUP`) with the shell's `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", self.child.id())])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {limit:?}:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("MIDGE_TEST_LOG").is_some() {
            eprintln!("---- {} ----\n{}\n---- end ----", self.name, self.output());
        }
    }
}

fn text(lines: &Mutex<Vec<String>>) -> String {
    lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
}

/// The address in a `{"fields": {"message": "plugin listening", "addr": ...}}` line.
fn parse_listening(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "plugin listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

/// One plugin in a broker config: alias, endpoint and the YAML of its `config:` section (may be
/// empty).
#[derive(Debug)]
pub struct PluginEntry<'a> {
    pub alias: &'a str,
    pub endpoint: String,
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
    let mut opts = midge_tests::client::options(broker.mqtt_addr(), client_id);
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

pub use midge_tests::eventually;

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
        if midge_tests::require_tool("python3").is_none() {
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
    PluginProcess::spawn(cmd)
}

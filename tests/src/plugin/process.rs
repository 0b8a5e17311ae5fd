//! [`PluginProcess`]: a plugin binary as a child process, killed on drop: this crate's
//! `test-plugin` (for what needs a real process, such as SIGSTOP), or any plugin built with the
//! SDK (the examples).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{lock, plugin_yaml};

/// How long a plugin may take from spawn to listening (the first start of a debug binary on a
/// loaded two-core machine is slow).
const STARTUP: Duration = Duration::from_secs(30);

/// A running plugin process, killed on drop. Its stdout and stderr are collected line by line
/// (stdout lines prefixed `[stdout] ` when both are read); its output is printed when a test
/// panics, or always with `MIDGE_TEST_LOG` set.
#[derive(Debug)]
pub struct PluginProcess {
    child: Child,
    /// Where it serves gRPC.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl PluginProcess {
    /// This crate's `test-plugin` binary (`env!("CARGO_BIN_EXE_test-plugin")` in a test) with
    /// `args`, once it printed `listening ADDR`.
    ///
    /// # Panics
    ///
    /// If it cannot be started or does not listen within 30 s.
    pub async fn test_plugin(bin: &Path, args: &[&str]) -> PluginProcess {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Self::spawn_until(cmd, |line| line.strip_prefix("listening ")?.parse().ok())
    }

    /// A plugin built with the SDK (its CLI: `--listen`, `--log-format`): `bin` with `args`
    /// plus `--listen 127.0.0.1:0 --log-format json`, once it logged `plugin listening`.
    ///
    /// # Panics
    ///
    /// If it cannot be started or does not listen within 30 s.
    pub fn start(bin: impl AsRef<Path>, args: &[&str]) -> PluginProcess {
        let mut cmd = Command::new(bin.as_ref());
        cmd.args(args)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
        Self::sdk_command(cmd)
    }

    /// `cmd`, an SDK-built plugin logging JSON, once it logged `plugin listening` with its
    /// address.
    ///
    /// # Panics
    ///
    /// If it cannot be started or does not listen within 30 s.
    pub fn sdk_command(cmd: Command) -> PluginProcess {
        Self::spawn_until(cmd, sdk_listening)
    }

    /// Spawns `cmd` (stdin closed, stdout and stderr read) and waits until `ready` finds the
    /// address in one of its lines.
    ///
    /// # Panics
    ///
    /// If it cannot be started, exits first, or does not become ready within 30 s.
    pub fn spawn_until(
        mut cmd: Command,
        ready: impl Fn(&str) -> Option<SocketAddr>,
    ) -> PluginProcess {
        let name = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let pipes: [(Option<Box<dyn Read + Send>>, &str); 2] = [
            (child.stderr.take().map(|p| Box::new(p) as _), ""),
            (child.stdout.take().map(|p| Box::new(p) as _), "[stdout] "),
        ];
        for (pipe, prefix) in pipes {
            let Some(pipe) = pipe else { continue };
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lock(&lines).push(format!("{prefix}{line}"));
                }
            });
        }
        let deadline = Instant::now() + STARTUP;
        loop {
            let found = lock(&lines)
                .iter()
                .find_map(|line| ready(line.strip_prefix("[stdout] ").unwrap_or(line)));
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

    /// A `plugins:` entry for it under `alias`.
    pub fn yaml(&self, alias: &str, extra: &str) -> String {
        plugin_yaml(alias, &self.endpoint(), extra)
    }

    /// The stdout lines it printed so far, without their prefix (`test-plugin` prints one per
    /// call: `auth CLIENT_ID`, `topic ACTION TOPIC`).
    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines)
            .iter()
            .filter_map(|l| l.strip_prefix("[stdout] "))
            .map(str::to_string)
            .collect()
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        text(&self.lines)
    }

    /// Whether it prints `line` on stdout within `timeout` (its output is read by a thread, so
    /// a line can arrive after the answer it belongs to).
    pub async fn wait_for_line(&self, line: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.lines().iter().any(|l| l == line) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `signal` (a name such as `STOP`, `CONT`, `TERM` or `HUP`) with `kill`.
    ///
    /// # Panics
    ///
    /// If `kill` fails.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("sh")
            .args([
                "-c",
                "kill -s \"$1\" \"$2\"",
                "sh",
                signal,
                &self.child.id().to_string(),
            ])
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(status.success(), "kill -s {signal} failed: {status}");
    }

    /// Waits up to `limit` for the process to exit.
    ///
    /// # Panics
    ///
    /// If it is still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
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
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("MIDGE_TEST_LOG").is_some() {
            eprintln!("---- {} ----\n{}\n---- end ----", self.name, self.output());
        }
    }
}

fn text(lines: &Mutex<Vec<String>>) -> String {
    lock(lines).join("\n")
}

/// The address in an SDK plugin's `{"fields": {"message": "plugin listening", "addr": ...}}`
/// log line.
fn sdk_listening(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "plugin listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

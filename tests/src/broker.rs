//! [`TestBroker`]: the real `midge` binary under test, started on `127.0.0.1:0` with a config
//! written to a temp file, its JSON log captured line by line.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout_at};

use crate::TIMEOUT;
use crate::tempdir::TempDir;
use crate::tools::repo_root;

/// How long the broker may take from spawn to its last `listening` line. Longer than
/// [`TIMEOUT`] because the first start of a test binary may share the two CI cores with cargo.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The config of [`TestBroker::start_default`]: one TCP listener named `default` on an
/// ephemeral loopback port, anonymous clients allowed, `$SYS` every second.
pub const DEFAULT_CONFIG: &str = "\
listeners:
  - name: default
    kind: tcp
    bind: 127.0.0.1:0
sys-interval: 1s
auth:
  allow-anonymous: true
";

/// Builds a config with the `default` TCP listener of [`DEFAULT_CONFIG`], plus `listener_lines`
/// (extra keys of that listener, e.g. `"connect-timeout: 1s"`, one per line) and `sections`
/// (extra top-level YAML, e.g. a `limits:` block). Anonymous clients are allowed.
pub fn tcp_config(listener_lines: &str, sections: &str) -> String {
    let mut yaml =
        String::from("listeners:\n  - name: default\n    kind: tcp\n    bind: 127.0.0.1:0\n");
    for line in listener_lines.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str("    ");
        yaml.push_str(line.trim());
        yaml.push('\n');
    }
    yaml.push_str("auth:\n  allow-anonymous: true\n");
    yaml.push_str(sections);
    if !sections.ends_with('\n') {
        yaml.push('\n');
    }
    yaml
}

/// Path of the `midge` binary, built once per test process with the same profile as the tests.
///
/// `CARGO_BIN_EXE_midge` exists only for the `midge` package's own tests, so this crate builds the
/// binary through cargo (escargot). `MIDGE_BIN=/path/to/midge` skips the build.
///
/// # Panics
///
/// If the build fails; the message carries cargo's error.
pub fn midge_bin() -> &'static Path {
    // The outcome, failure included, is kept: after a failed build every other test of this
    // process fails at once with the same message instead of running cargo again.
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("MIDGE_BIN") {
            return Ok(PathBuf::from(bin));
        }
        // Not `current_target()`: an explicit `--target` moves the build to target/<triple>/ and
        // rebuilds every dependency a second time.
        escargot::CargoBuild::new()
            .manifest_path(repo_root().join("Cargo.toml"))
            .package("midge")
            .bin("midge")
            .current_release()
            .run()
            .map(|run| run.path().to_path_buf())
            .map_err(|e| format!("building the midge binary failed: {e}"))
    });
    match bin {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

/// The broker process's output, shared with the threads that drain its pipes.
#[derive(Debug)]
struct Log {
    lines: Mutex<Vec<String>>,
    /// Bumped after every appended line; dropped (closing the channel) at stderr EOF.
    changed: Mutex<Option<watch::Sender<u64>>>,
}

impl Log {
    fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: String) {
        self.lines().push(line);
        if let Some(tx) = &*self.changed.lock().unwrap_or_else(|e| e.into_inner()) {
            tx.send_modify(|n| *n += 1);
        }
    }

    fn close(&self) {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    fn text(&self) -> String {
        self.lines().join("\n")
    }
}

/// A running `midge` process, killed on drop.
///
/// Its stderr (JSON log lines) and stdout are drained into a buffer by background threads, so
/// the pipes never fill up and tests can assert on the log. When a test panics while a
/// `TestBroker` is alive, the broker's log is printed with the failure; with `MIDGE_TEST_LOG`
/// set, it is printed always (see it with `cargo test -- --nocapture`).
#[derive(Debug)]
pub struct TestBroker {
    child: Child,
    log: Arc<Log>,
    log_rx: watch::Receiver<u64>,
    listeners: Vec<(String, SocketAddr)>,
    config_path: Option<PathBuf>,
    exit: Option<ExitStatus>,
    _dir: Option<TempDir>,
}

impl TestBroker {
    /// Starts `midge --config FILE --log-format json` with `yaml` written to a temp file, and
    /// waits until every listener in the config has logged `listening`.
    ///
    /// A config without an `admin` or `metrics` section gets one that binds `127.0.0.1:0`
    /// ([`with_ephemeral_admin_and_metrics`]): test brokers run in parallel and must not
    /// compete for, or take from a developer's broker, the fixed default ports.
    ///
    /// # Panics
    ///
    /// If the config has no `listeners` list, or the broker exits or is not listening within
    /// [`STARTUP_TIMEOUT`]; the message includes its log.
    pub async fn start(yaml: &str) -> TestBroker {
        Self::start_with_args(yaml, &[]).await
    }

    /// [`TestBroker::start`] with more command line arguments (e.g. `--worker-threads 1`).
    ///
    /// # Panics
    ///
    /// As [`TestBroker::start`].
    pub async fn start_with_args(yaml: &str, extra: &[&str]) -> TestBroker {
        let expected = count_listeners(yaml);
        let yaml = with_ephemeral_admin_and_metrics(yaml);
        let dir = TempDir::new();
        let path = dir.write("midge.yaml", &yaml);
        let mut args = vec![OsString::from("--config"), path.clone().into_os_string()];
        args.extend(extra.iter().map(OsString::from));
        let mut broker = Self::spawn(args, expected).await;
        broker.config_path = Some(path);
        broker._dir = Some(dir);
        broker
    }

    /// Starts the broker with [`DEFAULT_CONFIG`].
    pub async fn start_default() -> TestBroker {
        Self::start(DEFAULT_CONFIG).await
    }

    /// Starts `midge --log-format json` plus `args` (e.g. none, for the embedded default
    /// config) and waits for `listeners` `listening` lines.
    ///
    /// # Panics
    ///
    /// As [`TestBroker::start`].
    pub async fn spawn(args: Vec<OsString>, listeners: usize) -> TestBroker {
        let mut child = Command::new(midge_bin())
            .args(&args)
            .args(["--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", midge_bin().display()));
        let (tx, log_rx) = watch::channel(0);
        let log = Arc::new(Log {
            lines: Mutex::new(Vec::new()),
            changed: Mutex::new(Some(tx)),
        });
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, Arc::clone(&log), "", true);
        }
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, Arc::clone(&log), "[stdout] ", false);
        }
        let mut broker = TestBroker {
            child,
            log,
            log_rx,
            listeners: Vec::new(),
            config_path: None,
            exit: None,
            _dir: None,
        };
        broker.wait_listening(listeners).await;
        broker
    }

    async fn wait_listening(&mut self, expected: usize) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut rx = self.log_rx.clone();
        loop {
            rx.borrow_and_update();
            self.listeners = self
                .log
                .lines()
                .iter()
                .filter_map(|l| parse_listening(l))
                .collect();
            if self.listeners.len() >= expected {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
                panic!(
                    "midge exited ({status}) before listening\n{}",
                    self.log_dump()
                );
            }
            match timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // stderr closed: the process is on its way out; the next turn reaps it.
                Ok(Err(_)) => sleep(Duration::from_millis(20)).await,
                Err(_) => panic!(
                    "midge logged {} of {expected} `listening` lines within {STARTUP_TIMEOUT:?}\n{}",
                    self.listeners.len(),
                    self.log_dump()
                ),
            }
            if Instant::now() >= deadline {
                panic!(
                    "midge did not start listening within {STARTUP_TIMEOUT:?}\n{}",
                    self.log_dump()
                );
            }
        }
    }

    /// The bound address of the listener called `name`.
    ///
    /// # Panics
    ///
    /// If no such listener logged `listening`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no listener {name:?}; have {:?}", self.listeners))
    }

    /// The bound address of the first listener that logged `listening`.
    ///
    /// # Panics
    ///
    /// If there is none.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.listeners
            .first()
            .map(|(_, a)| *a)
            .expect("the broker has no listener")
    }

    /// The config file the broker was started with, if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// All log lines captured so far, newline-separated.
    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// Whether any log line captured so far contains `needle`.
    pub fn logs_contain(&self, needle: &str) -> bool {
        self.log.lines().iter().any(|l| l.contains(needle))
    }

    /// Waits up to [`TIMEOUT`] for a log line matching `pred` and returns it (earlier lines
    /// count too).
    ///
    /// # Panics
    ///
    /// If no such line arrives in time or the broker's stderr closes first; the message names
    /// `what` and includes the log.
    pub async fn wait_for_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut rx = self.log_rx.clone();
        let mut seen = 0;
        loop {
            rx.borrow_and_update();
            {
                let lines = self.log.lines();
                if let Some(line) = lines[seen..].iter().find(|l| pred(l)) {
                    return line.clone();
                }
                seen = lines.len();
            }
            match timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("broker log closed before {what}\n{}", self.log_dump()),
                Err(_) => panic!(
                    "no log line for {what} within {TIMEOUT:?}\n{}",
                    self.log_dump()
                ),
            }
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    ///
    /// # Panics
    ///
    /// If the signal cannot be sent.
    pub fn sigterm(&self) {
        // The shell's builtin `kill`: no libc binding needed, present wherever `sh` is.
        let status = Command::new("sh")
            .args(["-c", "kill -TERM \"$1\"", "sh", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
    }

    /// Waits up to `limit` for the process to exit and returns its status.
    ///
    /// # Panics
    ///
    /// If it is still running after `limit`; the message includes the log.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exit {
                return status;
            }
            match self.child.try_wait() {
                Ok(Some(status)) => self.exit = Some(status),
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)).await,
                Ok(None) => panic!("midge still running {limit:?} after\n{}", self.log_dump()),
                Err(e) => panic!("waiting for midge: {e}"),
            }
        }
    }

    fn log_dump(&self) -> String {
        format!(
            "---- midge log ----\n{}\n---- end of midge log ----",
            self.log.text()
        )
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() || std::env::var_os("MIDGE_TEST_LOG").is_some() {
            eprintln!("{}", self.log_dump());
        }
    }
}

/// Spawns a thread that appends each line of `pipe` to `log`, prefixed with `prefix`. The stderr
/// thread (`closes`) closes the change channel at EOF.
fn drain(pipe: impl Read + Send + 'static, log: Arc<Log>, prefix: &'static str, closes: bool) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    log.push(format!("{prefix}{}", line.trim_end_matches(['\r', '\n'])));
                }
            }
        }
        if closes {
            log.close();
        }
    });
}

/// The number of entries in the config's `listeners` list.
///
/// # Panics
///
/// If `yaml` does not parse or has no `listeners` list: such configs are for
/// `midge --check-config` tests, not for a running broker.
pub fn count_listeners(yaml: &str) -> usize {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml)
        .unwrap_or_else(|e| panic!("test config is not YAML: {e}\n{yaml}"));
    value
        .get("listeners")
        .and_then(|l| l.as_sequence())
        .map(|l| l.len())
        .unwrap_or_else(|| panic!("test config has no `listeners` list:\n{yaml}"))
}

/// Appends `admin: {bind: 127.0.0.1:0}` and `metrics: {bind: 127.0.0.1:0}` for whichever of
/// the two top-level sections `yaml` lacks. Their defaults are fixed ports (50051, 9090).
pub fn with_ephemeral_admin_and_metrics(yaml: &str) -> String {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap_or(serde_yaml::Value::Null);
    let mut out = yaml.to_owned();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    for section in ["admin", "metrics"] {
        if value.get(section).is_none() {
            out.push_str(&format!("{section}:\n  bind: 127.0.0.1:0\n"));
        }
    }
    out
}

/// Parses a JSON log line `{"fields": {"message": "listening", "listener": NAME, "addr": ADDR}}`.
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    let text = |v: &serde_json::Value| v.as_str().map(|s| s.trim_matches('"').to_owned());
    let name = text(fields.get("listener")?)?;
    let addr = text(fields.get("addr")?)?.parse().ok()?;
    Some((name, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_line() {
        let line = r#"{"timestamp":"t","level":"INFO","fields":{"message":"listening","listener":"default","addr":"127.0.0.1:40001"},"target":"midge"}"#;
        assert_eq!(
            parse_listening(line),
            Some(("default".to_owned(), "127.0.0.1:40001".parse().unwrap()))
        );
        assert_eq!(
            parse_listening(r#"{"fields":{"message":"accepted"}}"#),
            None
        );
        assert_eq!(parse_listening("not json"), None);
    }

    #[test]
    fn counts_listeners() {
        assert_eq!(count_listeners(DEFAULT_CONFIG), 1);
        assert_eq!(
            count_listeners(&tcp_config(
                "connect-timeout: 1s",
                "limits:\n  max-inflight: 2"
            )),
            1
        );
    }

    #[test]
    fn admin_and_metrics_get_ephemeral_ports_unless_configured() {
        let yaml = with_ephemeral_admin_and_metrics(DEFAULT_CONFIG);
        assert!(
            yaml.ends_with("admin:\n  bind: 127.0.0.1:0\nmetrics:\n  bind: 127.0.0.1:0\n"),
            "{yaml}"
        );
        let own = format!("{DEFAULT_CONFIG}metrics:\n  enable: false");
        let yaml = with_ephemeral_admin_and_metrics(&own);
        assert!(
            yaml.ends_with("metrics:\n  enable: false\nadmin:\n  bind: 127.0.0.1:0\n"),
            "{yaml}"
        );
    }

    #[test]
    fn tcp_config_indents_listener_lines() {
        let yaml = tcp_config("connect-timeout: 1s\nmax-connections: 2", "");
        assert!(
            yaml.contains("\n    connect-timeout: 1s\n    max-connections: 2\n"),
            "{yaml}"
        );
    }
}

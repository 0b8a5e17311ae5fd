//! [`PluginProcess`]: the `test-plugin` binary as a child process.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// PluginProcess

/// The `test-plugin` binary as a child process (see `src/bin/test-plugin.rs`), killed on drop.
#[derive(Debug)]
pub struct PluginProcess {
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl PluginProcess {
    /// Runs `bin` (`env!("CARGO_BIN_EXE_test-plugin")` in a test) with `args` and waits for
    /// its `listening ADDR` line.
    ///
    /// # Panics
    ///
    /// If it cannot be started or does not listen within [`TIMEOUT`](crate::TIMEOUT).
    pub async fn spawn(bin: &Path, args: &[&str]) -> PluginProcess {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = oneshot::channel();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening ") {
                    if let (Some(tx), Ok(addr)) = (addr_tx.take(), addr.parse::<SocketAddr>()) {
                        let _ = tx.send(addr);
                    }
                }
                lock(&sink).push(line);
            }
        });
        let addr = within("the plugin process to listen", addr_rx)
            .await
            .expect("the plugin process printed `listening ADDR`");
        PluginProcess { child, addr, lines }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `plugins:` entry for it under `alias`.
    pub fn yaml(&self, alias: &str, extra: &str) -> String {
        plugin_yaml(alias, &self.endpoint(), extra)
    }

    /// The lines it printed (one per call: `auth CLIENT_ID`, `topic ACTION TOPIC`).
    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }

    /// Whether it prints `line` within `timeout` (its output is read by a thread, so a line
    /// can arrive after the answer it belongs to).
    pub async fn wait_for_line(&self, line: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if lock(&self.lines).iter().any(|l| l == line) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `signal` (a name such as `STOP` or `CONT`) with `kill`.
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
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

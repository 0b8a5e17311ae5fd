//! For the admin API and metrics tests (`admin_*.rs`): the real `grpcurl` binary
//! (`.venv/bin/grpcurl`, installed by `scripts/grpcurl.sh`), a plain HTTP scrape and a
//! Prometheus text-format parser. (The admin and metrics addresses are in [`crate::admin`].)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use crate::tools::{is_ci, repo_root};
use crate::within;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

/// The admin service, as grpcurl names it.
pub const ADMIN: &str = "midge.admin.v1.BrokerAdmin";

/// Extra config sections: admin and metrics on ephemeral loopback ports.
pub const ADMIN_SECTIONS: &str = "\
admin:
  bind: 127.0.0.1:0
metrics:
  bind: 127.0.0.1:0
";

/// `.venv/bin/grpcurl`, or `None` (after a loud message) when it is not installed; under
/// `CI=true` a missing grpcurl fails the test instead.
///
/// # Panics
///
/// When grpcurl is missing and `CI=true`.
pub fn grpcurl_bin() -> Option<PathBuf> {
    let bin = repo_root().join(".venv").join("bin").join("grpcurl");
    if bin.exists() {
        return Some(bin);
    }
    let msg = format!(
        "{} does not exist; run scripts/grpcurl.sh (scripts/test-deps.sh runs it for you)",
        bin.display()
    );
    assert!(
        !is_ci(),
        "{msg}. CI=true: a missing test tool fails the test"
    );
    eprintln!("\n******** SKIPPING TEST: {msg} ********\n");
    None
}

/// What one grpcurl run printed.
#[derive(Debug)]
pub struct Output {
    /// Exit status was 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Stdout as one JSON value.
    ///
    /// # Panics
    ///
    /// When the call failed or printed something else.
    pub fn json(&self) -> Value {
        assert!(self.success, "grpcurl failed: {self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The gRPC status code name grpcurl printed for a failed call (`Code: NotFound`).
    ///
    /// # Panics
    ///
    /// When the call succeeded.
    pub fn code(&self) -> String {
        assert!(!self.success, "expected a failed call: {self:?}");
        // `Code: NotFound` for a failed call, `code = NotFound desc = ...` for a failed
        // reflection query.
        self.stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Code: "))
            .or_else(|| {
                let (_, rest) = self.stderr.split_once("code = ")?;
                rest.split_whitespace().next()
            })
            .unwrap_or_else(|| panic!("no status code in {self:?}"))
            .to_owned()
    }
}

/// The real grpcurl against one admin server.
#[derive(Debug, Clone)]
pub struct Grpcurl {
    bin: PathBuf,
    /// `-plaintext`, `-H ...`, TLS flags: what comes before the address.
    pub flags: Vec<String>,
    addr: SocketAddr,
}

impl Grpcurl {
    /// grpcurl `-plaintext` against `addr`; `None` (skipped) when grpcurl is not installed.
    pub fn plaintext(addr: SocketAddr) -> Option<Self> {
        Some(Self {
            bin: grpcurl_bin()?,
            flags: vec!["-plaintext".into()],
            addr,
        })
    }

    /// grpcurl over TLS against `addr`, trusting the CA in `ca_pem`; `None` (skipped) when
    /// grpcurl is not installed.
    pub fn tls(addr: SocketAddr, ca_pem: &std::path::Path) -> Option<Self> {
        Some(Self {
            bin: grpcurl_bin()?,
            flags: vec!["-cacert".into(), ca_pem.display().to_string()],
            addr,
        })
    }

    /// The same, with one more flag (e.g. `-H`, `authorization: Bearer x`).
    pub fn with(mut self, flags: &[&str]) -> Self {
        self.flags.extend(flags.iter().map(|f| (*f).to_owned()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(&self.flags)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `grpcurl FLAGS [ARGS...] ADDR [TAIL...]`: `args` go before the address (`-d`,
    /// `-emit-defaults`), `tail` after it (`list`, a method).
    pub async fn run(&self, args: &[&str], tail: &[&str]) -> Output {
        let addr = self.addr.to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.push(&addr);
        all.extend(tail);
        let output = within("grpcurl", self.command(&all).output())
            .await
            .unwrap_or_else(|e| panic!("running grpcurl: {e}"));
        Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Calls `BrokerAdmin/{method}` with `data` (JSON; `None` for no `-d`), defaults emitted.
    pub async fn call(&self, method: &str, data: Option<&str>) -> Output {
        let mut args = vec!["-emit-defaults"];
        if let Some(data) = data {
            args.extend(["-d", data]);
        }
        self.run(&args, &[&format!("{ADMIN}/{method}")]).await
    }

    /// Starts a server-streaming call (`WatchEvents`, a health `Watch`) and returns its reader.
    pub fn stream(&self, method: &str, data: &str) -> Stream {
        let addr = self.addr.to_string();
        let mut child = self
            .command(&["-emit-defaults", "-d", data, &addr, method])
            .spawn()
            .unwrap_or_else(|e| panic!("spawning grpcurl: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Stream {
            child,
            stdout,
            text: String::new(),
        }
    }
}

/// A grpcurl streaming call: its JSON messages, one by one. Killed on drop.
#[derive(Debug)]
pub struct Stream {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// Text read and not parsed yet.
    text: String,
}

impl Stream {
    /// The next JSON message, waiting up to [`TIMEOUT`]; `None` when the stream ended.
    ///
    /// # Panics
    ///
    /// When nothing comes in time.
    pub async fn next(&mut self) -> Option<Value> {
        within("the next streamed message", async {
            loop {
                let mut values =
                    serde_json::Deserializer::from_str(&self.text).into_iter::<Value>();
                if let Some(Ok(value)) = values.next() {
                    let used = values.byte_offset();
                    self.text.drain(..used);
                    return Some(value);
                }
                let mut line = String::new();
                match self.stdout.read_line(&mut line).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => self.text.push_str(&line),
                }
            }
        })
        .await
    }

    /// Reads messages until one satisfies `pred`, and returns it.
    ///
    /// # Panics
    ///
    /// When the stream ends first, or nothing matches within [`TIMEOUT`] per message.
    pub async fn next_matching(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next().await {
                Some(value) if pred(&value) => return value,
                Some(_) => {}
                None => panic!("stream ended before {what}"),
            }
        }
    }

    /// What grpcurl wrote to stderr, once it exited (waits up to [`TIMEOUT`]).
    pub async fn stderr(mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = within("grpcurl's stderr", stderr.read_to_string(&mut text)).await;
        }
        text
    }
}

/// `GET path` over plain HTTP/1.0; returns (status line, headers, body).
///
/// # Panics
///
/// On a connection error or a malformed answer.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String, String) {
    within("an HTTP answer", async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        let (head, body) = answer.split_once("\r\n\r\n").expect("headers end");
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (
            status.to_owned(),
            headers.to_ascii_lowercase(),
            body.to_owned(),
        )
    })
    .await
}

/// One parsed scrape: `name{label="value",...}` (labels sorted) → value, and each family's
/// `# TYPE`.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Samples by name with sorted labels, e.g. `midge_messages_dropped_total{reason="queue_full"}`.
    pub samples: BTreeMap<String, f64>,
    /// Metric types by family name.
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the Prometheus text format (version 0.0.4), strictly: every line is a `# HELP`,
    /// a `# TYPE` or a sample of a family typed before it.
    ///
    /// # Panics
    ///
    /// On any line that is not valid.
    pub fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "bad type: {line}"
                );
                scrape.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment: {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample: series value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("bad labels: {line}"));
                    let mut labels: Vec<&str> = body.split(',').filter(|l| !l.is_empty()).collect();
                    for label in &labels {
                        let (key, value) =
                            label.split_once('=').unwrap_or_else(|| panic!("{line}"));
                        assert!(valid_name(key), "bad label name in {line}");
                        assert!(value.starts_with('"') && value.ends_with('"'), "{line}");
                    }
                    labels.sort_unstable();
                    (name, labels)
                }
            };
            assert!(valid_name(name), "bad metric name: {line}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| scrape.types.get(*base).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(name);
            assert!(
                scrape.types.contains_key(family),
                "sample before its # TYPE: {line}"
            );
            let key = if labels.is_empty() {
                name.to_owned()
            } else {
                format!("{name}{{{}}}", labels.join(","))
            };
            assert!(
                scrape.samples.insert(key, value).is_none(),
                "duplicate sample: {line}"
            );
        }
        scrape
    }

    /// The value of `series` (labels sorted, as in [`Scrape::samples`]).
    ///
    /// # Panics
    ///
    /// When there is no such sample.
    pub fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in {:#?}", self.samples))
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Scrapes `/metrics` and parses it; checks the status and the content type.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, headers, body) = http_get(addr, "/metrics").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    Scrape::parse(&body)
}

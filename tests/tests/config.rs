//! The config file as a user meets it: `midge --check-config FILE` (exit 0 with `FILE: ok`, or
//! exit 2 with `FILE:line:column: reason`), a bad config refused before anything is bound, and
//! the embedded default when no config is given.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::process::{Output, Stdio};

use midge_tests::broker::{DEFAULT_CONFIG, midge_bin};
use midge_tests::raw::Connect;
use midge_tests::{RawClient, TempDir, TestBroker, within};
use tokio::process::Command;

async fn midge(args: &[&std::ffi::OsStr]) -> Output {
    within(
        "midge to exit",
        Command::new(midge_bin())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("running midge")
}

async fn check_config(yaml: &str) -> (String, Output) {
    let dir = TempDir::new();
    let path = dir.write("checked.yaml", yaml);
    let output = midge(&["--check-config".as_ref(), path.as_os_str()]).await;
    (path.display().to_string(), output)
}

/// Asserts `--check-config` refused `yaml` with exit 2 and an error at `path:line:` for a line
/// in `lines`, and returns the error text.
async fn assert_refused(yaml: &str, lines: std::ops::RangeInclusive<usize>) -> String {
    let (path, output) = check_config(yaml).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    let rest = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{path}:")))
        .unwrap_or_else(|| panic!("no `{path}:line:column: reason` in stderr: {stderr}"));
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no line in {rest:?}"));
    let column: Option<usize> = parts.next().and_then(|c| c.parse().ok());
    assert!(column.is_some(), "no column in {rest:?}");
    assert!(
        lines.contains(&line),
        "error at line {line}, expected {lines:?}: {stderr}"
    );
    assert!(
        !parts.next().unwrap_or("").trim().is_empty(),
        "no reason in {rest:?}"
    );
    stderr
}

#[tokio::test]
async fn check_config_accepts_a_good_file() {
    let (path, output) = check_config(DEFAULT_CONFIG).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains(&format!("{path}: ok")), "stdout: {stdout}");
}

#[tokio::test]
async fn check_config_accepts_the_documented_default_file() {
    let default = midge_tests::tools::repo_root().join("broker/src/config/default.yaml");
    let output = midge(&["--check-config".as_ref(), default.as_os_str()]).await;
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test]
async fn check_config_refuses_an_unknown_key() {
    let yaml = "\
listeners:
  - name: default
    kind: tcp
    bind: 127.0.0.1:0
    max-conections: 5
";
    let stderr = assert_refused(yaml, 5..=5).await;
    assert!(
        stderr.contains("max-conections"),
        "the reason names the key: {stderr}"
    );
}

#[tokio::test]
async fn check_config_refuses_an_unknown_top_level_section() {
    let yaml = "listeners:\n  - name: default\n    kind: tcp\n    bind: 127.0.0.1:0\nlimitz:\n  max-inflight: 1\n";
    assert_refused(yaml, 5..=5).await;
}

#[tokio::test]
async fn check_config_refuses_checks_and_auth_that_would_fail_open_or_silently() {
    let listener = "listeners:\n  - name: default\n    kind: tcp\n    bind: 127.0.0.1:0\n";
    // Topic checks on with nobody to ask: refused, with the hint.
    let stderr = assert_refused(&format!("{listener}topic-check:\n  enable: true\n"), 6..=6).await;
    assert!(
        stderr.contains("list topic-check plugins or set `enable: false`"),
        "{stderr}"
    );
    // Topic-check plugins listed but never asked.
    let plugins = "plugins:\n  acl: {endpoint: 'http://127.0.0.1:1'}\n";
    let stderr = assert_refused(
        &format!("{listener}{plugins}topic-check:\n  plugins: [acl]\n"),
        8..=8,
    )
    .await;
    assert!(stderr.contains("`enable` is false"), "{stderr}");
    // An auth section that would refuse every client.
    let stderr = assert_refused(&format!("{listener}auth:\n  plugins: []\n"), 6..=6).await;
    assert!(
        stderr.contains("neither `allow-anonymous` nor plugins"),
        "{stderr}"
    );
}

#[tokio::test]
async fn check_config_refuses_a_bad_duration() {
    let yaml = "\
listeners:
  - name: default
    kind: tcp
    bind: 127.0.0.1:0
    connect-timeout: 5 parsecs
";
    assert_refused(yaml, 5..=5).await;
}

#[tokio::test]
async fn check_config_refuses_a_tls_listener_without_tls_section() {
    let yaml = "\
listeners:
  - name: plain
    kind: tcp
    bind: 127.0.0.1:0
  - name: secure
    kind: tls
    bind: 127.0.0.1:0
sys-interval: 1s
";
    let stderr = assert_refused(yaml, 5..=7).await;
    assert!(
        stderr.to_lowercase().contains("tls"),
        "the reason mentions tls: {stderr}"
    );
}

#[tokio::test]
async fn check_config_reports_a_missing_file() {
    let dir = TempDir::new();
    let missing = dir.path().join("nope.yaml");
    let output = midge(&["--check-config".as_ref(), missing.as_os_str()]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&missing.display().to_string()),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn bad_config_exits_before_binding() {
    let dir = TempDir::new();
    // Valid listener, unknown top-level key on line 5: refused before any listener is bound.
    let path = dir.write(
        "bad.yaml",
        "listeners:\n  - name: x\n    kind: tcp\n    bind: 127.0.0.1:0\nbogus: 1\n",
    );
    let output = midge(&[
        "--config".as_ref(),
        path.as_os_str(),
        "--log-format".as_ref(),
        "json".as_ref(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "midge started with a bad config: {stderr}"
    );
    assert!(
        !stderr.contains("\"listening\""),
        "it bound a listener first: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:5:", path.display())),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn embedded_default_listens_on_1883() {
    // Only when 1883 is free: a developer machine may run another broker there.
    let Ok(probe) = TcpListener::bind("0.0.0.0:1883") else {
        eprintln!(
            "\n******** SKIPPING TEST: port 1883 is in use; the embedded default cannot bind it ********\n"
        );
        return;
    };
    drop(probe);
    let broker = TestBroker::spawn(Vec::<OsString>::new(), 1).await;
    assert_eq!(
        broker.addr("default"),
        "0.0.0.0:1883".parse::<SocketAddr>().expect("an address")
    );
    let (mut client, ack) = RawClient::connect(
        "127.0.0.1:1883".parse().expect("an address"),
        &Connect::new("default"),
    )
    .await;
    assert_eq!(ack.code, 0, "the default allows anonymous clients");
    client.ping().await;
}

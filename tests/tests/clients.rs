//! Interoperability with independent clients: `mosquitto_pub`/`mosquitto_sub` (Debian's
//! `mosquitto-clients`) and Python `paho-mqtt` 2.x from the project's `.venv`, both installed
//! by `scripts/test-deps.sh`. Missing tools fail the test under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use midge_tests::tools::repo_root;
use midge_tests::{MqttClient, TestBroker, python, require_tool, within};
use rumqttc::QoS;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A running `mosquitto_sub -d` whose stdout is read line by line.
struct MosquittoSub {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl MosquittoSub {
    /// Starts `mosquitto_sub` with debug output, printing messages as `MSG topic retain qos
    /// payload`, and waits for its SUBACK. `stdbuf` (coreutils) makes its stdout line-buffered:
    /// into a pipe it is block-buffered, and the SUBACK line would only appear at exit.
    async fn start(stdbuf: &Path, bin: &Path, port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(stdbuf)
            .arg("-oL")
            .arg(bin)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-d", "-W", "10"])
            .args(["-F", "MSG %t %r %q %p"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning mosquitto_sub");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut sub = MosquittoSub {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        sub.line_containing("received SUBACK").await;
        sub
    }

    async fn line_containing(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        within(&format!("mosquitto_sub to print {needle:?}"), async {
            while let Some(line) = self.lines.next_line().await.expect("reading mosquitto_sub") {
                if line.contains(needle) {
                    return line;
                }
                seen.push(line);
            }
            panic!("mosquitto_sub exited before printing {needle:?}; it printed {seen:?}");
        })
        .await
    }

    async fn message(&mut self) -> String {
        self.line_containing("MSG ").await
    }

    async fn exit(mut self) -> ExitStatus {
        within("mosquitto_sub to exit", self.child.wait())
            .await
            .expect("waiting for mosquitto_sub")
    }
}

async fn run(program: &Path, args: &[&str]) -> std::process::Output {
    let output = within(
        &format!("{} to finish", program.display()),
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}\nstdout: {}\nstderr: {}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The mosquitto command line clients, and `stdbuf` to line-buffer `mosquitto_sub`.
struct Mosquitto {
    stdbuf: PathBuf,
    sub: PathBuf,
    publish: PathBuf,
}

impl Mosquitto {
    /// Finds the tools, or `None` (after a loud message) outside CI.
    fn find() -> Option<Self> {
        Some(Mosquitto {
            stdbuf: require_tool("stdbuf")?,
            sub: require_tool("mosquitto_sub")?,
            publish: require_tool("mosquitto_pub")?,
        })
    }

    async fn start_sub(&self, port: u16, args: &[&str]) -> MosquittoSub {
        MosquittoSub::start(&self.stdbuf, &self.sub, port, args).await
    }

    /// Runs `mosquitto_pub` against `127.0.0.1:port` with `args`; it must succeed.
    async fn publish(&self, port: u16, args: &[&str]) {
        let port = port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port];
        all.extend_from_slice(args);
        run(&self.publish, &all).await;
    }
}

#[tokio::test]
async fn mosquitto_sub_receives_what_mosquitto_pub_sends() {
    let Some(mosquitto) = Mosquitto::find() else {
        return;
    };
    let broker = TestBroker::start_default().await;
    let port = broker.mqtt_addr().port();
    let mut sub = mosquitto
        .start_sub(port, &["-t", "interop/+", "-q", "1", "-C", "1"])
        .await;
    mosquitto
        .publish(
            port,
            &["-t", "interop/x", "-q", "1", "-m", "from mosquitto"],
        )
        .await;
    assert_eq!(sub.message().await, "MSG interop/x 0 1 from mosquitto");
    assert!(
        sub.exit().await.success(),
        "mosquitto_sub -C 1 exits 0 after one message"
    );
}

#[tokio::test]
async fn mosquitto_pub_retained_reaches_a_later_mosquitto_sub() {
    let Some(mosquitto) = Mosquitto::find() else {
        return;
    };
    let broker = TestBroker::start_default().await;
    let port = broker.mqtt_addr().port();
    // QoS 1: mosquitto_pub exits only after the PUBACK, so the broker has stored the message.
    mosquitto
        .publish(port, &["-t", "interop/kept", "-q", "1", "-r", "-m", "kept"])
        .await;
    let mut sub = mosquitto
        .start_sub(port, &["-t", "interop/#", "-C", "1"])
        .await;
    assert_eq!(sub.message().await, "MSG interop/kept 1 0 kept");
    assert!(sub.exit().await.success());
}

#[tokio::test]
async fn mosquitto_pub_qos2_reaches_rumqttc() {
    let Some(mosquitto) = Mosquitto::find() else {
        return;
    };
    let broker = TestBroker::start_default().await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "rumqttc").await;
    sub.subscribe_ok("interop/q2", QoS::ExactlyOnce).await;
    let port = broker.mqtt_addr().port();
    mosquitto
        .publish(port, &["-t", "interop/q2", "-q", "2", "-m", "exactly once"])
        .await;
    let got = sub.recv().await;
    assert_eq!(
        (&got.payload[..], got.qos),
        (&b"exactly once"[..], QoS::ExactlyOnce)
    );
}

#[tokio::test]
async fn paho_round_trip() {
    let Some(python) = python() else {
        return;
    };
    let broker = TestBroker::start_default().await;
    let script = repo_root().join("tests/python/roundtrip.py");
    let port = broker.mqtt_addr().port().to_string();
    let output = run(
        &python,
        &[
            script.to_str().expect("UTF-8 path"),
            "127.0.0.1",
            &port,
            "paho/roundtrip",
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("received paho/roundtrip hello from paho qos=1"),
        "{stdout}"
    );
}

#[tokio::test]
async fn paho_will_is_published_when_paho_vanishes() {
    let Some(python) = python() else {
        return;
    };
    let broker = TestBroker::start_default().await;
    let mut observer = MqttClient::connect(broker.mqtt_addr(), "observer").await;
    observer.subscribe_ok("paho/will", QoS::AtLeastOnce).await;
    let script = repo_root().join("tests/python/will.py");
    let port = broker.mqtt_addr().port().to_string();
    run(
        &python,
        &[
            script.to_str().expect("UTF-8 path"),
            "127.0.0.1",
            &port,
            "paho/will",
        ],
    )
    .await;
    let will = observer.recv().await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..], will.qos),
        ("paho/will", &b"paho-gone"[..], QoS::AtLeastOnce)
    );
}

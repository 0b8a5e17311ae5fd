//! The README's "Inspect a running broker" commands, run as written: each `grpcurl` and `curl`
//! line of that section goes through `sh -c` with `.venv/bin` first on `PATH`, the test
//! broker's admin and metrics addresses in place of `127.0.0.1:50051` and `127.0.0.1:9090`.
//! Lines with the `s3cret` token run against a second broker configured with that token.

use std::process::Stdio;

use midge_tests::admin::{admin_addr, metrics_addr};
use midge_tests::broker::tcp_config;
use midge_tests::grpcurl::{ADMIN_SECTIONS, Scrape, grpcurl_bin};
use midge_tests::tools::repo_root;
use midge_tests::{MqttClient, TestBroker, require_tool, within};
use rumqttc::QoS;
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

/// The command lines of the README section, in order.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme
        .find("## Inspect a running broker")
        .expect("the README section");
    let section = &readme[start..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    section
        .lines()
        .filter(|line| line.starts_with("grpcurl ") || line.starts_with("curl "))
        .map(str::to_owned)
        .collect()
}

/// `sh -c LINE` with `.venv/bin` first on PATH.
fn shell(line: &str) -> Command {
    let path = format!(
        "{}:{}",
        repo_root().join(".venv").join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("sh");
    command
        .args(["-c", line])
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `line`; returns its stdout.
async fn run(line: &str) -> String {
    let output = within(line, shell(line).output())
        .await
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!(
        output.status.success(),
        "{line}\nfailed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_readme_commands_work_as_written() {
    if grpcurl_bin().is_none() || require_tool("curl").is_none() {
        return;
    }
    let commands = readme_commands();
    assert!(commands.len() >= 15, "{commands:#?}");
    let broker = TestBroker::start(&tcp_config("", ADMIN_SECTIONS)).await;
    let local = |line: &str, admin: String, metrics: String| {
        line.replace("127.0.0.1:50051", &admin)
            .replace("127.0.0.1:9090", &metrics)
    };
    let (admin, metrics) = (admin_addr(&broker).await, metrics_addr(&broker).await);
    let token_sections =
        "admin:\n  bind: 127.0.0.1:0\n  token: s3cret\nmetrics:\n  enable: false\n";
    let with_token = TestBroker::start(&tcp_config("", token_sections)).await;
    let token_admin = admin_addr(&with_token).await;

    let mut sensor = MqttClient::connect(broker.mqtt_addr(), "sensor-1").await;
    sensor.subscribe_ok("sensors/#", QoS::AtLeastOnce).await;

    for command in &commands {
        let line = if command.contains("Bearer s3cret") {
            local(command, token_admin.to_string(), String::new())
        } else {
            local(command, admin.to_string(), metrics.to_string())
        };
        if command.contains("/WatchEvents") {
            let mut tail = shell(&line).spawn().expect("spawn");
            let stdout = tail.stdout.take().expect("stdout");
            broker
                .wait_for_log("the event watcher", |l| {
                    l.contains("event watcher attached")
                })
                .await;
            let _other = MqttClient::connect(broker.mqtt_addr(), "watched").await;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            within("the clientConnected event", async {
                while let Ok(Some(text)) = lines.next_line().await {
                    if text.contains("\"clientConnected\"") {
                        return;
                    }
                }
                panic!("WatchEvents ended without the event");
            })
            .await;
            continue;
        }
        let out = run(&line).await;
        let expect = |needle: &str| assert!(out.contains(needle), "{command}\nprinted:\n{out}");
        match command {
            c if c.ends_with(" list") => expect("midge.admin.v1.BrokerAdmin"),
            c if c.contains(" describe ") => expect("rpc WatchEvents"),
            c if c.ends_with("/GetBrokerInfo") => expect("\"version\""),
            c if c.ends_with("/ListClients") => expect("\"sensor-1\""),
            c if c.ends_with("/GetClient") => expect("\"sensors/#\""),
            c if c.ends_with("/ListSubscriptions") => expect("\"sensor-1\""),
            c if c.ends_with("/ListRetained") => expect("\"a/b\""),
            c if c.ends_with("/GetRetained") => expect("\"aGk=\""),
            c if c.ends_with("/DeleteRetained") => expect("\"deleted\": true"),
            c if c.ends_with("/DisconnectClient") => {
                sensor.expect_closed().await;
            }
            c if c.ends_with("/Check") => expect("\"SERVING\""),
            c if c.starts_with("curl ") => {
                let scrape = Scrape::parse(&out);
                assert!(
                    scrape.samples.contains_key("midge_clients_connected"),
                    "{out}"
                );
            }
            _ => {
                let _: serde_json::Value = serde_json::from_str(&out)
                    .unwrap_or_else(|e| panic!("{command}: not JSON ({e}):\n{out}"));
            }
        }
    }
}

//! `examples/configs/full.yaml` as shipped, with every plugin it names running: the sample
//! password file, ACL and taboo together, events in both loggers. Only what cannot be shared
//! on a test machine is rewritten: ports (ephemeral), `mandatory` on every plugin (so no client
//! is judged before a plugin answered) and the auth deadline (debug builds hash slowly).

use midge_tests::examples as common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{PluginProcess, TempDir, TestBroker, connack, connect, json_lines, opts};
use rumqttc::ConnectReturnCode::{NotAuthorized, Success};
use rumqttc::QoS::AtLeastOnce;
use rumqttc::SubscribeReasonCode::Failure;

/// Starts a plugin binary from the repository root, where full.yaml's relative paths point.
fn start_in_root(bin: &str, args: &[&str]) -> PluginProcess {
    let mut cmd = Command::new(bin);
    cmd.current_dir(common::examples_dir().parent().unwrap_or(Path::new("..")))
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
    PluginProcess::sdk_command(cmd)
}

#[tokio::test]
async fn full_yaml_with_every_plugin() {
    if !common::python_setup() {
        return;
    }
    let dir = TempDir::new();
    let events = dir.path().join("events.jsonl");
    let python_events = dir.path().join("python.jsonl");
    let events_arg = events.to_str().expect("utf-8");
    let auth = start_in_root(env!("CARGO_BIN_EXE_auth-password-file"), &[]);
    let acl = start_in_root(env!("CARGO_BIN_EXE_topic-acl"), &[]);
    let taboo = start_in_root(env!("CARGO_BIN_EXE_topic-taboo"), &[]);
    let logger = start_in_root(env!("CARGO_BIN_EXE_event-logger"), &["--out", events_arg]);
    let python = common::start_python(&["--out", python_events.to_str().expect("utf-8")]);

    let mut yaml = std::fs::read_to_string(common::examples_dir().join("configs/full.yaml"))
        .expect("reading full.yaml");
    yaml = yaml.replace("bind: 0.0.0.0:1883", "bind: 127.0.0.1:0");
    yaml = yaml.replace("timeout: 1s ", "timeout: 10s ");
    for (port, plugin, mandatory) in [
        (50061, &auth, ""),
        (50062, &acl, "\n    mandatory: true"),
        (50063, &taboo, "\n    mandatory: true"),
        (50064, &logger, "\n    mandatory: true"),
        (50066, &python, "\n    mandatory: true"),
    ] {
        let from = format!("endpoint: http://127.0.0.1:{port}");
        assert!(yaml.contains(&from), "full.yaml has no {from}");
        yaml = yaml.replace(
            &from,
            &format!("endpoint: {}{mandatory}", plugin.endpoint()),
        );
    }
    let broker = TestBroker::start(&yaml).await;

    // Authentication: the sample users, argon2id and $6$.
    assert_eq!(
        connack(opts(&broker, "x1", Some(("alice", "wrong")))).await,
        NotAuthorized
    );
    assert_eq!(connack(opts(&broker, "x2", None)).await, NotAuthorized);
    assert_eq!(
        connack(opts(&broker, "x3", Some(("bob", "bob-secret")))).await,
        Success
    );
    let mut alice = connect(&broker, "alice-1", Some(("alice", "alice-secret"))).await;
    let mut admin = connect(&broker, "admin-1", Some(("admin", "admin-secret"))).await;
    let mut bob = connect(&broker, "bob-1", Some(("bob", "bob-secret"))).await;

    // ACL: alice may subscribe sensors/#, not #; bob may not publish on sensors/.
    alice.subscribe_ok("sensors/#", AtLeastOnce).await;
    assert_eq!(alice.subscribe("#", AtLeastOnce).await, [Failure]);
    bob.publish("sensors/1/temp", AtLeastOnce, false, "from bob")
        .await;
    alice
        .publish("sensors/1/temp", AtLeastOnce, false, "21.5")
        .await;
    assert_eq!(alice.recv().await.payload, "21.5");

    // Taboo (and ACL: admin has '#'): admin only.
    assert_eq!(bob.subscribe("top-secret", AtLeastOnce).await, [Failure]);
    admin.subscribe_ok("top-secret", AtLeastOnce).await;
    admin.publish("top-secret", AtLeastOnce, false, "s").await;
    assert_eq!(admin.recv().await.topic, "top-secret");

    // Both event plugins saw alice connect and publish.
    for file in [&events, &python_events] {
        common::eventually("alice's events", Duration::from_secs(15), || {
            let lines = json_lines(file);
            let connected = lines.iter().any(|l| {
                l["kind"] == "client_connected"
                    && (l["client_id"] == "alice-1" || l["session"]["client_id"] == "alice-1")
            });
            let published = lines.iter().any(|l| {
                l["kind"] == "message_received"
                    && (l["topic"] == "sensors/1/temp" || l["message"]["topic"] == "sensors/1/temp")
            });
            (connected && published).then_some(())
        })
        .await;
    }
}

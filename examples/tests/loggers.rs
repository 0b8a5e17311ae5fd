//! `event-logger` and `packet-logger` against the real broker: what a client does shows up in
//! the `--out` file as JSON lines, and on stdout.

use midge_tests::examples as common;

use std::time::Duration;

use common::{PluginEntry, PluginProcess, TempDir, TestBroker, broker_config, connect, json_lines};
use rumqttc::QoS::AtLeastOnce;
use serde_json::Value;

/// The first line of `lines` with `kind` whose fields include every `(key, value)` of `want`.
fn find<'a>(lines: &'a [Value], kind: &str, want: &[(&str, Value)]) -> Option<&'a Value> {
    lines
        .iter()
        .find(|l| l["kind"] == kind && want.iter().all(|(k, v)| &l[*k] == v))
}

#[tokio::test]
async fn event_logger_writes_every_event() {
    let dir = TempDir::new();
    let out = dir.path().join("events.jsonl");
    let plugin = PluginProcess::start(
        env!("CARGO_BIN_EXE_event-logger"),
        &["--json", "--out", out.to_str().expect("utf-8")],
    );
    let entry = PluginEntry {
        alias: "events",
        endpoint: plugin.endpoint(),
        config: "",
    };
    let broker = TestBroker::start(&broker_config(Some(true), &[], &[], &[entry])).await;
    let mut client = connect(&broker, "logged-1", Some(("alice", "x"))).await;
    client.subscribe_ok("greetings/#", AtLeastOnce).await;
    client
        .publish("greetings/en", AtLeastOnce, true, "hello")
        .await;
    assert_eq!(client.recv().await.payload, "hello");
    client.unsubscribe("greetings/#").await;
    client.disconnect().await;

    let s = |v: &str| Value::from(v);
    let lines = common::eventually(
        "the events in the --out file",
        Duration::from_secs(10),
        || {
            let lines = json_lines(&out);
            find(
                &lines,
                "client_disconnected",
                &[("client_id", s("logged-1"))],
            )?;
            Some(lines)
        },
    )
    .await;
    let connected = find(&lines, "client_connected", &[("client_id", s("logged-1"))])
        .unwrap_or_else(|| panic!("no client_connected in {lines:#?}"));
    assert_eq!(connected["username"], "alice");
    assert_eq!(connected["listener"], "default");
    for (kind, want) in [
        (
            "client_subscribed",
            vec![("topic_filter", s("greetings/#"))],
        ),
        (
            "message_received",
            vec![("topic", s("greetings/en")), ("payload", s("hello"))],
        ),
        ("message_broadcast", vec![("topic", s("greetings/en"))]),
        ("retained_stored", vec![("topic", s("greetings/en"))]),
        (
            "client_unsubscribed",
            vec![("topic_filter", s("greetings/#"))],
        ),
        ("client_disconnected", vec![("reason", s("normal"))]),
    ] {
        assert!(
            find(&lines, kind, &want).is_some(),
            "no {kind} {want:?} in {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .all(|l| !l["kind"].as_str().unwrap_or("").starts_with("packet_"))
    );
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence order: {seqs:?}"
    );
    // --json: the same objects on stdout.
    let stdout: Vec<Value> = plugin
        .output()
        .lines()
        .filter_map(|l| serde_json::from_str(l.strip_prefix("[stdout] ")?).ok())
        .collect();
    assert!(
        find(&stdout, "client_connected", &[("client_id", s("logged-1"))]).is_some(),
        "{stdout:#?}"
    );
}

#[tokio::test]
async fn packet_logger_writes_packets_as_text_and_json() {
    let dir = TempDir::new();
    let out = dir.path().join("packets.jsonl");
    let plugin = PluginProcess::start(
        env!("CARGO_BIN_EXE_packet-logger"),
        &["--out", out.to_str().expect("utf-8")],
    );
    let entry = PluginEntry {
        alias: "packets",
        endpoint: plugin.endpoint(),
        config: "",
    };
    let broker = TestBroker::start(&broker_config(Some(true), &[], &[], &[entry])).await;
    let mut client = connect(&broker, "packets-1", None).await;
    client.publish("t", AtLeastOnce, false, "p").await;
    client.disconnect().await;

    let s = |v: &str| Value::from(v);
    let lines = common::eventually(
        "the packets in the --out file",
        Duration::from_secs(10),
        || {
            let lines = json_lines(&out);
            find(
                &lines,
                "packet_received",
                &[("packet_type", s("disconnect"))],
            )?;
            Some(lines)
        },
    )
    .await;
    for (kind, packet) in [
        ("packet_received", "connect"),
        ("packet_sent", "connack"),
        ("packet_received", "publish"),
        ("packet_sent", "puback"),
    ] {
        assert!(
            find(&lines, kind, &[("packet_type", s(packet))]).is_some(),
            "no {kind} {packet} in {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .all(|l| l["kind"].as_str().is_some_and(|k| k.starts_with("packet_")))
    );
    // Without --json, stdout has text lines.
    let stdout = plugin.output();
    assert!(
        stdout.contains("[stdout] packet_sent ") && stdout.contains("packet_type=connack"),
        "{stdout}"
    );
}

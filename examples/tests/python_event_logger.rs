//! The Python plugin (`examples/python-event-logger`, written from the `.proto` files alone):
//! `setup.sh` builds its venv and stubs, then it authenticates listed users and logs events
//! from the real broker, and a raw `EventSink` client checks its duplicate drop and acks.
//!
//! Needs `python3` (with venv) and PyPI. Without python3 the tests are skipped loudly, except
//! under `CI=true`, where they fail.

use midge_tests::examples as common;

use std::time::Duration;

use common::{
    PluginEntry, PluginProcess, TempDir, TestBroker, broker_config, connack, json_lines, opts,
};
use midge_plugin::pb;
use rumqttc::ConnectReturnCode::NotAuthorized;
use rumqttc::QoS::AtLeastOnce;
use serde_json::Value;
use tokio_stream::wrappers::ReceiverStream;

fn start_plugin(args: &[&str]) -> PluginProcess {
    common::start_python(args)
}

#[tokio::test]
async fn authenticates_listed_users_and_logs_broker_events() {
    if !common::python_setup() {
        return;
    }
    let dir = TempDir::new();
    let out = dir.path().join("events.jsonl");
    // --allow-user is the standalone default; the broker's `allow-users` replaces it.
    let plugin = start_plugin(&["--out", out.to_str().expect("utf-8"), "--allow-user", "bob"]);
    let entry = PluginEntry {
        alias: "python",
        endpoint: plugin.endpoint(),
        config: "allow-users: [alice]",
    };
    let broker = TestBroker::start(&broker_config(None, &["python"], &[], &[entry])).await;

    assert_eq!(
        connack(opts(&broker, "bob-1", Some(("bob", "x")))).await,
        NotAuthorized
    );
    assert_eq!(connack(opts(&broker, "anon-1", None)).await, NotAuthorized);
    let mut alice = common::connect(&broker, "alice-1", Some(("alice", "x"))).await;
    alice.subscribe_ok("py/#", AtLeastOnce).await;
    alice
        .publish("py/hello", AtLeastOnce, false, "from rust")
        .await;
    assert_eq!(alice.recv().await.payload, "from rust");
    alice.disconnect().await;

    let lines = common::eventually(
        "the Python plugin's events",
        Duration::from_secs(15),
        || {
            let lines = json_lines(&out);
            lines
                .iter()
                .any(|l| l["kind"] == "client_disconnected")
                .then_some(lines)
        },
    )
    .await;
    let has = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
        lines.iter().any(|l| l["kind"] == kind && pred(l))
    };
    assert!(
        has("client_connected", &|l| l["session"]["client_id"]
            == "alice-1"
            && l["session"]["username"] == "alice"),
        "{lines:#?}"
    );
    assert!(
        has("client_subscribed", &|l| l["topic_filter"] == "py/#"),
        "{lines:#?}"
    );
    assert!(
        has("message_received", &|l| l["message"]["topic"] == "py/hello"),
        "{lines:#?}"
    );
    assert!(!has("client_connected", &|l| l["session"]["client_id"]
        == "bob-1"));
}

fn batch(stream_id: &str, seqs: &[u64]) -> pb::EventBatch {
    let events = seqs
        .iter()
        .map(|&sequence| pb::Event {
            sequence,
            time: None,
            body: Some(pb::event::Body::ClientSubscribed(pb::ClientSubscribed {
                client_id: format!("c{sequence}"),
                topic_filter: "t".to_owned(),
                ..pb::ClientSubscribed::default()
            })),
        })
        .collect();
    pb::EventBatch {
        stream_id: stream_id.to_owned(),
        events,
    }
}

#[tokio::test]
async fn drops_duplicates_per_stream_and_acks_cumulatively() {
    if !common::python_setup() {
        return;
    }
    let dir = TempDir::new();
    let out = dir.path().join("events.jsonl");
    let plugin = start_plugin(&["--out", out.to_str().expect("utf-8")]);
    let channel = tonic::transport::Endpoint::from_shared(plugin.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connecting to the Python plugin");

    // Describe refuses unknown config keys.
    let mut describe = pb::plugin_client::PluginClient::new(channel.clone());
    let bad = pb::DescribeRequest {
        config: midge_plugin::PluginConfig::from_json(serde_json::json!({"allow-userz": ["x"]}))
            .ok()
            .map(|c| c.section().clone()),
        ..pb::DescribeRequest::default()
    };
    let err = describe.describe(bad).await.expect_err("unknown key");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let ok = describe
        .describe(pb::DescribeRequest::default())
        .await
        .expect("describe")
        .into_inner();
    assert!(ok.events.contains(&(pb::EventKind::ClientConnected as i32)));
    assert!(!ok.events.contains(&(pb::EventKind::PacketSent as i32)));

    let steps = [
        ("s1", &[1, 2, 3][..], 3),
        ("s1", &[2, 3, 4], 4), // a replay after a reconnect: 2 and 3 are dropped
        ("s2", &[1], 1),       // another broker run: its own numbering
        ("s1", &[3], 4),       // all duplicates: acked all the same
    ];
    // gRPC servers in Python send the response headers with the first reply, so the first
    // batch must be on its way before the call is awaited.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(batch(steps[0].0, steps[0].1))
        .await
        .expect("queueing");
    let mut client = pb::event_sink_client::EventSinkClient::new(channel);
    let mut replies = common::within("the stream to open", client.stream(ReceiverStream::new(rx)))
        .await
        .expect("opening the stream")
        .into_inner();
    for (n, (stream_id, seqs, ack)) in steps.into_iter().enumerate() {
        if n > 0 {
            tx.send(batch(stream_id, seqs)).await.expect("sending");
        }
        let reply = common::within("an ack", replies.message())
            .await
            .expect("stream ok")
            .expect("a reply");
        assert_eq!(reply.ack, ack, "{stream_id} {seqs:?}");
    }
    drop(tx);
    let written: Vec<(String, u64)> = json_lines(&out)
        .iter()
        .map(|l| {
            (
                l["stream_id"].as_str().unwrap_or_default().to_owned(),
                l["seq"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let expected = [("s1", 1), ("s1", 2), ("s1", 3), ("s1", 4), ("s2", 1)];
    assert_eq!(
        written,
        expected.map(|(s, n)| (s.to_owned(), n)),
        "{}",
        plugin.output()
    );
}

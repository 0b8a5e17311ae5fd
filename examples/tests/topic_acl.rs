//! `topic-acl` against the real broker: per-user subscribe ACL with wildcards (SUBACK codes),
//! `anonymous` for clients without a user name, and the publish ACL dropping publishes.

use midge_tests::examples as common;

use common::{PluginEntry, PluginProcess, TestBroker, broker_config, connect};
use rumqttc::QoS::{AtLeastOnce, AtMostOnce};
use rumqttc::SubscribeReasonCode::{Failure, Success};

const BIN: &str = env!("CARGO_BIN_EXE_topic-acl");

const ACL: &str = "\
acl:
  alice: ['sensors/#', 'alerts/+']
  anonymous: ['public/#']
publish-acl:
  alice: ['sensors/+/temp']
  anonymous: ['public/#']
cache-ttl: 1s";

async fn start(plugin: &PluginProcess, config: &str) -> TestBroker {
    let entry = PluginEntry {
        alias: "acl",
        endpoint: plugin.endpoint(),
        config,
    };
    TestBroker::start(&broker_config(Some(true), &[], &["acl"], &[entry])).await
}

#[tokio::test]
async fn subscribe_acl_by_user_with_wildcards() {
    let plugin = PluginProcess::start(BIN, &[]);
    let broker = start(&plugin, ACL).await;
    let mut alice = connect(&broker, "alice-1", Some(("alice", "x"))).await;
    let ok = [Success(AtLeastOnce)];
    for (filter, expected) in [
        ("sensors/#", &ok[..]),
        ("sensors/1/temp", &ok),
        ("sensors", &[Failure]), // `a` does not match `a/#`
        ("alerts/fire", &ok),
        ("alerts/#", &ok), // a request `a/#` matches the pattern `a/+`
        ("alerts/fire/now", &[Failure]),
        ("#", &[Failure]),
        ("public/news", &[Failure]), // anonymous's patterns are not alice's
    ] {
        assert_eq!(
            alice.subscribe(filter, AtLeastOnce).await,
            expected,
            "alice {filter}"
        );
    }
    let mut bob = connect(&broker, "bob-1", Some(("bob", "x"))).await;
    assert_eq!(
        bob.subscribe("sensors/#", AtMostOnce).await,
        [Failure],
        "bob has no entry"
    );
    let mut anon = connect(&broker, "anon-1", None).await;
    assert_eq!(
        anon.subscribe("public/news", AtMostOnce).await,
        [Success(AtMostOnce)]
    );
    assert_eq!(anon.subscribe("sensors/#", AtMostOnce).await, [Failure]);
}

#[tokio::test]
async fn publish_acl_drops_what_it_does_not_list() {
    let plugin = PluginProcess::start(BIN, &[]);
    let broker = start(&plugin, ACL).await;
    let mut alice = connect(&broker, "alice-2", Some(("alice", "x"))).await;
    alice.subscribe_ok("sensors/#", AtLeastOnce).await;
    // Acked, then dropped: the allowed message published after it arrives first.
    alice
        .publish("sensors/1/humidity", AtLeastOnce, false, "dropped")
        .await;
    alice
        .publish("sensors/1/temp", AtLeastOnce, false, "21.5")
        .await;
    let got = alice.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("sensors/1/temp", &b"21.5"[..])
    );
    // bob has no publish-acl entry: nothing he publishes is routed.
    let mut bob = connect(&broker, "bob-2", Some(("bob", "x"))).await;
    bob.publish("sensors/2/temp", AtLeastOnce, false, "dropped")
        .await;
    alice
        .publish("sensors/3/temp", AtLeastOnce, false, "marker")
        .await;
    let got = alice.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("sensors/3/temp", &b"marker"[..])
    );
}

#[tokio::test]
async fn standalone_config_file_and_no_publish_acl() {
    // The sample file through --config; the broker sends no config section, so it stays.
    let file = common::examples_dir().join("configs/plugins/acl.yaml");
    let plugin = PluginProcess::start(BIN, &["--config", file.to_str().expect("utf-8")]);
    let broker = start(&plugin, "").await;
    let mut bob = connect(&broker, "bob-3", Some(("bob", "x"))).await;
    bob.subscribe_ok("chat/#", AtLeastOnce).await;
    assert_eq!(bob.subscribe("alerts/+", AtLeastOnce).await, [Failure]);
    drop(bob);
    drop(broker);

    // Without publish-acl every publish passes (aMQTT); without acl every subscribe fails.
    let broker = start(&plugin, "cache-ttl: 0s").await;
    let mut carol = connect(&broker, "carol-1", Some(("carol", "x"))).await;
    assert_eq!(carol.subscribe("anything", AtLeastOnce).await, [Failure]);
    carol.publish("anything", AtLeastOnce, false, "ok").await;
}

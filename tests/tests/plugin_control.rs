//! Control messages a plugin sends on its event stream (`events.proto`, `Control`): publish a
//! message, disconnect a client, forget cached decisions.

use std::time::Duration;

use midge_plugin::{Action, Publish, pb};
use midge_tests::plugin::{Reply, TestPlugin, broker_yaml};
use midge_tests::raw::{Connect, Publish as RawPublish};
use midge_tests::{RawClient, TIMEOUT, TestBroker};
use tokio::time::Instant;

/// Starts a broker with `plugins` (aliases `p0`, `p1`, ...) in the auth and topic-check chains,
/// anonymous clients allowed, and waits until each plugin's event stream is up (its
/// `broker_post_start` arrived), so that it can send controls.
async fn broker(plugins: &[&TestPlugin]) -> TestBroker {
    let aliases: Vec<String> = (0..plugins.len()).map(|i| format!("p{i}")).collect();
    let entries: Vec<String> = plugins
        .iter()
        .zip(&aliases)
        .map(|(p, alias)| p.yaml(alias, ""))
        .collect();
    let list = aliases.join(", ");
    let yaml = broker_yaml(
        &entries,
        &format!(
            "auth:\n  allow-anonymous: true\n  plugins: [{list}]\ntopic-check:\n  enable: true\n  plugins: [{list}]\n"
        ),
    );
    let broker = TestBroker::start(&yaml).await;
    for plugin in plugins {
        plugin
            .wait_for_event("broker_post_start", |r| {
                r.is(pb::EventKind::BrokerPostStart)
            })
            .await;
    }
    broker
}

/// Waits until the broker logged `needle` at least `n` times (controls are applied
/// asynchronously; the broker logs each one it applies).
async fn wait_log_count(broker: &TestBroker, needle: &str, n: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let count = broker
            .log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count();
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "logged {needle:?} {count} times, expected {n}, within {TIMEOUT:?}\n{}",
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const INVALIDATED: &str = "plugin invalidates cached decisions";

#[tokio::test]
async fn control_publish_reaches_subscribers_and_is_retained() {
    let plugin = TestPlugin::start().await;
    let broker = broker(&[&plugin]).await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    assert_eq!(sub.subscribe(1, &[("ctl/#", 0)]).await, [0]);
    plugin
        .publish(Publish::new("ctl/live", "hello").qos(1))
        .await;
    let got = sub.expect_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("ctl/live", &b"hello"[..])
    );

    plugin
        .publish(Publish::new("ctl/kept", "stored").retain(true))
        .await;
    assert_eq!(sub.expect_publish().await.topic, "ctl/kept");
    let mut late = RawClient::connected(broker.mqtt_addr(), "late").await;
    assert_eq!(late.subscribe(1, &[("ctl/kept", 0)]).await, [0]);
    let replay = late.expect_publish().await;
    assert_eq!((replay.topic.as_str(), replay.retain), ("ctl/kept", true));
    let stored = plugin
        .wait_for_event("retained_stored ctl/kept", |r| {
            r.is_message(pb::EventKind::RetainedStored, "ctl/kept")
        })
        .await;
    assert_eq!(
        stored.client_id(),
        Some(""),
        "a plugin's message has no client id"
    );
    // No PUBLISH check for a plugin's message (RECEIVE checks still apply).
    assert_eq!(plugin.topic_call_count(Action::Publish, "ctl/live"), 0);
    assert_eq!(plugin.topic_call_count(Action::Receive, "ctl/live"), 1);
}

#[tokio::test]
async fn control_publish_fires_message_broadcast_with_an_empty_client_id() {
    // events.proto, PublishControl: "It fires EVENT_KIND_MESSAGE_BROADCAST with an empty
    // client_id, including to the plugin that sent it."
    let plugin = TestPlugin::start().await;
    let _broker = broker(&[&plugin]).await;
    plugin.publish(Publish::new("ctl/bcast", "x")).await;
    let event = plugin
        .wait_for_event_within(Duration::from_secs(3), |r| {
            r.is_message(pb::EventKind::MessageBroadcast, "ctl/bcast")
        })
        .await;
    let event = event.unwrap_or_else(|| {
        panic!(
            "no message_broadcast for the plugin's publish; events: {:?}",
            plugin.event_summary()
        )
    });
    assert_eq!(event.client_id(), Some(""));
}

#[tokio::test]
async fn control_disconnect_kicks_a_client_and_publishes_its_will() {
    let plugin = TestPlugin::start().await;
    let broker = broker(&[&plugin]).await;
    let mut watcher = RawClient::connected(broker.mqtt_addr(), "watcher").await;
    assert_eq!(watcher.subscribe(1, &[("will/#", 0)]).await, [0]);
    let connect = Connect::new("victim").will("will/victim", b"gone", 0, false);
    let (mut victim, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(ack.code, 0);
    plugin
        .wait_for_event("client_connected victim", |r| {
            r.is(pb::EventKind::ClientConnected) && r.client_id() == Some("victim")
        })
        .await;

    plugin.disconnect_client("nobody").await; // unknown: ignored
    plugin.disconnect_client("victim").await;
    let after = victim.expect_closed().await;
    assert!(after.is_empty(), "MQTT 3.1.1 gets no DISCONNECT: {after:?}");
    let will = watcher.expect_publish().await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("will/victim", &b"gone"[..])
    );
    let gone = plugin
        .wait_for_event("client_disconnected victim", |r| {
            r.is(pb::EventKind::ClientDisconnected) && r.client_id() == Some("victim")
        })
        .await;
    let pb::event::Body::ClientDisconnected(body) = gone.body() else {
        unreachable!("filtered on the kind")
    };
    assert!(body.will_published);
    // The watcher was not touched.
    watcher.ping().await;
}

#[tokio::test]
async fn a_kicked_client_is_reported_as_kicked() {
    // events.proto, DisconnectControl: "the disconnect event says DISCONNECT_REASON_KICKED".
    let plugin = TestPlugin::start().await;
    let broker = broker(&[&plugin]).await;
    let mut victim = RawClient::connected(broker.mqtt_addr(), "victim").await;
    plugin
        .wait_for_event("client_connected victim", |r| {
            r.is(pb::EventKind::ClientConnected) && r.client_id() == Some("victim")
        })
        .await;
    plugin.disconnect_client("victim").await;
    victim.expect_closed().await;
    let gone = plugin
        .wait_for_event("client_disconnected victim", |r| {
            r.is(pb::EventKind::ClientDisconnected) && r.client_id() == Some("victim")
        })
        .await;
    let pb::event::Body::ClientDisconnected(body) = gone.body() else {
        unreachable!("filtered on the kind")
    };
    assert_eq!(
        body.reason(),
        pb::DisconnectReason::Kicked,
        "reason of a plugin's DisconnectControl"
    );
}

#[tokio::test]
async fn invalidate_drops_cached_auth_decisions_by_client_and_by_user() {
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|_| Reply::allow().ttl(Duration::from_secs(60)));
    let broker = broker(&[&plugin]).await;
    let connect = Connect::new("inv").username("iris").password(b"pw");
    let login = || async {
        let (mut c, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
        assert_eq!(ack.code, 0);
        c.disconnect().await;
    };
    login().await;
    login().await;
    assert_eq!(plugin.auth_calls().len(), 1, "cached");

    plugin.invalidate_client("inv").await;
    wait_log_count(&broker, INVALIDATED, 1).await;
    login().await;
    assert_eq!(plugin.auth_calls().len(), 2, "invalidated by client id");
    login().await;
    assert_eq!(plugin.auth_calls().len(), 2, "cached again");

    plugin.invalidate_username("iris").await;
    wait_log_count(&broker, INVALIDATED, 2).await;
    login().await;
    assert_eq!(plugin.auth_calls().len(), 3, "invalidated by user name");
}

#[tokio::test]
async fn invalidate_drops_cached_topic_decisions() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|_| Reply::allow().ttl(Duration::from_secs(60)));
    let broker = broker(&[&plugin]).await;
    let connect = Connect::new("pub").username("pat");
    let (mut publisher, _) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    let mut id = 0;
    let mut publish = async || {
        id += 1;
        publisher
            .publish(&RawPublish::new("inv/t", b"x").qos(1, id))
            .await;
        // Handled in order: after the PINGRESP the check is done.
        publisher.ping().await;
    };
    publish().await;
    publish().await;
    assert_eq!(
        plugin.topic_call_count(Action::Publish, "inv/t"),
        1,
        "cached"
    );

    plugin.invalidate_client("pub").await;
    wait_log_count(&broker, INVALIDATED, 1).await;
    publish().await;
    assert_eq!(
        plugin.topic_call_count(Action::Publish, "inv/t"),
        2,
        "by client id"
    );

    plugin.invalidate_username("pat").await;
    wait_log_count(&broker, INVALIDATED, 2).await;
    publish().await;
    assert_eq!(
        plugin.topic_call_count(Action::Publish, "inv/t"),
        3,
        "by user name"
    );
}

#[tokio::test]
async fn invalidate_with_no_client_and_no_user_drops_every_entry() {
    // events.proto, InvalidateControl: "when both are empty, every entry of this plugin is
    // dropped".
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|_| Reply::allow().ttl(Duration::from_secs(60)));
    plugin.on_topic(|_| Reply::allow().ttl(Duration::from_secs(60)));
    let broker = broker(&[&plugin]).await;
    let connect = Connect::new("all").username("al").password(b"pw");
    let (mut c, _) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    c.publish(&RawPublish::new("all/t", b"x").qos(1, 1)).await;
    c.ping().await;
    assert_eq!(plugin.topic_call_count(Action::Publish, "all/t"), 1);

    plugin.invalidate_all().await;
    wait_log_count(&broker, INVALIDATED, 1).await;
    c.publish(&RawPublish::new("all/t", b"x").qos(1, 2)).await;
    c.ping().await;
    assert_eq!(
        plugin.topic_call_count(Action::Publish, "all/t"),
        2,
        "the topic cache was emptied"
    );
    c.disconnect().await;
    let (mut c, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(ack.code, 0);
    assert_eq!(plugin.auth_calls().len(), 2, "the auth cache was emptied");
    c.disconnect().await;
}

#[tokio::test]
async fn invalidate_drops_only_the_sending_plugins_entries() {
    // events.proto, InvalidateControl: "Only this plugin's (alias's) entries are dropped."
    let a = TestPlugin::start().await;
    let b = TestPlugin::start().await;
    for plugin in [&a, &b] {
        plugin.on_auth(|_| Reply::allow().ttl(Duration::from_secs(60)));
    }
    let broker = broker(&[&a, &b]).await;
    let connect = Connect::new("two").username("tess").password(b"pw");
    let (mut c, _) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    c.disconnect().await;

    a.invalidate_client("two").await;
    wait_log_count(&broker, INVALIDATED, 1).await;
    let (mut c, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(ack.code, 0);
    c.disconnect().await;
    assert_eq!(a.auth_calls().len(), 2, "a's own entry was dropped");
    assert_eq!(
        b.auth_calls().len(),
        1,
        "b's cached auth decision must survive a's invalidation"
    );
}

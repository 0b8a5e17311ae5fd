//! Publish and subscribe (MQTT 3.1.1 §3.3, §3.8, §3.10, §4.7): QoS 0/1/2 end to end, wildcard
//! matching, `$` topics, QoS downgrade, overlapping subscriptions, unsubscribe, SUBACK codes.
//!
//! Absence is checked without sleeping: after the messages that must not arrive, a sentinel
//! that must arrive is published on the same path, and it must be the next thing received
//! (the broker keeps one publisher's messages to one subscriber in order, MQTT 3.1.1 §4.6).

use midge_tests::raw::{Publish, packet};
use midge_tests::{MqttClient, RawClient, TestBroker};
use rumqttc::QoS;

fn topics(messages: &[rumqttc::Publish]) -> Vec<&str> {
    messages.iter().map(|m| m.topic.as_str()).collect()
}

async fn round_trip(qos: QoS) {
    let broker = TestBroker::start_default().await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("qos/test", qos).await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("qos/test", qos, false, "payload").await;

    let got = sub.recv().await;
    assert_eq!(got.topic, "qos/test");
    assert_eq!(&got.payload[..], b"payload");
    assert_eq!(
        got.qos, qos,
        "delivered at the QoS of publication and subscription"
    );
    assert!(!got.retain);
    assert!(!got.dup);
}

/// `--worker-threads 1` (what a broker pinned to one CPU gets by default) runs the broker on
/// tokio's single-threaded runtime: the same traffic must flow, at every QoS.
#[tokio::test]
async fn a_single_threaded_broker_delivers_every_qos() {
    let broker = TestBroker::start_with_args(
        midge_tests::broker::DEFAULT_CONFIG,
        &["--worker-threads", "1"],
    )
    .await;
    broker
        .wait_for_log("the single-threaded start", |l| {
            l.contains("\"starting\"") && l.contains("\"worker_threads\":1")
        })
        .await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("st/#", QoS::ExactlyOnce).await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .publish(&format!("st/{i}"), qos, false, format!("m{i}"))
            .await;
        let got = sub.recv().await;
        assert_eq!(
            (got.topic.as_str(), got.qos),
            (format!("st/{i}").as_str(), qos)
        );
        assert_eq!(&got.payload[..], format!("m{i}").as_bytes());
    }
}

#[tokio::test]
async fn qos0_end_to_end() {
    round_trip(QoS::AtMostOnce).await;
}

#[tokio::test]
async fn qos1_end_to_end() {
    round_trip(QoS::AtLeastOnce).await;
}

#[tokio::test]
async fn qos2_end_to_end() {
    round_trip(QoS::ExactlyOnce).await;
}

#[tokio::test]
async fn wildcards_match_per_spec() {
    let broker = TestBroker::start_default().await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "wild").await;
    sub.subscribe_ok("sensors/+/temp", QoS::AtLeastOnce).await;
    sub.subscribe_ok("home/#", QoS::AtLeastOnce).await;
    let mut single = MqttClient::connect(broker.mqtt_addr(), "single").await;
    single.subscribe_ok("+", QoS::AtLeastOnce).await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    for topic in [
        "sensors/a/temp",   // + matches one level
        "sensors/a/b/temp", // ... not two
        "sensors//temp",    // ... and an empty level
        "home",             // # matches the parent level too [MQTT-4.7.1-2]; so does +
        "home/kitchen/light",
        "house/kitchen",
        "top",  // + alone matches a one-level topic
        "/top", // ... but not two levels (the first one empty)
        "home/end",
        "end",
    ] {
        publisher.publish(topic, QoS::AtLeastOnce, false, "x").await;
    }
    let got = sub.recv_n(5).await;
    assert_eq!(
        topics(&got),
        [
            "sensors/a/temp",
            "sensors//temp",
            "home",
            "home/kitchen/light",
            "home/end"
        ]
    );
    let got = single.recv_n(3).await;
    assert_eq!(topics(&got), ["home", "top", "end"]);
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    // [MQTT-4.7.2-1]: `#` and `+/...` do not match topic names starting with `$`.
    let broker = TestBroker::start_default().await;
    let mut all = MqttClient::connect(broker.mqtt_addr(), "all").await;
    all.subscribe_ok("#", QoS::AtLeastOnce).await;
    let mut plus = MqttClient::connect(broker.mqtt_addr(), "plus").await;
    plus.subscribe_ok("+/bar", QoS::AtLeastOnce).await;
    let mut dollar = MqttClient::connect(broker.mqtt_addr(), "dollar").await;
    dollar.subscribe_ok("$foo/#", QoS::AtLeastOnce).await;

    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher
        .publish("$foo/bar", QoS::AtLeastOnce, false, "dollar")
        .await;
    publisher
        .publish("x/bar", QoS::AtLeastOnce, false, "sentinel")
        .await;

    assert_eq!(dollar.recv().await.topic, "$foo/bar");
    assert_eq!(all.recv().await.topic, "x/bar", "`#` must skip $foo/bar");
    assert_eq!(
        plus.recv().await.topic,
        "x/bar",
        "`+/bar` must skip $foo/bar"
    );
}

#[tokio::test]
async fn delivery_qos_is_the_minimum_of_publish_and_subscription() {
    // [MQTT-3.8.4-6] and §3.3.5: downgraded to the granted QoS, never upgraded.
    let broker = TestBroker::start_default().await;
    let mut q0 = MqttClient::connect(broker.mqtt_addr(), "q0").await;
    q0.subscribe_ok("down/#", QoS::AtMostOnce).await;
    let mut q1 = MqttClient::connect(broker.mqtt_addr(), "q1").await;
    q1.subscribe_ok("down/#", QoS::AtLeastOnce).await;
    let mut q2 = MqttClient::connect(broker.mqtt_addr(), "q2").await;
    q2.subscribe_ok("down/#", QoS::ExactlyOnce).await;

    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher
        .publish("down/2", QoS::ExactlyOnce, false, "two")
        .await;
    publisher
        .publish("down/0", QoS::AtMostOnce, false, "zero")
        .await;

    for (sub, granted) in [
        (&mut q0, QoS::AtMostOnce),
        (&mut q1, QoS::AtLeastOnce),
        (&mut q2, QoS::ExactlyOnce),
    ] {
        let two = sub.recv().await;
        assert_eq!((two.topic.as_str(), two.qos), ("down/2", granted));
        let zero = sub.recv().await;
        assert_eq!((zero.topic.as_str(), zero.qos), ("down/0", QoS::AtMostOnce));
    }
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let broker = TestBroker::start_default().await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "overlap").await;
    assert_eq!(sub.subscribe(1, &[("a/#", 0), ("a/b", 1)]).await, [0, 1]);

    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publisher
        .publish(&Publish::new("a/b", b"once").qos(1, 1))
        .await;
    publisher
        .publish(&Publish::new("a/c", b"sentinel").qos(1, 2))
        .await;

    let first = sub.expect_publish().await;
    assert_eq!((first.topic.as_str(), first.qos), ("a/b", 1), "{first:?}");
    sub.send_ok(&packet::puback(
        first.packet_id.expect("QoS 1 has a packet id"),
    ))
    .await;
    let next = sub.expect_publish().await;
    assert_eq!(
        (next.topic.as_str(), next.payload.as_slice(), next.qos),
        ("a/c", &b"sentinel"[..], 0)
    );
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let broker = TestBroker::start_default().await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "unsub").await;
    sub.subscribe_ok("u/1", QoS::AtLeastOnce).await;
    sub.subscribe_ok("u/2", QoS::AtLeastOnce).await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher
        .publish("u/1", QoS::AtLeastOnce, false, "before")
        .await;
    assert_eq!(sub.recv().await.topic, "u/1");

    sub.unsubscribe("u/1").await;
    publisher
        .publish("u/1", QoS::AtLeastOnce, false, "after")
        .await;
    publisher
        .publish("u/2", QoS::AtLeastOnce, false, "sentinel")
        .await;
    assert_eq!(sub.recv().await.topic, "u/2", "u/1 was unsubscribed");
}

#[tokio::test]
async fn unsubscribe_of_an_unknown_filter_is_acknowledged() {
    // [MQTT-3.10.4-4], [MQTT-3.10.4-5]: UNSUBACK even when nothing was removed.
    let broker = TestBroker::start_default().await;
    let mut client = RawClient::connected(broker.mqtt_addr(), "unknown").await;
    client.unsubscribe(9, &["never/subscribed"]).await;
    client.ping().await;
}

#[tokio::test]
async fn suback_carries_one_granted_qos_per_filter() {
    // [MQTT-3.8.4-1], [MQTT-3.8.4-5]: SUBACK with the same packet id, one code per filter, in order.
    let broker = TestBroker::start_default().await;
    let mut client = RawClient::connected(broker.mqtt_addr(), "codes").await;
    client
        .send_ok(&packet::subscribe(
            0x1234,
            &[("s/a", 0), ("s/b", 1), ("s/+/c", 2), ("s/#", 1)],
        ))
        .await;
    let suback = client.read_packet().await;
    assert_eq!(suback.first_byte, 0x90, "{suback:?}");
    assert_eq!(suback.suback(), (0x1234, vec![0, 1, 2, 1]));
}

#[tokio::test]
async fn resubscribing_replaces_the_subscription() {
    // [MQTT-3.8.4-3]: the new subscription replaces the old one; one copy, at the new QoS.
    let broker = TestBroker::start_default().await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "resub").await;
    assert_eq!(sub.subscribe(1, &[("r/x", 1)]).await, [1]);
    assert_eq!(sub.subscribe(2, &[("r/x", 0)]).await, [0]);
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publisher
        .publish(&Publish::new("r/x", b"one").qos(1, 1))
        .await;
    publisher
        .publish(&Publish::new("r/x", b"two").qos(1, 2))
        .await;
    let first = sub.expect_publish().await;
    assert_eq!((first.payload.as_slice(), first.qos), (&b"one"[..], 0));
    let second = sub.expect_publish().await;
    assert_eq!((second.payload.as_slice(), second.qos), (&b"two"[..], 0));
}

async fn assert_subscribe_closes(filters: &[(&str, u8)]) {
    let broker = TestBroker::start_default().await;
    let mut client = RawClient::connected(broker.mqtt_addr(), "bad-filter").await;
    client.send_ok(&packet::subscribe(1, filters)).await;
    let before = client.expect_closed().await;
    assert!(
        before.is_empty(),
        "reply to SUBSCRIBE {filters:?}: {before:?}"
    );
    RawClient::connected(broker.mqtt_addr(), "next")
        .await
        .ping()
        .await;
}

#[tokio::test]
async fn subscribe_with_hash_not_last_closes_the_connection() {
    // [MQTT-4.7.1-2] and §4.8 (as mosquitto does): an invalid filter is a protocol violation.
    assert_subscribe_closes(&[("a/#/b", 0)]).await;
}

#[tokio::test]
async fn subscribe_with_wildcard_inside_a_level_closes_the_connection() {
    // [MQTT-4.7.1-3]: `+` must occupy a whole level; same for `#`.
    assert_subscribe_closes(&[("a/b+", 0)]).await;
}

#[tokio::test]
async fn subscribe_with_qos_3_closes_the_connection() {
    // [MQTT-3-8.3-4]: a requested QoS of 3 is malformed.
    assert_subscribe_closes(&[("ok", 3)]).await;
}

#[tokio::test]
async fn subscribe_without_filters_closes_the_connection() {
    // [MQTT-3.8.3-3]: at least one filter.
    assert_subscribe_closes(&[]).await;
}

#[tokio::test]
async fn a_stalled_subscriber_does_not_hold_up_anyone_else() {
    let broker = TestBroker::start_default().await;
    let mut stalled = RawClient::connected(broker.mqtt_addr(), "stalled").await;
    assert_eq!(stalled.subscribe(1, &[("flood", 0)]).await, [0]);
    let mut healthy = MqttClient::connect(broker.mqtt_addr(), "healthy").await;
    healthy.subscribe_ok("other", QoS::AtLeastOnce).await;

    // 16 MiB to a client that never reads: more than the socket buffers of both sides hold.
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    let payload = vec![b'x'; 64 * 1024];
    for _ in 0..256 {
        publisher
            .publish("flood", QoS::AtMostOnce, false, payload.clone())
            .await;
    }
    publisher
        .publish("other", QoS::AtLeastOnce, false, "still flowing")
        .await;
    assert_eq!(&healthy.recv().await.payload[..], b"still flowing");
    RawClient::connected(broker.mqtt_addr(), "newcomer")
        .await
        .ping()
        .await;
    drop(stalled);
}

//! Retained messages (MQTT 3.1.1 §3.3.1.3): stored, replaced, cleared by an empty payload,
//! sent on subscribe with RETAIN set, delivered live with RETAIN clear.
//!
//! A retained publish is acknowledged (QoS 1) before anyone subscribes, so the broker has it.
//! "Nothing more" is checked with a live sentinel published after the SUBACK: it must be the
//! next message.

use std::collections::BTreeSet;

use midge_tests::{MqttClient, TestBroker};
use rumqttc::QoS;

#[tokio::test]
async fn retained_message_is_sent_on_subscribe_with_retain_set() {
    let broker = TestBroker::start_default().await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("r/t", QoS::AtLeastOnce, true, "v1").await;

    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("r/t", QoS::AtLeastOnce).await;
    let got = sub.recv().await;
    assert_eq!((got.topic.as_str(), &got.payload[..]), ("r/t", &b"v1"[..]));
    assert!(
        got.retain,
        "[MQTT-3.3.1-8]: RETAIN is set when sent because of a new subscription"
    );
    assert_eq!(got.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn retained_message_respects_the_subscription_qos() {
    let broker = TestBroker::start_default().await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("r/q", QoS::ExactlyOnce, true, "q2").await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("r/q", QoS::AtMostOnce).await;
    let got = sub.recv().await;
    assert_eq!((got.qos, got.retain), (QoS::AtMostOnce, true));
}

#[tokio::test]
async fn a_new_retained_message_replaces_the_old_one() {
    // [MQTT-3.3.1-5]: the new message replaces any existing retained message for the topic.
    let broker = TestBroker::start_default().await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("r/t", QoS::AtLeastOnce, true, "v1").await;
    publisher.publish("r/t", QoS::AtLeastOnce, true, "v2").await;

    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("r/t", QoS::AtLeastOnce).await;
    let got = sub.recv().await;
    assert_eq!((&got.payload[..], got.retain), (&b"v2"[..], true));

    publisher
        .publish("r/t", QoS::AtLeastOnce, false, "live")
        .await;
    let next = sub.recv().await;
    assert_eq!(
        (&next.payload[..], next.retain),
        (&b"live"[..], false),
        "only one retained copy"
    );
}

#[tokio::test]
async fn an_empty_retained_payload_clears_the_topic() {
    // [MQTT-3.3.1-10], [MQTT-3.3.1-11].
    let broker = TestBroker::start_default().await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("r/t", QoS::AtLeastOnce, true, "v1").await;
    publisher.publish("r/t", QoS::AtLeastOnce, true, "").await;

    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("r/t", QoS::AtLeastOnce).await;
    publisher
        .publish("r/t", QoS::AtLeastOnce, false, "live")
        .await;
    let got = sub.recv().await;
    assert_eq!(
        (&got.payload[..], got.retain),
        (&b"live"[..], false),
        "the retained message was cleared"
    );
}

#[tokio::test]
async fn live_delivery_of_a_retained_publish_has_retain_clear() {
    // [MQTT-3.3.1-9]: RETAIN is 0 when sent to an established subscription.
    let broker = TestBroker::start_default().await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("r/live", QoS::AtLeastOnce).await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher
        .publish("r/live", QoS::AtLeastOnce, true, "now")
        .await;
    let got = sub.recv().await;
    assert_eq!((&got.payload[..], got.retain), (&b"now"[..], false));

    // ... and it was stored all the same.
    let mut late = MqttClient::connect(broker.mqtt_addr(), "late").await;
    late.subscribe_ok("r/live", QoS::AtLeastOnce).await;
    let got = late.recv().await;
    assert_eq!((&got.payload[..], got.retain), (&b"now"[..], true));
}

#[tokio::test]
async fn wildcard_subscription_gets_every_matching_retained_message() {
    let broker = TestBroker::start_default().await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    for topic in ["w/a", "w/b", "w/c/d", "x/a", "$w/a"] {
        publisher
            .publish(topic, QoS::AtLeastOnce, true, topic)
            .await;
    }

    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("w/#", QoS::AtLeastOnce).await;
    let got = sub.recv_n(3).await;
    assert!(
        got.iter()
            .all(|m| m.retain && m.payload == m.topic.as_bytes()),
        "{got:?}"
    );
    let got: BTreeSet<_> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(got, BTreeSet::from(["w/a", "w/b", "w/c/d"]));

    publisher
        .publish("w/end", QoS::AtLeastOnce, false, "live")
        .await;
    assert_eq!(
        sub.recv().await.topic,
        "w/end",
        "no other retained message matches w/#"
    );

    // `#` does not match the retained `$w/a` either [MQTT-4.7.2-1].
    let mut all = MqttClient::connect(broker.mqtt_addr(), "all").await;
    all.subscribe_ok("#", QoS::AtLeastOnce).await;
    let got = all.recv_n(4).await;
    let got: BTreeSet<_> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(got, BTreeSet::from(["w/a", "w/b", "w/c/d", "x/a"]));
    publisher
        .publish("all/end", QoS::AtLeastOnce, false, "live")
        .await;
    assert_eq!(all.recv().await.topic, "all/end");
}

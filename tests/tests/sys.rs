//! `$SYS` topics, with mosquitto's names, published every `sys-interval`.

use std::collections::BTreeMap;
use std::time::Duration;

use midge_tests::broker::tcp_config;
use midge_tests::{MqttClient, TestBroker, within};
use rumqttc::QoS;

const TOPICS: [&str; 6] = [
    "$SYS/broker/version",
    "$SYS/broker/uptime",
    "$SYS/broker/clients/connected",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/subscriptions/count",
];

fn number(value: &str, topic: &str) -> u64 {
    value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{topic} = {value:?} is not a number"))
}

#[tokio::test]
async fn sys_topics_are_published() {
    let broker = TestBroker::start(&tcp_config("", "sys-interval: 1s\n")).await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sys").await;
    sub.subscribe_ok("$SYS/#", QoS::AtMostOnce).await;
    // Live reports only (RETAIN clear): a retained value may predate this client.
    let mut seen = BTreeMap::new();
    within("a live report of every $SYS topic", async {
        while !TOPICS.iter().all(|t| seen.contains_key(*t)) {
            let message = sub.recv().await;
            assert!(message.topic.starts_with("$SYS/"), "{message:?}");
            if !message.retain {
                let value = String::from_utf8_lossy(&message.payload).into_owned();
                seen.insert(message.topic.clone(), value);
            }
        }
    })
    .await;

    let version = &seen["$SYS/broker/version"];
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "version {version:?}"
    );
    let uptime = &seen["$SYS/broker/uptime"];
    let seconds = uptime
        .strip_suffix(" seconds")
        .unwrap_or_else(|| panic!("uptime {uptime:?}: mosquitto's `N seconds`"));
    number(seconds, "$SYS/broker/uptime");
    assert!(
        number(&seen["$SYS/broker/clients/connected"], "clients/connected") >= 1,
        "{seen:?}"
    );
    number(&seen["$SYS/broker/messages/received"], "messages/received");
    number(&seen["$SYS/broker/messages/sent"], "messages/sent");
    assert!(
        number(
            &seen["$SYS/broker/subscriptions/count"],
            "subscriptions/count"
        ) >= 1,
        "{seen:?}"
    );
}

#[tokio::test]
async fn sys_counters_move() {
    let broker = TestBroker::start(&tcp_config("", "sys-interval: 1s\n")).await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sys").await;
    sub.subscribe_ok("$SYS/broker/messages/received", QoS::AtMostOnce)
        .await;
    let first = number(
        &String::from_utf8_lossy(&sub.recv().await.payload),
        "messages/received",
    );
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    for _ in 0..3 {
        publisher
            .publish("counted", QoS::AtLeastOnce, false, "x")
            .await;
    }
    // A later report counts the three publishes.
    within("messages/received to count three more", async {
        loop {
            let now = number(
                &String::from_utf8_lossy(&sub.recv().await.payload),
                "messages/received",
            );
            if now >= first + 3 {
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn sys_interval_0s_disables_sys_topics() {
    let broker = TestBroker::start(&tcp_config("", "sys-interval: 0s\n")).await;
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sys").await;
    sub.subscribe_ok("$SYS/#", QoS::AtMostOnce).await;
    // No sentinel can share `$SYS/#`: wait two and a half 1 s periods instead.
    let got = tokio::time::timeout(Duration::from_millis(2500), sub.recv()).await;
    assert!(got.is_err(), "got {got:?} with $SYS disabled");
}

//! Will messages (MQTT 3.1.1 §3.1.2.5, §3.14): published when a client goes away without
//! DISCONNECT (socket dropped, keepalive expired), not after DISCONNECT, not at broker
//! shutdown; a retained will is stored.

use std::time::Duration;

use midge_tests::raw::{Connect, packet};
use midge_tests::{MqttClient, RawClient, TestBroker};
use rumqttc::QoS;

fn with_will(client_id: &str, topic: &str, retain: bool) -> Connect {
    Connect::new(client_id).will(topic, b"gone", 1, retain)
}

#[tokio::test]
async fn will_is_published_when_the_socket_drops() {
    let broker = TestBroker::start_default().await;
    let mut observer = MqttClient::connect(broker.mqtt_addr(), "observer").await;
    observer.subscribe_ok("will/#", QoS::AtLeastOnce).await;

    let (client, ack) = RawClient::connect(
        broker.mqtt_addr(),
        &with_will("doomed", "will/doomed", false),
    )
    .await;
    assert_eq!(ack.code, 0);
    drop(client);

    let will = observer.recv().await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("will/doomed", &b"gone"[..])
    );
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(!will.retain);
}

#[tokio::test]
async fn will_is_discarded_after_disconnect() {
    // [MQTT-3.1.2-10], [MQTT-3.14.4-3].
    let broker = TestBroker::start_default().await;
    let mut observer = MqttClient::connect(broker.mqtt_addr(), "observer").await;
    observer.subscribe_ok("will/#", QoS::AtLeastOnce).await;

    let (mut client, _) = RawClient::connect(
        broker.mqtt_addr(),
        &with_will("polite", "will/polite", false),
    )
    .await;
    client.disconnect().await; // Returns once the broker has closed the connection.

    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher
        .publish("will/sentinel", QoS::AtLeastOnce, false, "sentinel")
        .await;
    assert_eq!(
        observer.recv().await.topic,
        "will/sentinel",
        "no will after DISCONNECT"
    );
}

#[tokio::test]
async fn will_is_published_when_keepalive_expires() {
    // [MQTT-3.1.2-24]: no packet within 1.5 × keepalive → the server disconnects the client,
    // which publishes its will.
    let broker = TestBroker::start_default().await;
    let mut observer = MqttClient::connect(broker.mqtt_addr(), "observer").await;
    observer.subscribe_ok("will/#", QoS::AtLeastOnce).await;

    let start = tokio::time::Instant::now();
    let (mut silent, ack) = RawClient::connect(
        broker.mqtt_addr(),
        &with_will("silent", "will/silent", false).keep_alive(1),
    )
    .await;
    assert_eq!(ack.code, 0);
    // Keepalive 1 s: closed after 1.5 s; `recv` and `expect_closed` each allow 10 s.
    let will = observer.recv().await;
    assert_eq!(will.topic, "will/silent");
    let before = silent.expect_closed().await;
    assert!(before.is_empty(), "{before:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "closed after {:?}, before the keepalive even expired",
        start.elapsed()
    );
}

#[tokio::test]
async fn keepalive_is_kept_by_pings() {
    // The other side of the rule: a client that pings in time is not disconnected.
    let broker = TestBroker::start_default().await;
    let (mut client, _) =
        RawClient::connect(broker.mqtt_addr(), &Connect::new("pinger").keep_alive(1)).await;
    for _ in 0..6 {
        // 6 × 500 ms = 3 s, twice the 1.5 s limit, with a ping every 0.5 s.
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.ping().await;
    }
}

#[tokio::test]
async fn retained_will_is_stored() {
    let broker = TestBroker::start_default().await;
    let mut observer = MqttClient::connect(broker.mqtt_addr(), "observer").await;
    observer.subscribe_ok("will/#", QoS::AtLeastOnce).await;

    let (client, _) =
        RawClient::connect(broker.mqtt_addr(), &with_will("keeper", "will/kept", true)).await;
    drop(client);
    let live = observer.recv().await;
    assert_eq!(
        (live.topic.as_str(), live.retain),
        ("will/kept", false),
        "live delivery: RETAIN clear"
    );

    let mut late = MqttClient::connect(broker.mqtt_addr(), "late").await;
    late.subscribe_ok("will/kept", QoS::AtLeastOnce).await;
    let stored = late.recv().await;
    assert_eq!((&stored.payload[..], stored.retain), (&b"gone"[..], true));
}

#[tokio::test]
async fn will_is_not_published_when_the_broker_shuts_down() {
    let mut broker = TestBroker::start_default().await;
    let mut observer = RawClient::connected(broker.mqtt_addr(), "observer").await;
    assert_eq!(observer.subscribe(1, &[("will/#", 1)]).await, [1]);
    let (_client, ack) = RawClient::connect(
        broker.mqtt_addr(),
        &with_will("bystander", "will/bystander", false),
    )
    .await;
    assert_eq!(ack.code, 0);

    broker.sigterm();
    let before = observer.expect_closed().await;
    assert!(
        before.iter().all(|p| p.kind() != packet::PUBLISH),
        "the observer got a will during shutdown: {before:?}"
    );
    assert!(broker.wait_exit(midge_tests::TIMEOUT).await.success());
}

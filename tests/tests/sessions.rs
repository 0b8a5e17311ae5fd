//! Sessions (MQTT 3.1.1 §3.1.2.4, §4.1, §4.3, §4.4): persistent subscriptions, offline queues
//! and their limit, re-delivery with DUP, QoS 2 duplicate suppression, clean session.

use midge_tests::broker::tcp_config;
use midge_tests::raw::{Connect, Publish, packet};
use midge_tests::{MqttClient, RawClient, TestBroker};
use rumqttc::QoS;

fn persistent(client_id: &str) -> Connect {
    Connect::new(client_id).clean_session(false)
}

/// Connects `client_id` with clean session 0, subscribes `filter` at QoS 1, and disconnects.
async fn park_session(broker: &TestBroker, client_id: &str, filter: &str) {
    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &persistent(client_id)).await;
    assert_eq!(ack.code, 0);
    assert!(
        !ack.session_present,
        "[MQTT-3.2.2-3]: no session existed yet"
    );
    assert_eq!(client.subscribe(1, &[(filter, 1)]).await, [1]);
    client.disconnect().await;
}

#[tokio::test]
async fn subscriptions_survive_a_reconnect() {
    let broker = TestBroker::start_default().await;
    park_session(&broker, "keeper", "s/t").await;

    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &persistent("keeper")).await;
    assert_eq!(
        ack,
        packet::ConnAck {
            session_present: true,
            code: 0
        },
        "[MQTT-3.2.2-2]"
    );
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher
        .publish("s/t", QoS::AtLeastOnce, false, "hello")
        .await;
    let got = client.expect_publish().await;
    assert_eq!(
        (got.topic.as_str(), got.payload.as_slice(), got.qos),
        ("s/t", &b"hello"[..], 1)
    );
}

#[tokio::test]
async fn qos1_messages_wait_for_an_offline_client_and_qos0_do_not() {
    let broker = TestBroker::start_default().await;
    park_session(&broker, "offline", "o/#").await;

    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher
        .publish("o/zero", QoS::AtMostOnce, false, "zero")
        .await;
    publisher
        .publish("o/one", QoS::AtLeastOnce, false, "one")
        .await;
    // The QoS 0 publish was sent before the QoS 1 one was acknowledged, so the broker has
    // handled both when the client comes back.

    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &persistent("offline")).await;
    assert!(ack.session_present);
    let first = client.expect_publish().await;
    assert_eq!(
        (first.topic.as_str(), first.qos),
        ("o/one", 1),
        "the QoS 0 message is not queued"
    );
    client
        .send_ok(&packet::puback(first.packet_id.expect("QoS 1")))
        .await;

    publisher
        .publish("o/live", QoS::AtLeastOnce, false, "sentinel")
        .await;
    let next = client.expect_publish().await;
    assert_eq!(next.topic, "o/live", "nothing else was queued");
}

async fn offline_queue(policy: &str) -> Vec<String> {
    let sections = format!("limits:\n  max-queued-messages: 5\n  queue-full-policy: {policy}\n");
    let broker = TestBroker::start(&tcp_config("", &sections)).await;
    park_session(&broker, "full", "q/t").await;

    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    for i in 0..8 {
        publisher
            .publish("q/t", QoS::AtLeastOnce, false, format!("m{i}"))
            .await;
    }
    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &persistent("full")).await;
    assert!(ack.session_present);
    let mut got = Vec::new();
    for _ in 0..5 {
        let p = client.expect_publish().await;
        client
            .send_ok(&packet::puback(p.packet_id.expect("QoS 1")))
            .await;
        got.push(String::from_utf8_lossy(&p.payload).into_owned());
    }
    publisher
        .publish("q/t", QoS::AtLeastOnce, false, "live")
        .await;
    let next = client.expect_publish().await;
    assert_eq!(next.payload, b"live", "only five messages were kept");
    got
}

#[tokio::test]
async fn full_offline_queue_with_drop_newest_keeps_the_first_messages() {
    assert_eq!(
        offline_queue("drop-newest").await,
        ["m0", "m1", "m2", "m3", "m4"]
    );
}

#[tokio::test]
async fn full_offline_queue_with_drop_oldest_keeps_the_last_messages() {
    assert_eq!(
        offline_queue("drop-oldest").await,
        ["m3", "m4", "m5", "m6", "m7"]
    );
}

#[tokio::test]
async fn unacknowledged_qos1_is_resent_with_dup_on_reconnect() {
    // [MQTT-4.4.0-1]: re-send unacknowledged PUBLISH with the original packet id;
    // [MQTT-3.3.1-1]: DUP set on the re-delivery.
    let broker = TestBroker::start_default().await;
    park_session(&broker, "forgetful", "d/t").await;
    let (mut client, _) = RawClient::connect(broker.mqtt_addr(), &persistent("forgetful")).await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("d/t", QoS::AtLeastOnce, false, "x").await;

    let first = client.expect_publish().await;
    assert_eq!((first.qos, first.dup), (1, false), "{first:?}");
    drop(client); // No PUBACK: the socket just goes away.

    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &persistent("forgetful")).await;
    assert!(ack.session_present);
    let again = client.expect_publish().await;
    assert_eq!(
        (
            again.topic.as_str(),
            again.payload.as_slice(),
            again.qos,
            again.dup,
            again.packet_id
        ),
        ("d/t", &b"x"[..], 1, true, first.packet_id),
        "{again:?}"
    );
    client
        .send_ok(&packet::puback(again.packet_id.expect("QoS 1")))
        .await;

    publisher
        .publish("d/t", QoS::AtLeastOnce, false, "sentinel")
        .await;
    let next = client.expect_publish().await;
    assert_eq!(
        (next.payload.as_slice(), next.dup),
        (&b"sentinel"[..], false),
        "acknowledged once, sent once"
    );
}

#[tokio::test]
async fn duplicate_qos2_publish_is_delivered_once() {
    // [MQTT-4.3.3-2]: until PUBREL, a PUBLISH with the same packet id is not a new message.
    let broker = TestBroker::start_default().await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    assert_eq!(sub.subscribe(1, &[("x/2", 0)]).await, [0]);

    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    let message = Publish::new("x/2", b"once").qos(2, 7);
    publisher.send_ok(&message.encode()).await;
    assert_eq!(
        publisher
            .wait_for(packet::PUBREC, Some(7))
            .await
            .packet_id(),
        7
    );
    publisher.send_ok(&message.clone().dup(true).encode()).await;
    publisher.wait_for(packet::PUBREC, Some(7)).await; // [MQTT-4.3.3-2]: PUBREC again.
    publisher.send_ok(&packet::pubrel(7)).await;
    publisher.wait_for(packet::PUBCOMP, Some(7)).await;
    publisher
        .publish(&Publish::new("x/2", b"sentinel").qos(2, 8))
        .await;

    assert_eq!(sub.expect_publish().await.payload, b"once");
    assert_eq!(
        sub.expect_publish().await.payload,
        b"sentinel",
        "the duplicate was delivered again"
    );
}

#[tokio::test]
async fn clean_session_discards_the_old_session() {
    // [MQTT-3.1.2-6]: clean session 1 discards any previous session and starts a new one.
    let broker = TestBroker::start_default().await;
    park_session(&broker, "fresh", "c/old").await;

    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &Connect::new("fresh")).await;
    assert_eq!(
        ack,
        packet::ConnAck {
            session_present: false,
            code: 0
        },
        "[MQTT-3.2.2-1]"
    );
    assert_eq!(client.subscribe(1, &[("c/new", 1)]).await, [1]);
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    publisher
        .publish("c/old", QoS::AtLeastOnce, false, "old")
        .await;
    publisher
        .publish("c/new", QoS::AtLeastOnce, false, "sentinel")
        .await;
    assert_eq!(
        client.expect_publish().await.topic,
        "c/new",
        "the old subscription is gone"
    );
    client.disconnect().await;

    // A clean session is not kept after the client leaves either.
    let (_client, ack) = RawClient::connect(broker.mqtt_addr(), &persistent("fresh")).await;
    assert_eq!(
        ack,
        packet::ConnAck {
            session_present: false,
            code: 0
        }
    );
}

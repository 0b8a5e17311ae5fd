//! Flow control under load, at the broker's default limits: a burst that overflows a
//! subscriber's queue loses no acknowledged QoS 1 message (the publishers wait instead), a
//! subscriber that stops draining is disconnected after `slow-consumer-timeout` without holding
//! its publishers longer, and every drop is logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use midge_tests::admin::metrics_addr;
use midge_tests::broker::tcp_config;
use midge_tests::grpcurl::scrape;
use midge_tests::raw::v5::{Connect5, Props, V5Client, prop, reason};
use midge_tests::raw::{Connect, Publish, Read, packet};
use midge_tests::{RawClient, TIMEOUT, TestBroker, eventually, within};

/// Publishers in the burst.
const PUBLISHERS: usize = 4;
/// QoS 1 messages each publisher sends at once: together more than the default queue of
/// 10,000 messages and window of 256.
const PER_PUBLISHER: usize = 3_000;

/// One publisher's whole burst in one write: QoS 1, payload `<publisher>:<sequence>`.
fn burst(publisher: usize, count: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for seq in 0..count {
        let id = u16::try_from(seq + 1).expect("fewer than 65,536 messages");
        let payload = format!("{publisher}:{seq}");
        bytes.extend(
            Publish::new(&format!("burst/{publisher}"), payload.as_bytes())
                .qos(1, id)
                .encode(),
        );
    }
    bytes
}

/// Connects a publisher, sends its burst and counts the PUBACKs it gets in `acks`.
async fn publish_burst(
    broker: &TestBroker,
    publisher: usize,
    count: usize,
    acks: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    let mut client = RawClient::connected(broker.mqtt_addr(), &format!("pub-{publisher}")).await;
    tokio::spawn(async move {
        client.send_ok(&burst(publisher, count)).await;
        for _ in 0..count {
            let ack = client.wait_for(packet::PUBACK, None).await;
            assert_eq!(ack.kind(), packet::PUBACK);
            acks.fetch_add(1, Ordering::SeqCst);
        }
    })
}

/// Receives `n` QoS 1 messages, acknowledging each, and checks that every publisher's
/// sequence arrives complete and in order.
async fn receive_in_order(client: &mut RawClient, n: usize) -> HashMap<usize, usize> {
    let mut next: HashMap<usize, usize> = HashMap::new();
    for _ in 0..n {
        let publish = client.expect_publish().await;
        client
            .send_ok(&packet::puback(publish.packet_id.expect("QoS 1")))
            .await;
        let text = String::from_utf8(publish.payload).expect("utf-8 payload");
        let (publisher, seq) = text.split_once(':').expect("publisher:sequence");
        let publisher: usize = publisher.parse().expect("publisher number");
        let seq: usize = seq.parse().expect("sequence number");
        let expected = next.entry(publisher).or_default();
        assert_eq!(
            seq, *expected,
            "publisher {publisher}: expected message {expected}, got {seq}"
        );
        *expected += 1;
    }
    next
}

#[tokio::test]
async fn a_burst_over_a_full_queue_at_default_limits_loses_no_acknowledged_message() {
    // The embedded defaults but the port: max-queued-messages 10,000, max-inflight 256.
    let broker = TestBroker::start(&tcp_config("", "")).await;
    let mut subscriber = RawClient::connected(broker.mqtt_addr(), "slow-reader").await;
    assert_eq!(subscriber.subscribe(1, &[("burst/#", 1)]).await, [1]);

    let acks = Arc::new(AtomicUsize::new(0));
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        publishers.push(publish_burst(&broker, p, PER_PUBLISHER, acks.clone()).await);
    }
    // The subscriber reads nothing yet: its window fills, then its queue. The publishers' acks
    // stop instead of their messages being dropped.
    let total = PUBLISHERS * PER_PUBLISHER;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked_while_stalled = acks.load(Ordering::SeqCst);
    assert!(
        acked_while_stalled < total,
        "{acked_while_stalled} of {total} acknowledged while the only subscriber read nothing: \
         the broker acknowledged what it could not queue"
    );

    let next = within(
        "the subscriber drains every message",
        receive_in_order(&mut subscriber, total),
    )
    .await;
    for p in 0..PUBLISHERS {
        assert_eq!(next.get(&p), Some(&PER_PUBLISHER), "publisher {p}");
    }
    for publisher in publishers {
        within("every publisher is acknowledged", publisher)
            .await
            .expect("publisher task");
    }
    assert_eq!(acks.load(Ordering::SeqCst), total);
    assert!(
        !broker.logs_contain("message dropped"),
        "nothing was dropped: {}",
        broker.log_text()
    );
    // Nothing more: every message arrived exactly once.
    assert!(matches!(
        subscriber.next(Duration::from_millis(300)).await,
        Read::TimedOut
    ));
}

#[tokio::test]
async fn a_stalled_subscriber_is_disconnected_and_keeps_its_session_while_publishers_go_on() {
    let sections =
        "limits:\n  max-inflight: 32\n  max-queued-messages: 10\n  slow-consumer-timeout: 1s\n";
    let broker = TestBroker::start(&tcp_config("", sections)).await;
    let persistent = Connect::new("stalled").clean_session(false);
    let (mut stalled, ack) = RawClient::connect(broker.mqtt_addr(), &persistent).await;
    assert_eq!(ack.code, 0);
    assert_eq!(stalled.subscribe(1, &[("burst/#", 1)]).await, [1]);

    // 32 messages fill the window (never acknowledged), 10 the queue; the publisher then
    // waits, for one second, and goes on once the subscriber is disconnected.
    let count = 60;
    let acks = Arc::new(AtomicUsize::new(0));
    let publisher = publish_burst(&broker, 0, count, acks.clone()).await;
    within("the publisher is acknowledged", publisher)
        .await
        .expect("publisher task");
    assert_eq!(acks.load(Ordering::SeqCst), count);
    broker
        .wait_for_log("slow consumer", |line| {
            line.contains("disconnecting a slow consumer") && line.contains("stalled")
        })
        .await;
    let before_close = stalled.expect_closed().await;
    assert!(
        before_close.iter().all(|p| p.kind() == packet::PUBLISH),
        "only deliveries before the close: {before_close:?}"
    );

    // The persistent session kept what was queued or in flight while the client was connected:
    // re-sent in order (in-flight ones with DUP). What came after it went offline to a full
    // queue was dropped, and the drop was logged.
    let (mut back, ack) = RawClient::connect(broker.mqtt_addr(), &persistent).await;
    assert!(ack.session_present);
    let mut seq = 0;
    loop {
        match back.next(Duration::from_millis(500)).await {
            Read::Packet(p) if p.kind() == packet::PUBLISH => {
                let publish = p.publish();
                back.send_ok(&packet::puback(publish.packet_id.expect("QoS 1")))
                    .await;
                assert_eq!(publish.payload, format!("0:{seq}").into_bytes());
                seq += 1;
            }
            Read::Packet(p) => panic!("unexpected {p:?}"),
            Read::TimedOut => break,
            Read::Closed => panic!("closed"),
        }
    }
    assert!(seq >= 42, "window and queue were kept: got {seq}");
    assert!(seq < count, "the offline queue was bounded: got {seq}");
    let metrics = scrape(metrics_addr(&broker).await).await;
    assert_eq!(metrics.get("midge_slow_consumers_total"), 1.0);
    assert!(metrics.get("midge_publisher_waits_total") >= 1.0);
    assert_eq!(
        metrics.get("midge_messages_dropped_total{reason=\"queue_full\"}"),
        (count - seq) as f64,
        "every message not delivered is counted"
    );
    assert_eq!(
        metrics.get("midge_queued_bytes"),
        0.0,
        "all delivered or dropped"
    );
    eventually("the drops are logged", TIMEOUT, || {
        broker
            .log_text()
            .lines()
            .any(|l| {
                l.contains("message dropped") && l.contains("stalled") && l.contains("queue_full")
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_mqtt5_slow_consumer_gets_disconnect_0x97_and_the_publisher_its_acks() {
    let sections = "limits:\n  max-queued-messages: 10\n  slow-consumer-timeout: 1s\n";
    let broker = TestBroker::start(&tcp_config("", sections)).await;
    // Receive Maximum 5: the broker's window towards it is 5, and it acknowledges nothing.
    let connect = Connect5::new("slow5")
        .session_expiry(600)
        .props(Props::new().u16(prop::RECEIVE_MAXIMUM, 5));
    let (mut slow, _) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    slow.subscribe(1, "burst/#", 1).await;
    let acks = Arc::new(AtomicUsize::new(0));
    let publisher = publish_burst(&broker, 0, 40, acks.clone()).await;
    let disconnect = slow.expect_disconnect().await;
    assert_eq!(disconnect.reason, reason::QUOTA_EXCEEDED, "{disconnect:?}");
    let why = disconnect
        .props
        .get_str(prop::REASON_STRING)
        .unwrap_or_default();
    assert!(why.contains("slow consumer"), "{disconnect:?}");
    within("the publisher is acknowledged", publisher)
        .await
        .expect("publisher task");
    assert_eq!(acks.load(Ordering::SeqCst), 40);
}

#[tokio::test]
async fn dropped_qos0_messages_are_logged_with_client_and_reason() {
    let broker = TestBroker::start_default().await;
    let persistent = Connect::new("away").clean_session(false);
    let (mut away, _) = RawClient::connect(broker.mqtt_addr(), &persistent).await;
    assert_eq!(away.subscribe(1, &[("q0/#", 1)]).await, [1]);
    away.disconnect().await;
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    for _ in 0..3 {
        publisher.publish(&Publish::new("q0/t", b"zero")).await;
    }
    publisher.ping().await;
    let line = broker
        .wait_for_log(
            "the drop of a QoS 0 message for an offline client",
            |line| line.contains("message dropped") && line.contains("away"),
        )
        .await;
    assert!(line.contains("offline_qos0"), "{line}");
    assert!(line.contains("q0/t"), "{line}");
}

#[tokio::test]
async fn retained_replay_is_bounded_by_the_queue_and_its_drops_are_logged() {
    let sections = "limits:\n  max-queued-messages: 5\n";
    let broker = TestBroker::start(&tcp_config("", sections)).await;
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "retainer").await;
    for i in 0..12u16 {
        let publish = Publish::new(&format!("kept/{i}"), b"r")
            .qos(1, i + 1)
            .retain(true);
        publisher.publish(&publish).await;
    }
    let mut subscriber = RawClient::connected(broker.mqtt_addr(), "late").await;
    assert_eq!(subscriber.subscribe(1, &[("kept/#", 1)]).await, [1]);
    let mut got = 0;
    while let Read::Packet(p) = subscriber.next(Duration::from_millis(500)).await {
        let publish = p.publish();
        assert!(publish.retain);
        subscriber
            .send_ok(&packet::puback(publish.packet_id.expect("QoS 1")))
            .await;
        got += 1;
    }
    assert_eq!(got, 5, "the queue's bound");
    broker
        .wait_for_log("the replay's drops", |line| {
            line.contains("message dropped") && line.contains("late") && line.contains("queue_full")
        })
        .await;
}

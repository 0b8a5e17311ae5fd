//! MQTT 5 sessions and wills against the real broker, in raw bytes: Session Expiry Interval
//! (0, N seconds, the DISCONNECT override and its rule), Clean Start with a stored session,
//! Will Delay Interval (sent after the delay, cancelled by a reconnect, capped by the session
//! expiry), will properties, DISCONNECT with Will Message.

use std::time::Duration;

use midge_proto::admin::v1 as admin;
use midge_proto::admin::v1::broker_admin_client::BrokerAdminClient;
use midge_tests::admin::{admin_client, get_client};
use midge_tests::raw::v5::{Connect5, Props, Publish5, V5Client, prop, reason};
use midge_tests::{TIMEOUT, TestBroker};
use tokio::time::Instant;
use tonic::transport::Channel;

/// Connects `id` with Clean Start 0 and reports whether a session was present.
async fn session_present(broker: &TestBroker, id: &str) -> bool {
    let connect = Connect5::new(id).clean_start(false);
    let (mut client, ack) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    client.disconnect_with(0, &Props::new()).await;
    ack.session_present
}

/// Connects `id` with `connect`, subscribes to `t` at QoS 1, and leaves with a normal
/// DISCONNECT carrying `disconnect_props`.
async fn subscribe_and_leave(broker: &TestBroker, connect: Connect5, disconnect_props: Props) {
    let (mut client, _) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    client.subscribe(1, "t", 1).await;
    client.disconnect_with(0, &disconnect_props).await;
}

#[tokio::test]
async fn session_expiry_zero_ends_the_session_with_the_connection() {
    let broker = TestBroker::start_default().await;
    subscribe_and_leave(&broker, Connect5::new("c"), Props::new()).await;
    assert!(!session_present(&broker, "c").await);
}

#[tokio::test]
async fn a_session_outlives_its_connection_for_its_expiry_interval_then_ends() {
    let broker = TestBroker::start_default().await;
    let mut admin = admin_client(&broker).await;
    subscribe_and_leave(&broker, Connect5::new("c").session_expiry(2), Props::new()).await;
    let left = Instant::now();
    let stored = get_client(&mut admin, "c").await;
    assert!(
        stored.is_some_and(|c| !c.connected),
        "the session must be kept"
    );
    // Gone within the interval plus the sweeper's second, and not before the interval.
    let deadline = left + TIMEOUT;
    while get_client(&mut admin, "c").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "session still there after {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone_after = left.elapsed();
    assert!(
        gone_after >= Duration::from_millis(1500),
        "expired after {gone_after:?}, expiry interval 2 s"
    );
    assert!(!session_present(&broker, "c").await);
}

#[tokio::test]
async fn a_resumed_session_keeps_subscriptions_and_queued_messages() {
    let broker = TestBroker::start_default().await;
    subscribe_and_leave(&broker, Connect5::new("c").session_expiry(60), Props::new()).await;
    let mut publisher = V5Client::connected(broker.mqtt_addr(), "pub").await;
    publisher
        .publish(&Publish5::new("t", b"queued").qos(1, 1))
        .await;
    let connect = Connect5::new("c").clean_start(false).session_expiry(60);
    let (mut client, ack) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    assert!(ack.session_present);
    assert_eq!(client.receive_acked().await.payload, b"queued");
}

#[tokio::test]
async fn clean_start_discards_a_stored_session() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    subscribe_and_leave(&broker, Connect5::new("c").session_expiry(60), Props::new()).await;
    let mut publisher = V5Client::connected(addr, "pub").await;
    publisher
        .publish(&Publish5::new("t", b"queued").qos(1, 1))
        .await;
    let connect = Connect5::new("c").clean_start(true).session_expiry(60);
    let (mut client, ack) = V5Client::connect_ok(addr, &connect).await;
    assert!(!ack.session_present, "{ack:?}");
    // Neither the queued message nor the subscription survived.
    let code = publisher
        .publish(&Publish5::new("t", b"new").qos(1, 2))
        .await;
    assert_eq!(code, reason::NO_MATCHING_SUBSCRIBERS);
    client.expect_nothing(300).await;
}

#[tokio::test]
async fn disconnect_cannot_raise_a_session_expiry_of_zero() {
    let broker = TestBroker::start_default().await;
    let (mut client, _) = V5Client::connect_ok(broker.mqtt_addr(), &Connect5::new("c")).await;
    client.subscribe(1, "t", 1).await;
    let raise = Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 60);
    client
        .send_ok(&midge_tests::raw::v5::disconnect(0, &raise))
        .await;
    // [MQTT-3.14.2-2]: a Protocol Error, answered with DISCONNECT 0x82.
    let disconnect = client.expect_disconnect().await;
    assert_eq!(disconnect.reason, reason::PROTOCOL_ERROR, "{disconnect:?}");
    assert!(!session_present(&broker, "c").await);
}

#[tokio::test]
async fn disconnect_can_end_the_session_by_setting_expiry_zero() {
    let broker = TestBroker::start_default().await;
    let end = Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 0);
    subscribe_and_leave(&broker, Connect5::new("c").session_expiry(60), end).await;
    assert!(!session_present(&broker, "c").await);
}

#[tokio::test]
async fn disconnect_can_shorten_the_session_expiry() {
    let broker = TestBroker::start_default().await;
    let mut admin = admin_client(&broker).await;
    let shorter = Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 1);
    subscribe_and_leave(&broker, Connect5::new("c").session_expiry(3600), shorter).await;
    until(
        &mut admin,
        "c",
        "DISCONNECT set 1 s: the session ends",
        |c| c.is_none(),
    )
    .await;
}

#[tokio::test]
async fn disconnect_can_lengthen_a_nonzero_session_expiry() {
    let broker = TestBroker::start_default().await;
    let mut admin = admin_client(&broker).await;
    let longer = Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 3600);
    subscribe_and_leave(&broker, Connect5::new("c").session_expiry(1), longer).await;
    // Past the CONNECT's 1 s and a sweep: still there.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(get_client(&mut admin, "c").await.is_some());
    assert!(session_present(&broker, "c").await);
}

/// A will on `will/<id>` with every will property and `delay` seconds of Will Delay Interval.
fn with_will(id: &str, delay: u32, expiry: u32) -> Connect5 {
    let props = Props::new()
        .u32(prop::WILL_DELAY_INTERVAL, delay)
        .byte(prop::PAYLOAD_FORMAT_INDICATOR, 1)
        .u32(prop::MESSAGE_EXPIRY_INTERVAL, 300)
        .str(prop::CONTENT_TYPE, "text/plain")
        .str(prop::RESPONSE_TOPIC, "will/reply")
        .bin(prop::CORRELATION_DATA, b"corr")
        .user("why", "gone")
        .user("when", "now");
    Connect5::new(id)
        .session_expiry(expiry)
        .will(&format!("will/{id}"), b"bye", 1, props)
}

/// Polls the admin API until `done` holds for client `id`'s record (None: no session), or fails
/// after [`TIMEOUT`] saying `what` did not happen.
async fn until(
    admin: &mut BrokerAdminClient<Channel>,
    id: &str,
    what: &str,
    done: impl Fn(Option<&admin::Client>) -> bool,
) {
    let deadline = Instant::now() + TIMEOUT;
    while !done(get_client(admin, id).await.as_ref()) {
        assert!(Instant::now() < deadline, "{what}: not within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn watcher(broker: &TestBroker) -> V5Client {
    let mut watcher = V5Client::connected(broker.mqtt_addr(), "watcher").await;
    watcher.subscribe(1, "will/#", 1).await;
    watcher
}

#[tokio::test]
async fn a_delayed_will_is_sent_after_the_delay_with_its_properties() {
    let broker = TestBroker::start_default().await;
    let mut watcher = watcher(&broker).await;
    let (client, _) = V5Client::connect_ok(broker.mqtt_addr(), &with_will("w", 1, 60)).await;
    drop(client);
    let dropped = Instant::now();
    let will = watcher.receive_acked().await;
    assert!(
        dropped.elapsed() >= Duration::from_millis(800),
        "will sent {:?} after the drop, delay 1 s",
        dropped.elapsed()
    );
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("will/w", &b"bye"[..])
    );
    let p = &will.props;
    assert_eq!(
        p.get_byte(prop::PAYLOAD_FORMAT_INDICATOR),
        Some(1),
        "{will:?}"
    );
    assert_eq!(p.get_str(prop::CONTENT_TYPE), Some("text/plain"));
    assert_eq!(p.get_str(prop::RESPONSE_TOPIC), Some("will/reply"));
    assert_eq!(p.get_bin(prop::CORRELATION_DATA), Some(&b"corr"[..]));
    assert_eq!(
        p.user_properties(),
        [
            ("why".to_owned(), "gone".to_owned()),
            ("when".to_owned(), "now".to_owned())
        ]
    );
    let left = p.get_u32(prop::MESSAGE_EXPIRY_INTERVAL);
    assert!(left.is_some_and(|s| (1..=300).contains(&s)), "{will:?}");
    // Not a Will Delay Interval: that is not a PUBLISH property.
    assert_eq!(p.get(prop::WILL_DELAY_INTERVAL), None);
}

#[tokio::test]
async fn a_reconnect_within_the_will_delay_cancels_the_will() {
    let broker = TestBroker::start_default().await;
    let mut admin = admin_client(&broker).await;
    let mut watcher = watcher(&broker).await;
    let (client, _) = V5Client::connect_ok(broker.mqtt_addr(), &with_will("w", 1, 60)).await;
    drop(client);
    // The broker has seen the connection go (so this is a reconnect, not a takeover).
    until(&mut admin, "w", "the broker sees the connection go", |c| {
        c.is_some_and(|c| !c.connected)
    })
    .await;
    let connect = Connect5::new("w").clean_start(false).session_expiry(60);
    let (mut back, ack) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    assert!(ack.session_present);
    // [MQTT-3.1.3-9]: not sent, even once the delay has passed.
    watcher.expect_nothing(1500).await;
    back.ping().await;
}

#[tokio::test]
async fn a_takeover_within_the_will_delay_cancels_the_will() {
    let broker = TestBroker::start_default().await;
    let mut watcher = watcher(&broker).await;
    let (mut first, _) = V5Client::connect_ok(broker.mqtt_addr(), &with_will("w", 1, 60)).await;
    let connect = Connect5::new("w").clean_start(false).session_expiry(60);
    let (mut second, ack) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    assert!(ack.session_present);
    assert_eq!(
        first.expect_disconnect().await.reason,
        reason::SESSION_TAKEN_OVER
    );
    // [MQTT-3.1.3-9]: the session has a connection again before the delay passed.
    watcher.expect_nothing(1500).await;
    second.ping().await;
}

#[tokio::test]
async fn the_will_is_sent_when_the_session_expires_before_the_will_delay() {
    let broker = TestBroker::start_default().await;
    let mut watcher = watcher(&broker).await;
    let (client, _) = V5Client::connect_ok(broker.mqtt_addr(), &with_will("w", 3600, 1)).await;
    drop(client);
    // min(will delay 1 h, session expiry 1 s): within the test's bound.
    let will = watcher.receive_acked().await;
    assert_eq!(will.topic, "will/w");
}

#[tokio::test]
async fn a_will_delay_with_session_expiry_zero_sends_the_will_at_once() {
    let broker = TestBroker::start_default().await;
    let mut watcher = watcher(&broker).await;
    let (client, _) = V5Client::connect_ok(broker.mqtt_addr(), &with_will("w", 3600, 0)).await;
    drop(client);
    assert_eq!(watcher.receive_acked().await.topic, "will/w");
}

#[tokio::test]
async fn disconnect_with_will_message_publishes_the_will_and_normal_disconnect_does_not() {
    let broker = TestBroker::start_default().await;
    let mut watcher = watcher(&broker).await;
    let addr = broker.mqtt_addr();
    let (mut normal, _) = V5Client::connect_ok(addr, &with_will("normal", 0, 0)).await;
    normal.disconnect_with(reason::SUCCESS, &Props::new()).await;
    let (mut with_will_msg, _) = V5Client::connect_ok(addr, &with_will("w", 0, 0)).await;
    with_will_msg
        .disconnect_with(reason::DISCONNECT_WITH_WILL, &Props::new())
        .await;
    let will = watcher.receive_acked().await;
    assert_eq!(
        will.topic, "will/w",
        "normal DISCONNECT sent its will: {will:?}"
    );
    watcher.expect_nothing(300).await;
}

#[tokio::test]
async fn the_session_expiry_cap_applies_to_a_disconnect_override_too() {
    let config = midge_tests::broker::tcp_config("", "limits:\n  max-session-expiry: 1s\n");
    let broker = TestBroker::start(&config).await;
    let mut admin = admin_client(&broker).await;
    // "Never expires" (0xFFFFFFFF) set on DISCONNECT is above the 1 s cap as well.
    let never = Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, u32::MAX);
    subscribe_and_leave(&broker, Connect5::new("c").session_expiry(1), never).await;
    until(
        &mut admin,
        "c",
        "max-session-expiry is 1 s: the session ends",
        |c| c.is_none(),
    )
    .await;
}

#[tokio::test]
async fn clean_start_ends_the_stored_session_so_its_delayed_will_goes_at_once() {
    let broker = TestBroker::start_default().await;
    let mut admin = admin_client(&broker).await;
    let mut watcher = watcher(&broker).await;
    // A will delay far longer than the test: only the session's end can send it.
    let (client, _) = V5Client::connect_ok(broker.mqtt_addr(), &with_will("w", 600, 600)).await;
    drop(client);
    until(&mut admin, "w", "the broker sees the connection go", |c| {
        c.is_some_and(|c| !c.connected)
    })
    .await;
    watcher.expect_nothing(300).await;
    // Clean Start discards the stored session: it ended before the will delay (§3.1.3.2.2).
    let connect = Connect5::new("w").clean_start(true).session_expiry(60);
    let (mut back, ack) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    assert!(!ack.session_present);
    let will = watcher.receive_acked().await;
    assert_eq!(will.topic, "will/w");
    back.ping().await;
}

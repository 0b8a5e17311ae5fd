//! MQTT 5 reason codes against the real broker, in raw bytes: the server's DISCONNECT reasons
//! (session taken over, keep alive timeout, server shutting down, administrative action,
//! protocol errors) and the reason codes in PUBACK / PUBREC / SUBACK / UNSUBACK.

use std::time::Duration;

use midge_plugin::Action;
use midge_proto::admin::v1 as admin;
use midge_tests::admin::admin_client;
use midge_tests::plugin::{Reply, TestPlugin, broker_yaml};
use midge_tests::raw::v5::{Connect5, Props, Publish5, V5Client, prop, reason};
use midge_tests::{TestBroker, within};

#[tokio::test]
async fn a_taken_over_connection_gets_disconnect_0x8e() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut first = V5Client::connected(addr, "same").await;
    let (mut second, _) =
        V5Client::connect_ok(addr, &Connect5::new("same").clean_start(false)).await;
    let disconnect = first.expect_disconnect().await;
    assert_eq!(
        disconnect.reason,
        reason::SESSION_TAKEN_OVER,
        "{disconnect:?}"
    );
    second.ping().await;
}

#[tokio::test]
async fn a_silent_client_gets_disconnect_0x8d_after_one_and_a_half_keep_alives() {
    let broker = TestBroker::start_default().await;
    let connect = Connect5::new("quiet").keep_alive(1);
    let (mut client, _) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    let start = tokio::time::Instant::now();
    let disconnect = client.expect_disconnect().await;
    assert_eq!(
        disconnect.reason,
        reason::KEEP_ALIVE_TIMEOUT,
        "{disconnect:?}"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn sigterm_sends_disconnect_0x8b() {
    let mut broker = TestBroker::start_default().await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "c").await;
    broker.sigterm();
    let disconnect = client.expect_disconnect().await;
    assert_eq!(
        disconnect.reason,
        reason::SERVER_SHUTTING_DOWN,
        "{disconnect:?}"
    );
    let status = broker.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn an_admin_kick_sends_disconnect_0x98() {
    let broker = TestBroker::start_default().await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "victim").await;
    let mut admin = admin_client(&broker).await;
    within(
        "DisconnectClient",
        admin.disconnect_client(admin::DisconnectClientRequest {
            client_id: "victim".into(),
            reason: "maintenance".into(),
            discard_session: false,
        }),
    )
    .await
    .expect("DisconnectClient");
    let disconnect = client.expect_disconnect().await;
    assert_eq!(
        disconnect.reason,
        reason::ADMINISTRATIVE_ACTION,
        "{disconnect:?}"
    );
    assert_eq!(
        disconnect.props.get_str(0x1F),
        Some("maintenance"),
        "the request's reason as the reason string: {disconnect:?}"
    );
}

#[tokio::test]
async fn protocol_violations_get_disconnect_0x82() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    // A second CONNECT [MQTT-3.1.0-2].
    let mut client = V5Client::connected(addr, "twice").await;
    client.send_ok(&Connect5::new("twice").encode()).await;
    let disconnect = client.expect_disconnect().await;
    assert_eq!(disconnect.reason, reason::PROTOCOL_ERROR, "{disconnect:?}");
    // A PUBLISH from a client with a Subscription Identifier [MQTT-3.3.4-6].
    let mut client = V5Client::connected(addr, "subid").await;
    let publish =
        Publish5::new("t", b"x").props(Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 1));
    client.send_ok(&publish.encode()).await;
    let disconnect = client.expect_disconnect().await;
    assert_eq!(disconnect.reason, reason::PROTOCOL_ERROR, "{disconnect:?}");
}

#[tokio::test]
async fn unsuback_says_no_subscription_existed() {
    let broker = TestBroker::start_default().await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "c").await;
    client.subscribe(1, "a", 0).await;
    let codes = client.unsubscribe(2, &["a", "b", "a"]).await;
    assert_eq!(
        codes,
        [
            reason::SUCCESS,
            reason::NO_SUBSCRIPTION_EXISTED,
            reason::NO_SUBSCRIPTION_EXISTED
        ]
    );
}

/// A broker whose topic-check plugin denies publishing and subscribing under `deny/`.
async fn denying_broker() -> (TestPlugin, TestBroker) {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| {
        if req.topic.starts_with("deny/") && req.action != Action::Receive {
            Reply::deny()
        } else {
            Reply::allow()
        }
    });
    let yaml = broker_yaml(
        &[plugin.yaml("acl", "")],
        "topic-check:\n  enable: true\n  plugins: [acl]\n",
    );
    let broker = TestBroker::start(&yaml).await;
    (plugin, broker)
}

#[tokio::test]
async fn a_denied_publish_gets_puback_and_pubrec_0x87_and_is_not_delivered() {
    let (_plugin, broker) = denying_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = V5Client::connected(addr, "sub").await;
    sub.subscribe(1, "#", 1).await;
    let mut publisher = V5Client::connected(addr, "pub").await;
    assert_eq!(
        publisher
            .publish(&Publish5::new("deny/x", b"1").qos(1, 1))
            .await,
        reason::NOT_AUTHORIZED
    );
    // An error PUBREC ends the QoS 2 flow; the id is free for the next message.
    assert_eq!(
        publisher
            .publish(&Publish5::new("deny/x", b"2").qos(2, 2))
            .await,
        reason::NOT_AUTHORIZED
    );
    assert_eq!(
        publisher
            .publish(&Publish5::new("ok/x", b"3").qos(2, 2))
            .await,
        reason::SUCCESS
    );
    let got = sub.receive_acked().await;
    assert_eq!(got.topic, "ok/x", "a denied message was delivered: {got:?}");
    sub.expect_nothing(300).await;
}

#[tokio::test]
async fn a_denied_subscription_gets_suback_0x87() {
    let (_plugin, broker) = denying_broker().await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "c").await;
    let codes = client
        .subscribe_with(1, &Props::new(), &[("ok/#", 1), ("deny/#", 2), ("ok/2", 2)])
        .await;
    assert_eq!(codes, [1, reason::NOT_AUTHORIZED, 2]);
}

#[tokio::test]
async fn property_rules_are_enforced() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    // A property that may appear once, twice.
    let mut client = V5Client::connected(addr, "twice").await;
    let props = Props::new()
        .str(prop::CONTENT_TYPE, "a")
        .str(prop::CONTENT_TYPE, "b");
    client
        .send_ok(&Publish5::new("t", b"x").props(props).encode())
        .await;
    let disconnect = client.expect_disconnect().await;
    assert!(
        [reason::PROTOCOL_ERROR, reason::MALFORMED_PACKET].contains(&disconnect.reason),
        "{disconnect:?}"
    );
    // A property of another packet (Session Expiry Interval in PUBLISH).
    let mut client = V5Client::connected(addr, "wrong").await;
    let props = Props::new().u32(prop::SESSION_EXPIRY_INTERVAL, 5);
    client
        .send_ok(&Publish5::new("t", b"x").props(props).encode())
        .await;
    let disconnect = client.expect_disconnect().await;
    assert!(
        [reason::PROTOCOL_ERROR, reason::MALFORMED_PACKET].contains(&disconnect.reason),
        "{disconnect:?}"
    );
    // Subscription Identifier 0 is a Protocol Error (§3.8.2.1.2).
    let mut client = V5Client::connected(addr, "zero-id").await;
    let props = Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, 0);
    client
        .send_ok(&midge_tests::raw::v5::subscribe(1, &props, &[("t", 0)]))
        .await;
    let disconnect = client.expect_disconnect().await;
    assert!(
        [reason::PROTOCOL_ERROR, reason::MALFORMED_PACKET].contains(&disconnect.reason),
        "{disconnect:?}"
    );
}

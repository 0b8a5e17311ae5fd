//! MQTT 5 CONNECT / CONNACK against the real broker, in raw bytes: the limits the CONNACK
//! announces, the assigned client identifier, Server Keep Alive (announced and enforced),
//! the Session Expiry cap, Shared Subscription Available.

use midge_tests::TestBroker;
use midge_tests::broker::tcp_config;
use midge_tests::raw::v5::{Connect5, Props, V5Client, prop, reason};

async fn broker(limits: &str) -> TestBroker {
    TestBroker::start(&tcp_config("", &format!("limits:\n{limits}"))).await
}

#[tokio::test]
async fn connack_announces_receive_maximum_packet_size_and_topic_alias_maximum() {
    let broker =
        broker("  receive-maximum: 7\n  topic-alias-maximum: 5\n  max-packet-size: 4096\n").await;
    let (_client, ack) = V5Client::connect_ok(broker.mqtt_addr(), &Connect5::new("c1")).await;
    assert!(!ack.session_present);
    let p = &ack.props;
    assert_eq!(p.get_u16(prop::RECEIVE_MAXIMUM), Some(7), "{ack:?}");
    assert_eq!(p.get_u32(prop::MAXIMUM_PACKET_SIZE), Some(4096), "{ack:?}");
    assert_eq!(p.get_u16(prop::TOPIC_ALIAS_MAXIMUM), Some(5), "{ack:?}");
    // A client that chose its id gets none assigned; nothing was capped or lowered.
    assert_eq!(p.get(prop::ASSIGNED_CLIENT_IDENTIFIER), None, "{ack:?}");
    assert_eq!(p.get(prop::SERVER_KEEP_ALIVE), None, "{ack:?}");
    assert_eq!(p.get(prop::SESSION_EXPIRY_INTERVAL), None, "{ack:?}");
    // Shared subscriptions are on by default: the property is absent (absent = available).
    assert_eq!(p.get(prop::SHARED_SUBSCRIPTION_AVAILABLE), None, "{ack:?}");
}

#[tokio::test]
async fn empty_client_id_gets_a_unique_assigned_identifier_that_names_the_session() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let (mut first, ack) = V5Client::connect_ok(addr, &Connect5::new("")).await;
    let id = ack
        .props
        .get_str(prop::ASSIGNED_CLIENT_IDENTIFIER)
        .unwrap_or_else(|| panic!("no Assigned Client Identifier in {ack:?}"))
        .to_owned();
    assert!(!id.is_empty());
    let (_second, ack2) = V5Client::connect_ok(addr, &Connect5::new("")).await;
    let id2 = ack2.props.get_str(prop::ASSIGNED_CLIENT_IDENTIFIER);
    assert!(id2.is_some_and(|i| i != id), "{id} then {ack2:?}");
    // [MQTT-3.2.2-16]: the assigned id is the client's id: connecting with it takes over.
    let (_third, _) = V5Client::connect_ok(addr, &Connect5::new(&id)).await;
    let disconnect = first.expect_disconnect().await;
    assert_eq!(disconnect.reason, reason::SESSION_TAKEN_OVER);
}

#[tokio::test]
async fn server_keep_alive_lowers_a_longer_or_zero_keep_alive_and_is_enforced() {
    let broker = broker("  max-keep-alive: 1\n").await;
    let addr = broker.mqtt_addr();
    let (_a, ack) = V5Client::connect_ok(addr, &Connect5::new("long").keep_alive(60)).await;
    assert_eq!(
        ack.props.get_u16(prop::SERVER_KEEP_ALIVE),
        Some(1),
        "{ack:?}"
    );
    let (_b, ack) = V5Client::connect_ok(addr, &Connect5::new("within").keep_alive(1)).await;
    assert_eq!(ack.props.get(prop::SERVER_KEEP_ALIVE), None, "{ack:?}");
    // Keep alive 0 (none) is lowered too, and the imposed 1 s is enforced: silent for 1.5 s,
    // the client is disconnected with Keep Alive timeout.
    let (mut silent, ack) = V5Client::connect_ok(addr, &Connect5::new("zero").keep_alive(0)).await;
    assert_eq!(
        ack.props.get_u16(prop::SERVER_KEEP_ALIVE),
        Some(1),
        "{ack:?}"
    );
    let disconnect = silent.expect_disconnect().await;
    assert_eq!(
        disconnect.reason,
        reason::KEEP_ALIVE_TIMEOUT,
        "{disconnect:?}"
    );
}

#[tokio::test]
async fn a_session_expiry_above_the_cap_is_lowered_and_the_cap_announced() {
    let broker = broker("  max-session-expiry: 10s\n").await;
    let addr = broker.mqtt_addr();
    let (_a, ack) = V5Client::connect_ok(addr, &Connect5::new("greedy").session_expiry(100)).await;
    assert_eq!(
        ack.props.get_u32(prop::SESSION_EXPIRY_INTERVAL),
        Some(10),
        "{ack:?}"
    );
    let (_b, ack) = V5Client::connect_ok(addr, &Connect5::new("modest").session_expiry(5)).await;
    assert_eq!(
        ack.props.get(prop::SESSION_EXPIRY_INTERVAL),
        None,
        "{ack:?}"
    );
    // "Never expires" is above any cap too.
    let (_c, ack) =
        V5Client::connect_ok(addr, &Connect5::new("forever").session_expiry(u32::MAX)).await;
    assert_eq!(
        ack.props.get_u32(prop::SESSION_EXPIRY_INTERVAL),
        Some(10),
        "{ack:?}"
    );
}

#[tokio::test]
async fn shared_subscriptions_off_is_announced_and_refused() {
    let broker = broker("  shared-subscriptions: false\n").await;
    let (mut client, ack) = V5Client::connect_ok(broker.mqtt_addr(), &Connect5::new("c")).await;
    assert_eq!(
        ack.props.get_byte(prop::SHARED_SUBSCRIPTION_AVAILABLE),
        Some(0),
        "{ack:?}"
    );
    let codes = client
        .subscribe_with(1, &Props::new(), &[("$share/g/t", 1), ("t", 1)])
        .await;
    assert_eq!(codes, [reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 1]);
}

#[tokio::test]
async fn client_user_properties_and_request_flags_are_accepted() {
    let broker = TestBroker::start_default().await;
    let props = Props::new()
        .byte(prop::REQUEST_PROBLEM_INFORMATION, 1)
        .byte(prop::REQUEST_RESPONSE_INFORMATION, 0)
        .user("region", "eu")
        .user("region", "us");
    let (mut client, ack) =
        V5Client::connect_ok(broker.mqtt_addr(), &Connect5::new("c").props(props)).await;
    assert_eq!(ack.reason, 0);
    client.ping().await;
}

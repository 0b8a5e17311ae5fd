//! CONNECT and CONNACK (MQTT 3.1.1 §3.1, §3.2): return codes, protocol checks, session
//! takeover, anonymous access, the connect timeout and the per-listener connection limit.

use midge_tests::broker::tcp_config;
use midge_tests::raw::{Connect, Publish, packet};
use midge_tests::{RawClient, TestBroker};

#[tokio::test]
async fn connect_is_accepted_with_connack_0() {
    let broker = TestBroker::start_default().await;
    let mut client = RawClient::tcp(broker.mqtt_addr()).await;
    client.send_ok(&Connect::new("connect-ok").encode()).await;
    let connack = client.read_packet().await;
    // Exactly `20 02 00 00`: CONNACK, remaining length 2, no session present, accepted.
    assert_eq!(connack.first_byte, 0x20, "{connack:?}");
    assert_eq!(connack.body, [0, 0], "{connack:?}");
    client.ping().await;
}

#[tokio::test]
async fn empty_client_id_with_clean_session_is_accepted() {
    // [MQTT-3.1.3-6], [MQTT-3.1.3-7]: the server assigns an identifier.
    let broker = TestBroker::start_default().await;
    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &Connect::new("")).await;
    assert_eq!(ack.code, 0);
    assert!(!ack.session_present);
    client.ping().await;
}

#[tokio::test]
async fn empty_client_id_without_clean_session_is_refused_with_0x02() {
    // [MQTT-3.1.3-8]: CONNACK 0x02 (identifier rejected), then close.
    let broker = TestBroker::start_default().await;
    let (mut client, ack) =
        RawClient::connect(broker.mqtt_addr(), &Connect::new("").clean_session(false)).await;
    assert_eq!(ack.code, 0x02);
    assert!(
        !ack.session_present,
        "[MQTT-3.2.2-4]: session present is 0 with a non-zero code"
    );
    client.expect_closed().await;
}

async fn assert_level_refused(level: u8) {
    // [MQTT-3.1.2-2]: CONNACK 0x01 (unacceptable protocol level), then disconnect.
    let broker = TestBroker::start_default().await;
    let (mut client, ack) =
        RawClient::connect(broker.mqtt_addr(), &Connect::new("levels").level(level)).await;
    assert_eq!(ack.code, 0x01, "protocol level {level}");
    let after = client.expect_closed().await;
    assert!(after.is_empty(), "packets after the refusal: {after:?}");
}

#[tokio::test]
async fn protocol_level_6_is_refused_with_0x01() {
    assert_level_refused(6).await;
}

#[tokio::test]
async fn protocol_level_2_is_refused_with_0x01() {
    assert_level_refused(2).await;
}

#[tokio::test]
async fn wrong_protocol_name_closes_the_connection() {
    // [MQTT-3.1.2-1]: the server MAY disconnect without CONNACK; it must not accept.
    let broker = TestBroker::start_default().await;
    let mut client = RawClient::tcp(broker.mqtt_addr()).await;
    client
        .send_ok(&Connect::new("name").protocol_name("MQTX").encode())
        .await;
    let before = client.expect_closed().await;
    assert!(
        before
            .iter()
            .all(|p| p.kind() == packet::CONNACK && p.connack().code != 0),
        "a CONNECT with protocol name MQTX got {before:?}"
    );
}

#[tokio::test]
async fn first_packet_not_connect_closes_the_connection() {
    // [MQTT-3.1.0-1]: the first packet from the client MUST be CONNECT.
    let broker = TestBroker::start_default().await;
    for first in [
        packet::pingreq(),
        Publish::new("t", b"early").encode(),
        packet::subscribe(1, &[("t", 0)]),
    ] {
        let mut client = RawClient::tcp(broker.mqtt_addr()).await;
        client.send_ok(&first).await;
        let before = client.expect_closed().await;
        assert!(
            before.is_empty(),
            "reply to {first:?} before CONNECT: {before:?}"
        );
    }
    RawClient::connected(broker.mqtt_addr(), "still-serving")
        .await
        .ping()
        .await;
}

#[tokio::test]
async fn second_connect_closes_the_connection() {
    // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
    let broker = TestBroker::start_default().await;
    let mut client = RawClient::connected(broker.mqtt_addr(), "twice").await;
    client.send_ok(&Connect::new("twice").encode()).await;
    let before = client.expect_closed().await;
    assert!(before.is_empty(), "reply to a second CONNECT: {before:?}");
}

#[tokio::test]
async fn same_client_id_takes_over_the_session() {
    // [MQTT-3.1.4-2]: the server disconnects the existing client with the same identifier.
    let broker = TestBroker::start_default().await;
    let mut first = RawClient::connected(broker.mqtt_addr(), "takeover").await;
    let mut second = RawClient::connected(broker.mqtt_addr(), "takeover").await;
    first.expect_closed().await;
    second.ping().await;
}

fn auth_config(auth: &str) -> String {
    format!("listeners:\n  - name: default\n    kind: tcp\n    bind: 127.0.0.1:0\n{auth}")
}

#[tokio::test]
async fn anonymous_refused_with_0x05_when_not_allowed() {
    let broker = TestBroker::start(&auth_config("auth:\n  allow-anonymous: false\n")).await;
    let (mut anonymous, ack) = RawClient::connect(broker.mqtt_addr(), &Connect::new("anon")).await;
    assert_eq!(ack.code, 0x05, "no username: not authorized");
    anonymous.expect_closed().await;

    let (mut named, ack) =
        RawClient::connect(broker.mqtt_addr(), &Connect::new("named").username("alice")).await;
    assert_eq!(
        ack.code, 0,
        "a username is enough for allow-anonymous: false"
    );
    named.ping().await;
}

#[tokio::test]
async fn silent_client_is_closed_by_the_connect_timeout() {
    let broker = TestBroker::start(&tcp_config("connect-timeout: 1s", "")).await;
    let mut silent = RawClient::tcp(broker.mqtt_addr()).await;
    // expect_closed allows 10 s, ten times the configured timeout.
    let before = silent.expect_closed().await;
    assert!(
        before.is_empty(),
        "sent to a client that never sent CONNECT: {before:?}"
    );
    RawClient::connected(broker.mqtt_addr(), "after-timeout")
        .await
        .ping()
        .await;
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed() {
    let broker = TestBroker::start(&tcp_config("max-connections: 2", "")).await;
    let mut one = RawClient::connected(broker.mqtt_addr(), "one").await;
    let mut two = RawClient::connected(broker.mqtt_addr(), "two").await;

    let mut three = RawClient::tcp(broker.mqtt_addr()).await;
    // The write may already fail if the broker closed the socket first; either is fine.
    let _ = three.send(&Connect::new("three").encode()).await;
    let before = three.expect_closed().await;
    assert!(
        before
            .iter()
            .all(|p| p.kind() != packet::CONNACK || p.connack().code != 0),
        "the third connection was accepted: {before:?}"
    );
    one.ping().await;
    two.ping().await;

    // A freed slot is usable again.
    one.disconnect().await;
    let mut four = within_retry_connect(&broker, "four").await;
    four.ping().await;
}

/// Connects `client_id`, retrying while the broker is still releasing a closed connection's
/// slot (it is freed when the old connection task ends, shortly after the close).
async fn within_retry_connect(broker: &TestBroker, client_id: &str) -> RawClient {
    let deadline = tokio::time::Instant::now() + midge_tests::TIMEOUT;
    loop {
        let mut client = RawClient::tcp(broker.mqtt_addr()).await;
        let _ = client.send(&Connect::new(client_id).encode()).await;
        match client.next(midge_tests::TIMEOUT).await {
            midge_tests::raw::Read::Packet(p)
                if p.kind() == packet::CONNACK && p.connack().code == 0 =>
            {
                return client;
            }
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no free slot for {client_id}: {other:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

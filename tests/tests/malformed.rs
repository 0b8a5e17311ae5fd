//! Malformed and hostile input, as raw bytes (MQTT 3.1.1 §1.5, §2, §3.3, §4.8). Each case must
//! close only the offending connection: a bystander connected before keeps working, a new
//! client can connect afterwards, and the broker logs a line naming the peer's address.

use std::time::Duration;

use midge_tests::broker::tcp_config;
use midge_tests::raw::{Connect, Read, packet};
use midge_tests::{RawClient, TIMEOUT, TestBroker};

/// Opens a connection (after a CONNECT/CONNACK when `connect_first`), sends `bytes`, and checks
/// that the broker closes that connection and only that one.
async fn assert_rejected(broker: &TestBroker, connect_first: bool, bytes: &[u8]) {
    let mut bystander = RawClient::connected(broker.mqtt_addr(), "bystander").await;
    let mut offender = RawClient::tcp(broker.mqtt_addr()).await;
    if connect_first {
        assert_eq!(offender.handshake(&Connect::new("offender")).await.code, 0);
    }
    // The broker may close before it has read everything, making the write fail: fine.
    let _ = offender.send(bytes).await;
    let before = offender.expect_closed().await;
    assert!(
        before
            .iter()
            .all(|p| p.kind() != packet::CONNACK || p.connack().code != 0),
        "{bytes:02x?} was answered with {before:?}"
    );

    let peer = offender.local_addr().to_string();
    broker
        .wait_for_log(&format!("a log line naming peer {peer}"), |line| {
            line.contains(&peer)
        })
        .await;
    bystander.ping().await;
    RawClient::connected(broker.mqtt_addr(), "newcomer")
        .await
        .ping()
        .await;
}

/// Like [`assert_rejected`] with a default broker and a CONNECT first.
async fn rejected_after_connect(bytes: &[u8]) {
    let broker = TestBroker::start_default().await;
    assert_rejected(&broker, true, bytes).await;
}

#[tokio::test]
async fn garbage_instead_of_connect() {
    // An HTTP request: first byte 0x47 is type 4 (PUBACK) with reserved flags, not CONNECT.
    let broker = TestBroker::start_default().await;
    assert_rejected(&broker, false, b"GET / HTTP/1.1\r\nHost: midge\r\n\r\n").await;
}

#[tokio::test]
async fn reserved_packet_type_0() {
    rejected_after_connect(&[0x00, 0x00]).await;
}

#[tokio::test]
async fn reserved_packet_type_15() {
    rejected_after_connect(&[0xf0, 0x00]).await;
}

#[tokio::test]
async fn subscribe_with_wrong_fixed_header_flags() {
    // [MQTT-3.8.1-1]: SUBSCRIBE flags must be 0b0010.
    let mut bytes = packet::subscribe(1, &[("a", 0)]);
    bytes[0] = 0x80;
    rejected_after_connect(&bytes).await;
}

#[tokio::test]
async fn pubrel_with_wrong_fixed_header_flags() {
    // [MQTT-3.6.1-1]: PUBREL flags must be 0b0010.
    rejected_after_connect(&[0x60, 0x02, 0x00, 0x01]).await;
}

#[tokio::test]
async fn remaining_length_longer_than_four_bytes() {
    // §2.2.3: at most four bytes; the fourth must not have the continuation bit.
    rejected_after_connect(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).await;
}

#[tokio::test]
async fn packet_over_max_packet_size_is_refused_from_its_header() {
    let broker = TestBroker::start(&tcp_config("", "limits:\n  max-packet-size: 1024\n")).await;
    let mut bystander = RawClient::connected(broker.mqtt_addr(), "bystander").await;
    let mut offender = RawClient::connected(broker.mqtt_addr(), "offender").await;
    // A PUBLISH announcing 2000 bytes, and no body: the broker must decide from the header.
    let mut header = vec![0x30];
    header.extend(packet::remaining_length(2000));
    offender.send_ok(&header).await;
    let before = offender.expect_closed().await;
    assert!(before.is_empty(), "{before:?}");
    bystander.ping().await;

    // A packet under the limit still passes.
    let mut ok = RawClient::connected(broker.mqtt_addr(), "small").await;
    assert_eq!(ok.subscribe(1, &[("big", 0)]).await, [0]);
    ok.send_ok(&midge_tests::raw::Publish::new("big", &[b'x'; 900]).encode())
        .await;
    assert_eq!(ok.expect_publish().await.payload.len(), 900);
}

#[tokio::test]
async fn publish_to_a_wildcard_topic() {
    // [MQTT-3.3.2-2]: the Topic Name in a PUBLISH must not contain wildcards.
    for topic in ["a/+", "a/#", "#"] {
        rejected_after_connect(&midge_tests::raw::Publish::new(topic, b"x").encode()).await;
    }
}

#[tokio::test]
async fn publish_with_invalid_utf8_topic() {
    // [MQTT-1.5.3-1]: ill-formed UTF-8 closes the connection.
    let mut body = vec![0x00, 0x03, b'a', 0xff, b'b'];
    body.extend_from_slice(b"payload");
    rejected_after_connect(&packet::frame(0x30, &body)).await;
}

#[tokio::test]
async fn publish_with_nul_in_topic() {
    // [MQTT-1.5.3-2]: U+0000 closes the connection.
    let mut body = vec![0x00, 0x03, b'a', 0x00, b'b'];
    body.extend_from_slice(b"payload");
    rejected_after_connect(&packet::frame(0x30, &body)).await;
}

#[tokio::test]
async fn publish_with_qos_3() {
    // [MQTT-3.3.1-4]: both QoS bits set is malformed.
    let mut body = vec![0x00, 0x01, b't', 0x00, 0x01];
    body.extend_from_slice(b"payload");
    rejected_after_connect(&packet::frame(0x36, &body)).await;
}

#[tokio::test]
async fn connect_with_reserved_flag_set() {
    // [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0.
    let mut bytes = Connect::new("reserved").encode();
    bytes[9] |= 0x01; // connect flags: after 1 + 1 (remaining length) + 6 (name) + 1 (level)
    let broker = TestBroker::start_default().await;
    assert_rejected(&broker, false, &bytes).await;
}

#[tokio::test]
async fn slowloris_connect_is_cut_by_the_connect_timeout() {
    let broker = TestBroker::start(&tcp_config("connect-timeout: 1s", "")).await;
    let mut bystander = RawClient::connected(broker.mqtt_addr(), "bystander").await;
    let mut slow = RawClient::tcp(broker.mqtt_addr()).await;
    // 64 bytes at one per 200 ms would take 12.8 s: far beyond the 1 s timeout.
    let connect = Connect::new(&"s".repeat(50)).encode();
    let start = tokio::time::Instant::now();
    let mut closed = false;
    for byte in &connect {
        if slow.send(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        match slow.next(Duration::from_millis(200)).await {
            Read::TimedOut => {}
            Read::Closed => {
                closed = true;
                break;
            }
            Read::Packet(p) => panic!("a half-sent CONNECT got {p:?}"),
        }
    }
    assert!(
        closed,
        "the broker read a {}-byte CONNECT over {:?}",
        connect.len(),
        start.elapsed()
    );
    assert!(
        start.elapsed() < TIMEOUT,
        "closed only after {:?}",
        start.elapsed()
    );
    bystander.ping().await;
}

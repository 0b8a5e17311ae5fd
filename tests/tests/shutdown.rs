//! Graceful shutdown: SIGTERM with clients connected → every client sees its connection
//! closed, and the process exits 0.

use std::time::Duration;

use midge_tests::broker::tcp_config;
use midge_tests::raw::Connect;
use midge_tests::{MqttClient, RawClient, TestBroker};
use rumqttc::QoS;

/// How long the process may take to exit after SIGTERM. The promise is "within 10 s", and the
/// broker gives stuck tasks 10 s before it stops waiting for them; with no plugins to drain,
/// a graceful shutdown takes milliseconds, so 5 s still is generous and tells "graceful" from
/// "waited out a deadline".
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn sigterm_with_connected_clients_closes_them_and_exits_0() {
    let mut broker = TestBroker::start_default().await;
    let mut raw = RawClient::connected(broker.mqtt_addr(), "raw").await;
    let (mut persistent, _) = RawClient::connect(
        broker.mqtt_addr(),
        &Connect::new("persistent").clean_session(false),
    )
    .await;
    assert_eq!(persistent.subscribe(1, &[("s/#", 1)]).await, [1]);
    let mut rumqttc = MqttClient::connect(broker.mqtt_addr(), "rumqttc").await;
    rumqttc.subscribe_ok("s/#", QoS::AtLeastOnce).await;

    broker.sigterm();
    raw.expect_closed().await;
    persistent.expect_closed().await;
    rumqttc.expect_closed().await;
    let status = broker.wait_exit(SHUTDOWN_DEADLINE).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn sigterm_does_not_wait_for_a_client_that_has_not_sent_connect() {
    // A long connect timeout, so that only the shutdown can end the half-open connection.
    let mut broker = TestBroker::start(&tcp_config("connect-timeout: 60s", "")).await;
    let mut half_open = RawClient::tcp(broker.mqtt_addr()).await;
    // The accept loop takes connections in order: once this one has its CONNACK, the
    // half-open connection before it has been accepted and is waiting for CONNECT.
    let _later = RawClient::connected(broker.mqtt_addr(), "later").await;

    broker.sigterm();
    // Exit first: once the process is gone every socket closes anyway.
    let status = broker.wait_exit(SHUTDOWN_DEADLINE).await;
    assert!(status.success(), "exit status {status}");
    half_open.expect_closed().await;
}

#[tokio::test]
async fn sigterm_when_idle_exits_0() {
    let mut broker = TestBroker::start_default().await;
    broker.sigterm();
    let status = broker.wait_exit(SHUTDOWN_DEADLINE).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn sigterm_with_a_stalled_reader_still_exits() {
    // A subscriber that never reads: its socket buffers fill, writes to it block, and the
    // shutdown must not wait on it forever.
    let mut broker = TestBroker::start_default().await;
    let mut stalled = RawClient::connected(broker.mqtt_addr(), "stalled").await;
    assert_eq!(stalled.subscribe(1, &[("flood", 0)]).await, [0]);
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    // 16 MiB: more than the loopback socket buffers of both sides hold.
    let payload = vec![b'x'; 64 * 1024];
    for _ in 0..256 {
        publisher
            .publish("flood", QoS::AtMostOnce, false, payload.clone())
            .await;
    }
    publisher
        .publish("flood", QoS::AtLeastOnce, false, "last")
        .await;

    broker.sigterm();
    let status = broker.wait_exit(SHUTDOWN_DEADLINE).await;
    assert!(status.success(), "exit status {status}");
    drop(stalled);
}

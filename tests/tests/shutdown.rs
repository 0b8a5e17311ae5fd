//! Graceful shutdown: SIGTERM with clients connected → every client sees its connection
//! closed, and the process exits 0 within 10 s.

use std::time::Duration;

use midge_tests::raw::Connect;
use midge_tests::{MqttClient, RawClient, TestBroker};
use rumqttc::QoS;

const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

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
    let mut half_open = RawClient::tcp(broker.mqtt_addr()).await; // never sends CONNECT

    broker.sigterm();
    raw.expect_closed().await;
    persistent.expect_closed().await;
    half_open.expect_closed().await;
    rumqttc.expect_closed().await;
    let status = broker.wait_exit(SHUTDOWN_DEADLINE).await;
    assert!(status.success(), "exit status {status}");
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
    let payload = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
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

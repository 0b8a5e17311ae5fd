//! `GET /metrics`: the Prometheus text format, parsed strictly, with values that match the
//! traffic the test generated.

use midge_tests::admin::metrics_addr;
use midge_tests::broker::tcp_config;
use midge_tests::eventually_async as eventually;
use midge_tests::grpcurl::{ADMIN_SECTIONS, http_get, scrape};
use midge_tests::{MqttClient, RawClient, TestBroker};
use rumqttc::QoS;

#[tokio::test]
async fn metrics_count_the_traffic_the_test_made() {
    // No `$SYS`, so the retained count is exactly ours; one plugin alias nobody answers on.
    let sections = format!(
        "{ADMIN_SECTIONS}sys-interval: 0s\nplugins:\n  acl:\n    endpoint: http://127.0.0.1:1\n"
    );
    let broker = TestBroker::start(&tcp_config("max-connections: 3", &sections)).await;
    let addr = metrics_addr(&broker).await;

    let before = scrape(addr).await;
    assert_eq!(before.get("midge_clients_connected"), 0.0);
    assert_eq!(before.get("midge_messages_received_total"), 0.0);
    assert_eq!(
        before.types["midge_plugin_call_duration_seconds"],
        "histogram"
    );

    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("m/#", QoS::AtLeastOnce).await;
    let mut publisher = MqttClient::connect(broker.mqtt_addr(), "pub").await;
    for i in 0..5 {
        publisher
            .publish("m/a", QoS::AtLeastOnce, false, format!("msg {i}"))
            .await;
    }
    publisher
        .publish("m/retained", QoS::AtLeastOnce, true, "kept")
        .await;
    assert_eq!(sub.recv_n(6).await.len(), 6);
    // Two QoS 0 messages for a persistent subscriber that is offline: dropped, counted.
    let (mut offline, _) = RawClient::connect(
        broker.mqtt_addr(),
        &midge_tests::raw::Connect::new("offline").clean_session(false),
    )
    .await;
    assert_eq!(offline.subscribe(1, &[("drop/#", 0)]).await, [0]);
    offline.disconnect().await;
    eventually("the offline session", || async {
        scrape(addr).await.get("midge_clients_connected") == 2.0
    })
    .await;
    for _ in 0..2 {
        publisher
            .publish("drop/x", QoS::AtLeastOnce, false, "lost")
            .await;
    }
    // One connection over `max-connections: 3` (sub, pub and this one are admitted).
    let third = RawClient::tcp(broker.mqtt_addr()).await;
    let mut refused = RawClient::tcp(broker.mqtt_addr()).await;
    refused.expect_closed().await;

    // rumqttc acks a QoS 1 delivery after handing it over, so the last PUBACK may still be on
    // its way when `recv_n` returns: wait for it before reading the counters once.
    eventually("sub's sixth PUBACK", || async {
        scrape(addr)
            .await
            .get("midge_packets_received_total{type=\"puback\"}")
            == 6.0
    })
    .await;
    let m = scrape(addr).await;
    assert_eq!(m.get("midge_clients_connected"), 2.0);
    assert_eq!(m.get("midge_client_connects_total"), 3.0);
    assert_eq!(
        m.get("midge_listener_connections{listener=\"default\"}"),
        3.0
    );
    assert_eq!(
        m.get("midge_listener_connections_accepted_total{listener=\"default\"}"),
        4.0
    );
    assert_eq!(
        m.get("midge_listener_connections_refused_total{listener=\"default\"}"),
        1.0
    );
    assert_eq!(
        m.get("midge_messages_received_total"),
        8.0,
        "5 + 1 retained + 2 dropped"
    );
    assert_eq!(m.get("midge_messages_delivered_total"), 6.0);
    assert_eq!(
        m.get("midge_messages_dropped_total{reason=\"offline_qos0\"}"),
        2.0
    );
    assert_eq!(
        m.get("midge_messages_dropped_total{reason=\"queue_full\"}"),
        0.0
    );
    assert_eq!(m.get("midge_retained_messages"), 1.0);
    assert_eq!(m.get("midge_subscriptions"), 2.0);
    assert_eq!(m.get("midge_sessions"), 3.0, "sub, pub and the offline one");
    assert!(m.get("midge_bytes_received_total") > 0.0);
    assert!(m.get("midge_bytes_sent_total") > 0.0);
    let received = |ty: &str| m.get(&format!("midge_packets_received_total{{type=\"{ty}\"}}"));
    let sent = |ty: &str| m.get(&format!("midge_packets_sent_total{{type=\"{ty}\"}}"));
    assert_eq!(received("connect"), 3.0);
    assert_eq!(received("publish"), 8.0);
    assert_eq!(received("subscribe"), 2.0);
    assert_eq!(received("puback"), 6.0, "sub acks its QoS 1 deliveries");
    assert_eq!(received("disconnect"), 1.0);
    assert_eq!(sent("connack"), 3.0);
    assert_eq!(sent("publish"), 6.0);
    assert_eq!(sent("puback"), 8.0, "pub's QoS 1 publishes");
    assert_eq!(sent("suback"), 2.0);
    // A PUBLISH's bytes: at least its topic and payload, plus headers.
    assert!(m.get("midge_packet_bytes_received_total{type=\"publish\"}") > 8.0 * 8.0);
    assert_eq!(
        m.get("midge_packet_bytes_sent_total{type=\"connack\"}"),
        3.0 * 4.0
    );
    assert!(m.get("midge_uptime_seconds") >= 0.0);
    // The plugin nobody answers on.
    assert_eq!(
        m.get("midge_plugin_state{plugin=\"acl\",state=\"reconnecting\"}"),
        1.0
    );
    assert_eq!(
        m.get("midge_plugin_state{plugin=\"acl\",state=\"connected\"}"),
        0.0
    );
    assert_eq!(m.get("midge_plugin_calls_total{plugin=\"acl\"}"), 0.0);
    assert_eq!(
        m.get("midge_plugin_call_duration_seconds_count{plugin=\"acl\"}"),
        0.0
    );
    assert_eq!(
        m.get("midge_plugin_call_duration_seconds_bucket{le=\"+Inf\",plugin=\"acl\"}"),
        0.0
    );
    assert_eq!(m.get("midge_plugin_event_queue_depth{plugin=\"acl\"}"), 0.0);
    drop(third);

    let (status, _, _) = http_get(addr, "/nothing").await;
    assert!(status.contains(" 404 "), "{status}");
}

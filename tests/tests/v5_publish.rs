//! MQTT 5 PUBLISH against the real broker, in raw bytes: forwarded message properties, message
//! expiry, topic aliases in both directions, Maximum Packet Size in both directions, Receive
//! Maximum in both directions, and the PUBACK / PUBREC reason for no matching subscribers.

use std::time::Duration;

use midge_tests::TestBroker;
use midge_tests::broker::tcp_config;
use midge_tests::raw::packet::{PUBACK, PUBREC};
use midge_tests::raw::v5::{Connect5, Decode5, Props, Publish5, V5Client, ack, prop, reason};

async fn broker(limits: &str) -> TestBroker {
    TestBroker::start(&tcp_config("", &format!("limits:\n{limits}"))).await
}

#[tokio::test]
async fn message_properties_are_forwarded_unaltered_with_user_properties_in_order() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut sub = V5Client::connected(addr, "sub").await;
    sub.subscribe(1, "req/#", 1).await;
    let mut publisher = V5Client::connected(addr, "pub").await;
    let props = Props::new()
        .byte(prop::PAYLOAD_FORMAT_INDICATOR, 1)
        .str(prop::CONTENT_TYPE, "application/json")
        .str(prop::RESPONSE_TOPIC, "resp/42")
        .bin(prop::CORRELATION_DATA, &[0, 0xff, 7])
        .user("b", "2")
        .user("a", "1")
        .user("b", "3");
    let code = publisher
        .publish(&Publish5::new("req/x", b"{}").qos(1, 5).props(props))
        .await;
    assert_eq!(code, reason::SUCCESS);
    let got = sub.receive_acked().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("req/x", &b"{}"[..])
    );
    let p = &got.props;
    assert_eq!(
        p.get_byte(prop::PAYLOAD_FORMAT_INDICATOR),
        Some(1),
        "{got:?}"
    );
    assert_eq!(p.get_str(prop::CONTENT_TYPE), Some("application/json"));
    assert_eq!(p.get_str(prop::RESPONSE_TOPIC), Some("resp/42"));
    assert_eq!(p.get_bin(prop::CORRELATION_DATA), Some(&[0, 0xff, 7][..]));
    // [MQTT-3.3.2-18]: in the order sent, duplicates kept.
    assert_eq!(
        p.user_properties(),
        [
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "3".to_owned())
        ]
    );
    assert_eq!(p.get(prop::MESSAGE_EXPIRY_INTERVAL), None);
}

/// A subscriber with a persistent session on `t` at QoS 1, then offline.
async fn offline_subscriber(broker: &TestBroker, id: &str) {
    let connect = Connect5::new(id).session_expiry(60);
    let (mut sub, _) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    sub.subscribe(1, "t", 1).await;
    sub.disconnect_with(0, &Props::new()).await;
}

async fn resume(broker: &TestBroker, id: &str) -> V5Client {
    let connect = Connect5::new(id).clean_start(false).session_expiry(60);
    let (sub, ack) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    assert!(ack.session_present, "{ack:?}");
    sub
}

#[tokio::test]
async fn a_queued_message_expires_and_the_forwarded_interval_is_decreased() {
    let broker = TestBroker::start_default().await;
    offline_subscriber(&broker, "sub").await;
    let mut publisher = V5Client::connected(broker.mqtt_addr(), "pub").await;
    let expiring = |payload: &[u8], secs| {
        Publish5::new("t", payload)
            .qos(1, 1)
            .props(Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, secs))
    };
    publisher.publish(&expiring(b"short", 1)).await;
    publisher.publish(&expiring(b"long", 30)).await;
    publisher
        .publish(&Publish5::new("t", b"forever").qos(1, 2))
        .await;
    // Held offline past the first one's expiry.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut sub = resume(&broker, "sub").await;
    let long = sub.receive_acked().await;
    assert_eq!(
        long.payload, b"long",
        "the expired message was delivered: {long:?}"
    );
    let left = long.props.get_u32(prop::MESSAGE_EXPIRY_INTERVAL);
    assert!(
        left.is_some_and(|s| (1..30).contains(&s)),
        "forwarded interval not decreased: {long:?}"
    );
    let forever = sub.receive_acked().await;
    assert_eq!(forever.payload, b"forever");
    assert_eq!(forever.props.get(prop::MESSAGE_EXPIRY_INTERVAL), None);
    sub.expect_nothing(300).await;
}

#[tokio::test]
async fn an_expired_retained_message_is_not_sent_to_new_subscribers() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut publisher = V5Client::connected(addr, "pub").await;
    let retained = |topic: &str, props| {
        Publish5::new(topic, b"r")
            .qos(1, 1)
            .retain(true)
            .props(props)
    };
    publisher
        .publish(&retained(
            "r/short",
            Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 1),
        ))
        .await;
    publisher
        .publish(&retained(
            "r/long",
            Props::new().u32(prop::MESSAGE_EXPIRY_INTERVAL, 60),
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut sub = V5Client::connected(addr, "sub").await;
    sub.subscribe(1, "r/#", 1).await;
    let got = sub.receive_acked().await;
    assert_eq!(got.topic, "r/long", "{got:?}");
    assert!(got.retain);
    let left = got.props.get_u32(prop::MESSAGE_EXPIRY_INTERVAL);
    assert!(left.is_some_and(|s| (1..60).contains(&s)), "{got:?}");
    sub.expect_nothing(300).await;
}

#[tokio::test]
async fn puback_and_pubrec_say_no_matching_subscribers() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut publisher = V5Client::connected(addr, "pub").await;
    assert_eq!(
        publisher
            .publish(&Publish5::new("nobody", b"x").qos(1, 1))
            .await,
        reason::NO_MATCHING_SUBSCRIBERS
    );
    // 0x10 is not an error: the QoS 2 flow goes on to PUBCOMP (publish() completes it).
    assert_eq!(
        publisher
            .publish(&Publish5::new("nobody", b"x").qos(2, 2))
            .await,
        reason::NO_MATCHING_SUBSCRIBERS
    );
    let mut sub = V5Client::connected(addr, "sub").await;
    sub.subscribe(1, "somebody", 0).await;
    assert_eq!(
        publisher
            .publish(&Publish5::new("somebody", b"x").qos(1, 3))
            .await,
        reason::SUCCESS
    );
}

#[tokio::test]
async fn inbound_topic_alias_is_set_then_reused() {
    let broker = broker("  topic-alias-maximum: 3\n").await;
    let addr = broker.mqtt_addr();
    let mut sub = V5Client::connected(addr, "sub").await;
    sub.subscribe(1, "#", 0).await;
    let mut publisher = V5Client::connected(addr, "pub").await;
    let alias = |n| Props::new().u16(prop::TOPIC_ALIAS, n);
    publisher
        .publish(&Publish5::new("a/b", b"1").props(alias(3)))
        .await;
    publisher
        .publish(&Publish5::new("", b"2").props(alias(3)))
        .await;
    // Re-pointing an alias is allowed.
    publisher
        .publish(&Publish5::new("c/d", b"3").props(alias(3)))
        .await;
    publisher
        .publish(&Publish5::new("", b"4").qos(1, 9).props(alias(3)))
        .await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let p = sub.expect_publish().await;
        // The subscriber allowed no aliases: it gets full topics and no alias.
        assert_eq!(p.props.get(prop::TOPIC_ALIAS), None, "{p:?}");
        got.push((p.topic, p.payload));
    }
    assert_eq!(
        got,
        [
            ("a/b".to_owned(), b"1".to_vec()),
            ("a/b".to_owned(), b"2".to_vec()),
            ("c/d".to_owned(), b"3".to_vec()),
            ("c/d".to_owned(), b"4".to_vec()),
        ]
    );
}

async fn expect_alias_rejected(broker: &TestBroker, publish: Publish5, expected: u8) {
    let mut client = V5Client::connected(broker.mqtt_addr(), "bad").await;
    client.send_ok(&publish.encode()).await;
    let disconnect = client.expect_disconnect().await;
    assert_eq!(disconnect.reason, expected, "{publish:?} → {disconnect:?}");
}

#[tokio::test]
async fn topic_alias_zero_above_the_maximum_or_unknown_is_refused_with_0x94() {
    let broker = broker("  topic-alias-maximum: 2\n").await;
    let alias = |n| Props::new().u16(prop::TOPIC_ALIAS, n);
    // [MQTT-3.3.2-8]: alias 0 is not permitted; §3.3.2.3.4: DISCONNECT 0x94.
    expect_alias_rejected(
        &broker,
        Publish5::new("t", b"x").props(alias(0)),
        reason::TOPIC_ALIAS_INVALID,
    )
    .await;
    // [MQTT-3.3.2-9]: above the Topic Alias Maximum we announced.
    expect_alias_rejected(
        &broker,
        Publish5::new("t", b"x").props(alias(3)),
        reason::TOPIC_ALIAS_INVALID,
    )
    .await;
    // An empty topic with an alias never set.
    expect_alias_rejected(
        &broker,
        Publish5::new("", b"x").props(alias(1)),
        reason::TOPIC_ALIAS_INVALID,
    )
    .await;
    // An empty topic without any alias is a protocol error ([MQTT-3.3.2-1]: it must be a
    // topic name, or an alias must stand for it).
    expect_alias_rejected(&broker, Publish5::new("", b"x"), reason::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn with_topic_alias_maximum_zero_any_alias_is_refused() {
    let broker = broker("  topic-alias-maximum: 0\n").await;
    let (_c, ack) = V5Client::connect_ok(broker.mqtt_addr(), &Connect5::new("c")).await;
    assert_eq!(ack.props.get(prop::TOPIC_ALIAS_MAXIMUM), None, "{ack:?}");
    expect_alias_rejected(
        &broker,
        Publish5::new("t", b"x").props(Props::new().u16(prop::TOPIC_ALIAS, 1)),
        reason::TOPIC_ALIAS_INVALID,
    )
    .await;
}

#[tokio::test]
async fn outbound_topic_aliases_are_used_when_the_client_allows_them() {
    let broker = broker("  topic-alias-maximum: 10\n").await;
    let addr = broker.mqtt_addr();
    let connect = Connect5::new("sub").props(Props::new().u16(prop::TOPIC_ALIAS_MAXIMUM, 2));
    let (mut sub, _) = V5Client::connect_ok(addr, &connect).await;
    sub.subscribe(1, "#", 0).await;
    let mut plain = V5Client::connected(addr, "plain").await;
    plain.subscribe(1, "#", 0).await;
    let mut publisher = V5Client::connected(addr, "pub").await;
    for topic in ["a", "a", "b", "c", "a"] {
        publisher
            .publish(&Publish5::new(topic, topic.as_bytes()))
            .await;
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        let p = sub.expect_publish().await;
        assert!(
            p.topic.is_empty() || p.topic.as_bytes() == p.payload,
            "{p:?}"
        );
        got.push((p.topic.clone(), p.props.get_u16(prop::TOPIC_ALIAS)));
    }
    let expected: Vec<(String, Option<u16>)> = vec![
        ("a".into(), Some(1)),
        // The second message on the same topic: empty topic name, the alias alone.
        ("".into(), Some(1)),
        ("b".into(), Some(2)),
        // Both aliases taken: a slot is reused with its new topic, never beyond the maximum.
        ("c".into(), Some(1)),
        ("a".into(), Some(2)),
    ];
    assert_eq!(got, expected);
    // A client that allows no aliases gets full topics and no alias property.
    for topic in ["a", "a", "b", "c", "a"] {
        let p = plain.expect_publish().await;
        assert_eq!(p.topic, topic);
        assert_eq!(p.props.get(prop::TOPIC_ALIAS), None, "{p:?}");
    }
}

#[tokio::test]
async fn an_oversize_packet_from_a_client_gets_disconnect_0x95() {
    let broker = broker("  max-packet-size: 128\n").await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "big").await;
    client
        .send_ok(&Publish5::new("t", &[b'x'; 200]).qos(1, 1).encode())
        .await;
    let disconnect = client.expect_disconnect().await;
    assert_eq!(
        disconnect.reason,
        reason::PACKET_TOO_LARGE,
        "{disconnect:?}"
    );
}

#[tokio::test]
async fn a_message_larger_than_the_client_accepts_is_dropped_for_that_client_only() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let small = Connect5::new("small").props(Props::new().u32(prop::MAXIMUM_PACKET_SIZE, 64));
    let (mut small, _) = V5Client::connect_ok(addr, &small).await;
    small.subscribe(1, "t", 1).await;
    let mut large = V5Client::connected(addr, "large").await;
    large.subscribe(1, "t", 1).await;
    let mut publisher = V5Client::connected(addr, "pub").await;
    // QoS 1 and QoS 0: a dropped QoS 1 message must not hold a slot of the window either.
    publisher
        .publish(&Publish5::new("t", &[b'B'; 100]).qos(1, 1))
        .await;
    publisher.publish(&Publish5::new("t", &[b'b'; 100])).await;
    publisher
        .publish(&Publish5::new("t", b"fits").qos(1, 2))
        .await;
    let got = small.receive_acked().await;
    assert_eq!(got.payload, b"fits", "{got:?}");
    small.expect_nothing(300).await;
    for payload in [&[b'B'; 100][..], &[b'b'; 100][..], b"fits"] {
        assert_eq!(large.receive_acked().await.payload, payload);
    }
}

#[tokio::test]
async fn exceeding_the_receive_maximum_gets_disconnect_0x93() {
    let broker = broker("  receive-maximum: 2\n").await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "eager").await;
    for id in 1..=2 {
        client
            .send_ok(&Publish5::new("t", b"x").qos(2, id).encode())
            .await;
        let rec = client.wait_for(PUBREC, Some(id)).await.ack5();
        assert!(rec.reason < 0x80, "{rec:?}");
    }
    // Two QoS 2 messages not released (no PUBREL): a third one is one too many.
    client
        .send_ok(&Publish5::new("t", b"x").qos(2, 3).encode())
        .await;
    let disconnect = client.expect_disconnect().await;
    assert_eq!(
        disconnect.reason,
        reason::RECEIVE_MAXIMUM_EXCEEDED,
        "{disconnect:?}"
    );
}

#[tokio::test]
async fn releasing_keeps_a_client_within_the_receive_maximum() {
    let broker = broker("  receive-maximum: 2\n").await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "steady").await;
    for id in 1..=5 {
        let code = client.publish(&Publish5::new("t", b"x").qos(2, id)).await;
        assert!(code < 0x80);
    }
    client.ping().await;
}

#[tokio::test]
async fn the_clients_receive_maximum_bounds_unacknowledged_deliveries() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let connect = Connect5::new("slow").props(Props::new().u16(prop::RECEIVE_MAXIMUM, 2));
    let (mut sub, _) = V5Client::connect_ok(addr, &connect).await;
    sub.subscribe(1, "t", 1).await;
    let mut publisher = V5Client::connected(addr, "pub").await;
    for i in 0..5u16 {
        publisher
            .publish(&Publish5::new("t", &[b'0' + i as u8]).qos(1, i + 1))
            .await;
    }
    let first = sub.expect_publish().await;
    let second = sub.expect_publish().await;
    assert_eq!(
        (&first.payload[..], &second.payload[..]),
        (&b"0"[..], &b"1"[..])
    );
    // [MQTT-3.3.4-9]: no more than Receive Maximum unacknowledged QoS 1 PUBLISHes.
    sub.expect_nothing(300).await;
    let id = first.packet_id.expect("QoS 1 has a packet id");
    sub.send_ok(&ack(PUBACK, id, 0)).await;
    let third = sub.expect_publish().await;
    assert_eq!(third.payload, b"2");
    sub.expect_nothing(300).await;
}

//! MQTT 5 SUBSCRIBE options against the real broker, in raw bytes: subscription identifiers
//! (overlapping subscriptions merged into one copy), No Local, Retain As Published and Retain
//! Handling 0/1/2, retained messages with their properties.

use midge_tests::TestBroker;
use midge_tests::raw::v5::{Props, Publish5, V5Client, options, prop};

fn sub_id(id: u32) -> Props {
    Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, id)
}

fn sorted(mut ids: Vec<u32>) -> Vec<u32> {
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn deliveries_carry_the_subscription_identifier() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut sub = V5Client::connected(addr, "sub").await;
    assert_eq!(sub.subscribe_with(1, &sub_id(7), &[("a/+", 1)]).await, [1]);
    assert_eq!(sub.subscribe_with(2, &Props::new(), &[("b", 1)]).await, [1]);
    let mut publisher = V5Client::connected(addr, "pub").await;
    publisher
        .publish(&Publish5::new("a/x", b"1").qos(1, 1))
        .await;
    publisher.publish(&Publish5::new("b", b"2").qos(1, 2)).await;
    let a = sub.receive_acked().await;
    assert_eq!(a.props.subscription_ids(), [7], "{a:?}");
    let b = sub.receive_acked().await;
    assert_eq!(b.props.subscription_ids(), Vec::<u32>::new(), "{b:?}");
    // Subscribing again to the same filter replaces the subscription, identifier included.
    assert_eq!(sub.subscribe_with(3, &sub_id(9), &[("a/+", 1)]).await, [1]);
    publisher
        .publish(&Publish5::new("a/y", b"3").qos(1, 3))
        .await;
    let a = sub.receive_acked().await;
    assert_eq!(a.props.subscription_ids(), [9], "{a:?}");
}

#[tokio::test]
async fn overlapping_subscriptions_give_one_copy_at_the_highest_qos_with_every_identifier() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut sub = V5Client::connected(addr, "sub").await;
    assert_eq!(sub.subscribe_with(1, &sub_id(1), &[("o/#", 0)]).await, [0]);
    assert_eq!(sub.subscribe_with(2, &sub_id(2), &[("o/+", 1)]).await, [1]);
    // A third match without an identifier adds none.
    assert_eq!(
        sub.subscribe_with(3, &Props::new(), &[("+/x", 0)]).await,
        [0]
    );
    let mut publisher = V5Client::connected(addr, "pub").await;
    publisher
        .publish(&Publish5::new("o/x", b"m").qos(2, 1))
        .await;
    let got = sub.receive_acked().await;
    assert_eq!(got.qos, 1, "{got:?}");
    assert_eq!(sorted(got.props.subscription_ids()), [1, 2], "{got:?}");
    sub.expect_nothing(300).await;
}

#[tokio::test]
async fn no_local_keeps_a_clients_own_messages_from_it() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut me = V5Client::connected(addr, "me").await;
    let codes = me
        .subscribe_with(
            1,
            &Props::new(),
            &[
                ("nl", options(1, true, false, 0)),
                ("echo", options(1, false, false, 0)),
            ],
        )
        .await;
    assert_eq!(codes, [1, 1]);
    let mut other = V5Client::connected(addr, "other").await;
    other.subscribe(1, "nl", 1).await;
    me.publish(&Publish5::new("nl", b"mine").qos(1, 1)).await;
    assert_eq!(other.receive_acked().await.payload, b"mine");
    // Control: without No Local the client does get its own message.
    me.publish(&Publish5::new("echo", b"back").qos(1, 2)).await;
    let echo = me.receive_acked().await;
    assert_eq!(
        echo.topic, "echo",
        "own message on a No Local subscription: {echo:?}"
    );
    // Another client's message on the No Local filter does reach it.
    other
        .publish(&Publish5::new("nl", b"theirs").qos(1, 3))
        .await;
    assert_eq!(me.receive_acked().await.payload, b"theirs");
    me.expect_nothing(300).await;
}

#[tokio::test]
async fn retain_as_published_keeps_the_retain_flag_on_live_deliveries() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut rap = V5Client::connected(addr, "rap").await;
    let codes = rap
        .subscribe_with(1, &Props::new(), &[("r", options(1, false, true, 2))])
        .await;
    assert_eq!(codes, [1]);
    let mut plain = V5Client::connected(addr, "plain").await;
    let codes = plain
        .subscribe_with(1, &Props::new(), &[("r", options(1, false, false, 2))])
        .await;
    assert_eq!(codes, [1]);
    let mut publisher = V5Client::connected(addr, "pub").await;
    publisher
        .publish(&Publish5::new("r", b"kept").qos(1, 1).retain(true))
        .await;
    let got = rap.receive_acked().await;
    assert!(
        got.retain,
        "Retain As Published: RETAIN must stay 1 [MQTT-3.3.1-13]: {got:?}"
    );
    let got = plain.receive_acked().await;
    assert!(
        !got.retain,
        "RETAIN must be cleared [MQTT-3.3.1-12]: {got:?}"
    );
}

#[tokio::test]
async fn retain_handling_0_1_2() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut publisher = V5Client::connected(addr, "pub").await;
    let props = Props::new()
        .str(prop::CONTENT_TYPE, "text/plain")
        .user("k", "v");
    publisher
        .publish(
            &Publish5::new("rh/t", b"stored")
                .qos(1, 1)
                .retain(true)
                .props(props),
        )
        .await;
    let mut sub = V5Client::connected(addr, "sub").await;

    // 0: sent at every subscribe, new or not; with its properties and the identifier.
    for round in 0..2u16 {
        let codes = sub
            .subscribe_with(
                10 + round,
                &sub_id(5),
                &[("rh/+", options(1, false, false, 0))],
            )
            .await;
        assert_eq!(codes, [1]);
        let got = sub.receive_acked().await;
        assert_eq!(got.payload, b"stored", "round {round}: {got:?}");
        assert!(got.retain, "a retained replay has RETAIN 1: {got:?}");
        assert_eq!(got.props.get_str(prop::CONTENT_TYPE), Some("text/plain"));
        assert_eq!(got.props.user_properties(), [("k".into(), "v".into())]);
        assert_eq!(got.props.subscription_ids(), [5], "{got:?}");
    }

    // 1: sent only if the subscription did not exist.
    let codes = sub
        .subscribe_with(20, &Props::new(), &[("rh/#", options(1, false, false, 1))])
        .await;
    assert_eq!(codes, [1]);
    let got = sub.receive_acked().await;
    assert_eq!(got.payload, b"stored", "{got:?}");
    let codes = sub
        .subscribe_with(21, &Props::new(), &[("rh/#", options(1, false, false, 1))])
        .await;
    assert_eq!(codes, [1]);
    sub.expect_nothing(300).await;

    // 2: never sent.
    let codes = sub
        .subscribe_with(30, &Props::new(), &[("+/t", options(1, false, false, 2))])
        .await;
    assert_eq!(codes, [1]);
    sub.expect_nothing(300).await;
}

//! Broker events through real plugins (`events.proto`): every kind with its fields and moment,
//! per-client order, payload and topic filtering, overflow, replay after a plugin restart, and
//! the drain on graceful shutdown.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use midge_plugin::{EventInterest, pb};
use midge_tests::plugin::{
    RawEventSink, Received, Reply, TestPlugin, broker_yaml, free_port, metrics_text, plugin_metric,
};
use midge_tests::raw::{Connect, Publish, Read, packet};
use midge_tests::{RawClient, TestBroker};
use pb::EventKind as K;
use pb::event::Body;

/// A broker with one plugin `p` (`extra` keys), plus `sections`.
async fn broker_with(plugin: &TestPlugin, extra: &str, sections: &str) -> TestBroker {
    TestBroker::start(&broker_yaml(&[plugin.yaml("p", extra)], sections)).await
}

async fn publish(client: &mut RawClient, topic: &str, payload: &[u8], retain: bool, id: u16) {
    client
        .publish(&Publish::new(topic, payload).qos(1, id).retain(retain))
        .await;
}

/// The events about `client` (as subscriber, session or publisher), in order.
fn of_client(plugin: &TestPlugin, client: &str) -> Vec<Received> {
    plugin.events_where(|r| r.client_id() == Some(client))
}

fn kinds(events: &[Received]) -> Vec<K> {
    events.iter().map(Received::kind).collect()
}

fn assert_increasing(events: &[Received]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].sequence < pair[1].sequence,
            "sequence numbers must increase: {} then {}",
            pair[0].sequence,
            pair[1].sequence
        );
    }
}

#[tokio::test]
async fn start_events_come_before_and_after_the_listeners_are_up() {
    let plugin = TestPlugin::start().await;
    // Hold pre_start unacked: the broker waits for it before it binds its listeners.
    plugin.hold_events();
    let port = free_port();
    let yaml = format!(
        "listeners:\n  - name: default\n    kind: tcp\n    bind: 127.0.0.1:{port}\nplugins:\n{}",
        plugin.yaml("p", "")
    );
    let (broker, ()) = tokio::join!(TestBroker::start(&yaml), async {
        plugin
            .wait_for_event("broker_pre_start", |r| r.is(K::BrokerPreStart))
            .await;
        let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(
            refused.is_err(),
            "the listener must not be up while broker_pre_start is unacked"
        );
        plugin.release_events();
    });
    let post = plugin
        .wait_for_event("broker_post_start", |r| r.is(K::BrokerPostStart))
        .await;
    // By the time post_start is sent, the listener accepts.
    let mut client = RawClient::connected(broker.mqtt_addr(), "after-start").await;
    let pre = plugin
        .wait_for_event("broker_pre_start", |r| r.is(K::BrokerPreStart))
        .await;
    assert!(pre.sequence < post.sequence, "pre_start is sent first");
    assert_eq!(pre.stream_id, post.stream_id);
    for event in [&pre, &post] {
        let (Body::PreStart(b) | Body::PostStart(b)) = event.body() else {
            unreachable!("filtered on the kind")
        };
        assert!(!b.broker_version.is_empty(), "broker_version is set");
    }
    assert!(pre.event.time.is_some() && post.event.time.is_some());
    client.disconnect().await;
}

#[tokio::test]
async fn client_events_carry_their_fields_in_the_order_they_happened() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| {
        if req.topic.starts_with("deny/") {
            Reply::deny()
        } else {
            Reply::allow()
        }
    });
    let broker = broker_with(
        &plugin,
        "",
        "topic-check:\n  enable: true\n  plugins: [p]\n",
    )
    .await;
    let connect = Connect::new("ev")
        .username("eve")
        .password(b"pw")
        .keep_alive(17)
        .clean_session(false);
    let (mut c, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(ack.code, 0);
    let codes = c.subscribe(1, &[("a/#", 1), ("deny/#", 2), ("b", 2)]).await;
    assert_eq!(codes, [1, 0x80, 2]);
    c.unsubscribe(2, &["a/#", "never/subscribed"]).await;
    publish(&mut c, "b", b"hello", false, 3).await;
    // "ev" is subscribed to "b" itself: take the copy and acknowledge it.
    let echo = c.expect_publish().await;
    c.send_ok(&packet::puback(echo.packet_id.expect("QoS 1")))
        .await;
    publish(&mut c, "deny/pub", b"no", false, 4).await;
    publish(&mut c, "r/1", b"keep", true, 5).await;
    publish(&mut c, "r/1", b"", true, 6).await;
    c.disconnect().await;
    let (mut c, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert!(ack.session_present);

    let events = plugin
        .wait_for_events("about ev (up to the second connect)", 16, |r| {
            r.client_id() == Some("ev")
        })
        .await;
    assert_eq!(
        kinds(&events),
        [
            K::ClientConnected,
            K::ClientSubscribed,   // a/#
            K::ClientSubscribed,   // b (none for the denied deny/#)
            K::ClientUnsubscribed, // a/#
            K::ClientUnsubscribed, // never/subscribed
            K::MessageReceived,    // b
            K::MessageBroadcast,   // b
            K::MessageReceived,    // deny/pub: received, denied, no broadcast
            K::MessageReceived,    // r/1 keep
            K::MessageBroadcast,
            K::RetainedStored,
            K::MessageReceived, // r/1 empty
            K::MessageBroadcast,
            K::RetainedCleared,
            K::ClientDisconnected,
            K::ClientConnected,
        ],
        "{:#?}",
        plugin.event_summary()
    );
    assert_increasing(&events);

    let Body::ClientConnected(connected) = events[0].body() else {
        unreachable!()
    };
    assert!(!connected.session_present);
    let session = connected.session.clone().expect("session facts");
    assert_eq!(session.client_id, "ev");
    assert_eq!(session.username.as_deref(), Some("eve"));
    assert!(!session.clean_start);
    assert_eq!(session.keep_alive_secs, 17);
    assert_eq!(session.protocol_version(), pb::ProtocolVersion::Mqtt311);
    assert_eq!(session.listener, "default");
    assert!(session.remote_addr.starts_with("127.0.0.1:"));
    assert!(!session.connection_id.is_empty());

    let subscribed: Vec<(String, u32, u32)> = events[1..3]
        .iter()
        .map(|r| match r.body() {
            Body::ClientSubscribed(s) => {
                assert_eq!(s.username.as_deref(), Some("eve"));
                (s.topic_filter.clone(), s.requested_qos, s.granted_qos)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(subscribed, [("a/#".into(), 1, 1), ("b".into(), 2, 2)]);
    let unsubscribed: Vec<String> = events[3..5]
        .iter()
        .map(|r| match r.body() {
            Body::ClientUnsubscribed(u) => u.topic_filter.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(unsubscribed, ["a/#", "never/subscribed"]);

    for r in &events[5..14] {
        let m = r.message_event().expect("a message event");
        assert_eq!(
            (m.client_id.as_str(), m.username.as_deref()),
            ("ev", Some("eve"))
        );
    }
    let hello = events[5].message().expect("message");
    assert_eq!(
        (
            hello.topic.as_str(),
            &hello.payload[..],
            hello.payload_size,
            hello.qos,
            hello.retain
        ),
        ("b", &b"hello"[..], 5, 1, false)
    );
    assert_eq!(
        events[6].message(),
        Some(hello),
        "the broadcast is the same message"
    );
    assert_eq!(events[7].topic(), Some("deny/pub"));
    let stored = events[10].message().expect("message");
    assert_eq!(
        (stored.topic.as_str(), &stored.payload[..], stored.retain),
        ("r/1", &b"keep"[..], true)
    );
    let cleared = events[13].message().expect("message");
    assert_eq!((cleared.topic.as_str(), cleared.payload_size), ("r/1", 0));

    let Body::ClientDisconnected(gone) = events[14].body() else {
        unreachable!()
    };
    assert_eq!(gone.reason(), pb::DisconnectReason::Normal);
    assert!(!gone.will_published);
    assert_eq!(
        gone.session.as_ref(),
        Some(&session),
        "the same session facts"
    );
    let Body::ClientConnected(again) = events[15].body() else {
        unreachable!()
    };
    assert!(again.session_present, "the stored session was resumed");
    assert_ne!(
        again.session.as_ref().map(|s| &s.connection_id),
        Some(&session.connection_id),
        "a new connection id"
    );
    c.disconnect().await;
}

/// The `client_disconnected` event of `client`.
async fn disconnected(plugin: &TestPlugin, client: &str) -> pb::ClientDisconnected {
    let event = plugin
        .wait_for_event(&format!("client_disconnected {client}"), |r| {
            r.is(K::ClientDisconnected) && r.client_id() == Some(client)
        })
        .await;
    match event.body() {
        Body::ClientDisconnected(d) => d.clone(),
        _ => unreachable!("filtered on the kind"),
    }
}

#[tokio::test]
async fn disconnect_reasons_and_wills() {
    let plugin = TestPlugin::start().await;
    let broker = broker_with(&plugin, "", "").await;
    let addr = broker.mqtt_addr();
    let mut watcher = RawClient::connected(addr, "watcher").await;
    assert_eq!(watcher.subscribe(1, &[("will/#", 0)]).await, [0]);

    // DISCONNECT: normal, the will is discarded.
    let (mut polite, _) = RawClient::connect(
        addr,
        &Connect::new("polite").will("will/polite", b"x", 0, false),
    )
    .await;
    polite.disconnect().await;
    let d = disconnected(&plugin, "polite").await;
    assert_eq!(
        (d.reason(), d.will_published),
        (pb::DisconnectReason::Normal, false)
    );

    // Socket closed without DISCONNECT: abnormal, the will is published first.
    let (rude, _) = RawClient::connect(
        addr,
        &Connect::new("rude").will("will/rude", b"x", 0, false),
    )
    .await;
    drop(rude);
    let d = disconnected(&plugin, "rude").await;
    assert_eq!(
        (d.reason(), d.will_published),
        (pb::DisconnectReason::Abnormal, true)
    );
    assert_eq!(watcher.expect_publish().await.topic, "will/rude");

    // Silent past 1.5 x keepalive.
    let connect = Connect::new("silent")
        .keep_alive(1)
        .will("will/silent", b"x", 0, false);
    let (mut silent, _) = RawClient::connect(addr, &connect).await;
    silent.expect_closed().await;
    let d = disconnected(&plugin, "silent").await;
    assert_eq!(
        (d.reason(), d.will_published),
        (pb::DisconnectReason::KeepaliveTimeout, true)
    );
    assert_eq!(watcher.expect_publish().await.topic, "will/silent");

    // Another connection with the same client id.
    let mut first = RawClient::connected(addr, "twin").await;
    let mut second = RawClient::connected(addr, "twin").await;
    first.expect_closed().await;
    let d = disconnected(&plugin, "twin").await;
    assert_eq!(d.reason(), pb::DisconnectReason::TakenOver);
    second.disconnect().await;

    // The will's order relative to the event: published before client_disconnected fired.
    let rude_events = of_client(&plugin, "rude");
    assert_eq!(
        kinds(&rude_events),
        [K::ClientConnected, K::ClientDisconnected]
    );
    assert!(
        !plugin
            .events_where(|r| r.topic() == Some("will/polite"))
            .iter()
            .any(|r| r.is(K::MessageBroadcast)),
        "no will for a normal disconnect"
    );
}

#[tokio::test]
async fn shutdown_events_bracket_the_last_disconnects_on_sigterm() {
    let plugin = TestPlugin::start().await;
    let mut broker = broker_with(&plugin, "", "").await;
    let mut c = RawClient::connected(broker.mqtt_addr(), "last").await;
    plugin
        .wait_for_event("client_connected last", |r| r.is(K::ClientConnected))
        .await;
    broker.sigterm();
    c.expect_closed().await;
    let status = broker.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    let events = plugin.events();
    let tail: Vec<K> = kinds(&events).into_iter().skip(3).collect();
    assert_eq!(
        tail,
        [
            K::BrokerPreShutdown,
            K::ClientDisconnected,
            K::BrokerPostShutdown
        ],
        "{:#?}",
        plugin.event_summary()
    );
    assert_increasing(&events);
    let Body::ClientDisconnected(d) = events[4].body() else {
        unreachable!()
    };
    assert_eq!(d.reason(), pb::DisconnectReason::Shutdown);
    assert!(!d.will_published);
}

#[tokio::test]
async fn each_clients_events_arrive_in_the_order_it_published() {
    const N: u16 = 200;
    let plugin = TestPlugin::start_with(EventInterest::kinds([K::MessageReceived])).await;
    let broker = broker_with(&plugin, "", "").await;
    let mut a = RawClient::connected(broker.mqtt_addr(), "pub-a").await;
    let mut b = RawClient::connected(broker.mqtt_addr(), "pub-b").await;
    let run = async |client: &mut RawClient| {
        for i in 1..=N {
            publish(client, "order", i.to_string().as_bytes(), false, i).await;
        }
    };
    tokio::join!(run(&mut a), run(&mut b));
    let all = plugin
        .wait_for_events("message_received", usize::from(N) * 2, |r| {
            r.is(K::MessageReceived)
        })
        .await;
    assert_increasing(&all);
    for client in ["pub-a", "pub-b"] {
        let payloads: Vec<u16> = all
            .iter()
            .filter(|r| r.client_id() == Some(client))
            .map(|r| {
                let text = String::from_utf8_lossy(r.payload().expect("payload")).into_owned();
                text.parse().expect("a number")
            })
            .collect();
        let expected: Vec<u16> = (1..=N).collect();
        assert_eq!(payloads, expected, "{client}'s events in publish order");
    }
}

#[tokio::test]
async fn payload_false_sends_only_the_size() {
    let plugin = TestPlugin::start().await;
    let broker = broker_with(&plugin, "payload: false", "").await;
    let mut c = RawClient::connected(broker.mqtt_addr(), "pl").await;
    publish(&mut c, "pl/t", b"0123456789", true, 1).await;
    for kind in [K::MessageReceived, K::MessageBroadcast, K::RetainedStored] {
        let event = plugin
            .wait_for_event(&format!("{kind:?} pl/t"), |r| r.is_message(kind, "pl/t"))
            .await;
        let m = event.message().expect("message");
        assert!(m.payload.is_empty(), "{kind:?}: no payload bytes");
        assert_eq!(m.payload_size, 10, "{kind:?}: the size is still sent");
    }
}

#[tokio::test]
async fn topic_filters_in_the_config_limit_message_events_only() {
    let plugin = TestPlugin::start().await;
    let broker = broker_with(&plugin, "topics: ['keep/#']", "").await;
    let mut c = RawClient::connected(broker.mqtt_addr(), "tf").await;
    publish(&mut c, "keep/1", b"a", false, 1).await;
    publish(&mut c, "drop/1", b"b", true, 2).await;
    publish(&mut c, "keep/2", b"c", true, 3).await;
    plugin
        .wait_for_event("retained_stored keep/2", |r| {
            r.is_message(K::RetainedStored, "keep/2")
        })
        .await;
    let topics: Vec<(K, String)> = plugin
        .events_where(|r| r.topic().is_some())
        .into_iter()
        .map(|r| (r.kind(), r.topic().unwrap_or_default().to_owned()))
        .collect();
    assert!(
        topics.iter().all(|(_, t)| t.starts_with("keep/")),
        "only keep/# message events: {topics:?}"
    );
    assert_eq!(topics.len(), 5, "{topics:?}");
    // Client events are not filtered by topic.
    assert_eq!(
        of_client(&plugin, "tf").first().map(Received::kind),
        Some(K::ClientConnected)
    );
}

// ---- Overflow --------------------------------------------------------------------------------

/// Publishes 100 messages while the plugin holds its acks, with `queue-size: 10` and
/// `overflow`; returns the payloads the plugin finally got and the broker's drop counter.
async fn overflow(policy: &str) -> (Vec<u32>, u64, TestBroker) {
    const N: u32 = 100;
    let plugin = TestPlugin::start().await;
    plugin.hold_events();
    let extra = format!("events: [message_received]\nqueue-size: 10\noverflow: {policy}");
    let broker = broker_with(&plugin, &extra, "metrics:\n  bind: 127.0.0.1:0\n").await;
    let mut c = RawClient::connected(broker.mqtt_addr(), "flood").await;
    for i in 0..N {
        // Each PUBACK comes after the message's event was queued.
        publish(
            &mut c,
            "flood",
            i.to_string().as_bytes(),
            false,
            i as u16 + 1,
        )
        .await;
    }
    let text = metrics_text(&broker).await;
    let dropped = plugin_metric(&text, "midge_plugin_events_dropped_total", "p")
        .unwrap_or_else(|| panic!("no drop counter in\n{text}"));
    let enqueued = plugin_metric(&text, "midge_plugin_events_enqueued_total", "p");
    assert!(dropped > 0, "a full queue drops (enqueued {enqueued:?})");
    plugin.release_events();
    let expected = usize::try_from(u64::from(N) - dropped).expect("small");
    let events = plugin
        .wait_for_events("message_received after the release", expected, |r| {
            r.is(K::MessageReceived)
        })
        .await;
    // And no more than that.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plugin.events_where(|r| r.is(K::MessageReceived)).len(),
        expected,
        "exactly the events that were not dropped"
    );
    assert_increasing(&events);
    let payloads = events
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(r.payload().expect("payload")).into_owned();
            text.parse().expect("a number")
        })
        .collect();
    broker
        .wait_for_log("the drops logged", |l| {
            l.contains("plugin event queue full: events dropped")
        })
        .await;
    (payloads, dropped, broker)
}

/// Stops `broker` and checks that its "events dropped" warnings report every drop once: their
/// `dropped` fields add up to the drop counter, and the last one's `total` is that counter.
async fn assert_drops_reported(broker: &mut TestBroker, dropped: u64) {
    broker.sigterm();
    broker.wait_exit(Duration::from_secs(20)).await;
    let warnings: Vec<serde_json::Value> = broker
        .log_text()
        .lines()
        .filter(|l| l.contains("plugin event queue full: events dropped"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let field = |w: &serde_json::Value, name: &str| {
        w["fields"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {w}"))
    };
    let reported: u64 = warnings.iter().map(|w| field(w, "dropped")).sum();
    assert_eq!(reported, dropped, "dropped reported by {warnings:#?}");
    let last = warnings.last().expect("a warning");
    assert_eq!(field(last, "total"), dropped, "{last}");
}

#[tokio::test]
async fn overflow_drop_oldest_keeps_the_newest_events() {
    let (payloads, dropped, mut broker) = overflow("drop-oldest").await;
    assert_drops_reported(&mut broker, dropped).await;
    assert!(payloads.len() < 100, "{payloads:?}");
    assert_eq!(payloads.len() as u64 + dropped, 100);
    for pair in payloads.windows(2) {
        assert!(pair[0] < pair[1], "in order: {payloads:?}");
    }
    // The ten newest were in the queue when the flood ended: none of them was dropped.
    assert!(
        (90..100).all(|i| payloads.contains(&i)),
        "the newest kept: {payloads:?}"
    );
}

#[tokio::test]
async fn overflow_drop_newest_keeps_the_oldest_events() {
    let (payloads, dropped, mut broker) = overflow("drop-newest").await;
    assert_drops_reported(&mut broker, dropped).await;
    assert_eq!(payloads.len() as u64 + dropped, 100);
    for pair in payloads.windows(2) {
        assert!(pair[0] < pair[1], "in order: {payloads:?}");
    }
    // The first ten filled the window and the queue had room for them; once both were full,
    // every newer event was refused, the newest of all included.
    assert_eq!(
        payloads[..10],
        (0..10).collect::<Vec<u32>>(),
        "{payloads:?}"
    );
    assert!(!payloads.contains(&99), "the newest refused: {payloads:?}");
}

// ---- Plugin down and back --------------------------------------------------------------------

#[tokio::test]
async fn a_restarted_plugin_gets_the_unacked_events_again_and_the_missed_ones() {
    let mut raw = RawEventSink::start(&[K::MessageReceived]).await;
    let broker = TestBroker::start(&broker_yaml(
        &[raw.yaml("raw", "")],
        "metrics:\n  bind: 127.0.0.1:0\n",
    ))
    .await;
    let mut c = RawClient::connected(broker.mqtt_addr(), "src").await;
    let mut id = 0u16;
    let mut send = async |from: u32, to: u32| {
        for i in from..=to {
            id += 1;
            publish(&mut c, "m", format!("m{i}").as_bytes(), false, id).await;
        }
    };
    let is = |i: u32| {
        move |d: &midge_tests::plugin::Delivery| d.payload() == Some(format!("m{i}").as_bytes())
    };

    // m1..m5 acked: wait until the broker counted the acks.
    send(1, 5).await;
    raw.wait_for("m5", is(5)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while plugin_metric(
        &metrics_text(&broker).await,
        "midge_plugin_events_acked_total",
        "raw",
    ) != Some(5)
    {
        assert!(Instant::now() < deadline, "the broker never counted 5 acks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // m6..m10 received, not acked; then the plugin dies.
    raw.set_acking(false);
    send(6, 10).await;
    raw.wait_for("m10", is(10)).await;
    raw.kill().await;
    // m11..m15 happen while it is down.
    send(11, 15).await;
    raw.set_acking(true);
    raw.restart_on_same_port().await;
    raw.wait_for("m15 after the restart", is(15)).await;

    let deliveries = raw.deliveries();
    let stream_ids: Vec<&str> = deliveries.iter().map(|d| d.stream_id.as_str()).collect();
    assert!(
        stream_ids.windows(2).all(|w| w[0] == w[1]),
        "one stream id across the reconnect"
    );
    let mut by_payload: HashMap<String, Vec<(u32, u64)>> = HashMap::new();
    for d in &deliveries {
        let payload = String::from_utf8_lossy(d.payload().expect("payload")).into_owned();
        by_payload
            .entry(payload)
            .or_default()
            .push((d.connection, d.sequence()));
    }
    let summary = || {
        deliveries
            .iter()
            .map(|d| {
                (
                    d.connection,
                    d.sequence(),
                    String::from_utf8_lossy(d.payload().unwrap_or_default()).into_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    for i in 1..=15 {
        let seen = by_payload
            .get(&format!("m{i}"))
            .cloned()
            .unwrap_or_default();
        match i {
            1..=5 => assert!(
                seen.len() == 1 && seen[0].0 == 1,
                "m{i} was acked: delivered once, never replayed: {:?}",
                summary()
            ),
            6..=10 => {
                assert_eq!(
                    seen.len(),
                    2,
                    "m{i} was not acked: replayed: {:?}",
                    summary()
                );
                assert_eq!(seen[0].1, seen[1].1, "m{i}: a replay keeps its sequence");
                assert!(seen[0].0 == 1 && seen[1].0 > 1, "m{i}: {seen:?}");
            }
            _ => assert!(
                seen.len() == 1 && seen[0].0 > 1,
                "m{i} happened while the plugin was down: delivered once after: {:?}",
                summary()
            ),
        }
    }
    // On the new connection: the replay first, then the missed events, in sequence order.
    let last = deliveries.last().map_or(0, |d| d.connection);
    let after: Vec<u64> = deliveries
        .iter()
        .filter(|d| d.connection == last)
        .map(midge_tests::plugin::Delivery::sequence)
        .collect();
    let first_unacked = by_payload["m6"][0].1;
    let expected: Vec<u64> = (first_unacked..first_unacked + 10).collect();
    assert_eq!(
        after, expected,
        "replay from the first unacked sequence, no gap"
    );
}

#[tokio::test]
async fn an_sdk_plugin_killed_and_restarted_gets_what_happened_meanwhile() {
    let mut plugin = TestPlugin::start().await;
    let broker = broker_with(&plugin, "", "").await;
    let mut before = RawClient::connected(broker.mqtt_addr(), "before").await;
    plugin
        .wait_for_event("client_connected before", |r| {
            r.is(K::ClientConnected) && r.client_id() == Some("before")
        })
        .await;
    plugin.kill().await;
    let mut during = RawClient::connected(broker.mqtt_addr(), "during").await;
    publish(&mut during, "while/down", b"x", false, 1).await;
    during.disconnect().await;
    plugin.restart_on_same_port().await;
    let events = plugin
        .wait_for_events("about `during`", 4, |r| r.client_id() == Some("during"))
        .await;
    assert_eq!(
        kinds(&events),
        [
            K::ClientConnected,
            K::MessageReceived,
            K::MessageBroadcast,
            K::ClientDisconnected
        ]
    );
    // Any event seen twice (handled, but its ack lost in the kill) is the same event with the
    // same sequence number: duplicates are detectable.
    let mut seen: HashMap<(String, u64), pb::Event> = HashMap::new();
    for r in plugin.events() {
        if let Some(first) = seen.insert((r.stream_id.clone(), r.sequence), r.event.clone()) {
            assert_eq!(first, r.event, "a duplicate is the same event");
        }
    }
    before.disconnect().await;
}

// ---- Shutdown drain --------------------------------------------------------------------------

#[tokio::test]
async fn graceful_shutdown_delivers_queued_events_before_post_shutdown() {
    const N: u16 = 40;
    let plugin = TestPlugin::start().await;
    // A slow plugin: events pile up in the broker's queue.
    plugin.set_event_delay(Duration::from_millis(40));
    let mut broker = broker_with(&plugin, "", "").await;
    let mut c = RawClient::connected(broker.mqtt_addr(), "drain").await;
    for i in 1..=N {
        publish(&mut c, "drain", i.to_string().as_bytes(), false, i).await;
    }
    assert!(
        plugin.events_where(|r| r.is(K::MessageReceived)).len() < usize::from(N),
        "the plugin is behind when the broker is told to stop"
    );
    broker.sigterm();
    let status = broker.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    let events = plugin.events();
    assert_eq!(
        events.last().map(Received::kind),
        Some(K::BrokerPostShutdown),
        "post_shutdown is the last event"
    );
    let received = events.iter().filter(|r| r.is(K::MessageReceived)).count();
    assert_eq!(
        received,
        usize::from(N),
        "every queued event arrived before post_shutdown"
    );
    assert_increasing(&events);
    // Drained and acked: the broker waited for them, it did not time out.
    assert!(
        !broker.logs_contain("not drained") && !broker.logs_contain("did not acknowledge"),
        "{}",
        broker.log_text()
    );
    match c.next(Duration::from_secs(1)).await {
        Read::Closed => {}
        other => panic!("the client must have been closed: {other:?}"),
    }
}

// ---- Packet events (opt-in) ------------------------------------------------------------------

/// `(received?, packet type, size)` of every packet event, in order.
fn packet_trace(plugin: &TestPlugin) -> Vec<(bool, pb::PacketType, u32)> {
    plugin
        .events()
        .iter()
        .filter_map(|r| match r.body() {
            Body::PacketReceived(p) => Some((true, p.packet_type(), p.size)),
            Body::PacketSent(p) => Some((false, p.packet_type(), p.size)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn packet_events_report_every_packet_with_its_type_and_size() {
    use pb::PacketType as T;
    let interest = EventInterest::kinds([K::PacketReceived, K::PacketSent]);
    let plugin = TestPlugin::start_with(interest).await;
    let broker = broker_with(&plugin, "", "").await;
    let connect = Connect::new("pk");
    let subscribe = packet::subscribe(1, &[("pk/in", 0)]);
    let message = Publish::new("pk/out", b"hi").qos(1, 2);
    let mut c = RawClient::connect(broker.mqtt_addr(), &connect).await.0;
    assert_eq!(c.subscribe(1, &[("pk/in", 0)]).await, [0]);
    c.publish(&message).await;
    c.ping().await;
    c.disconnect().await;

    let size = |bytes: &[u8]| u32::try_from(bytes.len()).expect("small");
    let expected = [
        (true, T::Connect, size(&connect.encode())),
        (false, T::Connack, 4),
        (true, T::Subscribe, size(&subscribe)),
        (false, T::Suback, 5),
        (true, T::Publish, size(&message.encode())),
        (false, T::Puback, 4),
        (true, T::Pingreq, 2),
        (false, T::Pingresp, 2),
        (true, T::Disconnect, 2),
    ];
    plugin
        .wait_for_events("packet events", expected.len(), |r| {
            r.is(K::PacketReceived) || r.is(K::PacketSent)
        })
        .await;
    assert_eq!(packet_trace(&plugin), expected);
    let ids: Vec<(String, String)> = plugin
        .events()
        .iter()
        .filter_map(|r| match r.body() {
            Body::PacketReceived(p) | Body::PacketSent(p) => {
                Some((p.client_id.clone(), p.connection_id.clone()))
            }
            _ => None,
        })
        .collect();
    assert!(
        ids.iter()
            .all(|(client, conn)| client == "pk" && !conn.is_empty() && *conn == ids[0].1),
        "one client, one connection id: {ids:?}"
    );
}

#[tokio::test]
async fn packet_events_carry_the_raw_bytes_when_asked() {
    // events.proto, PacketEvent.raw: "The packet's bytes, only when the plugin asked for them
    // (DescribeResponse.packet_bytes)".
    let interest = EventInterest::kinds([K::PacketReceived]).with_packet_bytes();
    let plugin = TestPlugin::start_with(interest).await;
    let broker = broker_with(&plugin, "", "").await;
    let mut c = RawClient::connected(broker.mqtt_addr(), "bytes").await;
    c.ping().await;
    let ping = plugin
        .wait_for_event("PINGREQ received", |r| {
            matches!(r.body(), Body::PacketReceived(p) if p.packet_type() == pb::PacketType::Pingreq)
        })
        .await;
    let Body::PacketReceived(p) = ping.body() else {
        unreachable!("filtered on the body")
    };
    assert_eq!(p.raw, packet::pingreq(), "the PINGREQ's bytes");
    c.disconnect().await;
}

#[tokio::test]
async fn message_events_carry_the_mqtt5_properties_and_the_session_facts_its_version() {
    use midge_tests::raw::v5::{Connect5, Props, Publish5, V5Client};
    let plugin = TestPlugin::start().await;
    let broker = broker_with(&plugin, "", "").await;
    let (mut c, _) = V5Client::connect_ok(broker.mqtt_addr(), &Connect5::new("v5ev")).await;
    let props = Props::new()
        .byte(0x01, 1)
        .u32(0x02, 3600)
        .str(0x03, "text/plain")
        .str(0x08, "reply/here")
        .bin(0x09, b"corr")
        .user("k1", "v1")
        .user("k0", "v0");
    c.publish(&Publish5::new("v5/t", b"hi").qos(1, 1).props(props))
        .await;
    let events = plugin
        .wait_for_events("connected + received of v5ev", 2, |r| {
            r.client_id() == Some("v5ev")
                && matches!(r.kind(), K::ClientConnected | K::MessageReceived)
        })
        .await;
    let Body::ClientConnected(connected) = events[0].body() else {
        panic!("first event: {:?}", events[0]);
    };
    let session = connected.session.as_ref().expect("session facts");
    assert_eq!(session.protocol_version, pb::ProtocolVersion::Mqtt5 as i32);
    let message = events[1].message().expect("a message event");
    let p = message.properties.as_ref().expect("MQTT 5 properties");
    assert_eq!(
        p.user_properties
            .iter()
            .map(|u| (u.key.as_str(), u.value.as_str()))
            .collect::<Vec<_>>(),
        [("k1", "v1"), ("k0", "v0")],
        "in the publisher's order"
    );
    assert_eq!(
        (
            p.content_type.as_str(),
            p.response_topic.as_str(),
            p.correlation_data.as_slice(),
            p.payload_is_utf8
        ),
        ("text/plain", "reply/here", &b"corr"[..], true)
    );
    let expiry = p.message_expiry_secs.expect("expiry");
    assert!((3590..=3600).contains(&expiry), "expiry left: {expiry}");
}

// ---- Awaited lifecycle events ----------------------------------------------------------------

/// Whether `sink` received an event of `kind`.
fn delivered(sink: &RawEventSink, kind: K) -> bool {
    sink.deliveries().iter().any(|d| d.event.kind() == kind)
}

#[tokio::test]
async fn shutdown_waits_until_post_start_is_acknowledged() {
    // events.proto: post_start is awaited — the broker goes on (here: to its shutdown) only once
    // the plugin acked it. Clients are served meanwhile: the listeners are up before it is sent.
    let sink = RawEventSink::start(&[K::BrokerPostStart, K::BrokerPreShutdown]).await;
    sink.hold_acks_at(K::BrokerPostStart);
    let mut broker = TestBroker::start(&broker_yaml(&[sink.yaml("raw", "")], "")).await;
    sink.wait_for("broker_post_start", |d| {
        d.event.kind() == K::BrokerPostStart
    })
    .await;
    let mut client = RawClient::connected(broker.mqtt_addr(), "early").await;
    broker.sigterm();
    broker
        .wait_for_log("the signal", |l| l.contains("signal received"))
        .await;
    client.ping().await;
    assert!(
        !broker.logs_contain("\"message\":\"shutting down\"")
            && !delivered(&sink, K::BrokerPreShutdown),
        "the shutdown began before post_start was acknowledged\n{}",
        broker.log_text()
    );

    sink.release_acks();
    sink.wait_for("broker_pre_shutdown", |d| {
        d.event.kind() == K::BrokerPreShutdown
    })
    .await;
    client.expect_closed().await;
    let status = broker.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    assert!(
        !broker.logs_contain("did not acknowledge"),
        "acked in time, not waited out\n{}",
        broker.log_text()
    );
}

#[tokio::test]
async fn connected_clients_are_served_until_pre_shutdown_is_acknowledged() {
    // events.proto: pre_shutdown is awaited. At the signal the listeners stop accepting; the
    // clients already connected are served until the plugin acked pre_shutdown, then closed.
    let sink = RawEventSink::start(&[
        K::BrokerPreShutdown,
        K::ClientDisconnected,
        K::BrokerPostShutdown,
    ])
    .await;
    sink.hold_acks_at(K::BrokerPreShutdown);
    let mut broker = TestBroker::start(&broker_yaml(&[sink.yaml("raw", "")], "")).await;
    let addr = broker.mqtt_addr();
    let mut sub = RawClient::connected(addr, "sub").await;
    assert_eq!(sub.subscribe(1, &[("s/#", 0)]).await, [0]);
    let mut publisher = RawClient::connected(addr, "pub").await;
    broker.sigterm();
    sink.wait_for("broker_pre_shutdown", |d| {
        d.event.kind() == K::BrokerPreShutdown
    })
    .await;

    // Awaited: the connected clients are still served...
    publish(&mut publisher, "s/1", b"during pre_shutdown", false, 1).await;
    assert_eq!(sub.expect_publish().await.topic, "s/1");
    assert!(!delivered(&sink, K::ClientDisconnected));
    // ...but nobody new gets in.
    broker
        .wait_for_log("the listener to stop", |l| l.contains("stopped accepting"))
        .await;
    refused_or_closed(addr).await;

    sink.release_acks();
    sub.expect_closed().await;
    publisher.expect_closed().await;
    let status = broker.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    let kinds: Vec<K> = sink.deliveries().iter().map(|d| d.event.kind()).collect();
    assert_eq!(
        kinds,
        [
            K::BrokerPreShutdown,
            K::ClientDisconnected,
            K::ClientDisconnected,
            K::BrokerPostShutdown
        ]
    );
    assert!(
        !broker.logs_contain("did not acknowledge"),
        "acked in time, not waited out\n{}",
        broker.log_text()
    );
}

/// A TCP connection to `addr` is refused, or accepted by the kernel and then closed without a
/// byte (the listener was being dropped).
async fn refused_or_closed(addr: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.write_all(&Connect::new("late").encode()).await;
    let mut byte = [0u8; 1];
    let read = midge_tests::within("the late connection to close", stream.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "a connection accepted after the listeners stopped: {read:?}"
    );
}

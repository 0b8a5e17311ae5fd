//! Topic checks through real plugins (`topic.proto`): disabled, the decision rule, what a DENY
//! does to SUBSCRIBE, PUBLISH and RECEIVE (retained replay included), the per-session cache,
//! the circuit breaker, and failing closed when every plugin abstains by fallback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use midge_plugin::{Action, Status, pb};
use midge_tests::plugin::{Reply, TestPlugin, broker_yaml, free_port, metrics_text, plugin_yaml};
use midge_tests::raw::packet::{self, PUBACK, PUBREC};
use midge_tests::raw::v5::{Decode5, Publish5, V5Client, ack, reason};
use midge_tests::raw::{Connect, Publish, Read};
use midge_tests::{RawClient, TestBroker};
use pb::EventKind as K;

/// SUBACK failure return code (MQTT 3.1.1).
const FAILURE: u8 = 0x80;

/// A broker with `plugins` defined (alias `p0`, `p1`, ...): with `enable`, they are its
/// topic-check chain; without, topic checks are off (and the chain empty: plugins listed with
/// checks off are refused at load).
async fn broker(plugins: &[&TestPlugin], enable: bool, extra: &str) -> TestBroker {
    let aliases: Vec<String> = (0..plugins.len()).map(|i| format!("p{i}")).collect();
    let entries: Vec<String> = plugins
        .iter()
        .zip(&aliases)
        .map(|(p, alias)| p.yaml(alias, extra))
        .collect();
    let chain = if enable {
        aliases.join(", ")
    } else {
        String::new()
    };
    let yaml = broker_yaml(
        &entries,
        &format!(
            "topic-check:\n  enable: {enable}\n  plugins: [{chain}]\nmetrics:\n  bind: 127.0.0.1:0\n"
        ),
    );
    TestBroker::start(&yaml).await
}

/// A broker whose topic-check chain is a live plugin `alive` (alias `alive`, may be `None`)
/// and a dead endpoint `dead` whose every fallback is `ignore`.
async fn broker_with_dead_acl(alive: Option<&TestPlugin>) -> TestBroker {
    let dead = plugin_yaml(
        "dead",
        &format!("http://127.0.0.1:{}", free_port()),
        "timeout: 200ms\nfallback: {on-timeout: ignore, on-error: ignore, on-unavailable: ignore}",
    );
    let mut entries = vec![dead];
    let mut chain = String::from("dead");
    if let Some(alive) = alive {
        entries.push(alive.yaml("alive", ""));
        chain.push_str(", alive");
    }
    let yaml = broker_yaml(
        &entries,
        &format!("topic-check:\n  enable: true\n  plugins: [{chain}]\n"),
    );
    TestBroker::start(&yaml).await
}

/// The next PUBLISH `client` gets (QoS 0 subscriptions: nothing to acknowledge).
async fn next_publish(client: &mut RawClient) -> Publish {
    client.expect_publish().await
}

/// Asserts that nothing arrives at `client` for a little while.
async fn nothing_more(client: &mut RawClient) {
    match client.next(Duration::from_millis(300)).await {
        Read::TimedOut => {}
        other => panic!("{client:?}: expected nothing, got {other:?}"),
    }
}

async fn publish(client: &mut RawClient, topic: &str, payload: &str, retain: bool, id: u16) {
    client
        .publish(
            &Publish::new(topic, payload.as_bytes())
                .qos(1, id)
                .retain(retain),
        )
        .await;
}

#[tokio::test]
async fn disabled_checks_allow_everything_and_ask_nobody() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|_| Reply::deny());
    let broker = broker(&[&plugin], false, "").await;
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publish(&mut publisher, "d/retained", "r", true, 1).await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    assert_eq!(sub.subscribe(1, &[("d/#", 0)]).await, [0]);
    assert_eq!(next_publish(&mut sub).await.topic, "d/retained");
    publish(&mut publisher, "d/live", "l", false, 2).await;
    assert_eq!(next_publish(&mut sub).await.topic, "d/live");
    assert!(
        plugin.topic_calls().is_empty(),
        "{:?}",
        plugin.topic_calls()
    );
}

#[tokio::test]
async fn any_deny_denies_allow_with_ignore_allows_all_ignore_denies() {
    // Per topic: "x/ad": a ALLOW, b DENY. "x/ai": a ALLOW, b IGNORE. "x/ii": both IGNORE.
    // Everything else (the "x/#" subscription, RECEIVE of other topics): both ALLOW.
    let a = TestPlugin::start().await;
    a.on_topic(|req| match req.topic.as_str() {
        "x/ii" => Reply::ignore(),
        _ => Reply::allow(),
    });
    let b = TestPlugin::start().await;
    b.on_topic(|req| match req.topic.as_str() {
        "x/ad" => Reply::deny(),
        "x/ai" | "x/ii" => Reply::ignore(),
        _ => Reply::allow(),
    });
    let broker = broker(&[&a, &b], true, "").await;

    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    let codes = sub
        .subscribe(1, &[("x/ad", 0), ("x/ai", 1), ("x/ii", 0)])
        .await;
    assert_eq!(codes, [FAILURE, 1, FAILURE], "SUBACK for [ad, ai, ii]");
    assert_eq!(sub.subscribe(2, &[("x/#", 0)]).await, [0]);

    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    for (i, topic) in ["x/ad", "x/ii", "x/ai"].into_iter().enumerate() {
        publish(&mut publisher, topic, topic, false, i as u16 + 1).await;
    }
    // Only the [ALLOW, IGNORE] publish went through (twice: "x/ai" and "x/#" match).
    let got = next_publish(&mut sub).await;
    assert_eq!(got.topic, "x/ai");
    // Both plugins were asked, concurrently, for each PUBLISH.
    for plugin in [&a, &b] {
        for topic in ["x/ad", "x/ai", "x/ii"] {
            assert_eq!(
                plugin.topic_call_count(Action::Publish, topic),
                1,
                "{topic}"
            );
            assert_eq!(
                plugin.topic_call_count(Action::Subscribe, topic),
                1,
                "{topic}"
            );
        }
    }
}

#[tokio::test]
async fn a_denied_filter_gets_0x80_alone_and_no_retained_replay() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| {
        if req.action == Action::Subscribe && req.topic == "s/no" {
            Reply::deny()
        } else {
            Reply::allow()
        }
    });
    let broker = broker(&[&plugin], true, "").await;
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publish(&mut publisher, "s/ok", "kept ok", true, 1).await;
    publish(&mut publisher, "s/no", "kept no", true, 2).await;

    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    let codes = sub.subscribe(1, &[("s/ok", 0), ("s/no", 1)]).await;
    assert_eq!(codes, [0, FAILURE], "only the denied filter fails");
    let replay = next_publish(&mut sub).await;
    assert_eq!((replay.topic.as_str(), replay.retain), ("s/ok", true));
    // A marker published after the SUBSCRIBE: had "s/no" been replayed, it would come first.
    publish(&mut publisher, "s/ok", "marker", false, 3).await;
    assert_eq!(next_publish(&mut sub).await.payload, b"marker");
    // And the denied filter subscribed nothing.
    publish(&mut publisher, "s/no", "live", false, 4).await;
    nothing_more(&mut sub).await;
}

#[tokio::test]
async fn a_denied_publish_is_acked_but_neither_delivered_nor_retained() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| {
        if req.action == Action::Publish && req.topic == "p/secret" {
            Reply::deny()
        } else {
            Reply::allow()
        }
    });
    let broker = broker(&[&plugin], true, "").await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    assert_eq!(sub.subscribe(1, &[("p/#", 0)]).await, [0]);
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    // `publish` waits for the PUBACK: an MQTT 3.1.1 publisher is not told about the denial.
    publish(&mut publisher, "p/secret", "no", true, 1).await;
    publish(&mut publisher, "p/marker", "yes", true, 2).await;
    assert_eq!(next_publish(&mut sub).await.topic, "p/marker");

    let call = plugin
        .topic_calls()
        .into_iter()
        .find(|c| c.action == Action::Publish && c.topic == "p/secret")
        .expect("the PUBLISH was checked");
    assert_eq!(
        (call.client_id.as_str(), call.qos, call.retain),
        ("pub", 1, true)
    );
    assert_eq!(call.listener, "default");

    // Not retained: a new subscriber gets only the marker, then a live message.
    let mut late = RawClient::connected(broker.mqtt_addr(), "late").await;
    assert_eq!(late.subscribe(1, &[("p/#", 0)]).await, [0]);
    let replay = next_publish(&mut late).await;
    assert_eq!((replay.topic.as_str(), replay.retain), ("p/marker", true));
    publish(&mut publisher, "p/end", "end", false, 3).await;
    assert_eq!(next_publish(&mut late).await.topic, "p/end");
}

// ---- The PUBLISH moment (topic.proto, events.proto, docs/plugins.md) ---------------------------

/// Sends `bytes` (a PUBLISH on `topic` with packet id `id`) from `client` while `plugin` holds
/// its answers, and checks the moment of `message_received`: it reaches the plugin while the
/// PUBLISH check is still unanswered, and no `message_broadcast` and no acknowledgement (packet
/// type `ack_kind`) has left the broker yet. Then releases the check and returns the
/// acknowledgement, which can only come after the check.
async fn publish_while_the_check_is_held(
    plugin: &TestPlugin,
    client: &mut RawClient,
    bytes: &[u8],
    topic: &str,
    ack_kind: u8,
    id: u16,
) -> packet::Packet {
    plugin.hold_answers();
    let checks = plugin.topic_calls().len();
    client.send_ok(bytes).await;
    plugin.wait_for_topic_calls(checks + 1).await;
    let pending = plugin.topic_calls().remove(checks);
    assert_eq!(
        (pending.action, pending.topic.as_str()),
        (Action::Publish, topic),
        "the PUBLISH check is the call the plugin holds"
    );
    plugin
        .wait_for_event("message_received while the check is pending", |r| {
            r.is_message(K::MessageReceived, topic)
        })
        .await;
    assert!(
        plugin
            .events_where(|r| r.is_message(K::MessageBroadcast, topic))
            .is_empty(),
        "message_broadcast before the PUBLISH check answered"
    );
    match client.next(Duration::from_millis(300)).await {
        Read::TimedOut => {}
        other => panic!("the broker answered before its PUBLISH check did: {other:?}"),
    }
    plugin.release_answers();
    client.wait_for(ack_kind, Some(id)).await
}

#[tokio::test]
async fn message_received_precedes_the_publish_check_and_the_ack_carries_its_outcome() {
    // The one moment stated in topic.proto, events.proto, docs/plugins.md and
    // docs/architecture.md: `message_received` is queued when the PUBLISH has been read, before
    // the PUBLISH check; the PUBACK / PUBREC is sent after the check (and the routing), so it
    // reports the decision to an MQTT 5 publisher.
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| {
        if req.action == Action::Publish && req.topic.ends_with("/denied") {
            Reply::deny()
        } else {
            Reply::allow()
        }
    });
    // The held check must not run into the deadline.
    let broker = broker(&[&plugin], true, "timeout: 10s").await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    assert_eq!(sub.subscribe(1, &[("m/#", 0)]).await, [0]);

    // MQTT 5, QoS 1, denied: PUBACK 0x87 after the check; no broadcast, no delivery.
    let mut v5 = V5Client::connected(broker.mqtt_addr(), "pub5").await;
    let denied = Publish5::new("m/v5/denied", b"no").qos(1, 1).encode();
    let puback =
        publish_while_the_check_is_held(&plugin, &mut v5, &denied, "m/v5/denied", PUBACK, 1).await;
    assert_eq!(puback.ack5().reason, reason::NOT_AUTHORIZED);

    // MQTT 5, QoS 2, allowed: PUBREC 0x00 after the check, then message_broadcast and delivery.
    let allowed = Publish5::new("m/v5/allowed", b"yes").qos(2, 2).encode();
    let pubrec =
        publish_while_the_check_is_held(&plugin, &mut v5, &allowed, "m/v5/allowed", PUBREC, 2)
            .await;
    assert_eq!(pubrec.ack5().reason, reason::SUCCESS);
    v5.send_ok(&ack(packet::PUBREL, 2, 0)).await;
    v5.wait_for(packet::PUBCOMP, Some(2)).await;
    assert_eq!(next_publish(&mut sub).await.topic, "m/v5/allowed");

    // MQTT 3.1.1, QoS 1, denied: a plain PUBACK, also only after the check.
    let mut v4 = RawClient::connected(broker.mqtt_addr(), "pub4").await;
    let denied = Publish::new("m/v4/denied", b"no").qos(1, 3).encode();
    let puback =
        publish_while_the_check_is_held(&plugin, &mut v4, &denied, "m/v4/denied", PUBACK, 3).await;
    assert_eq!(puback.packet_id(), 3);
    v4.ping().await;
    nothing_more(&mut sub).await;

    let received = plugin.wait_for_event("the allowed message's broadcast", |r| {
        r.is_message(K::MessageBroadcast, "m/v5/allowed")
    });
    let broadcast = received.await;
    let of_allowed = plugin.events_where(|r| r.topic() == Some("m/v5/allowed"));
    assert_eq!(
        of_allowed.iter().map(|r| r.kind()).collect::<Vec<_>>(),
        [K::MessageReceived, K::MessageBroadcast],
        "received, then broadcast"
    );
    assert!(of_allowed[0].sequence < broadcast.sequence);
    for denied in ["m/v5/denied", "m/v4/denied"] {
        let kinds: Vec<K> = plugin
            .events_where(|r| r.topic() == Some(denied))
            .iter()
            .map(|r| r.kind())
            .collect();
        assert_eq!(kinds, [K::MessageReceived], "{denied}: received only");
    }
}

#[tokio::test]
async fn receive_is_checked_per_subscriber() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| {
        if req.action == Action::Receive && req.client_id == "blocked" && req.topic == "r/1" {
            Reply::deny()
        } else {
            Reply::allow()
        }
    });
    let broker = broker(&[&plugin], true, "").await;
    let mut ok = RawClient::connected(broker.mqtt_addr(), "ok").await;
    let mut blocked = RawClient::connected(broker.mqtt_addr(), "blocked").await;
    assert_eq!(ok.subscribe(1, &[("r/#", 0)]).await, [0]);
    assert_eq!(blocked.subscribe(1, &[("r/#", 0)]).await, [0]);
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publish(&mut publisher, "r/1", "one", false, 1).await;
    publish(&mut publisher, "r/2", "two", false, 2).await;
    assert_eq!(next_publish(&mut ok).await.topic, "r/1");
    assert_eq!(next_publish(&mut ok).await.topic, "r/2");
    assert_eq!(
        next_publish(&mut blocked).await.topic,
        "r/2",
        "r/1 was denied to this subscriber only"
    );
    let receives: Vec<(String, String, bool)> = plugin
        .topic_calls()
        .into_iter()
        .filter(|c| c.action == Action::Receive && c.topic == "r/1")
        .map(|c| (c.client_id, c.listener, c.retain))
        .collect();
    assert_eq!(
        receives.len(),
        2,
        "one RECEIVE check per subscriber: {receives:?}"
    );
    assert!(
        receives
            .iter()
            .all(|(_, listener, retain)| listener == "default" && !retain)
    );
}

#[tokio::test]
async fn the_receive_check_carries_the_delivery_qos() {
    // topic.proto, CheckTopicRequest.qos: "RECEIVE: the QoS it would be delivered with", the
    // lower of the message's and the subscription's.
    let plugin = TestPlugin::start().await;
    let broker = broker(&[&plugin], true, "").await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub0").await;
    assert_eq!(sub.subscribe(1, &[("q/#", 0)]).await, [0]);
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publish(&mut publisher, "q/1", "x", false, 1).await;
    let delivered = next_publish(&mut sub).await;
    assert_eq!(delivered.qos, 0);
    let call = plugin
        .topic_calls()
        .into_iter()
        .find(|c| c.action == Action::Receive)
        .expect("a RECEIVE check");
    assert_eq!(call.qos, 0, "the subscription is QoS 0, the message QoS 1");
}

#[tokio::test]
async fn receive_applies_to_retained_replay() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| {
        if req.action == Action::Receive && req.client_id == "blocked" && req.retain {
            Reply::deny()
        } else {
            Reply::allow()
        }
    });
    let broker = broker(&[&plugin], true, "").await;
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publish(&mut publisher, "rr/x", "stored", true, 1).await;

    let mut ok = RawClient::connected(broker.mqtt_addr(), "ok").await;
    assert_eq!(ok.subscribe(1, &[("rr/#", 0)]).await, [0]);
    let replay = next_publish(&mut ok).await;
    assert_eq!((replay.topic.as_str(), replay.retain), ("rr/x", true));

    let mut blocked = RawClient::connected(broker.mqtt_addr(), "blocked").await;
    assert_eq!(
        blocked.subscribe(1, &[("rr/#", 0)]).await,
        [0],
        "SUBSCRIBE itself is allowed"
    );
    publish(&mut publisher, "rr/y", "live", false, 2).await;
    let first = next_publish(&mut blocked).await;
    assert_eq!(
        (first.topic.as_str(), first.retain),
        ("rr/y", false),
        "the retained replay was denied, the live message was not"
    );
    let call = plugin
        .topic_calls()
        .into_iter()
        .find(|c| c.action == Action::Receive && c.client_id == "blocked" && c.topic == "rr/x")
        .expect("the replay was checked");
    assert!(call.retain, "RECEIVE for a replay has retain = true");
}

// ---- Cache -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_cached_verdict_answers_twenty_publishes_with_one_call() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|_| Reply::allow().ttl(Duration::from_secs(60)));
    let broker = broker(&[&plugin], true, "").await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    assert_eq!(sub.subscribe(1, &[("c/t", 0)]).await, [0]);
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    for i in 1..=20u16 {
        publish(&mut publisher, "c/t", &i.to_string(), false, i).await;
    }
    for i in 1..=20u16 {
        assert_eq!(
            next_publish(&mut sub).await.payload,
            i.to_string().as_bytes()
        );
    }
    assert_eq!(plugin.topic_call_count(Action::Publish, "c/t"), 1);
    assert_eq!(plugin.topic_call_count(Action::Receive, "c/t"), 1);
    assert_eq!(plugin.topic_call_count(Action::Subscribe, "c/t"), 1);
}

/// How far the kernel's coarse monotonic clock, by which topic verdicts expire, may lag the
/// precise one: one scheduler tick (10 ms at `HZ=100`, the coarsest Linux setting), doubled.
const COARSE_CLOCK_LAG: Duration = Duration::from_millis(20);

#[tokio::test]
async fn cached_topic_verdicts_expire() {
    // Both halves are decided by when each PUBLISH was sent and acknowledged, not by how fast
    // the machine is. The verdict was cached after the first PUBLISH was sent and before its
    // PUBACK arrived, and the broker reads the coarse monotonic clock (at most
    // COARSE_CLOCK_LAG behind ours): a PUBLISH acknowledged before `first sent + ttl - lag` must
    // be answered from the cache; one sent after `first acked + ttl + lag` must ask again.
    let plugin = TestPlugin::start().await;
    let ttl = Duration::from_millis(800);
    plugin.on_topic(move |_| Reply::allow().ttl(ttl));
    let broker = broker(&[&plugin], true, "").await;
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    let first_sent = Instant::now();
    publish(&mut publisher, "e/t", "1", false, 1).await;
    let first_acked = Instant::now();
    assert_eq!(plugin.topic_call_count(Action::Publish, "e/t"), 1);
    let mut from_cache = 0;
    for id in 2u16.. {
        let sent = Instant::now();
        publish(&mut publisher, "e/t", &id.to_string(), false, id).await;
        let acked = Instant::now();
        // The PUBACK follows the check (see topic.proto), so the count is final here.
        let calls = plugin.topic_call_count(Action::Publish, "e/t");
        if acked + COARSE_CLOCK_LAG < first_sent + ttl {
            assert_eq!(calls, 1, "within the lifetime: answered from the cache");
            from_cache += 1;
        }
        if calls == 2 {
            break;
        }
        assert_eq!(calls, 1);
        assert!(
            sent < first_acked + ttl + COARSE_CLOCK_LAG,
            "sent {:?} after the lifetime ended and not asked again",
            sent - (first_acked + ttl)
        );
        tokio::time::sleep(ttl / 10).await;
    }
    assert!(
        from_cache > 0,
        "no PUBLISH was acknowledged within {ttl:?} of the first one: nothing checked the cache"
    );
}

#[tokio::test]
async fn a_disconnect_forgets_the_clients_cached_topic_verdicts() {
    // topic.proto, cache_ttl_ms: "The broker also forgets a client's entries when it
    // disconnects". A persistent session outlives the connection; its cached verdicts must not.
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|_| Reply::allow().ttl(Duration::from_secs(60)));
    let broker = broker(&[&plugin], true, "").await;
    let connect = Connect::new("persistent").clean_session(false);
    let (mut client, _) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(client.subscribe(1, &[("f/t", 0)]).await, [0]);
    client.disconnect().await;
    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert!(ack.session_present);
    assert_eq!(client.subscribe(2, &[("f/t", 0)]).await, [0]);
    assert_eq!(
        plugin.topic_call_count(Action::Subscribe, "f/t"),
        2,
        "the reconnected client is asked about again"
    );
    client.disconnect().await;
}

// ---- Breaker ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_breaker_opens_after_three_failures_and_a_probe_closes_it() {
    let plugin = TestPlugin::start().await;
    let failing = Arc::new(AtomicBool::new(true));
    let fail = Arc::clone(&failing);
    plugin.on_topic(move |_| {
        if fail.load(Ordering::SeqCst) {
            Reply::error(Status::internal("broken"))
        } else {
            Reply::allow()
        }
    });
    // on-error allows, on-unavailable (an open breaker) denies: the two are told apart by
    // what is delivered.
    let extra =
        "breaker: {failures: 3, cool-down: 1s}\nfallback: {on-error: allow, on-unavailable: deny}";
    let broker = broker(&[&plugin], true, extra).await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    // Failure 1: SUBSCRIBE (error -> allow).
    assert_eq!(sub.subscribe(1, &[("b/#", 0)]).await, [0]);
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    // Failures 2 and 3: PUBLISH and RECEIVE of b/1, both allowed by on-error; the third opens.
    publish(&mut publisher, "b/1", "1", false, 1).await;
    assert_eq!(next_publish(&mut sub).await.topic, "b/1");
    assert_eq!(plugin.topic_calls().len(), 3);
    broker
        .wait_for_log("the circuit to open", |l| l.contains("circuit opened"))
        .await;

    // Open: no call reaches the plugin, on-unavailable denies at once.
    for i in 2..=4u16 {
        publish(&mut publisher, &format!("b/{i}"), "x", false, i).await;
    }
    publisher.ping().await;
    nothing_more(&mut sub).await;
    assert_eq!(plugin.topic_calls().len(), 3, "no call while open");

    // After the cool-down one probe goes through; it succeeds and closes the breaker.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    publish(&mut publisher, "b/5", "5", false, 5).await;
    assert_eq!(next_publish(&mut sub).await.topic, "b/5");
    assert_eq!(
        plugin.topic_calls().len(),
        5,
        "the probe (PUBLISH) and then RECEIVE"
    );
    broker
        .wait_for_log("the circuit to close", |l| l.contains("circuit closed"))
        .await;
    publish(&mut publisher, "b/6", "6", false, 6).await;
    assert_eq!(next_publish(&mut sub).await.topic, "b/6");
    assert_eq!(
        plugin.topic_calls().len(),
        7,
        "closed: every check asks again"
    );
}

#[tokio::test]
async fn an_open_breaker_answers_without_waiting_for_the_deadline() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|_| Reply::allow().after(Duration::from_secs(3)));
    let timeout = Duration::from_millis(500);
    let extra = format!(
        "timeout: {}ms\nbreaker: {{failures: 2, cool-down: 30s}}\nfallback: {{on-timeout: allow, on-unavailable: allow}}",
        timeout.as_millis()
    );
    let broker = broker(&[&plugin], true, &extra).await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    let mut elapsed = Vec::new();
    for (i, filter) in ["t/1", "t/2", "t/3", "t/4"].into_iter().enumerate() {
        let started = Instant::now();
        assert_eq!(sub.subscribe(i as u16 + 1, &[(filter, 0)]).await, [0]);
        elapsed.push(started.elapsed());
    }
    assert!(
        elapsed[..2].iter().all(|e| *e >= timeout),
        "the first two wait out the deadline: {elapsed:?}"
    );
    assert!(
        elapsed[2..].iter().all(|e| *e < timeout / 2),
        "once open, the fallback is taken at once: {elapsed:?}"
    );
    assert_eq!(
        plugin.topic_calls().len(),
        2,
        "only the first two reached the plugin"
    );
    // The metrics say the same: two calls (both timed out), and two answers of the open
    // breaker, which are unavailable fallbacks and not calls.
    let text = metrics_text(&broker).await;
    let sample = |name: &str, label: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("plugin=\"p0\"") && l.contains(label))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} {label} in\n{text}"))
    };
    assert_eq!(sample("midge_plugin_calls_total", ""), 2.0);
    assert_eq!(sample("midge_plugin_fallbacks_total", ""), 4.0);
    let failures = "midge_plugin_call_failures_total";
    assert_eq!(sample(failures, "failure=\"timeout\""), 2.0);
    assert_eq!(sample(failures, "failure=\"unavailable\""), 2.0);
}

#[tokio::test]
async fn a_dead_acl_whose_fallback_is_ignore_closes_every_topic() {
    // The only ACL plugin is down and abstains by fallback: nobody voted ALLOW, so nothing is
    // allowed (before the fail-closed rule this opened every topic).
    let broker = broker_with_dead_acl(None).await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    assert_eq!(sub.subscribe(1, &[("open/#", 0)]).await, [FAILURE]);
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publish(&mut publisher, "open/retained", "r", true, 1).await;
    let mut late = RawClient::connected(broker.mqtt_addr(), "late").await;
    assert_eq!(late.subscribe(1, &[("open/#", 0)]).await, [FAILURE]);
    nothing_more(&mut late).await;
    nothing_more(&mut sub).await;
    broker
        .wait_for_log("the ignore fallback logged", |l| {
            l.contains("fallback taken") && l.contains("\"alias\":\"dead\"")
        })
        .await;
}

#[tokio::test]
async fn a_dead_acl_whose_fallback_is_ignore_leaves_a_healthy_plugin_to_decide() {
    // `ignore` still means "this plugin abstains": beside a healthy plugin, the chain behaves
    // as if the dead one were not there.
    let alive = TestPlugin::start().await;
    alive.on_topic(|req| match req.topic.as_str() {
        t if t.starts_with("no/") => Reply::deny(),
        _ => Reply::allow(),
    });
    let broker = broker_with_dead_acl(Some(&alive)).await;
    let mut sub = RawClient::connected(broker.mqtt_addr(), "sub").await;
    assert_eq!(
        sub.subscribe(1, &[("ok/#", 0), ("no/#", 0)]).await,
        [0, FAILURE]
    );
    let mut publisher = RawClient::connected(broker.mqtt_addr(), "pub").await;
    publish(&mut publisher, "ok/1", "one", false, 1).await;
    assert_eq!(next_publish(&mut sub).await.topic, "ok/1");
}

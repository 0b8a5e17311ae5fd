//! MQTT 5 shared subscriptions (`$share/{group}/{filter}`) against the real broker: round-robin
//! distribution (each member its share, none duplicated, none lost), plain subscriptions beside
//! them, offline members skipped, redelivery of a departed member's unacknowledged messages,
//! unsubscribe, the `shared-subscriptions: false` switch, invalid share names, and no retained
//! replay, RECEIVE checks choosing among members. Distribution uses `rumqttc`'s v5 client; the exact-protocol cases use raw bytes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use midge_plugin::Action;
use midge_tests::broker::tcp_config;
use midge_tests::plugin::{Reply, TestPlugin, broker_yaml};
use midge_tests::raw::packet;
use midge_tests::raw::v5::{Connect5, Props, Publish5, V5Client, ack, prop, reason, subscribe};
use midge_tests::{TestBroker, within};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;

/// Topic Filter invalid (not in the shared helper's list).
const TOPIC_FILTER_INVALID: u8 = 0x8F;

/// A `rumqttc` v5 client whose event loop runs in a task, forwarding incoming packets.
struct Client {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Packet>,
}

impl Client {
    async fn connect(addr: SocketAddr, id: &str) -> Client {
        let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(opts, 100);
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(packet) = event
                    && tx.send(packet).is_err()
                {
                    break;
                }
            }
        });
        let mut client = Client { client, incoming };
        match client.next().await {
            Packet::ConnAck(ack) => assert_eq!(ack.code as u8, 0, "{ack:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        client
    }

    async fn next(&mut self) -> Packet {
        within("a packet", self.incoming.recv())
            .await
            .expect("event loop ended")
    }

    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe queued");
        loop {
            if let Packet::SubAck(ack) = self.next().await {
                assert_eq!(format!("{:?}", ack.return_codes), "[Success(AtLeastOnce)]");
                return;
            }
        }
    }

    /// The payloads of the next `n` PUBLISHes (acknowledged by the event loop).
    async fn payloads(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            if let Packet::Publish(p) = self.next().await {
                out.push(String::from_utf8(p.payload.to_vec()).expect("UTF-8 payload"));
            }
        }
        out
    }

    /// Asserts that no PUBLISH arrives within `ms`.
    async fn no_publish(&mut self, ms: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Ok(Some(packet)) = tokio::time::timeout_at(until, self.incoming.recv()).await {
            assert!(
                !matches!(packet, Packet::Publish(_)),
                "unexpected {packet:?}"
            );
        }
    }
}

/// Publishes `payloads` at QoS 1 to `topic` and waits for every PUBACK.
async fn publish_all(
    publisher: &mut V5Client,
    topic: &str,
    payloads: impl Iterator<Item = String>,
) {
    for (i, payload) in payloads.enumerate() {
        let id = u16::try_from(i + 1).expect("packet id");
        let publish = Publish5::new(topic, payload.as_bytes()).qos(1, id);
        assert_eq!(publisher.publish(&publish).await, reason::SUCCESS);
    }
}

fn numbered(prefix: &str, n: usize) -> impl Iterator<Item = String> {
    (0..n).map(move |i| format!("{prefix}{i}"))
}

async fn persistent(addr: SocketAddr, id: &str, clean_start: bool) -> (V5Client, bool) {
    let connect = Connect5::new(id)
        .clean_start(clean_start)
        .session_expiry(300);
    let (client, ack) = V5Client::connect_ok(addr, &connect).await;
    (client, ack.session_present)
}

/// Receives `n` PUBLISHes, acknowledging them; returns their payloads.
async fn receive_acked(client: &mut V5Client, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let publish = client.receive_acked().await;
        out.push(String::from_utf8(publish.payload).expect("UTF-8 payload"));
    }
    out
}

#[tokio::test]
async fn round_robin_gives_each_member_its_share_none_duplicated_none_lost() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut members = Vec::new();
    for i in 0..3 {
        let mut member = Client::connect(addr, &format!("worker-{i}")).await;
        member.subscribe("$share/workers/jobs/+").await;
        members.push(member);
    }
    // A plain subscriber beside the group gets every message.
    let mut watcher = Client::connect(addr, "watcher").await;
    watcher.subscribe("jobs/#").await;

    let mut publisher = V5Client::connected(addr, "publisher").await;
    publish_all(&mut publisher, "jobs/build", numbered("job-", 30)).await;

    let mut seen = BTreeSet::new();
    for member in &mut members {
        let got = member.payloads(10).await;
        for payload in got {
            assert!(seen.insert(payload.clone()), "{payload} delivered twice");
        }
    }
    for member in &mut members {
        member.no_publish(300).await;
    }
    assert_eq!(seen, numbered("job-", 30).collect::<BTreeSet<_>>());
    let all = watcher.payloads(30).await;
    assert_eq!(all, numbered("job-", 30).collect::<Vec<_>>(), "in order");
}

#[tokio::test]
async fn a_member_with_a_plain_subscription_gets_a_copy_for_each_with_its_identifiers() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut a = V5Client::connected(addr, "a").await;
    let sid = |id| Props::new().varint(prop::SUBSCRIPTION_IDENTIFIER, id);
    assert_eq!(
        a.subscribe_with(1, &sid(5), &[("$share/g/t", 1)]).await,
        [1]
    );
    assert_eq!(a.subscribe_with(2, &sid(6), &[("t", 1)]).await, [1]);
    let mut b = V5Client::connected(addr, "b").await;
    b.subscribe(1, "$share/g/t", 1).await;

    let mut publisher = V5Client::connected(addr, "publisher").await;
    publish_all(&mut publisher, "t", numbered("m", 4)).await;

    let mut plain = Vec::new();
    let mut shared = Vec::new();
    for _ in 0..6 {
        let publish = a.receive_acked().await;
        let payload = String::from_utf8(publish.payload.clone()).expect("UTF-8");
        match publish.props.subscription_ids()[..] {
            [6] => plain.push(payload),
            [5] => shared.push(payload),
            ref ids => panic!("identifiers {ids:?} on {publish:?}"),
        }
    }
    a.expect_nothing(200).await;
    assert_eq!(plain, numbered("m", 4).collect::<Vec<_>>());
    let from_b = receive_acked(&mut b, 2).await;
    b.expect_nothing(200).await;
    let mut group: Vec<_> = shared.into_iter().chain(from_b).collect();
    group.sort();
    assert_eq!(group, numbered("m", 4).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_offline_member_is_skipped_while_another_is_online_and_queues_when_alone() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let (mut sleeper, _) = persistent(addr, "sleeper", true).await;
    sleeper.subscribe(1, "$share/g/t", 1).await;
    sleeper
        .disconnect_with(reason::SUCCESS, &Props::new())
        .await;
    let mut awake = V5Client::connected(addr, "awake").await;
    awake.subscribe(1, "$share/g/t", 1).await;

    let mut publisher = V5Client::connected(addr, "publisher").await;
    publish_all(&mut publisher, "t", numbered("online-", 6)).await;
    assert_eq!(
        receive_acked(&mut awake, 6).await,
        numbered("online-", 6).collect::<Vec<_>>()
    );

    // The online member leaves (its session ends with it): the offline one now gets them.
    awake.disconnect_with(reason::SUCCESS, &Props::new()).await;
    publish_all(&mut publisher, "t", numbered("queued-", 2)).await;
    let (mut sleeper, present) = persistent(addr, "sleeper", false).await;
    assert!(present);
    assert_eq!(
        receive_acked(&mut sleeper, 2).await,
        numbered("queued-", 2).collect::<Vec<_>>(),
        "only what was published while no member was online"
    );
    sleeper.expect_nothing(300).await;
}

#[tokio::test]
async fn unacknowledged_qos1_messages_go_to_another_member_when_a_member_drops() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    // Receive Maximum 1: one message in flight, the rest of its share queued behind it.
    let connect = Connect5::new("stingy").props(Props::new().u16(prop::RECEIVE_MAXIMUM, 1));
    let (mut stingy, _) = V5Client::connect_ok(addr, &connect).await;
    stingy.subscribe(1, "$share/g/t", 1).await;
    let mut helper = Client::connect(addr, "helper").await;
    helper.subscribe("$share/g/t").await;

    let mut publisher = V5Client::connected(addr, "publisher").await;
    publish_all(&mut publisher, "t", numbered("m", 6)).await;
    // stingy gets the first of its three and never acknowledges it.
    let held = stingy.expect_publish().await;
    assert_eq!(held.qos, 1);
    stingy.expect_nothing(200).await;
    let mut got = helper.payloads(3).await;
    helper.no_publish(200).await;

    drop(stingy); // no DISCONNECT: the connection just ends
    got.extend(helper.payloads(3).await);
    helper.no_publish(300).await;
    let got: BTreeSet<_> = got.into_iter().collect();
    assert_eq!(got, numbered("m", 6).collect::<BTreeSet<_>>());
    assert!(got.contains(&String::from_utf8(held.payload).expect("UTF-8")));
}

#[tokio::test]
async fn qos2_messages_already_sent_stay_with_their_member() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let (mut a, _) = persistent(addr, "a", true).await;
    a.subscribe(1, "$share/g/t", 2).await;
    let mut b = V5Client::connected(addr, "b").await;
    b.subscribe(1, "$share/g/t", 2).await;

    let mut publisher = V5Client::connected(addr, "publisher").await;
    let publish = Publish5::new("t", b"exactly-once").qos(2, 1);
    assert_eq!(publisher.publish(&publish).await, reason::SUCCESS);
    let sent = a.expect_publish().await; // not acknowledged
    assert_eq!(sent.qos, 2);
    drop(a);
    // [MQTT-4.8.2-4]: the delivery completes with the member it started with, on reconnect.
    b.expect_nothing(500).await;
    let (mut a, present) = persistent(addr, "a", false).await;
    assert!(present);
    let again = a.expect_publish().await;
    assert!(again.dup, "{again:?}");
    assert_eq!(again.payload, b"exactly-once");
    let id = again.packet_id.expect("QoS 2 packet id");
    a.send_ok(&ack(packet::PUBREC, id, 0)).await;
    a.wait_for(packet::PUBREL, Some(id)).await;
    a.send_ok(&ack(packet::PUBCOMP, id, 0)).await;
}

#[tokio::test]
async fn unsubscribing_leaves_the_group() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut a = V5Client::connected(addr, "a").await;
    let mut b = V5Client::connected(addr, "b").await;
    a.subscribe(1, "$share/g/t/#", 1).await;
    b.subscribe(1, "$share/g/t/#", 1).await;
    assert_eq!(a.unsubscribe(2, &["$share/g/t/#"]).await, [reason::SUCCESS]);
    assert_eq!(
        a.unsubscribe(3, &["$share/g/t/#", "$share/other/t/#"])
            .await,
        [
            reason::NO_SUBSCRIPTION_EXISTED,
            reason::NO_SUBSCRIPTION_EXISTED
        ]
    );

    let mut publisher = V5Client::connected(addr, "publisher").await;
    publish_all(&mut publisher, "t/x", numbered("m", 4)).await;
    assert_eq!(
        receive_acked(&mut b, 4).await,
        numbered("m", 4).collect::<Vec<_>>()
    );
    a.expect_nothing(300).await;

    // The last member leaving empties the group: nobody gets the next one.
    assert_eq!(b.unsubscribe(2, &["$share/g/t/#"]).await, [reason::SUCCESS]);
    let publish = Publish5::new("t/x", b"nobody").qos(1, 9);
    assert_eq!(
        publisher.publish(&publish).await,
        reason::NO_MATCHING_SUBSCRIBERS
    );
}

#[tokio::test]
async fn shared_subscriptions_switched_off_are_refused_with_0x9e() {
    let yaml = tcp_config("", "limits:\n  shared-subscriptions: false\n");
    let broker = TestBroker::start(&yaml).await;
    let (mut client, ack) = V5Client::connect_ok(broker.mqtt_addr(), &Connect5::new("c")).await;
    assert_eq!(
        ack.props.get_byte(prop::SHARED_SUBSCRIPTION_AVAILABLE),
        Some(0),
        "{ack:?}"
    );
    let codes = client
        .subscribe_with(1, &Props::new(), &[("$share/g/t", 1), ("t", 1)])
        .await;
    assert_eq!(
        codes,
        [
            reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            reason::GRANTED_QOS_1
        ]
    );
}

#[tokio::test]
async fn invalid_share_names_are_refused_with_0x8f() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    // Valid topic filters, but not valid shared subscriptions: SUBACK 0x8F, connection kept.
    let mut client = V5Client::connected(addr, "c").await;
    let filters = ["$share//t", "$share/g", "$share/g/"];
    let requested: Vec<(&str, u8)> = filters.iter().map(|f| (*f, 1)).collect();
    let codes = client.subscribe_with(1, &Props::new(), &requested).await;
    assert_eq!(codes, [TOPIC_FILTER_INVALID; 3], "{filters:?}");
    client.subscribe(2, "$share/g/t", 1).await;
    // A wildcard inside the share name is not a valid topic filter at all: the SUBSCRIBE is
    // malformed, answered with DISCONNECT 0x8F.
    for (i, filter) in ["$share/g+/t", "$share/#/t", "$share/g/t/#/x"]
        .iter()
        .enumerate()
    {
        let mut client = V5Client::connected(addr, &format!("bad-{i}")).await;
        client
            .send_ok(&subscribe(1, &Props::new(), &[(filter, 1)]))
            .await;
        let disconnect = client.expect_disconnect().await;
        assert_eq!(disconnect.reason, TOPIC_FILTER_INVALID, "{filter}");
    }
}

#[tokio::test]
async fn a_shared_subscription_gets_no_retained_messages() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut publisher = V5Client::connected(addr, "publisher").await;
    let retained = Publish5::new("r/1", b"kept").qos(1, 1).retain(true);
    // Nobody subscribes yet: 0x10 No matching subscribers, or success.
    let code = publisher.publish(&retained).await;
    assert!(
        [reason::SUCCESS, reason::NO_MATCHING_SUBSCRIBERS].contains(&code),
        "{code:#x}"
    );

    let mut member = V5Client::connected(addr, "member").await;
    member.subscribe(1, "$share/g/r/#", 1).await;
    member.expect_nothing(300).await;
    // The same filter, not shared, does get it.
    member.subscribe(2, "r/#", 1).await;
    let replayed = member.receive_acked().await;
    assert!(
        replayed.retain && replayed.payload == b"kept",
        "{replayed:?}"
    );

    // Live messages reach the shared subscription (and the plain one) as usual.
    publish_all(&mut publisher, "r/2", numbered("live-", 1)).await;
    let copies = within("two copies", receive_acked(&mut member, 2)).await;
    assert_eq!(copies, ["live-0", "live-0"]);
}

#[tokio::test]
async fn with_receive_checks_the_group_copy_goes_to_a_member_allowed_to_receive_it() {
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| {
        if req.action == Action::Receive && req.client_id == "blocked" {
            Reply::deny()
        } else {
            Reply::allow()
        }
    });
    let yaml = broker_yaml(
        &[plugin.yaml("p0", "")],
        "topic-check:\n  enable: true\n  plugins: [p0]\n",
    );
    let broker = TestBroker::start(&yaml).await;
    let addr = broker.mqtt_addr();
    let mut blocked = V5Client::connected(addr, "blocked").await;
    let mut allowed = V5Client::connected(addr, "allowed").await;
    let mut watcher = V5Client::connected(addr, "watcher").await;
    blocked.subscribe(1, "$share/g/t", 1).await;
    allowed.subscribe(1, "$share/g/t", 1).await;
    watcher.subscribe(1, "t", 1).await;

    let mut publisher = V5Client::connected(addr, "publisher").await;
    publish_all(&mut publisher, "t", numbered("m", 4)).await;
    let expected: Vec<String> = numbered("m", 4).collect();
    assert_eq!(receive_acked(&mut allowed, 4).await, expected);
    assert_eq!(receive_acked(&mut watcher, 4).await, expected);
    blocked.expect_nothing(300).await;
    allowed.expect_nothing(100).await;
}

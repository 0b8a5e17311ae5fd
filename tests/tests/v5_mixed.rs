//! MQTT 3.1.1 and 5.0 clients on one broker, and independent MQTT 5 clients end to end:
//! `rumqttc::v5` and Python paho-mqtt with protocol MQTTv5.

use std::time::Duration;

use midge_tests::raw::packet::Publish;
use midge_tests::raw::v5::{Props, Publish5, V5Client, prop};
use midge_tests::tools::repo_root;
use midge_tests::{MqttClient, RawClient, TIMEOUT, TestBroker, python, within};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties, SubscribeProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

#[tokio::test]
async fn a_311_publisher_reaches_a_5_subscriber_with_qos_and_retain_intact() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut old = RawClient::connected(addr, "old").await;
    old.publish(&Publish::new("mix/retained", b"r").qos(1, 1).retain(true))
        .await;
    let mut new = V5Client::connected(addr, "new").await;
    new.subscribe(1, "mix/#", 2).await;
    let replay = new.receive_acked().await;
    assert_eq!(
        (
            replay.topic.as_str(),
            &replay.payload[..],
            replay.qos,
            replay.retain
        ),
        ("mix/retained", &b"r"[..], 1, true)
    );
    old.publish(&Publish::new("mix/live", b"l").qos(2, 2)).await;
    let live = new.receive_acked().await;
    assert_eq!(
        (
            live.topic.as_str(),
            &live.payload[..],
            live.qos,
            live.retain
        ),
        ("mix/live", &b"l"[..], 2, false)
    );
    assert_eq!(
        live.props,
        Props::new(),
        "a 3.1.1 message has no properties"
    );
}

#[tokio::test]
async fn a_5_publisher_reaches_a_311_subscriber_without_properties() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut new = V5Client::connected(addr, "new").await;
    let props = Props::new()
        .str(prop::CONTENT_TYPE, "text/plain")
        .u32(prop::MESSAGE_EXPIRY_INTERVAL, 60)
        .user("k", "v");
    new.publish(
        &Publish5::new("mix/retained", b"r")
            .qos(1, 1)
            .retain(true)
            .props(props.clone()),
    )
    .await;
    let mut old = RawClient::connected(addr, "old").await;
    assert_eq!(old.subscribe(1, &[("mix/#", 2)]).await, [2]);
    // The raw 3.1.1 decoder reads topic, packet id, then payload: a property list left in
    // the packet would show up in the payload.
    let replay = old.expect_publish().await;
    assert_eq!(
        (
            replay.topic.as_str(),
            &replay.payload[..],
            replay.qos,
            replay.retain
        ),
        ("mix/retained", &b"r"[..], 1, true)
    );
    old.send_ok(&midge_tests::raw::packet::puback(replay.packet_id.unwrap()))
        .await;
    new.publish(&Publish5::new("mix/live", b"l").qos(2, 2).props(props))
        .await;
    let live = old.expect_publish().await;
    assert_eq!(
        (
            live.topic.as_str(),
            &live.payload[..],
            live.qos,
            live.retain
        ),
        ("mix/live", &b"l"[..], 2, false)
    );
}

#[tokio::test]
async fn a_5_subscriber_with_topic_aliases_and_a_311_subscriber_share_a_topic() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut old = MqttClient::connect(addr, "old").await;
    old.subscribe_ok("share/t", rumqttc::QoS::AtLeastOnce).await;
    let connect = midge_tests::raw::v5::Connect5::new("new")
        .props(Props::new().u16(prop::TOPIC_ALIAS_MAXIMUM, 4));
    let (mut new, _) = V5Client::connect_ok(addr, &connect).await;
    new.subscribe(1, "share/t", 1).await;
    for i in 0..3u8 {
        old.publish("share/t", rumqttc::QoS::AtLeastOnce, false, vec![i])
            .await;
    }
    for i in 0..3u8 {
        let p = new.receive_acked().await;
        assert_eq!(p.payload, [i]);
        assert_eq!(p.props.get_u16(prop::TOPIC_ALIAS), Some(1));
        assert_eq!(p.topic.is_empty(), i > 0, "{p:?}");
        let q = old.recv().await;
        assert_eq!((&q.topic[..], &q.payload[..]), ("share/t", &[i][..]));
    }
}

/// A `rumqttc::v5` client whose event loop runs in a task, forwarding incoming packets.
struct V5Rumqttc {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Packet>,
}

impl V5Rumqttc {
    async fn connect(addr: std::net::SocketAddr, id: &str) -> Self {
        let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 16);
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(packet) = event
                    && tx.send(packet).is_err()
                {
                    return;
                }
            }
        });
        let mut this = V5Rumqttc { client, incoming };
        this.wait("CONNACK", |p| matches!(p, Packet::ConnAck(_)).then_some(()))
            .await;
        this
    }

    async fn wait<T>(&mut self, what: &str, pick: impl Fn(&Packet) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(packet)) => {
                    if let Some(found) = pick(&packet) {
                        return found;
                    }
                }
                Ok(None) => panic!("rumqttc v5 event loop ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {TIMEOUT:?}"),
            }
        }
    }
}

#[tokio::test]
async fn rumqttc_v5_clients_exchange_user_properties_and_subscription_ids() {
    let broker = TestBroker::start_default().await;
    let addr = broker.mqtt_addr();
    let mut sub = V5Rumqttc::connect(addr, "rumqttc-sub").await;
    let props = SubscribeProperties {
        id: Some(17),
        user_properties: Vec::new(),
    };
    sub.client
        .subscribe_with_properties("rq/+", QoS::AtLeastOnce, props)
        .await
        .expect("event loop running");
    sub.wait("SUBACK", |p| matches!(p, Packet::SubAck(_)).then_some(()))
        .await;
    let mut publisher = V5Rumqttc::connect(addr, "rumqttc-pub").await;
    let user = vec![
        ("z".to_owned(), "1".to_owned()),
        ("a".to_owned(), "2".to_owned()),
        ("z".to_owned(), "3".to_owned()),
    ];
    let props = PublishProperties {
        user_properties: user.clone(),
        content_type: Some("application/octet-stream".into()),
        correlation_data: Some(vec![9, 8, 7].into()),
        response_topic: Some("rq/reply".into()),
        ..PublishProperties::default()
    };
    publisher
        .client
        .publish_with_properties("rq/x", QoS::AtLeastOnce, false, b"v5".to_vec(), props)
        .await
        .expect("event loop running");
    publisher
        .wait("PUBACK", |p| matches!(p, Packet::PubAck(_)).then_some(()))
        .await;
    let got = sub
        .wait("PUBLISH", |p| match p {
            Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (&b"rq/x"[..], &b"v5"[..])
    );
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let p = got.properties.expect("properties forwarded");
    assert_eq!(p.user_properties, user);
    assert_eq!(p.content_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(p.correlation_data.as_deref(), Some(&[9, 8, 7][..]));
    assert_eq!(p.response_topic.as_deref(), Some("rq/reply"));
    assert_eq!(p.subscription_identifiers, [17]);
}

#[tokio::test]
async fn paho_mqttv5_round_trip_with_properties() {
    let Some(python) = python() else {
        return;
    };
    let broker = TestBroker::start_default().await;
    // An independent observer of what paho sent, in raw bytes.
    let mut observer = V5Client::connected(broker.mqtt_addr(), "observer").await;
    observer.subscribe(1, "paho5/#", 1).await;
    let script = repo_root().join("tests/python/v5_roundtrip.py");
    let port = broker.mqtt_addr().port().to_string();
    let output = within(
        "the paho v5 script",
        tokio::process::Command::new(&python)
            .args([
                script.to_str().expect("UTF-8 path"),
                "127.0.0.1",
                &port,
                "paho5/rt",
            ])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("running python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "paho v5 round trip failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let expected = serde_json::json!({
        "topic": "paho5/rt",
        "payload": "hello from paho v5",
        "qos": 1,
        "retain": false,
        "user_properties": [["b", "2"], ["a", "1"], ["b", "3"]],
        "content_type": "text/plain",
        "response_topic": "paho5/rt/reply",
        "correlation_data": "0102",
        "payload_format": 1,
        "subscription_ids": [42],
    });
    assert_eq!(got, expected);
    let seen = observer.receive_acked().await;
    assert_eq!(
        seen.props.user_properties(),
        [
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "3".to_owned())
        ]
    );
    assert_eq!(seen.props.subscription_ids(), Vec::<u32>::new());
}

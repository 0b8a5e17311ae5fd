//! Session grants (`auth.proto`, `SessionGrants`): topic permissions an authenticator hands a
//! session with its ALLOW, enforced by the broker without asking the TopicFilter plugins.

use midge_plugin::{Action, Decision, Grants};
use midge_tests::plugin::{Reply, TestPlugin, broker_yaml};
use midge_tests::raw::{Connect, Publish};
use midge_tests::{RawClient, TestBroker};

/// SUBACK failure return code (MQTT 3.1.1).
const FAILURE: u8 = 0x80;

/// A broker with `auth` as the authenticator and `topics` as the only topic checker.
async fn broker(auth: &TestPlugin, topics: &TestPlugin) -> TestBroker {
    let yaml = broker_yaml(
        &[auth.yaml("auth", ""), topics.yaml("topics", "")],
        "auth:\n  plugins: [auth]\ntopic-check:\n  enable: true\n  plugins: [topics]\n",
    );
    TestBroker::start(&yaml).await
}

#[tokio::test]
async fn exclusive_grants_decide_locally_and_the_topic_plugin_is_never_asked() {
    let auth = TestPlugin::start().await;
    auth.on_auth(|req| {
        let own = format!("{}/#", req.client_id);
        Reply::from(
            Decision::allow().with_grants(
                Grants::default()
                    .publish([own.clone()])
                    .subscribe([format!("{}/+", req.client_id)])
                    .receive([own])
                    .exclusive(),
            ),
        )
    });
    let topics = TestPlugin::start().await;
    topics.on_topic(|_| Reply::deny());
    let broker = broker(&auth, &topics).await;

    let mut client = RawClient::connected(broker.mqtt_addr(), "c1").await;
    assert_eq!(
        client.subscribe(1, &[("c1/+", 1)]).await,
        [1],
        "covered by c1/+"
    );
    assert_eq!(
        client.subscribe(2, &[("c1/#", 0)]).await,
        [FAILURE],
        "c1/+ does not cover c1/#"
    );
    assert_eq!(
        client.subscribe(3, &[("c2/+", 0)]).await,
        [FAILURE],
        "not granted"
    );
    client
        .publish(&Publish::new("c1/x", b"mine").qos(1, 10))
        .await;
    let delivered = client.expect_publish().await;
    assert_eq!(
        (delivered.topic.as_str(), delivered.payload.as_slice()),
        ("c1/x", &b"mine"[..])
    );
    for action in [Action::Publish, Action::Subscribe, Action::Receive] {
        assert!(
            topics
                .topic_calls()
                .iter()
                .all(|call| call.action != action),
            "the topic plugin was asked about {action:?}: {:?}",
            topics.topic_calls()
        );
    }
}

#[tokio::test]
async fn without_exclusive_an_ungranted_topic_goes_to_the_topic_plugins() {
    let auth = TestPlugin::start().await;
    auth.on_auth(|_| {
        Reply::from(Decision::allow().with_grants(Grants::default().subscribe(["mine/+"])))
    });
    let topics = TestPlugin::start().await;
    topics.on_topic(|_| Reply::deny());
    let broker = broker(&auth, &topics).await;

    let (mut client, _) = RawClient::connect(broker.mqtt_addr(), &Connect::new("c2")).await;
    assert_eq!(
        client.subscribe(1, &[("mine/a", 0)]).await,
        [0],
        "granted locally"
    );
    assert_eq!(
        client.subscribe(2, &[("other/a", 0)]).await,
        [FAILURE],
        "the plugin denies"
    );
    assert_eq!(topics.topic_call_count(Action::Subscribe, "mine/a"), 0);
    assert_eq!(topics.topic_call_count(Action::Subscribe, "other/a"), 1);
}

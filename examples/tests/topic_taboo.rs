//! `topic-taboo` against the real broker: `admin` may use the taboo topics; everyone else's
//! subscriptions get SUBACK 0x80, publishes are acked and dropped, deliveries are skipped.

use midge_tests::examples as common;

use common::{PluginEntry, PluginProcess, TestBroker, broker_config, connect};
use rumqttc::QoS::AtLeastOnce;
use rumqttc::SubscribeReasonCode::{Failure, Success};

const BIN: &str = env!("CARGO_BIN_EXE_topic-taboo");

#[tokio::test]
async fn admin_bypasses_the_taboo_everyone_else_is_stopped() {
    let plugin = PluginProcess::start(BIN, &[]);
    let entry = PluginEntry {
        alias: "taboo",
        endpoint: plugin.endpoint(),
        config: "",
    };
    // allow-anonymous: true lets every client in, user names included (no passwords here).
    let broker = TestBroker::start(&broker_config(Some(true), &[], &["taboo"], &[entry])).await;
    let mut admin = connect(&broker, "admin-1", Some(("admin", "x"))).await;
    let mut bob = connect(&broker, "bob-1", Some(("bob", "x"))).await;

    // SUBSCRIBE: exact match on the filter string.
    for topic in ["top-secret", "prohibited", "data/classified"] {
        assert_eq!(
            bob.subscribe(topic, AtLeastOnce).await,
            [Failure],
            "bob {topic}"
        );
    }
    assert_eq!(
        bob.subscribe("data/+", AtLeastOnce).await,
        [Success(AtLeastOnce)]
    );
    assert_eq!(
        bob.subscribe("#", AtLeastOnce).await,
        [Success(AtLeastOnce)]
    );
    admin.subscribe_ok("top-secret", AtLeastOnce).await;
    admin.subscribe_ok("public", AtLeastOnce).await;

    // PUBLISH by admin: delivered to admin; bob's `#` matches, but RECEIVE is denied for him.
    admin
        .publish("top-secret", AtLeastOnce, false, "from admin")
        .await;
    let got = admin.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("top-secret", &b"from admin"[..])
    );
    admin
        .publish("public", AtLeastOnce, false, "marker 1")
        .await;
    assert_eq!(admin.recv().await.payload, "marker 1");
    let got = bob.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("public", &b"marker 1"[..]),
        "bob must not receive top-secret"
    );

    // PUBLISH by bob: acked (publish() waits for the PUBACK), then dropped. His next message
    // on an allowed topic arrives first, so the taboo one was never routed.
    bob.publish("top-secret", AtLeastOnce, false, "from bob")
        .await;
    bob.publish("data/classified", AtLeastOnce, false, "from bob")
        .await;
    bob.publish("public", AtLeastOnce, false, "marker 2").await;
    let got = admin.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("public", &b"marker 2"[..])
    );
}

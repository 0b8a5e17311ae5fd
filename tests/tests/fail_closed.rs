//! The broker fails closed (issue #14): an empty username is no username, `$SYS` deliveries pass
//! the RECEIVE check, a plugin's `events` config narrows and never widens what it asked for,
//! `DescribeResponse.services` is honoured, and a plugin that refuses its config is named with
//! its own error in the log, the exit message and the admin API. The topic-check rule itself
//! (nobody voted ALLOW → deny) is in `plugin_topic.rs`; configs refused at load in `config.rs`.

use std::ffi::OsString;
use std::time::Duration;

use midge_plugin::{Action, EventInterest};
use midge_proto::admin::v1 as admin;
use midge_proto::plugin::v1 as pb;
use midge_tests::admin::admin_client;
use midge_tests::plugin::{RawEventSink, Reply, TestPlugin, broker_yaml};
use midge_tests::raw::{Connect, Read};
use midge_tests::{RawClient, TempDir, TestBroker};

/// CONNACK return code 0x05, not authorized (MQTT 3.1.1).
const NOT_AUTHORIZED: u8 = 5;

async fn connack(broker: &TestBroker, connect: &Connect) -> u8 {
    RawClient::connect(broker.mqtt_addr(), connect).await.1.code
}

/// The plugin `alias`'s `last_error` as the admin API's ListPlugins reports it.
async fn last_error(broker: &TestBroker, alias: &str) -> String {
    let plugins = admin_client(broker)
        .await
        .list_plugins(admin::ListPluginsRequest::default())
        .await
        .expect("ListPlugins")
        .into_inner()
        .plugins;
    let plugin = plugins.iter().find(|p| p.alias == alias).expect("listed");
    plugin.last_error.clone()
}

#[tokio::test]
async fn allow_anonymous_false_refuses_an_empty_username() {
    let broker = TestBroker::start(&broker_yaml(&[], "auth:\n  allow-anonymous: false\n")).await;
    assert_eq!(
        connack(&broker, &Connect::new("empty").username("")).await,
        NOT_AUTHORIZED,
        "\"\" counts as no username"
    );
    assert_eq!(
        connack(&broker, &Connect::new("none")).await,
        NOT_AUTHORIZED
    );
    assert_eq!(
        connack(&broker, &Connect::new("named").username("u")).await,
        0
    );
}

#[tokio::test]
async fn sys_deliveries_pass_the_receive_check() {
    // The plugin lets everyone subscribe, but only `reader` receive `$SYS` topics.
    let plugin = TestPlugin::start().await;
    plugin.on_topic(|req| match (req.action, req.topic.starts_with("$SYS/")) {
        (Action::Receive, true) if req.client_id != "reader" => Reply::deny(),
        _ => Reply::allow(),
    });
    let yaml = broker_yaml(
        &[plugin.yaml("acl", "")],
        "sys-interval: 1s\ntopic-check:\n  enable: true\n  plugins: [acl]\n",
    );
    let broker = TestBroker::start(&yaml).await;
    let mut reader = RawClient::connected(broker.mqtt_addr(), "reader").await;
    let mut denied = RawClient::connected(broker.mqtt_addr(), "denied").await;
    for client in [&mut reader, &mut denied] {
        assert_eq!(client.subscribe(1, &[("$SYS/broker/uptime", 0)]).await, [0]);
    }
    // Within a few intervals the reader gets periodic updates (retained replay aside: at least
    // two PUBLISHes), the denied subscriber none at all.
    let mut updates = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while updates < 2 && tokio::time::Instant::now() < deadline {
        if let Read::Packet(packet) = reader.next(Duration::from_secs(3)).await
            && packet.kind() == midge_tests::raw::packet::PUBLISH
        {
            updates += 1;
        }
    }
    assert!(updates >= 2, "the reader got {updates} $SYS updates");
    match denied.next(Duration::from_millis(1500)).await {
        Read::TimedOut => {}
        other => panic!("a subscriber denied RECEIVE on $SYS got {other:?}"),
    }
    assert!(
        plugin
            .topic_calls()
            .iter()
            .any(|c| c.action == Action::Receive && c.client_id == "denied"),
        "the periodic publisher asked the plugin"
    );
}

#[tokio::test]
async fn a_plugins_events_config_narrows_and_never_widens() {
    // The plugin asks for connects only; the config lists connects and disconnects.
    let sink = RawEventSink::start(&[pb::EventKind::ClientConnected]).await;
    let yaml = broker_yaml(
        &[sink.yaml("sink", "events: [client_connected, client_disconnected]")],
        "",
    );
    let broker = TestBroker::start(&yaml).await;
    broker
        .wait_for_log("the warning naming alias and kind", |l| {
            l.contains("did not ask for")
                && l.contains("\"alias\":\"sink\"")
                && l.contains("EVENT_KIND_CLIENT_DISCONNECTED")
        })
        .await;
    let mut client = RawClient::connected(broker.mqtt_addr(), "c1").await;
    client.disconnect().await;
    // A second client's connect is the marker: once it arrived, c1's disconnect (emitted
    // before it) would have too.
    let _c2 = RawClient::connected(broker.mqtt_addr(), "c2").await;
    sink.wait_for("c2 connected", |d| {
        matches!(&d.event.body, Some(pb::event::Body::ClientConnected(c)) if c.session.as_ref().is_some_and(|s| s.client_id == "c2"))
    })
    .await;
    let kinds: Vec<pb::EventKind> = sink.deliveries().iter().map(|d| d.event.kind()).collect();
    assert!(
        kinds.iter().all(|k| *k == pb::EventKind::ClientConnected),
        "only what the plugin asked for: {kinds:?}"
    );
}

#[tokio::test]
async fn an_authenticator_without_the_service_takes_on_error_and_says_why() {
    // An event sink (its Describe lists only EventSink) put in the auth chain by mistake.
    let sink = RawEventSink::start(&[]).await;
    let extra = "fallback: {on-error: deny, on-timeout: allow, on-unavailable: allow}";
    let yaml = broker_yaml(
        &[sink.yaml("sink", extra)],
        "auth:\n  allow-anonymous: true\n  plugins: [sink]\n",
    );
    let broker = TestBroker::start(&yaml).await;
    broker
        .wait_for_log("the missing service warning", |l| {
            l.contains("does not implement midge.plugin.v1.Authenticator")
        })
        .await;
    assert_eq!(
        connack(&broker, &Connect::new("c").username("u")).await,
        NOT_AUTHORIZED,
        "on-error (deny) taken, not on-unavailable (allow)"
    );
    broker
        .wait_for_log("the per-decision line says why", |l| {
            l.contains("fallback taken") && l.contains("does not implement")
        })
        .await;
    let last_error = last_error(&broker, "sink").await;
    assert!(
        last_error.contains("does not implement midge.plugin.v1.Authenticator"),
        "last_error: {last_error:?}"
    );
}

/// Starts the broker on `yaml` without waiting for it to listen.
async fn spawn(yaml: &str) -> (TestBroker, TempDir) {
    let dir = TempDir::new();
    let path = dir.write("midge.yaml", yaml);
    let args = vec![OsString::from("--config"), path.into_os_string()];
    (TestBroker::spawn(args, 0).await, dir)
}

#[tokio::test]
async fn a_mandatory_plugin_without_a_needed_service_fails_the_start() {
    let sink = RawEventSink::start(&[]).await;
    let yaml = broker_yaml(
        &[sink.yaml("sink", "mandatory: true\nstartup-timeout: 5s")],
        "auth:\n  allow-anonymous: true\n  plugins: [sink]\n",
    );
    let (mut broker, _dir) = spawn(&yaml).await;
    let status = broker.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(1), "{status}");
    broker
        .wait_for_log("the startup error", |l| {
            l.contains("mandatory plugin `sink`")
                && l.contains("does not implement midge.plugin.v1.Authenticator")
        })
        .await;
}

#[tokio::test]
async fn a_mandatory_plugin_that_refuses_its_config_is_named_with_its_own_error() {
    let plugin = TestPlugin::start_with(EventInterest::default()).await;
    let yaml = broker_yaml(
        &[plugin.yaml(
            "picky",
            "mandatory: true\nstartup-timeout: 1s\nconfig: {refuse: fiel}",
        )],
        "auth:\n  allow-anonymous: true\n",
    );
    let (mut broker, _dir) = spawn(&yaml).await;
    let status = broker.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(1), "{status}");
    // The warning when it happened, and the exit message.
    broker
        .wait_for_log("the refusal logged", |l| {
            l.contains("plugin refused its config") && l.contains("unknown field `fiel`")
        })
        .await;
    broker
        .wait_for_log("the exit message", |l| {
            l.contains("mandatory plugin `picky` did not answer Describe within 1s")
                && l.contains("unknown field `fiel`")
        })
        .await;
}

#[tokio::test]
async fn a_plugin_that_refuses_its_config_takes_its_fallback_for_every_decision() {
    let plugin = TestPlugin::start().await;
    let extra = "config: {refuse: fiel}\nfallback: {on-unavailable: deny, on-error: allow, on-timeout: allow}";
    let yaml = broker_yaml(
        &[plugin.yaml("picky", extra)],
        "auth:\n  plugins: [picky]\n",
    );
    let broker = TestBroker::start(&yaml).await;
    broker
        .wait_for_log("the refusal logged", |l| {
            l.contains("plugin refused its config") && l.contains("unknown field `fiel`")
        })
        .await;
    assert_eq!(
        connack(&broker, &Connect::new("c").username("u")).await,
        NOT_AUTHORIZED,
        "on-unavailable (deny): the plugin would have allowed"
    );
    assert!(
        plugin.auth_calls().is_empty(),
        "a plugin that refused its config is not asked"
    );
    broker
        .wait_for_log("the per-decision line says why", |l| {
            l.contains("fallback taken") && l.contains("unknown field `fiel`")
        })
        .await;
    let last_error = last_error(&broker, "picky").await;
    assert!(
        last_error.contains("unknown field `fiel`"),
        "last_error: {last_error:?}"
    );
}

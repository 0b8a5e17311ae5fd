//! `mandatory: true` plugins (`plugins.<alias>.mandatory`, `startup-timeout`): the broker accepts
//! no client until such a plugin answered `Describe`, and fails to start when it does not in
//! time. A plugin that is not mandatory never holds up the start.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use midge_plugin::EventInterest;
use midge_tests::broker::parse_listening;
use midge_tests::plugin::{TestPlugin, broker_yaml, free_port, plugin_yaml};
use midge_tests::{RawClient, TempDir, TestBroker};

/// A config with the `default` listener on `127.0.0.1:port` and `plugins`, then `sections`.
fn yaml_on_port(port: u16, plugins: &[String], sections: &str) -> String {
    broker_yaml(plugins, sections).replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
}

/// Starts the broker without waiting for it to listen.
async fn spawn(yaml: &str) -> (TestBroker, TempDir) {
    let dir = TempDir::new();
    let path = dir.write("midge.yaml", yaml);
    let args = vec![OsString::from("--config"), path.into_os_string()];
    (TestBroker::spawn(args, 0).await, dir)
}

async fn refused(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}

#[tokio::test]
async fn a_mandatory_plugin_that_never_answers_fails_the_start() {
    let port = free_port();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let yaml = yaml_on_port(
        port,
        &[plugin_yaml(
            "m",
            &dead,
            "mandatory: true\nstartup-timeout: 1s",
        )],
        "auth:\n  allow-anonymous: true\n",
    );
    let started = Instant::now();
    let (mut broker, _dir) = spawn(&yaml).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(refused(port).await, "no client is accepted while waiting");
    let status = broker.wait_exit(Duration::from_secs(15)).await;
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(
        elapsed >= Duration::from_secs(1),
        "gave up after {elapsed:?}"
    );
    broker
        .wait_for_log("a clear error", |l| {
            l.contains("mandatory plugin `m` did not answer Describe within 1s")
        })
        .await;
    assert!(
        !broker
            .log_text()
            .lines()
            .any(|l| parse_listening(l).is_some()),
        "never listened"
    );
}

#[tokio::test]
async fn a_mandatory_plugin_that_comes_up_in_time_lets_the_broker_start() {
    let port = free_port();
    let plugin_port = free_port();
    let yaml = yaml_on_port(
        port,
        &[plugin_yaml(
            "m",
            &format!("http://127.0.0.1:{plugin_port}"),
            "mandatory: true\nstartup-timeout: 10s",
        )],
        "auth:\n  plugins: [m]\n",
    );
    let (broker, _dir) = spawn(&yaml).await;
    broker
        .wait_for_log("waiting for the mandatory plugin", |l| {
            l.contains("waiting for mandatory plugin")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        refused(port).await,
        "no client is accepted before the plugin is up"
    );

    let plugin = TestPlugin::start_on(plugin_port, EventInterest::none()).await;
    let line = broker
        .wait_for_log("listening", |l| parse_listening(l).is_some())
        .await;
    let (_, addr) = parse_listening(&line).expect("a listening line");
    let mut client = RawClient::connected(addr, "in-time").await;
    assert_eq!(
        plugin.auth_calls().len(),
        1,
        "the plugin decided the CONNECT"
    );
    client.disconnect().await;
}

#[tokio::test]
async fn a_plugin_that_is_not_mandatory_does_not_hold_up_the_start() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let yaml = broker_yaml(
        &[plugin_yaml("optional", &dead, "")],
        "auth:\n  allow-anonymous: true\n",
    );
    let started = Instant::now();
    let broker = TestBroker::start(&yaml).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "started after {:?}",
        started.elapsed()
    );
    let mut client = RawClient::connected(broker.mqtt_addr(), "anyway").await;
    client.disconnect().await;
}

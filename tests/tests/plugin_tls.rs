//! A plugin served over TLS (the SDK's `Server::tls`), reached by the broker through an
//! `https://` endpoint with `tls.ca`, and with mutual TLS (`tls.cert` / `tls.key`).

use midge_plugin::{AuthRequest, Authenticator, Decision, Server, Status};
use midge_tests::plugin::broker_yaml;
use midge_tests::raw::Connect;
use midge_tests::{RawClient, TestBroker, TestCerts};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct OnlyAlice;

impl Authenticator for OnlyAlice {
    async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
        Ok(match req.username.as_deref() {
            Some("alice") => Decision::allow(),
            _ => Decision::deny("only alice"),
        })
    }
}

/// Serves `OnlyAlice` over TLS on 127.0.0.1:0 (requiring a client certificate when `mutual`);
/// returns its port and the sender that stops it.
async fn tls_plugin(certs: &TestCerts, mutual: bool) -> (u16, oneshot::Sender<()>) {
    let read = |p: &std::path::Path| std::fs::read(p).expect("reading a test certificate");
    let ca = read(&certs.ca_cert);
    let server = Server::new("only-alice-tls", "1.0.0")
        .authenticator(OnlyAlice)
        .tls(
            read(&certs.server_cert),
            read(&certs.server_key),
            mutual.then_some(ca.as_slice()),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let port = listener.local_addr().expect("local addr").port();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .serve_with_listener(listener, async move {
                let _ = stopped.await;
            })
            .await;
    });
    (port, stop)
}

fn user(name: &str) -> Connect {
    let mut connect = Connect::new(name);
    connect.username = Some(name.to_owned());
    connect.password = Some(b"pw".to_vec());
    connect
}

async fn check(port: u16, tls: &str) {
    let plugin = format!(
        "  alice:\n    endpoint: https://localhost:{port}\n    timeout: 5s\n    tls: {tls}\n"
    );
    let yaml = broker_yaml(&[plugin], "auth:\n  plugins: [alice]\n");
    let broker = TestBroker::start(&yaml).await;
    let (_alice, ack) = RawClient::connect(broker.mqtt_addr(), &user("alice")).await;
    assert_eq!(ack.code, 0, "alice is allowed through the TLS plugin");
    let (_bob, ack) = RawClient::connect(broker.mqtt_addr(), &user("bob")).await;
    assert_eq!(
        ack.code, 5,
        "bob is denied by the plugin, not by a fallback"
    );
    assert!(
        !broker.logs_contain("fallback taken"),
        "the plugin answered; no fallback: {}",
        broker.log_text()
    );
}

#[tokio::test]
async fn the_broker_calls_a_plugin_over_tls() {
    let certs = TestCerts::generate();
    let (port, stop) = tls_plugin(&certs, false).await;
    check(port, &format!("{{ca: {}}}", certs.ca_cert.display())).await;
    let _ = stop.send(());
}

#[tokio::test]
async fn mutual_tls_presents_the_brokers_client_certificate() {
    let certs = TestCerts::generate();
    let (port, stop) = tls_plugin(&certs, true).await;
    check(
        port,
        &format!(
            "{{ca: {}, cert: {}, key: {}}}",
            certs.ca_cert.display(),
            certs.client_cert.display(),
            certs.client_key.display()
        ),
    )
    .await;
    let _ = stop.send(());
}

#[tokio::test]
async fn without_the_client_certificate_a_mutual_tls_plugin_is_unavailable() {
    let certs = TestCerts::generate();
    let (port, stop) = tls_plugin(&certs, true).await;
    let plugin = format!(
        "  alice:\n    endpoint: https://localhost:{port}\n    timeout: 5s\n    tls: {{ca: {}}}\n",
        certs.ca_cert.display()
    );
    let yaml = broker_yaml(&[plugin], "auth:\n  plugins: [alice]\n");
    let broker = TestBroker::start(&yaml).await;
    let (_alice, ack) = RawClient::connect(broker.mqtt_addr(), &user("alice")).await;
    assert_eq!(ack.code, 5, "no handshake, so the deny fallback");
    broker
        .wait_for_log("the fallback", |line| line.contains("fallback taken"))
        .await;
    let _ = stop.send(());
}

//! TLS, WebSocket and secure WebSocket listeners, with certificates generated per test (rcgen):
//! rumqttc and mosquitto clients over TLS, client certificates, and raw MQTT over WebSocket
//! (path `/mqtt`, subprotocol `mqtt`), with messages crossing between transports.

use midge_tests::client::tls_options;
use midge_tests::raw::{Connect, Publish, tls_stream};
use midge_tests::{MqttClient, RawClient, TestBroker, TestCerts, require_tool, within};
use rumqttc::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// A TCP listener `plain` plus one listener `name` of `kind`, with `tls_lines` under it.
fn config(name: &str, kind: &str, tls_lines: &str) -> String {
    format!(
        "listeners:\n  - name: plain\n    kind: tcp\n    bind: 127.0.0.1:0\n  \
         - name: {name}\n    kind: {kind}\n    bind: 127.0.0.1:0\n{tls_lines}auth:\n  allow-anonymous: true\n"
    )
}

fn tls_section(certs: &TestCerts, client_ca: bool) -> String {
    let mut section = format!(
        "    tls:\n      cert: '{}'\n      key: '{}'\n",
        certs.server_cert.display(),
        certs.server_key.display()
    );
    if client_ca {
        section.push_str(&format!(
            "      client-ca: '{}'\n      require-client-cert: true\n",
            certs.ca_cert.display()
        ));
    }
    section
}

#[tokio::test]
async fn rumqttc_over_tls_exchanges_messages_with_tcp() {
    let certs = TestCerts::generate();
    let broker = TestBroker::start(&config("secure", "tls", &tls_section(&certs, false))).await;
    let mut secure = MqttClient::connect_with(tls_options(
        broker.addr("secure"),
        "secure",
        certs.client_config(false),
    ))
    .await;
    secure.subscribe_ok("to/tls", QoS::AtLeastOnce).await;
    let mut plain = MqttClient::connect(broker.addr("plain"), "plain").await;
    plain.subscribe_ok("to/tcp", QoS::AtLeastOnce).await;

    plain
        .publish("to/tls", QoS::AtLeastOnce, false, "over tcp")
        .await;
    assert_eq!(&secure.recv().await.payload[..], b"over tcp");
    secure
        .publish("to/tcp", QoS::ExactlyOnce, false, "over tls")
        .await;
    assert_eq!(&plain.recv().await.payload[..], b"over tls");
}

#[tokio::test]
async fn mosquitto_clients_over_tls() {
    let (Some(sub_bin), Some(pub_bin)) =
        (require_tool("mosquitto_sub"), require_tool("mosquitto_pub"))
    else {
        return;
    };
    let certs = TestCerts::generate();
    let broker = TestBroker::start(&config("secure", "tls", &tls_section(&certs, false))).await;
    let port = broker.addr("secure").port().to_string();
    let ca = certs.ca_cert.display().to_string();
    let common = ["-h", "127.0.0.1", "-p", &port, "--cafile", &ca];
    let output = within(
        "mosquitto_pub over TLS",
        Command::new(&pub_bin)
            .args(common)
            .args(["-t", "tls/kept", "-q", "1", "-r", "-m", "secret"])
            .output(),
    )
    .await
    .expect("running mosquitto_pub");
    assert!(output.status.success(), "mosquitto_pub: {output:?}");
    let output = within(
        "mosquitto_sub over TLS",
        Command::new(&sub_bin)
            .args(common)
            .args(["-t", "tls/#", "-C", "1", "-W", "10", "-F", "%t %p"])
            .output(),
    )
    .await
    .expect("running mosquitto_sub");
    assert!(output.status.success(), "mosquitto_sub: {output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "tls/kept secret"
    );
}

#[tokio::test]
async fn plaintext_mqtt_on_a_tls_listener_is_closed() {
    let certs = TestCerts::generate();
    let broker = TestBroker::start(&config("secure", "tls", &tls_section(&certs, false))).await;
    let mut tcp = TcpStream::connect(broker.addr("secure"))
        .await
        .expect("TCP connect");
    let _ = tcp.write_all(&Connect::new("plaintext").encode()).await;
    // The answer, if any, is TLS (an alert record starts with 0x15), never MQTT.
    let mut reply = Vec::new();
    let _ = within(
        "the broker to close the connection",
        tcp.read_to_end(&mut reply),
    )
    .await;
    assert!(
        reply.first() != Some(&0x20),
        "plaintext CONNECT answered with a CONNACK: {reply:02x?}"
    );
    RawClient::connected(broker.addr("plain"), "still-serving")
        .await
        .ping()
        .await;
}

#[tokio::test]
async fn required_client_certificate_is_enforced() {
    let certs = TestCerts::generate();
    let broker = TestBroker::start(&config("mtls", "tls", &tls_section(&certs, true))).await;
    let addr = broker.addr("mtls");

    // Without a certificate: the handshake fails, or (TLS 1.3) the broker's alert arrives on
    // the first read. Either way, no CONNACK.
    if let Ok(mut anonymous) = RawClient::tls(addr, certs.client_config(false)).await {
        let _ = anonymous.send(&Connect::new("no-cert").encode()).await;
        let before = anonymous.expect_closed().await;
        assert!(
            before.is_empty(),
            "a client without certificate got {before:?}"
        );
    }

    let mut client = RawClient::tls(addr, certs.client_config(true))
        .await
        .expect("TLS with a client certificate");
    assert_eq!(client.handshake(&Connect::new("with-cert")).await.code, 0);
    client.ping().await;
}

#[tokio::test]
async fn websocket_and_tcp_clients_exchange_messages() {
    let broker = TestBroker::start(&config("web", "ws", "")).await;
    let stream = TcpStream::connect(broker.addr("web"))
        .await
        .expect("TCP connect");
    let local = stream.local_addr().expect("local address");
    let url = format!("ws://{}/mqtt", broker.addr("web"));
    let (mut ws, response) = RawClient::websocket(Box::new(stream), local, &url, Some("mqtt"))
        .await
        .expect("WebSocket handshake");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"mqtt"[..]),
        "the server selects subprotocol mqtt"
    );
    assert_eq!(ws.handshake(&Connect::new("ws")).await.code, 0);
    assert_eq!(ws.subscribe(1, &[("to/ws", 1)]).await, [1]);

    let mut tcp = MqttClient::connect(broker.addr("plain"), "tcp").await;
    tcp.subscribe_ok("to/tcp", QoS::AtLeastOnce).await;
    tcp.publish("to/ws", QoS::AtLeastOnce, false, "over tcp")
        .await;
    let got = ws.expect_publish().await;
    assert_eq!(
        (got.topic.as_str(), got.payload.as_slice()),
        ("to/ws", &b"over tcp"[..])
    );
    ws.send_ok(&midge_tests::raw::packet::puback(
        got.packet_id.expect("QoS 1"),
    ))
    .await;

    ws.publish(&Publish::new("to/tcp", b"over ws").qos(1, 9))
        .await;
    assert_eq!(&tcp.recv().await.payload[..], b"over ws");
    ws.disconnect().await;
}

#[tokio::test]
async fn secure_websocket_round_trip() {
    let certs = TestCerts::generate();
    let broker = TestBroker::start(&config("wss", "wss", &tls_section(&certs, false))).await;
    let addr = broker.addr("wss");
    let (stream, local) = tls_stream(addr, certs.client_config(false))
        .await
        .expect("TLS handshake");
    let (mut wss, _) =
        RawClient::websocket(stream, local, &format!("wss://{addr}/mqtt"), Some("mqtt"))
            .await
            .expect("WebSocket handshake over TLS");
    assert_eq!(wss.handshake(&Connect::new("wss")).await.code, 0);
    assert_eq!(wss.subscribe(1, &[("wss/t", 0)]).await, [0]);
    let mut tcp = MqttClient::connect(broker.addr("plain"), "tcp").await;
    tcp.publish("wss/t", QoS::AtMostOnce, false, "hello wss")
        .await;
    assert_eq!(wss.expect_publish().await.payload, b"hello wss");
}

#[tokio::test]
async fn websocket_frames_may_split_and_join_packets() {
    // MQTT over WebSocket is a byte stream: a packet may span messages and a message may hold
    // several packets (MQTT 3.1.1 §6).
    let broker = TestBroker::start(&config("web", "ws", "")).await;
    let mut ws = RawClient::ws(broker.addr("web")).await;
    let connect = Connect::new("split").encode();
    let (head, tail) = connect.split_at(5);
    ws.send_ok(head).await;
    ws.send_ok(tail).await;
    assert_eq!(ws.read_packet().await.connack().code, 0);
    let mut joined = midge_tests::raw::packet::subscribe(1, &[("j/t", 0)]);
    joined.extend(midge_tests::raw::packet::pingreq());
    ws.send_ok(&joined).await;
    assert_eq!(ws.read_packet().await.suback(), (1, vec![0]));
    assert_eq!(
        ws.read_packet().await.kind(),
        midge_tests::raw::packet::PINGRESP
    );
}

#[tokio::test]
async fn silent_clients_on_tls_and_ws_listeners_are_closed_by_the_connect_timeout() {
    // The connect timeout covers the TLS and WebSocket handshakes too: a peer that opens TCP
    // and says nothing (no ClientHello, no HTTP upgrade) is dropped.
    let certs = TestCerts::generate();
    let yaml = format!(
        "listeners:\n  - name: secure\n    kind: tls\n    bind: 127.0.0.1:0\n    connect-timeout: 1s\n{}  \
         - name: web\n    kind: ws\n    bind: 127.0.0.1:0\n    connect-timeout: 1s\nauth:\n  allow-anonymous: true\n",
        tls_section(&certs, false)
    );
    let broker = TestBroker::start(&yaml).await;
    for listener in ["secure", "web"] {
        let mut silent = TcpStream::connect(broker.addr(listener))
            .await
            .expect("TCP connect");
        let mut reply = Vec::new();
        // EOF or a reset: either way the broker closed it; `within` fails the test otherwise.
        let _ = within(
            &format!("the {listener} listener to drop a silent client"),
            silent.read_to_end(&mut reply),
        )
        .await;
    }
}

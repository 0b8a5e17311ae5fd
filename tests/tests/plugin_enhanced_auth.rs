//! MQTT 5 enhanced authentication (§4.12) through a real SDK plugin: a challenge/response over
//! AUTH packets, the plugin's final data in CONNACK, a wrong response refused, and a DENY's
//! own CONNACK reason code. The MQTT side is raw bytes over TCP, so every packet is checked.

use std::time::Duration;

use midge_plugin::{AuthRequest, AuthStep, Authenticator, Decision, Server, Status};
use midge_tests::TestBroker;
use midge_tests::plugin::{broker_yaml, plugin_yaml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const METHOD: &str = "TOY-CHALLENGE";

/// Step 0: answer CONNECT's "hello" with a challenge; step 1: allow "response" (with a welcome
/// for CONNACK), deny anything else with 0x86 Bad user name or password. Clients without the
/// method: deny with 0x8A Banned if their id starts with "banned", else ignore.
struct Toy;

impl Authenticator for Toy {
    async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
        Ok(if req.client_id.starts_with("banned") {
            Decision::deny("banned client").reason_code(0x8A)
        } else {
            Decision::ignore()
        })
    }

    async fn authenticate_enhanced(&self, req: AuthRequest) -> Result<AuthStep, Status> {
        let Some(enhanced) = req.enhanced.clone() else {
            return self.authenticate(req).await.map(AuthStep::from);
        };
        if enhanced.method != METHOD {
            return Ok(Decision::ignore().into());
        }
        Ok(match (enhanced.step, enhanced.data.as_slice()) {
            (0, b"hello") => AuthStep::Continue {
                auth_data: b"challenge".to_vec(),
            },
            (1, b"response") => AuthStep::Done {
                decision: Decision::allow(),
                auth_data: Some(b"welcome".to_vec()),
            },
            _ => AuthStep::Done {
                decision: Decision::deny("wrong response").reason_code(0x86),
                auth_data: None,
            },
        })
    }
}

async fn start() -> TestBroker {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::new("toy", "1.0.0")
            .authenticator(Toy)
            .serve_with_listener(listener, std::future::pending()),
    );
    let yaml = broker_yaml(
        &[plugin_yaml("toy", &format!("http://{addr}"), "timeout: 2s")],
        "auth:\n  plugins: [toy]\n",
    );
    TestBroker::start(&yaml).await
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

fn string(id: u8, s: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    out.extend_from_slice(&u16::try_from(s.len()).expect("short").to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// An MQTT 5 CONNECT with Authentication Method and Data (property ids 0x15, 0x16).
fn connect(client_id: &str, data: Option<&[u8]>) -> Vec<u8> {
    let mut props = Vec::new();
    if let Some(data) = data {
        string(0x15, METHOD.as_bytes(), &mut props);
        string(0x16, data, &mut props);
    }
    let mut body = b"\x00\x04MQTT\x05\x02\x00\x3c".to_vec();
    varint(props.len(), &mut body);
    body.extend_from_slice(&props);
    body.extend_from_slice(&u16::try_from(client_id.len()).expect("short").to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    packet(0x10, &body)
}

/// An AUTH with reason 0x18 Continue authentication, the method, and `data`.
fn auth(data: &[u8]) -> Vec<u8> {
    let mut props = Vec::new();
    string(0x15, METHOD.as_bytes(), &mut props);
    string(0x16, data, &mut props);
    let mut body = vec![0x18];
    varint(props.len(), &mut body);
    body.extend_from_slice(&props);
    packet(0xF0, &body)
}

/// Reads one packet: (first byte, body).
async fn read_packet(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let read = async {
        let first = stream.read_u8().await.expect("packet type");
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let byte = stream.read_u8().await.expect("length");
            len |= usize::from(byte & 0x7F) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        stream.read_exact(&mut body).await.expect("body");
        (first, body)
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a packet in time")
}

/// The value of binary/string property `id` in a property block starting at `body[at]`.
fn property(body: &[u8], at: usize, id: u8) -> Option<Vec<u8>> {
    let (mut len, mut shift, mut i) = (0usize, 0, at);
    loop {
        let byte = body[i];
        i += 1;
        len |= usize::from(byte & 0x7F) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let end = i + len;
    while i < end {
        let pid = body[i];
        i += 1;
        match pid {
            // Two-byte length strings and binaries (method, data, reason string, ...).
            0x15 | 0x16 | 0x1F | 0x12 | 0x1A | 0x1C => {
                let n = usize::from(u16::from_be_bytes([body[i], body[i + 1]]));
                let value = body[i + 2..i + 2 + n].to_vec();
                i += 2 + n;
                if pid == id {
                    return Some(value);
                }
            }
            0x11 | 0x27 => i += 4,
            0x21 | 0x22 | 0x13 => i += 2,
            0x24 | 0x25 | 0x28 | 0x29 | 0x2A => i += 1,
            0x26 => {
                for _ in 0..2 {
                    let n = usize::from(u16::from_be_bytes([body[i], body[i + 1]]));
                    i += 2 + n;
                }
            }
            other => panic!("unexpected property {other:#x} in {body:?}"),
        }
    }
    None
}

#[tokio::test]
async fn a_challenge_and_response_over_auth_packets_connects_the_client() {
    let broker = start().await;
    let mut stream = TcpStream::connect(broker.mqtt_addr())
        .await
        .expect("connect");
    stream
        .write_all(&connect("toy-1", Some(b"hello")))
        .await
        .expect("write");
    let (first, body) = read_packet(&mut stream).await;
    assert_eq!(first, 0xF0, "AUTH expected, got {first:#x} {body:?}");
    assert_eq!(body[0], 0x18, "reason: continue authentication");
    assert_eq!(property(&body, 1, 0x15).as_deref(), Some(METHOD.as_bytes()));
    assert_eq!(property(&body, 1, 0x16).as_deref(), Some(&b"challenge"[..]));

    stream.write_all(&auth(b"response")).await.expect("write");
    let (first, body) = read_packet(&mut stream).await;
    assert_eq!(first, 0x20, "CONNACK expected");
    assert_eq!(body[1], 0x00, "accepted");
    assert_eq!(property(&body, 2, 0x15).as_deref(), Some(METHOD.as_bytes()));
    assert_eq!(property(&body, 2, 0x16).as_deref(), Some(&b"welcome"[..]));

    // Connected for real: PINGREQ is answered.
    stream.write_all(&[0xC0, 0x00]).await.expect("ping");
    assert_eq!(read_packet(&mut stream).await.0, 0xD0);
}

#[tokio::test]
async fn a_wrong_response_is_refused_with_the_plugins_reason_code() {
    let broker = start().await;
    let mut stream = TcpStream::connect(broker.mqtt_addr())
        .await
        .expect("connect");
    stream
        .write_all(&connect("toy-2", Some(b"hello")))
        .await
        .expect("write");
    assert_eq!(read_packet(&mut stream).await.0, 0xF0);
    stream.write_all(&auth(b"guess")).await.expect("write");
    let (first, body) = read_packet(&mut stream).await;
    assert_eq!((first, body[1]), (0x20, 0x86), "CONNACK 0x86: {body:?}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "closed after the refusal");
}

#[tokio::test]
async fn a_deny_reason_code_reaches_mqtt5_clients() {
    let broker = start().await;
    let mut stream = TcpStream::connect(broker.mqtt_addr())
        .await
        .expect("connect");
    stream
        .write_all(&connect("banned-1", None))
        .await
        .expect("write");
    let (first, body) = read_packet(&mut stream).await;
    assert_eq!(
        (first, body[1]),
        (0x20, 0x8A),
        "CONNACK 0x8A Banned: {body:?}"
    );
    assert_eq!(
        property(&body, 2, 0x1F).as_deref(),
        Some(&b"banned client"[..]),
        "reason string"
    );
}

#[tokio::test]
async fn an_auth_with_another_method_is_refused() {
    let broker = start().await;
    let mut stream = TcpStream::connect(broker.mqtt_addr())
        .await
        .expect("connect");
    stream
        .write_all(&connect("toy-3", Some(b"hello")))
        .await
        .expect("write");
    assert_eq!(read_packet(&mut stream).await.0, 0xF0);
    let mut props = Vec::new();
    string(0x15, b"OTHER", &mut props);
    let mut body = vec![0x18];
    varint(props.len(), &mut body);
    body.extend_from_slice(&props);
    stream.write_all(&packet(0xF0, &body)).await.expect("write");
    let (first, body) = read_packet(&mut stream).await;
    assert_eq!((first, body[1]), (0x20, 0x8C), "CONNACK 0x8C: {body:?}");
}

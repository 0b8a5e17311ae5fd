//! What a plugin answers is untrusted input: the broker survives and cleans whatever a real
//! plugin says. A DENY reason too long for MQTT is cut (the client still gets its CONNACK),
//! forbidden code points never reach a client, reason strings are left out beyond the client's
//! Maximum Packet Size, and a 3.1.1 client refused by a plugin gets 0x05 or 0x04, never 0x03.

use midge_plugin::{Decision, pb};
use midge_tests::plugin::{Reply, TestPlugin, broker_yaml};
use midge_tests::raw::v5::{Connect5, Props, V5Client, prop, reason};
use midge_tests::raw::{Connect, Packet};
use midge_tests::{RawClient, TestBroker};

/// A DENY reason of 70,000 bytes (two-byte characters, so a cut at 65,535 bytes would split
/// one) that starts with a U+0000, a line break and a forged log line.
fn hostile_reason() -> String {
    let mut reason = String::from("bad\0client\n2099-01-01 INFO forged line\r\n");
    while reason.len() < 70_000 {
        reason.push('é');
    }
    reason
}

/// A broker whose only authenticator is `plugin` (alias `p`).
async fn auth_broker(plugin: &TestPlugin) -> TestBroker {
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n");
    TestBroker::start(&yaml).await
}

/// Asserts that `text` is a valid MQTT UTF-8 string free of every code point a receiver may
/// refuse (§1.5.4).
fn assert_clean(text: &str) {
    assert!(text.len() <= 65_535, "{} bytes", text.len());
    let bad: Vec<char> = text
        .chars()
        .filter(|c| {
            let code = u32::from(*c);
            c.is_control() || (0xFDD0..=0xFDEF).contains(&code) || code & 0xFFFE == 0xFFFE
        })
        .collect();
    assert!(bad.is_empty(), "forbidden code points {bad:?}");
}

#[tokio::test]
async fn a_deny_reason_too_long_for_mqtt_is_cut_and_cleaned() {
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|_| Decision::deny(hostile_reason()).into());
    let broker = auth_broker(&plugin).await;

    let (mut client, ack) = V5Client::connect(broker.mqtt_addr(), &Connect5::new("long")).await;
    assert_eq!(ack.reason, reason::NOT_AUTHORIZED);
    let text = ack
        .props
        .get_str(prop::REASON_STRING)
        .expect("a reason string");
    assert_clean(text);
    assert!(
        text.starts_with("bad\u{FFFD}client 2099-01-01 INFO forged line  é"),
        "{text:.60}"
    );
    assert!(
        text.len() > 65_000,
        "cut near the limit, not emptied: {}",
        text.len()
    );
    assert!(client.expect_closed().await.is_empty());
}

#[tokio::test]
async fn reason_strings_are_left_out_beyond_the_clients_maximum_packet_size() {
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|req| {
        if req.client_id.starts_with("deny") {
            Decision::deny("x".repeat(200)).into()
        } else {
            Reply::allow()
        }
    });
    let broker = auth_broker(&plugin).await;
    let small = Props::new().u32(prop::MAXIMUM_PACKET_SIZE, 64);

    // Refused: CONNACK 0x87 without the 200-byte reason, which would not fit in 64 bytes.
    let connect = Connect5::new("deny-small").props(small.clone());
    let (mut client, ack) = V5Client::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(ack.reason, reason::NOT_AUTHORIZED);
    assert_eq!(ack.props.get_str(prop::REASON_STRING), None);
    assert!(client.expect_closed().await.is_empty());
    // Without a limit the reason is there.
    let (_, ack) = V5Client::connect(broker.mqtt_addr(), &Connect5::new("deny-any")).await;
    assert_eq!(
        ack.props.get_str(prop::REASON_STRING),
        Some(&*"x".repeat(200))
    );

    // Kicked by the plugin with a long reason: DISCONNECT 0x98 without it for the small
    // client, with it (cleaned) for a client with no limit.
    plugin
        .wait_for_event("broker_post_start", |r| {
            r.is(pb::EventKind::BrokerPostStart)
        })
        .await;
    let connect = Connect5::new("kick-small").props(small);
    let (mut kick_small, _) = V5Client::connect_ok(broker.mqtt_addr(), &connect).await;
    let (mut kick_any, _) =
        V5Client::connect_ok(broker.mqtt_addr(), &Connect5::new("kick-any")).await;
    let ctx = plugin.context().await;
    for id in ["kick-small", "kick-any"] {
        ctx.disconnect_client(id, &format!("go away\0{}", "y".repeat(100)))
            .await
            .expect("the event stream is open");
    }
    let disconnect = kick_small.expect_disconnect().await;
    assert_eq!(disconnect.reason, 0x98, "administrative action");
    assert_eq!(disconnect.props.get_str(prop::REASON_STRING), None);
    let disconnect = kick_any.expect_disconnect().await;
    assert_eq!(disconnect.reason, 0x98);
    let text = disconnect
        .props
        .get_str(prop::REASON_STRING)
        .expect("reason");
    assert_eq!(text, format!("go away\u{FFFD}{}", "y".repeat(100)));
}

#[tokio::test]
async fn a_kick_reason_too_long_for_mqtt_still_disconnects_with_its_reason_code() {
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|_| Reply::allow());
    let broker = auth_broker(&plugin).await;
    plugin
        .wait_for_event("broker_post_start", |r| {
            r.is(pb::EventKind::BrokerPostStart)
        })
        .await;
    let mut client = V5Client::connected(broker.mqtt_addr(), "kicked").await;
    plugin
        .context()
        .await
        .disconnect_client("kicked", &hostile_reason())
        .await
        .expect("the event stream is open");
    let disconnect = client.expect_disconnect().await;
    assert_eq!(disconnect.reason, 0x98);
    let text = disconnect
        .props
        .get_str(prop::REASON_STRING)
        .expect("reason");
    assert_clean(text);
}

/// The CONNACK return code a 3.1.1 client gets, and that the connection then closes.
async fn connack_311(broker: &TestBroker, client_id: &str) -> u8 {
    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &Connect::new(client_id)).await;
    let after: Vec<Packet> = client.expect_closed().await;
    assert!(after.is_empty(), "packets after a refusal: {after:?}");
    ack.code
}

#[tokio::test]
async fn a_311_client_refused_by_a_plugin_gets_not_authorized_or_bad_credentials() {
    let plugin = TestPlugin::start().await;
    // The client id names the reason code the plugin asks for.
    plugin.on_auth(|req| {
        let code = u8::from_str_radix(&req.client_id[2..], 16).expect("hex code");
        let deny = Decision::deny("no");
        if code == 0 {
            deny.into()
        } else {
            deny.reason_code(code).into()
        }
    });
    let broker = auth_broker(&plugin).await;
    // (plugin's reason code, 3.1.1 return code, MQTT 5 reason code)
    let cases = [
        (0x00, 0x05, 0x87),
        (0x86, 0x04, 0x86),
        (0x88, 0x05, 0x88), // server unavailable: 3.1.1 clients would retry in a loop
        (0x89, 0x05, 0x89), // server busy: the same
        (0x8A, 0x05, 0x8A),
        (0x97, 0x05, 0x97),
        (0x80, 0x05, 0x80),
    ];
    for (code, v311, v5) in cases {
        let id = format!("id{code:02x}");
        assert_eq!(
            connack_311(&broker, &id).await,
            v311,
            "3.1.1, plugin {code:#04x}"
        );
        let (_, ack) = V5Client::connect(broker.mqtt_addr(), &Connect5::new(&id)).await;
        assert_eq!(ack.reason, v5, "MQTT 5, plugin {code:#04x}");
    }
}

/// The human log format escapes what a plugin says: a topic it publishes to with line breaks
/// and an escape sequence stays on the one line that logs it (a DENY reason is cleaned before
/// it is logged).
#[tokio::test]
async fn plugin_strings_cannot_forge_human_log_lines() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex, PoisonError};

    let plugin = TestPlugin::start().await;
    plugin.on_auth(|_| Decision::deny("no\n2099-01-01 INFO forged line\r\x1b[2J").into());
    let port = midge_tests::plugin::free_port();
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let dir = midge_tests::TempDir::new();
    let config = dir.write("midge.yaml", yaml);
    /// Kills the broker however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Killed(
        Command::new(midge_tests::broker::midge_bin())
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "human"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("midge starts"),
    );
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        let stderr = child.0.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        })
    };
    let logged = |needle: &str| {
        lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|l| needle.split('|').all(|part| l.contains(part)))
    };
    let wait_for = |needle: &'static str| async move {
        let deadline = tokio::time::Instant::now() + midge_tests::TIMEOUT;
        while !logged(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {needle:?} logged"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    wait_for("listening|listener=default").await;
    let addr = format!("127.0.0.1:{port}").parse().expect("address");
    let (_, ack) = V5Client::connect(addr, &Connect5::new("forger")).await;
    assert_eq!(ack.reason, reason::NOT_AUTHORIZED);
    wait_for("refused: not authorized").await;
    plugin
        .wait_for_event("broker_post_start", |r| {
            r.is(pb::EventKind::BrokerPostStart)
        })
        .await;
    plugin
        .publish(midge_plugin::Publish::new(
            "t\n2099-01-01 INFO forged topic\r\x1b[2J",
            b"x".to_vec(),
        ))
        .await;
    wait_for("plugin publishes a message").await;
    drop(child);
    let _ = reader.join();

    let lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
    let refusal = lines
        .iter()
        .find(|l| l.contains("refused: not authorized"))
        .expect("the refusal");
    assert!(
        refusal.contains("reason=no 2099-01-01 INFO forged line \u{FFFD}[2J"),
        "{refusal}"
    );
    let publish = lines
        .iter()
        .find(|l| l.contains("plugin publishes a message"))
        .expect("the publish");
    assert!(
        publish.contains(r"topic=t\n2099-01-01 INFO forged topic\r\u{1b}[2J"),
        "{publish}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("2099") || l.contains('\x1b')),
        "a plugin forged a log line: {lines:#?}"
    );
}

//! Authentication through real plugins (`auth.proto`): the decision rule with
//! `allow-anonymous` as one more voter, what the plugin is told, the fallback of each failure
//! class (error status, deadline passed, nothing listening) and the authentication cache.

use std::time::{Duration, Instant};

use midge_plugin::{AuthRequest, ProtocolVersion, Status};
use midge_tests::plugin::{PluginProcess, Reply, TestPlugin, broker_yaml, free_port, plugin_yaml};
use midge_tests::raw::{Connect, Publish, Read};
use midge_tests::{RawClient, TestBroker};

/// CONNACK return code 0x05: not authorized.
const NOT_AUTHORIZED: u8 = 0x05;

/// Connects with `connect` and returns the CONNACK code; a refused client must then be
/// disconnected by the broker, an accepted one is still served.
async fn connack(broker: &TestBroker, connect: Connect) -> u8 {
    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    if ack.code == 0 {
        client.ping().await;
        client.disconnect().await;
    } else {
        let after = client.expect_closed().await;
        assert!(after.is_empty(), "packets after a refusal: {after:?}");
    }
    ack.code
}

fn client(id: &str, username: Option<&str>) -> Connect {
    let connect = Connect::new(id);
    match username {
        Some(user) => connect.username(user).password(b"pw"),
        None => connect,
    }
}

/// ALLOW, DENY or IGNORE by the client id's first word.
fn by_client_id(req: &AuthRequest) -> Reply {
    if req.client_id.starts_with("allow") {
        Reply::allow()
    } else if req.client_id.starts_with("deny") {
        Reply::deny()
    } else {
        Reply::ignore()
    }
}

/// One `allow-anonymous` setting against a plugin answering ALLOW / DENY / IGNORE, each for a
/// client with and one without a user name. `expected` is in the order allow-user,
/// allow-anonymous, deny-user, deny-anonymous, ignore-user, ignore-anonymous.
async fn rule_table(allow_anonymous: Option<bool>, expected: [u8; 6]) {
    let plugin = TestPlugin::start().await;
    plugin.on_auth(by_client_id);
    let anonymous = allow_anonymous.map_or(String::new(), |a| format!("  allow-anonymous: {a}\n"));
    let yaml = broker_yaml(
        &[plugin.yaml("p", "")],
        &format!("auth:\n{anonymous}  plugins: [p]\n"),
    );
    let broker = TestBroker::start(&yaml).await;
    let cases = [
        ("allow-user", Some("u")),
        ("allow-anon", None),
        ("deny-user", Some("u")),
        ("deny-anon", None),
        ("ignore-user", Some("u")),
        ("ignore-anon", None),
    ];
    let mut got = [0u8; 6];
    for (code, (id, user)) in got.iter_mut().zip(cases) {
        *code = connack(&broker, client(id, user)).await;
    }
    assert_eq!(
        got,
        expected,
        "allow-anonymous {allow_anonymous:?}: CONNACK codes for {:?}",
        cases.map(|c| c.0)
    );
    // The plugin is asked whatever the anonymous voter says.
    assert_eq!(plugin.auth_calls().len(), 6);
}

#[tokio::test]
async fn allow_anonymous_true_with_allow_deny_ignore() {
    // allow-anonymous: true votes ALLOW for everyone: only a DENY refuses.
    rule_table(Some(true), [0, 0, 5, 5, 0, 0]).await;
}

#[tokio::test]
async fn allow_anonymous_false_with_allow_deny_ignore() {
    // false votes ALLOW with a user name, DENY without: anonymous clients never get in.
    rule_table(Some(false), [0, 5, 5, 5, 0, 5]).await;
}

#[tokio::test]
async fn allow_anonymous_absent_with_allow_deny_ignore() {
    // Absent: no vote, so the plugin alone decides and IGNORE leaves nobody voting ALLOW.
    rule_table(None, [0, 0, 5, 5, 5, 5]).await;
}

#[tokio::test]
async fn two_plugins_any_deny_denies_and_ignore_abstains() {
    let a = TestPlugin::start().await;
    let b = TestPlugin::start().await;
    // Client "ad": a ALLOW, b DENY. "ai": a ALLOW, b IGNORE. "ii": both IGNORE.
    a.on_auth(|req| match req.client_id.as_str() {
        "ad" | "ai" => Reply::allow(),
        _ => Reply::ignore(),
    });
    b.on_auth(|req| match req.client_id.as_str() {
        "ad" => Reply::deny(),
        _ => Reply::ignore(),
    });
    let yaml = broker_yaml(
        &[a.yaml("a", ""), b.yaml("b", "")],
        "auth:\n  plugins: [a, b]\n",
    );
    let broker = TestBroker::start(&yaml).await;
    assert_eq!(
        connack(&broker, client("ad", Some("u"))).await,
        NOT_AUTHORIZED,
        "[ALLOW, DENY]"
    );
    assert_eq!(
        connack(&broker, client("ai", Some("u"))).await,
        0,
        "[ALLOW, IGNORE]"
    );
    assert_eq!(
        connack(&broker, client("ii", Some("u"))).await,
        NOT_AUTHORIZED,
        "[IGNORE, IGNORE]"
    );
    // Both plugins were asked every time.
    assert_eq!(a.auth_calls().len(), 3);
    assert_eq!(b.auth_calls().len(), 3);
}

#[tokio::test]
async fn a_single_ignoring_plugin_refuses() {
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|_| Reply::ignore());
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n");
    let broker = TestBroker::start(&yaml).await;
    assert_eq!(
        connack(&broker, client("c", Some("u"))).await,
        NOT_AUTHORIZED
    );
    assert_eq!(connack(&broker, client("c", None)).await, NOT_AUTHORIZED);
}

#[tokio::test]
async fn a_chain_where_nobody_votes_refuses_everyone() {
    // No allow-anonymous and one plugin that abstains on everything: nobody votes ALLOW. (With
    // no plugin at all the config itself is refused at load: see `config.rs`.)
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|_| Reply::ignore());
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n");
    let broker = TestBroker::start(&yaml).await;
    assert_eq!(
        connack(&broker, client("c", Some("u"))).await,
        NOT_AUTHORIZED
    );
    assert_eq!(connack(&broker, client("c", None)).await, NOT_AUTHORIZED);
}

#[tokio::test]
async fn the_plugin_receives_the_connect_facts() {
    let plugin = TestPlugin::start().await;
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n");
    let broker = TestBroker::start(&yaml).await;

    let password = b"s3cr\x00t\xff";
    let connect = Connect::new("facts-311")
        .username("alice")
        .password(password)
        .keep_alive(42)
        .clean_session(false);
    let (mut c311, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(ack.code, 0);
    let connect = Connect::new("facts-31")
        .protocol_name("MQIsdp")
        .level(3)
        .keep_alive(0);
    let (mut c31, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(ack.code, 0);

    let calls = plugin.auth_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let r = &calls[0];
    assert_eq!(r.client_id, "facts-311");
    assert_eq!(r.username.as_deref(), Some("alice"));
    let got = r.password.as_ref().map(|p| p.as_bytes().to_vec());
    assert_eq!(got.as_deref(), Some(&password[..]), "raw password bytes");
    assert_eq!(r.remote_addr, Some(c311.local_addr()));
    assert_eq!(r.listener, "default");
    assert_eq!(r.protocol_version, ProtocolVersion::V3_1_1);
    assert!(!r.clean_start);
    assert_eq!(r.keep_alive, Duration::from_secs(42));
    assert_eq!(r.tls_peer_subject, None);
    assert!(r.enhanced.is_none());

    let r = &calls[1];
    assert_eq!(r.client_id, "facts-31");
    assert_eq!(r.username, None, "anonymous");
    assert!(r.password.is_none());
    assert_eq!(r.remote_addr, Some(c31.local_addr()));
    assert_eq!(r.protocol_version, ProtocolVersion::V3_1);
    assert!(r.clean_start);
    assert_eq!(r.keep_alive, Duration::ZERO);
    c311.disconnect().await;
    c31.disconnect().await;
}

#[tokio::test]
async fn the_auth_request_carries_the_connection_id_of_the_session_events() {
    // auth.proto, AuthenticateRequest.connection_id: "An id unique to this network connection
    // within the broker run [...] equal to Session.connection_id in events."
    let plugin = TestPlugin::start().await;
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n");
    let broker = TestBroker::start(&yaml).await;
    let mut c = RawClient::connected(broker.mqtt_addr(), "conn-id").await;
    let connected = plugin
        .wait_for_event("client_connected conn-id", |r| {
            r.is(midge_plugin::pb::EventKind::ClientConnected) && r.client_id() == Some("conn-id")
        })
        .await;
    let session_id = connected.session().expect("session").connection_id.clone();
    assert!(!session_id.is_empty(), "Session.connection_id is set");
    let calls = plugin.auth_calls();
    assert_eq!(
        calls[0].connection_id, session_id,
        "AuthenticateRequest.connection_id must equal Session.connection_id"
    );
    c.disconnect().await;
}

// ---- Fallbacks -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The plugin answers with an error status: `on-error`.
    Error,
    /// The plugin answers after the deadline: `on-timeout`.
    Timeout,
    /// Nothing listens at the endpoint: `on-unavailable`.
    Unavailable,
}

const PLUGIN_TIMEOUT: Duration = Duration::from_millis(300);

/// A plugin failing with `class`, its fallback for that class set to `fallback` and the other
/// classes' fallbacks set to something that would give a different result, plus a second plugin
/// that ALLOWs client `with-yes` and IGNOREs the rest. `allow` lets both clients in; `deny`
/// refuses both; `ignore` lets only `with-yes` in (the failing plugin abstains, and `alone` then
/// has no vote at all).
async fn fallback_case(class: Class, fallback: &str) {
    let yes = TestPlugin::start().await;
    yes.on_auth(|req| {
        if req.client_id == "with-yes" {
            Reply::allow()
        } else {
            Reply::ignore()
        }
    });
    let failing = TestPlugin::start().await;
    let endpoint = match class {
        Class::Error => {
            failing.on_auth(|_| Reply::error(Status::internal("boom")));
            failing.endpoint()
        }
        Class::Timeout => {
            failing.on_auth(|_| Reply::allow().after(Duration::from_secs(5)));
            failing.endpoint()
        }
        Class::Unavailable => format!("http://127.0.0.1:{}", free_port()),
    };
    let other = if fallback == "deny" { "allow" } else { "deny" };
    let key = match class {
        Class::Error => "on-error",
        Class::Timeout => "on-timeout",
        Class::Unavailable => "on-unavailable",
    };
    let others: Vec<String> = ["on-error", "on-timeout", "on-unavailable"]
        .into_iter()
        .filter(|k| *k != key)
        .map(|k| format!("{k}: {other}"))
        .collect();
    let extra = format!(
        "timeout: {}ms\nfallback: {{{key}: {fallback}, {}}}",
        PLUGIN_TIMEOUT.as_millis(),
        others.join(", ")
    );
    let yaml = broker_yaml(
        &[
            plugin_yaml("failing", &endpoint, &extra),
            yes.yaml("yes", ""),
        ],
        "auth:\n  plugins: [failing, yes]\n",
    );
    let broker = TestBroker::start(&yaml).await;

    let expected = match fallback {
        "allow" => (0, 0),
        "deny" => (NOT_AUTHORIZED, NOT_AUTHORIZED),
        _ => (0, NOT_AUTHORIZED),
    };
    let mut got = (0, 0);
    for (id, slot) in [("with-yes", &mut got.0), ("alone", &mut got.1)] {
        let started = Instant::now();
        *slot = connack(&broker, client(id, Some("u"))).await;
        let elapsed = started.elapsed();
        if class == Class::Timeout {
            // The broker waited for the deadline, not for the plugin's (5 s) answer.
            assert!(
                elapsed >= PLUGIN_TIMEOUT && elapsed < PLUGIN_TIMEOUT + Duration::from_secs(1),
                "{id}: CONNACK after {elapsed:?} with a {PLUGIN_TIMEOUT:?} deadline"
            );
        }
    }
    assert_eq!(
        got, expected,
        "{class:?} with {key}: {fallback}: CONNACK codes for (with-yes, alone)"
    );
    if class != Class::Unavailable {
        assert_eq!(
            failing.auth_calls().len(),
            2,
            "each CONNECT reached the plugin"
        );
    }
    let class_name = match class {
        Class::Error => "Error",
        Class::Timeout => "Timeout",
        Class::Unavailable => "Unavailable",
    };
    let logged = format!("\"failure\":\"{class_name}\"");
    // The log is read from the broker's stderr by another task: wait for the line.
    broker
        .wait_for_log(&format!("the fallback logged with {logged}"), |l| {
            l.contains("fallback taken") && l.contains(&logged)
        })
        .await;
}

#[tokio::test]
async fn error_status_takes_on_error_allow() {
    fallback_case(Class::Error, "allow").await;
}

#[tokio::test]
async fn error_status_takes_on_error_deny() {
    fallback_case(Class::Error, "deny").await;
}

#[tokio::test]
async fn error_status_takes_on_error_ignore() {
    fallback_case(Class::Error, "ignore").await;
}

#[tokio::test]
async fn a_late_answer_takes_on_timeout_allow() {
    fallback_case(Class::Timeout, "allow").await;
}

#[tokio::test]
async fn a_late_answer_takes_on_timeout_deny() {
    fallback_case(Class::Timeout, "deny").await;
}

#[tokio::test]
async fn a_late_answer_takes_on_timeout_ignore() {
    fallback_case(Class::Timeout, "ignore").await;
}

#[tokio::test]
async fn nothing_listening_takes_on_unavailable_allow() {
    fallback_case(Class::Unavailable, "allow").await;
}

#[tokio::test]
async fn nothing_listening_takes_on_unavailable_deny() {
    fallback_case(Class::Unavailable, "deny").await;
}

#[tokio::test]
async fn nothing_listening_takes_on_unavailable_ignore() {
    fallback_case(Class::Unavailable, "ignore").await;
}

#[tokio::test]
async fn a_sigstopped_plugin_process_times_out_then_answers_again_after_sigcont() {
    // A real process, frozen: its socket stays open and accepts the call, nothing answers.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_test-plugin"));
    let process = PluginProcess::test_plugin(bin, &["--verdict", "allow"]).await;
    let extra = format!(
        "timeout: {}ms\nfallback: {{on-timeout: deny, on-error: allow, on-unavailable: allow}}",
        PLUGIN_TIMEOUT.as_millis()
    );
    let yaml = broker_yaml(
        &[process.yaml("frozen", &extra)],
        "auth:\n  plugins: [frozen]\n",
    );
    let broker = TestBroker::start(&yaml).await;
    assert_eq!(connack(&broker, client("before", Some("u"))).await, 0);

    process.signal("STOP");
    let started = Instant::now();
    let code = connack(&broker, client("during", Some("u"))).await;
    let elapsed = started.elapsed();
    process.signal("CONT");
    assert_eq!(code, NOT_AUTHORIZED, "on-timeout: deny");
    assert!(
        elapsed >= PLUGIN_TIMEOUT && elapsed < PLUGIN_TIMEOUT + Duration::from_secs(1),
        "CONNACK after {elapsed:?} with a {PLUGIN_TIMEOUT:?} deadline"
    );
    assert_eq!(
        connack(&broker, client("after", Some("u"))).await,
        0,
        "it answers again"
    );
    assert!(
        process
            .wait_for_line("auth after", Duration::from_secs(5))
            .await,
        "{:?}",
        process.lines()
    );
}

// ---- Cache -----------------------------------------------------------------------------------

#[tokio::test]
async fn cached_verdicts_are_reused_for_the_same_credentials_only() {
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|req| {
        let reply = if req.username.as_deref() == Some("bad") {
            Reply::deny()
        } else {
            Reply::allow()
        };
        reply.ttl(Duration::from_secs(60))
    });
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n");
    let broker = TestBroker::start(&yaml).await;
    let creds = |id: &str, user: &str, pw: &[u8]| Connect::new(id).username(user).password(pw);

    assert_eq!(connack(&broker, creds("c1", "alice", b"one")).await, 0);
    assert_eq!(plugin.auth_calls().len(), 1);
    assert_eq!(connack(&broker, creds("c1", "alice", b"one")).await, 0);
    assert_eq!(
        plugin.auth_calls().len(),
        1,
        "same credentials: served from the cache"
    );
    assert_eq!(connack(&broker, creds("c1", "alice", b"two")).await, 0);
    assert_eq!(plugin.auth_calls().len(), 2, "another password asks again");
    assert_eq!(connack(&broker, creds("c2", "alice", b"one")).await, 0);
    assert_eq!(plugin.auth_calls().len(), 3, "another client id asks again");

    // A DENY with a lifetime is cached too.
    let denied = creds("c3", "bad", b"x");
    assert_eq!(connack(&broker, denied.clone()).await, NOT_AUTHORIZED);
    assert_eq!(connack(&broker, denied).await, NOT_AUTHORIZED);
    assert_eq!(
        plugin.auth_calls().len(),
        4,
        "the cached DENY answered the retry"
    );
}

#[tokio::test]
async fn cached_verdicts_expire() {
    // Both halves are decided by when each CONNECT was sent and answered, not by how fast the
    // machine is. The verdict was cached after the first CONNECT was sent and before its CONNACK
    // arrived, so it lives until some moment in [first sent + ttl, first answered + ttl] (the
    // broker's clock is the same monotonic clock as ours): a CONNECT answered before
    // `first sent + ttl` must be served from the cache; one sent after `first answered + ttl`
    // must ask the plugin again.
    let plugin = TestPlugin::start().await;
    let ttl = Duration::from_millis(800);
    plugin.on_auth(move |_| Reply::allow().ttl(ttl));
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n");
    let broker = TestBroker::start(&yaml).await;
    let connect = Connect::new("exp").username("u").password(b"p");
    let first_sent = Instant::now();
    assert_eq!(connack(&broker, connect.clone()).await, 0);
    let first_answered = Instant::now();
    assert_eq!(plugin.auth_calls().len(), 1);
    let mut from_cache = 0;
    loop {
        let sent = Instant::now();
        assert_eq!(connack(&broker, connect.clone()).await, 0);
        let answered = Instant::now();
        let calls = plugin.auth_calls().len();
        if answered < first_sent + ttl {
            assert_eq!(calls, 1, "within the lifetime: served from the cache");
            from_cache += 1;
        }
        if calls == 2 {
            break;
        }
        assert_eq!(calls, 1);
        assert!(
            sent < first_answered + ttl,
            "sent {:?} after the lifetime ended and not asked again",
            sent - (first_answered + ttl)
        );
        tokio::time::sleep(ttl / 10).await;
    }
    assert!(
        from_cache > 0,
        "no CONNECT was answered within {ttl:?} of the first one: nothing checked the cache"
    );
}

#[tokio::test]
async fn the_cache_key_includes_the_listener() {
    // auth.proto, cache_ttl_ms: "The cache key is the alias, client id, user name, a digest of
    // the password, the listener and the TLS subject".
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|_| Reply::allow().ttl(Duration::from_secs(60)));
    let yaml = format!(
        "listeners:
  - name: default
    kind: tcp
    bind: 127.0.0.1:0
  - name: second
    kind: tcp
    bind: 127.0.0.1:0
plugins:
{}auth:
  plugins: [p]
",
        plugin.yaml("p", "")
    );
    let broker = TestBroker::start(&yaml).await;
    let connect = Connect::new("two-doors").username("u").password(b"p");
    let (mut first, ack) = RawClient::connect(broker.addr("default"), &connect).await;
    assert_eq!(ack.code, 0);
    first.disconnect().await;
    let (mut second, ack) = RawClient::connect(broker.addr("second"), &connect).await;
    assert_eq!(ack.code, 0);
    second.disconnect().await;
    let listeners: Vec<String> = plugin
        .auth_calls()
        .into_iter()
        .map(|r| r.listener)
        .collect();
    assert_eq!(
        listeners,
        ["default", "second"],
        "a decision cached for one listener must not answer for another"
    );
}

// ---- Authentication before takeover ----------------------------------------------------------

/// A client `id` with the right password, subscribed to `t/#`.
async fn subscribed(broker: &TestBroker, id: &str) -> RawClient {
    let connect = Connect::new(id).username("u").password(b"right");
    let (mut client, ack) = RawClient::connect(broker.mqtt_addr(), &connect).await;
    assert_eq!(ack.code, 0);
    assert_eq!(client.subscribe(1, &[("t/#", 0)]).await, [0]);
    client
}

/// `publisher` publishes on `topic` and `receiver` gets it: proof that `receiver`'s connection
/// is still the session's.
async fn still_served(publisher: &mut RawClient, receiver: &mut RawClient, topic: &str) {
    receiver.ping().await;
    publisher
        .publish(&Publish::new(topic, b"still there").qos(1, 1))
        .await;
    assert_eq!(receiver.expect_publish().await.topic, topic);
}

#[tokio::test]
async fn a_refused_connect_does_not_take_over_the_connected_client() {
    // docs/plugins.md, differences from aMQTT: "auth first, then takeover" — a CONNECT the
    // authenticators refuse must not kick the client connected with that id.
    let plugin = TestPlugin::start().await;
    plugin.on_auth(|req| match req.password.as_ref().map(|p| p.as_bytes()) {
        Some(b"right") => Reply::allow(),
        _ => Reply::deny(),
    });
    let yaml = broker_yaml(&[plugin.yaml("p", "")], "auth:\n  plugins: [p]\n");
    let broker = TestBroker::start(&yaml).await;
    let mut first = subscribed(&broker, "x").await;
    let mut publisher = subscribed(&broker, "pub").await;

    let intruder = Connect::new("x").username("u").password(b"wrong");
    assert_eq!(connack(&broker, intruder).await, NOT_AUTHORIZED);
    assert_eq!(plugin.auth_calls().len(), 3, "the intruder was asked about");
    still_served(&mut publisher, &mut first, "t/after-refusal").await;
    assert!(
        !broker.logs_contain("session taken over"),
        "{}",
        broker.log_text()
    );
    first.disconnect().await;
}

#[tokio::test]
async fn a_slow_allowed_connect_takes_over_only_once_the_plugin_answered() {
    let plugin = TestPlugin::start().await;
    // The held answer must not run into the deadline.
    let yaml = broker_yaml(
        &[plugin.yaml("p", "timeout: 10s")],
        "auth:\n  plugins: [p]\n",
    );
    let broker = TestBroker::start(&yaml).await;
    let mut first = subscribed(&broker, "x").await;
    let mut publisher = subscribed(&broker, "pub").await;

    plugin.hold_answers();
    let mut second = RawClient::tcp(broker.mqtt_addr()).await;
    let connect = Connect::new("x").username("u").password(b"right");
    second.send_ok(&connect.encode()).await;
    plugin.wait_for_auth_calls(3).await;
    // The decision is pending: the first connection keeps the session, the second waits.
    still_served(&mut publisher, &mut first, "t/while-deciding").await;
    match second.next(Duration::from_millis(300)).await {
        Read::TimedOut => {}
        other => panic!("the second CONNECT was answered before its plugin: {other:?}"),
    }
    assert!(!broker.logs_contain("session taken over"));

    plugin.release_answers();
    assert_eq!(second.read_packet().await.connack().code, 0);
    first.expect_closed().await;
    broker
        .wait_for_log("the takeover", |l| l.contains("session taken over"))
        .await;
    second.ping().await;
}

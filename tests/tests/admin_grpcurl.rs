//! The admin API through the real `grpcurl` (1.8.6, reflection v1alpha): `list`, `describe`,
//! and a call of every `BrokerAdmin` method, asserting on grpcurl's JSON; errors as gRPC status
//! codes; the bearer token. These are the commands the README's "Inspect a running broker"
//! shows.

use midge_tests::admin::admin_addr;
use midge_tests::broker::tcp_config;
use midge_tests::grpcurl::{ADMIN, ADMIN_SECTIONS, Grpcurl};
use midge_tests::{MqttClient, TestBroker, TestCerts};
use rumqttc::QoS;
use serde_json::Value;

/// A broker with admin and metrics on ephemeral ports and one plugin alias whose endpoint
/// nothing listens on (so `ListPlugins` has something to show).
async fn broker() -> TestBroker {
    let sections = format!(
        "{ADMIN_SECTIONS}sys-interval: 0s\nplugins:\n  acl:\n    endpoint: http://127.0.0.1:1\n"
    );
    TestBroker::start(&tcp_config("", &sections)).await
}

fn ids(clients: &Value) -> Vec<&str> {
    clients
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["clientId"].as_str().expect("clientId"))
        .collect()
}

#[tokio::test]
async fn list_and_describe_through_reflection() {
    let broker = broker().await;
    let Some(grpcurl) = Grpcurl::plaintext(admin_addr(&broker).await) else {
        return;
    };
    let list = grpcurl.run(&[], &["list"]).await;
    assert!(list.success, "{list:?}");
    let services: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(
        services,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            ADMIN,
        ]
    );
    let methods = grpcurl.run(&[], &["list", ADMIN]).await;
    let methods: Vec<&str> = methods.stdout.lines().collect();
    assert_eq!(methods.len(), 11, "{methods:?}");
    assert!(methods.contains(&"midge.admin.v1.BrokerAdmin.WatchEvents"));

    let describe = grpcurl.run(&[], &["describe", ADMIN]).await;
    assert!(describe.success, "{describe:?}");
    assert!(
        describe.stdout.contains(
            "rpc WatchEvents ( .midge.admin.v1.WatchEventsRequest ) returns ( stream .midge.plugin.v1.Event );"
        ),
        "{}",
        describe.stdout
    );
    assert!(
        describe
            .stdout
            .contains("// Inspect and operate a running broker.")
    );
    let message = grpcurl
        .run(&[], &["describe", "midge.admin.v1.PublishRequest"])
        .await;
    assert!(
        message
            .stdout
            .contains(".midge.plugin.v1.MessageProperties properties = 5;"),
        "{message:?}"
    );
}

#[tokio::test]
async fn every_admin_method_answers_with_json() {
    let broker = broker().await;
    let Some(grpcurl) = Grpcurl::plaintext(admin_addr(&broker).await) else {
        return;
    };
    let mut sub = MqttClient::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe_ok("sensors/#", QoS::AtLeastOnce).await;
    sub.subscribe_ok("sensors/+/temp", QoS::AtMostOnce).await;
    let mut other = MqttClient::connect(broker.mqtt_addr(), "other").await;

    // GetBrokerInfo
    let info = grpcurl.call("GetBrokerInfo", None).await.json();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["startedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let listener = &info["listeners"][0];
    assert_eq!(listener["name"], "default");
    assert_eq!(listener["kind"], "tcp");
    assert_eq!(listener["bind"], broker.mqtt_addr().to_string());
    assert_eq!(listener["connections"], 2);
    assert_eq!(listener["maxConnections"], 0, "unlimited by default");
    let counters = &info["counters"];
    assert_eq!(counters["clientsConnected"], "2", "uint64 is a JSON string");
    assert_eq!(counters["connectionsTotal"], "2");
    assert_eq!(counters["subscriptions"], "2");
    assert_eq!(counters["retainedMessages"], "0");

    // ListClients, with paging.
    let page = grpcurl
        .call("ListClients", Some(r#"{"pageSize":1}"#))
        .await
        .json();
    assert_eq!(ids(&page["clients"]), ["other"]);
    let token = page["nextPageToken"].as_str().expect("token").to_owned();
    assert!(!token.is_empty());
    let page = grpcurl
        .call(
            "ListClients",
            Some(&format!(r#"{{"pageSize":1,"pageToken":"{token}"}}"#)),
        )
        .await
        .json();
    assert_eq!(ids(&page["clients"]), ["sub"]);
    assert_eq!(page["nextPageToken"], "");
    let client = &page["clients"][0];
    assert_eq!(client["connected"], true);
    assert_eq!(client["listener"], "default");
    assert_eq!(client["protocolVersion"], "PROTOCOL_VERSION_MQTT_3_1_1");
    assert_eq!(client["keepAliveSecs"], 30);
    assert_eq!(client["cleanStart"], true);
    assert!(
        client["remoteAddr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    assert!(
        client["connectedSince"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(
        client["subscriptions"],
        Value::Array(vec![]),
        "ListClients leaves them out"
    );
    let bad = grpcurl
        .call("ListClients", Some(r#"{"pageToken":"zz"}"#))
        .await;
    assert_eq!(bad.code(), "InvalidArgument");

    // GetClient
    let client = grpcurl
        .call("GetClient", Some(r#"{"clientId":"sub"}"#))
        .await
        .json();
    let filters: Vec<(&str, u64)> = client["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .map(|s| {
            (
                s["topicFilter"].as_str().expect("filter"),
                s["qos"].as_u64().expect("qos"),
            )
        })
        .collect();
    assert_eq!(filters, [("sensors/#", 1), ("sensors/+/temp", 0)]);
    assert_eq!(client["inflight"], 0);
    assert_eq!(client["queued"], 0);
    let missing = grpcurl
        .call("GetClient", Some(r#"{"clientId":"ghost"}"#))
        .await;
    assert_eq!(missing.code(), "NotFound");
    assert!(
        missing.stderr.contains("no session for client id `ghost`"),
        "{missing:?}"
    );

    // ListSubscriptions: the filter argument matches subscriptions' filters as topic names.
    let subs = grpcurl
        .call(
            "ListSubscriptions",
            Some(r#"{"topicFilter":"sensors/+/temp"}"#),
        )
        .await
        .json();
    let listed: Vec<&str> = subs["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .map(|s| s["topicFilter"].as_str().expect("filter"))
        .collect();
    assert_eq!(listed, ["sensors/+/temp"]);
    let all = grpcurl
        .call("ListSubscriptions", Some(r##"{"topicFilter":"#"}"##))
        .await
        .json();
    assert_eq!(all["subscriptions"].as_array().map(Vec::len), Some(2));
    let bad = grpcurl
        .call("ListSubscriptions", Some(r#"{"topicFilter":"a/#/b"}"#))
        .await;
    assert_eq!(bad.code(), "InvalidArgument");

    // Publish: retained, delivered to the subscriber.
    let published = grpcurl
        .call(
            "Publish",
            Some(r#"{"topic":"sensors/k/temp","payload":"aGk=","qos":1,"retain":true}"#),
        )
        .await
        .json();
    assert_eq!(published["receivers"], 1);
    let got = sub.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("sensors/k/temp", &b"hi"[..])
    );
    assert_eq!(got.qos, QoS::AtLeastOnce);
    for (data, what) in [
        (r#"{"topic":"a/+","payload":"aGk="}"#, "wildcard topic"),
        (r#"{"topic":"","payload":"aGk="}"#, "empty topic"),
        (r#"{"topic":"a","qos":3}"#, "qos 3"),
    ] {
        let bad = grpcurl.call("Publish", Some(data)).await;
        assert_eq!(bad.code(), "InvalidArgument", "{what}");
    }

    // ListRetained / GetRetained / DeleteRetained
    let retained = grpcurl
        .call(
            "ListRetained",
            Some(r#"{"topicFilter":"sensors/#","omitPayload":true}"#),
        )
        .await
        .json();
    let message = &retained["messages"][0]["message"];
    assert_eq!(message["topic"], "sensors/k/temp");
    assert_eq!(
        (message["payload"].as_str(), &message["payloadSize"]),
        (Some(""), &Value::from(2))
    );
    let one = grpcurl
        .call("GetRetained", Some(r#"{"topic":"sensors/k/temp"}"#))
        .await
        .json();
    assert_eq!(one["message"]["payload"], "aGk=");
    assert_eq!(one["message"]["retain"], true);
    assert!(
        one["storedAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "stored_at: {one}"
    );
    assert_eq!(one["clientId"], "", "published by the admin API: {one}");
    let deleted = grpcurl
        .call("DeleteRetained", Some(r#"{"topic":"sensors/k/temp"}"#))
        .await
        .json();
    assert_eq!(deleted["deleted"], true);
    let again = grpcurl
        .call("DeleteRetained", Some(r#"{"topic":"sensors/k/temp"}"#))
        .await
        .json();
    assert_eq!(again["deleted"], false);
    let gone = grpcurl
        .call("GetRetained", Some(r#"{"topic":"sensors/k/temp"}"#))
        .await;
    assert_eq!(gone.code(), "NotFound");
    let bad = grpcurl
        .call("GetRetained", Some(r#"{"topic":"sensors/#"}"#))
        .await;
    assert_eq!(bad.code(), "InvalidArgument");

    // ListPlugins: the alias whose endpoint nothing listens on.
    let plugins = grpcurl.call("ListPlugins", None).await.json();
    let plugin = &plugins["plugins"][0];
    assert_eq!(plugin["alias"], "acl");
    assert_eq!(plugin["endpoint"], "http://127.0.0.1:1");
    assert_eq!(plugin["state"], "PLUGIN_STATE_RECONNECTING");
    assert!(
        plugin["stateSince"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(plugin["counters"]["calls"], "0");
    assert!(
        plugin["lastError"]
            .as_str()
            .is_some_and(|e| e.starts_with("describe: ")),
        "last error of a plugin nothing listens for: {plugin}"
    );
    assert_eq!(plugin["latency"]["p99Ms"], 0.0);

    // DisconnectClient: the client is closed; an unknown or offline one is NOT_FOUND.
    let done = grpcurl
        .call(
            "DisconnectClient",
            Some(r#"{"clientId":"other","reason":"maintenance"}"#),
        )
        .await
        .json();
    assert_eq!(done, serde_json::json!({}));
    other.expect_closed().await;
    let missing = grpcurl
        .call("DisconnectClient", Some(r#"{"clientId":"other"}"#))
        .await;
    assert_eq!(missing.code(), "NotFound");
    let clients = grpcurl.call("ListClients", None).await.json();
    assert_eq!(ids(&clients["clients"]), ["sub"]);
}

#[tokio::test]
async fn watch_events_is_a_live_tail() {
    let broker = broker().await;
    let Some(grpcurl) = Grpcurl::plaintext(admin_addr(&broker).await) else {
        return;
    };
    let mut tail = grpcurl.stream(
        &format!("{ADMIN}/WatchEvents"),
        r#"{"kinds":["EVENT_KIND_CLIENT_CONNECTED","EVENT_KIND_CLIENT_DISCONNECTED","EVENT_KIND_MESSAGE_BROADCAST"],"topicFilters":["watched/#"]}"#,
    );
    // The watcher is attached once the broker logged it; events before that are not seen.
    broker
        .wait_for_log("the event watcher", |l| {
            l.contains("event watcher attached")
        })
        .await;

    let mut client = MqttClient::connect(broker.mqtt_addr(), "watched-client").await;
    client
        .publish("unwatched/x", QoS::AtLeastOnce, false, "no")
        .await;
    client
        .publish("watched/x", QoS::AtLeastOnce, false, "yes")
        .await;
    let publish = grpcurl
        .call(
            "Publish",
            Some(r#"{"topic":"watched/admin","payload":"aGk="}"#),
        )
        .await;
    assert!(publish.success, "{publish:?}");

    let connected = tail.next().await.expect("an event");
    assert_eq!(connected["sequence"], "1");
    assert_eq!(
        connected["clientConnected"]["session"]["clientId"],
        "watched-client"
    );
    let broadcast = tail.next().await.expect("an event");
    assert_eq!(broadcast["sequence"], "2");
    let event = &broadcast["messageBroadcast"];
    assert_eq!(event["clientId"], "watched-client");
    assert_eq!(
        event["message"]["topic"], "watched/x",
        "unwatched/x is filtered out"
    );
    assert_eq!(event["message"]["payload"], "eWVz");
    let from_admin = tail.next().await.expect("an event");
    assert_eq!(from_admin["sequence"], "3");
    assert_eq!(
        from_admin["messageBroadcast"]["clientId"], "",
        "published by the admin API"
    );
    assert_eq!(
        from_admin["messageBroadcast"]["message"]["topic"],
        "watched/admin"
    );

    // DisconnectClient: the event says KICKED, and the will would be published.
    let kick = grpcurl
        .call("DisconnectClient", Some(r#"{"clientId":"watched-client"}"#))
        .await;
    assert!(kick.success, "{kick:?}");
    client.expect_closed().await;
    let kicked = tail.next().await.expect("an event");
    assert_eq!(kicked["sequence"], "4");
    let disconnected = &kicked["clientDisconnected"];
    assert_eq!(disconnected["session"]["clientId"], "watched-client");
    assert_eq!(disconnected["reason"], "DISCONNECT_REASON_KICKED");

    let bad = grpcurl.stream(
        &format!("{ADMIN}/WatchEvents"),
        r#"{"topicFilters":["a/#/b"]}"#,
    );
    let stderr = bad.stderr().await;
    assert!(stderr.contains("Code: InvalidArgument"), "{stderr}");
}

#[tokio::test]
async fn a_token_guards_every_admin_call_but_not_health() {
    let sections = "admin:\n  bind: 127.0.0.1:0\n  token: s3cret\nmetrics:\n  enable: false\n";
    let broker = TestBroker::start(&tcp_config("", sections)).await;
    let Some(grpcurl) = Grpcurl::plaintext(admin_addr(&broker).await) else {
        return;
    };
    // Reflection and BrokerAdmin are both guarded: grpcurl's -reflect-header and -rpc-header
    // tell one from the other.
    let list = grpcurl.run(&[], &["list"]).await;
    assert_eq!(list.code(), "Unauthenticated", "reflection needs the token");
    let reflecting = grpcurl
        .clone()
        .with(&["-reflect-header", "authorization: Bearer s3cret"]);
    let denied = reflecting.call("GetBrokerInfo", None).await;
    assert_eq!(denied.code(), "Unauthenticated");
    assert!(
        denied.stderr.contains("authorization: Bearer TOKEN"),
        "{denied:?}"
    );
    let wrong = reflecting
        .clone()
        .with(&["-rpc-header", "authorization: Bearer nope"])
        .call("GetBrokerInfo", None)
        .await;
    assert_eq!(wrong.code(), "Unauthenticated");
    assert!(wrong.stderr.contains("invalid admin token"), "{wrong:?}");

    let authorized = grpcurl
        .clone()
        .with(&["-H", "authorization: Bearer s3cret"]);
    let info = authorized.call("GetBrokerInfo", None).await.json();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let list = authorized.run(&[], &["list"]).await;
    assert!(list.stdout.contains(ADMIN), "{list:?}");

    // grpcurl needs reflection (token) to encode the call; the Health call itself goes without.
    let health = reflecting
        .run(
            &["-d", r#"{"service":""}"#],
            &["grpc.health.v1.Health/Check"],
        )
        .await
        .json();
    assert_eq!(
        health["status"], "SERVING",
        "orchestrators probe without a token"
    );
}

#[tokio::test]
async fn tls_and_token_together() {
    let certs = TestCerts::generate();
    let sections = format!(
        "admin:\n  bind: 127.0.0.1:0\n  token: s3cret\n  tls:\n    cert: {}\n    key: {}\nmetrics:\n  enable: false\n",
        certs.server_cert.display(),
        certs.server_key.display()
    );
    let broker = TestBroker::start(&tcp_config("", &sections)).await;
    let addr = admin_addr(&broker).await;
    let Some(tls) = Grpcurl::tls(addr, &certs.ca_cert) else {
        return;
    };
    let info = tls
        .clone()
        .with(&["-H", "authorization: Bearer s3cret"])
        .call("GetBrokerInfo", None)
        .await
        .json();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let no_token = tls.call("GetBrokerInfo", None).await;
    assert_eq!(no_token.code(), "Unauthenticated");
    let Some(plaintext) = Grpcurl::plaintext(addr) else {
        return;
    };
    let refused = plaintext
        // grpcurl retries a failed handshake until its connect timeout (default 10 s).
        .with(&[
            "-connect-timeout",
            "2",
            "-H",
            "authorization: Bearer s3cret",
        ])
        .call("GetBrokerInfo", None)
        .await;
    assert!(!refused.success, "plaintext against TLS: {refused:?}");
}

//! Describe, Authenticate and CheckTopic through real tonic clients.

mod common;

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use common::TestServer;
use midge_plugin::{
    Action, AuthRequest, AuthStep, Authenticator, Decision, EventHandler, EventInterest, Grants,
    PluginConfig, Server, Status, TopicChecker, TopicRequest, pb,
};
use midge_proto::service_names;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AuthConfig {
    users: Vec<String>,
}

/// Allows the users named in its config; `IGNORE`s anonymous clients; SCRAM-ish enhanced auth.
#[derive(Default)]
struct ConfiguredAuth {
    users: Arc<RwLock<Vec<String>>>,
}

impl Authenticator for ConfiguredAuth {
    async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
        let Some(user) = req.username else {
            return Ok(Decision::ignore());
        };
        let known = self.users.read().expect("lock").contains(&user);
        Ok(if known {
            Decision::allow()
                .cache_for(Duration::from_secs(60))
                .with_grants(Grants::default().publish([format!("users/{user}/#")]))
        } else {
            Decision::deny(format!("unknown user {user}"))
        })
    }

    async fn authenticate_enhanced(&self, req: AuthRequest) -> Result<AuthStep, Status> {
        let step = req.enhanced.as_ref().map_or(0, |e| e.step);
        Ok(match step {
            0 => AuthStep::Continue {
                auth_data: b"challenge".to_vec(),
            },
            _ => AuthStep::Done {
                decision: Decision::allow(),
                auth_data: Some(b"final".to_vec()),
            },
        })
    }

    async fn on_configure(&self, config: &PluginConfig) -> Result<(), Status> {
        let cfg: AuthConfig = config.parse()?;
        *self.users.write().expect("lock") = cfg.users;
        Ok(())
    }
}

struct Taboo;

impl TopicChecker for Taboo {
    async fn check_topic(&self, req: TopicRequest) -> Result<Decision, Status> {
        if req.action == Action::Subscribe && req.topic == "#" {
            return Err(Status::internal("boom"));
        }
        Ok(if req.topic == "top-secret" {
            Decision::deny("taboo")
        } else {
            Decision::allow().cache_for(Duration::from_millis(1500))
        })
    }
}

struct Quiet;

impl EventHandler for Quiet {
    fn interest(&self) -> EventInterest {
        EventInterest::kinds([pb::EventKind::MessageBroadcast])
            .topics(["sensors/#"])
            .without_payload()
    }
}

fn config(users: &[&str]) -> prost_types::Struct {
    let json = serde_json::json!({ "users": users });
    midge_proto::json::json_to_struct(&json).expect("object")
}

#[tokio::test]
async fn describe_reports_what_was_registered_and_configures() {
    let server = TestServer::start(
        Server::new("test-plugin", "9.9.9")
            .authenticator(ConfiguredAuth::default())
            .topic_checker(Taboo)
            .event_handler(Quiet),
    )
    .await;
    let mut plugin = pb::plugin_client::PluginClient::new(server.channel.clone());
    let described = plugin
        .describe(pb::DescribeRequest {
            broker_version: "0.1.0".into(),
            alias: "auth".into(),
            config: Some(config(&["alice"])),
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(described.name, "test-plugin");
    assert_eq!(described.version, "9.9.9");
    let mut services = described.services.clone();
    services.sort();
    let mut expected = vec![
        service_names::AUTHENTICATOR,
        service_names::EVENT_SINK,
        service_names::PLUGIN,
        service_names::TOPIC_FILTER,
    ];
    expected.sort_unstable();
    assert_eq!(services, expected);
    assert_eq!(
        described.events,
        vec![pb::EventKind::MessageBroadcast as i32]
    );
    assert_eq!(described.topic_filters, vec!["sensors/#".to_owned()]);
    assert!(described.omit_payload);
    assert!(!described.packet_bytes);

    // The config reached on_configure: alice is allowed, bob is not.
    let mut auth = pb::authenticator_client::AuthenticatorClient::new(server.channel.clone());
    let ask = |user: &str| pb::AuthenticateRequest {
        client_id: "c1".into(),
        username: Some(user.into()),
        password: Some(b"pw".to_vec()),
        ..Default::default()
    };
    let alice = auth
        .authenticate(ask("alice"))
        .await
        .expect("call")
        .into_inner();
    assert_eq!(alice.verdict, pb::Verdict::Allow as i32);

    // A config that does not fit is refused with INVALID_ARGUMENT, and the old one stays.
    let bad = plugin
        .describe(pb::DescribeRequest {
            config: Some(
                midge_proto::json::json_to_struct(&serde_json::json!({"user": 1})).expect("object"),
            ),
            ..Default::default()
        })
        .await
        .expect_err("bad config");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("unknown field"), "{}", bad.message());
    let still = auth
        .authenticate(ask("alice"))
        .await
        .expect("call")
        .into_inner();
    assert_eq!(still.verdict, pb::Verdict::Allow as i32);

    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn authenticate_round_trip() {
    let server =
        TestServer::start(Server::new("auth", "1").authenticator(ConfiguredAuth::default())).await;
    let mut plugin = pb::plugin_client::PluginClient::new(server.channel.clone());
    plugin
        .describe(pb::DescribeRequest {
            config: Some(config(&["alice"])),
            ..Default::default()
        })
        .await
        .expect("describe");
    // Describe without an event handler asks for no events.
    let described = plugin
        .describe(pb::DescribeRequest {
            config: Some(config(&["alice"])),
            ..Default::default()
        })
        .await
        .expect("describe")
        .into_inner();
    assert!(described.events.is_empty());

    let mut auth = pb::authenticator_client::AuthenticatorClient::new(server.channel.clone());
    let alice = auth
        .authenticate(pb::AuthenticateRequest {
            username: Some("alice".into()),
            ..Default::default()
        })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(alice.verdict, pb::Verdict::Allow as i32);
    assert_eq!(alice.cache_ttl_ms, 60_000);
    let grants = alice.grants.expect("grants");
    assert_eq!(grants.publish, vec!["users/alice/#".to_owned()]);
    assert!(!grants.exclusive);

    let bob = auth
        .authenticate(pb::AuthenticateRequest {
            username: Some("bob".into()),
            ..Default::default()
        })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(bob.verdict, pb::Verdict::Deny as i32);
    assert_eq!(bob.reason, "unknown user bob");
    assert_eq!(bob.cache_ttl_ms, 0);

    let anonymous = auth
        .authenticate(pb::AuthenticateRequest::default())
        .await
        .expect("call")
        .into_inner();
    assert_eq!(anonymous.verdict, pb::Verdict::Ignore as i32);

    let step0 = auth
        .authenticate(pb::AuthenticateRequest {
            auth_method: "SCRAM-SHA-256".into(),
            auth_data: b"client-first".to_vec(),
            ..Default::default()
        })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(step0.verdict, pb::Verdict::Continue as i32);
    assert_eq!(step0.auth_data, b"challenge");
    let step1 = auth
        .authenticate(pb::AuthenticateRequest {
            auth_method: "SCRAM-SHA-256".into(),
            step: 1,
            ..Default::default()
        })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(step1.verdict, pb::Verdict::Allow as i32);
    assert_eq!(step1.auth_data, b"final");

    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn check_topic_round_trip() {
    let server = TestServer::start(Server::new("taboo", "1").topic_checker(Taboo)).await;
    let mut topics = pb::topic_filter_client::TopicFilterClient::new(server.channel.clone());
    let check = |topic: &str, action: pb::Action| pb::CheckTopicRequest {
        client_id: "c1".into(),
        topic: topic.into(),
        action: action as i32,
        ..Default::default()
    };

    let denied = topics
        .check_topic(check("top-secret", pb::Action::Publish))
        .await
        .expect("call")
        .into_inner();
    assert_eq!(denied.verdict, pb::Verdict::Deny as i32);
    assert_eq!(denied.reason, "taboo");

    let allowed = topics
        .check_topic(check("a/b", pb::Action::Receive))
        .await
        .expect("call")
        .into_inner();
    assert_eq!(allowed.verdict, pb::Verdict::Allow as i32);
    assert_eq!(allowed.cache_ttl_ms, 1500);

    // A plugin error is a gRPC error (the broker applies its `on-error` fallback).
    let failed = topics
        .check_topic(check("#", pb::Action::Subscribe))
        .await
        .expect_err("plugin error");
    assert_eq!(failed.code(), tonic::Code::Internal);

    // A request without an action is rejected before the plugin sees it.
    let invalid = topics
        .check_topic(check("a", pb::Action::Unspecified))
        .await
        .expect_err("no action");
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);

    // Services that were not registered are UNIMPLEMENTED.
    let mut auth = pb::authenticator_client::AuthenticatorClient::new(server.channel.clone());
    let missing = auth
        .authenticate(pb::AuthenticateRequest::default())
        .await
        .expect_err("not registered");
    assert_eq!(missing.code(), tonic::Code::Unimplemented);

    server.stop().await.expect("clean stop");
}

/// Reports the deadline it was given: `none`, or whether it lies within the next 30 s.
struct DeadlineEcho;

impl Authenticator for DeadlineEcho {
    async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
        let now = tokio::time::Instant::now();
        Ok(Decision::deny(match req.deadline {
            None => "none".to_owned(),
            Some(d) => format!(
                "within 30s: {}",
                d > now && d <= now + Duration::from_secs(30)
            ),
        }))
    }
}

#[tokio::test]
async fn the_broker_deadline_reaches_the_authenticator() {
    let server = TestServer::start(Server::new("deadline", "1").authenticator(DeadlineEcho)).await;
    let mut auth = pb::authenticator_client::AuthenticatorClient::new(server.channel.clone());
    let mut timed = tonic::Request::new(pb::AuthenticateRequest::default());
    timed.set_timeout(Duration::from_secs(30));
    let with = auth.authenticate(timed).await.expect("call").into_inner();
    assert_eq!(with.reason, "within 30s: true");
    let without = auth
        .authenticate(pb::AuthenticateRequest::default())
        .await
        .expect("call")
        .into_inner();
    assert_eq!(without.reason, "none");
    server.stop().await.expect("clean stop");
}

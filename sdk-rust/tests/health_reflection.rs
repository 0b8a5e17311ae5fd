//! Every plugin server answers grpc.health.v1 and server reflection (v1 and v1alpha).

mod common;

use common::TestServer;
use midge_plugin::{AuthRequest, Authenticator, Decision, Server, Status};
use midge_proto::service_names;
use prost::Message as _;
use prost_types::FileDescriptorProto;
use tokio_stream::StreamExt as _;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{
    v1,
    v1alpha::{
        self, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse,
    },
};

struct AllowAll;

impl Authenticator for AllowAll {
    async fn authenticate(&self, _req: AuthRequest) -> Result<Decision, Status> {
        Ok(Decision::allow())
    }
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_service() {
    let server = TestServer::start(Server::new("allow", "1").authenticator(AllowAll)).await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", service_names::AUTHENTICATOR, service_names::PLUGIN] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    // Not registered here: unknown to health.
    let missing = health
        .check(HealthCheckRequest {
            service: service_names::TOPIC_FILTER.into(),
        })
        .await
        .expect_err("not registered");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn reflection_v1_lists_exactly_the_served_services() {
    let server = TestServer::start(Server::new("allow", "1").authenticator(AllowAll)).await;
    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(server.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.next().await.expect("one reply").expect("ok");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("unexpected reply {reply:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            service_names::AUTHENTICATOR,
            service_names::PLUGIN,
        ]
    );
    server.stop().await.expect("clean stop");
}

/// One v1alpha reflection request → the names of the files in the answer.
async fn files(server: &TestServer, request: MessageRequest) -> Vec<String> {
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.next().await.expect("one reply").expect("ok");
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("unexpected reply {reply:?}");
    };
    files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            FileDescriptorProto::decode(bytes.as_slice())
                .expect("descriptor")
                .name()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn reflection_v1alpha_resolves_the_contract_and_its_imports() {
    let server = TestServer::start(Server::new("allow", "1").authenticator(AllowAll)).await;
    let by_symbol = files(
        &server,
        MessageRequest::FileContainingSymbol(service_names::AUTHENTICATOR.into()),
    )
    .await;
    assert_eq!(by_symbol, vec!["midge/plugin/v1/auth.proto"]);
    // What a client like grpcurl asks next: the imports, by file name.
    for import in [
        "midge/plugin/v1/common.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
    ] {
        let by_name = files(&server, MessageRequest::FileByFilename(import.into())).await;
        assert_eq!(by_name, vec![import]);
    }
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_and_does_not_wait_forever_for_watchers() {
    let server = TestServer::start(
        Server::new("allow", "1")
            .authenticator(AllowAll)
            .shutdown_grace(std::time::Duration::from_millis(200)),
    )
    .await;
    let mut health = HealthClient::new(server.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: service_names::AUTHENTICATOR.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.next().await.expect("status").expect("ok");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // The open Watch would hold a plain graceful shutdown forever; the grace period ends it.
    let stopping = tokio::spawn(server.stop());
    let next = tokio::time::timeout(common::DEADLINE, watch.next())
        .await
        .expect("watch answers before the deadline");
    if let Some(Ok(update)) = next {
        assert_eq!(update.status, ServingStatus::NotServing as i32);
    }
    stopping.await.expect("join").expect("clean stop");
}

//! `grpc.health.v1.Health` on the admin server: SERVING (overall and per service) while the
//! broker runs, NOT_SERVING as soon as shutdown starts, watched live with the real `grpcurl`.

use std::time::Duration;

use midge_tests::TestBroker;
use midge_tests::admin::admin_addr;
use midge_tests::broker::tcp_config;
use midge_tests::grpcurl::{ADMIN, ADMIN_SECTIONS, Grpcurl};

#[tokio::test]
async fn health_is_serving_per_service_and_unknown_services_are_not_found() {
    let broker = TestBroker::start(&tcp_config("", ADMIN_SECTIONS)).await;
    let Some(grpcurl) = Grpcurl::plaintext(admin_addr(&broker).await) else {
        return;
    };
    for service in ["", ADMIN] {
        let check = grpcurl
            .run(
                &["-d", &format!(r#"{{"service":"{service}"}}"#)],
                &["grpc.health.v1.Health/Check"],
            )
            .await
            .json();
        assert_eq!(check["status"], "SERVING", "service {service:?}");
    }
    let unknown = grpcurl
        .run(
            &["-d", r#"{"service":"no.such.Service"}"#],
            &["grpc.health.v1.Health/Check"],
        )
        .await;
    assert_eq!(unknown.code(), "NotFound");
}

#[tokio::test]
async fn health_turns_not_serving_when_shutdown_starts() {
    let mut broker = TestBroker::start(&tcp_config("", ADMIN_SECTIONS)).await;
    let Some(grpcurl) = Grpcurl::plaintext(admin_addr(&broker).await) else {
        return;
    };
    let mut overall = grpcurl.stream("grpc.health.v1.Health/Watch", r#"{"service":""}"#);
    let mut admin = grpcurl.stream(
        "grpc.health.v1.Health/Watch",
        &format!(r#"{{"service":"{ADMIN}"}}"#),
    );
    for watch in [&mut overall, &mut admin] {
        let first = watch.next().await.expect("a status");
        assert_eq!(first["status"], "SERVING");
    }

    broker.sigterm();
    for watch in [&mut overall, &mut admin] {
        let status = watch
            .next_matching("NOT_SERVING", |v| v["status"] != "SERVING")
            .await;
        assert_eq!(status["status"], "NOT_SERVING");
    }
    broker
        .wait_for_log("the health change", |l| {
            l.contains("health NOT_SERVING, broker shutting down")
        })
        .await;
    let status = broker.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}");
    // The admin server stopped with the broker: the watches end.
    assert!(overall.next().await.is_none());
}

//! A gRPC client for the broker's admin API (`midge.admin.v1.BrokerAdmin`), for tests that
//! observe sessions without touching them over MQTT.

use midge_proto::admin::v1 as admin;
use midge_proto::admin::v1::broker_admin_client::BrokerAdminClient;
use tonic::transport::Channel;

use crate::{TestBroker, within};

/// The `addr` field of the broker's first JSON log line whose message is `message` (e.g.
/// `admin listening`).
///
/// # Panics
///
/// If the line does not come or has no address.
pub async fn logged_addr(broker: &TestBroker, message: &str) -> std::net::SocketAddr {
    let needle = format!("\"message\":\"{message}\"");
    let line = broker.wait_for_log(message, |l| l.contains(&needle)).await;
    let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    value["fields"]["addr"]
        .as_str()
        .and_then(|a| a.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no addr in {line}"))
}

/// The admin API's bound address, from the broker's `admin listening` log line.
///
/// # Panics
///
/// If the line does not come or has no address.
pub async fn admin_addr(broker: &TestBroker) -> std::net::SocketAddr {
    logged_addr(broker, "admin listening").await
}

/// The metrics endpoint's bound address, from the broker's `metrics listening` log line.
///
/// # Panics
///
/// If the line does not come or has no address.
pub async fn metrics_addr(broker: &TestBroker) -> std::net::SocketAddr {
    logged_addr(broker, "metrics listening").await
}

/// A connected admin client.
///
/// # Panics
///
/// If the connection fails.
pub async fn admin_client(broker: &TestBroker) -> BrokerAdminClient<Channel> {
    let addr = admin_addr(broker).await;
    within(
        "admin API connect",
        BrokerAdminClient::connect(format!("http://{addr}")),
    )
    .await
    .unwrap_or_else(|e| panic!("connecting to the admin API at {addr}: {e}"))
}

/// The admin API's view of `client_id`'s session, or `None` if it has none.
///
/// # Panics
///
/// On any error but `NotFound`.
pub async fn get_client(
    client: &mut BrokerAdminClient<Channel>,
    client_id: &str,
) -> Option<admin::Client> {
    let request = admin::GetClientRequest {
        client_id: client_id.to_owned(),
    };
    match within("GetClient", client.get_client(request)).await {
        Ok(response) => Some(response.into_inner()),
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("GetClient {client_id}: {status}"),
    }
}

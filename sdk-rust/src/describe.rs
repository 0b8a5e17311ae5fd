//! The `midge.plugin.v1.Plugin` service (`Describe`), built from what was registered on the
//! [`crate::Server`]: name, version, services, the event handler's interest, and the
//! `on_configure` hooks that receive the plugin's config section.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::{EventInterest, PluginConfig, config::ConfigStore, pb, pb::plugin_server::Plugin};

/// A registered service's `on_configure`, boxed so the describe service can hold several.
pub(crate) type ConfigureHook = Arc<
    dyn Fn(PluginConfig) -> Pin<Box<dyn Future<Output = Result<(), Status>> + Send>> + Send + Sync,
>;

/// The event handler's [`crate::EventHandler::interest`], asked on every `Describe`.
pub(crate) type InterestFn = Arc<dyn Fn() -> EventInterest + Send + Sync>;

/// Everything `Describe` answers with.
pub(crate) struct DescribeService {
    pub(crate) name: String,
    pub(crate) version: String,
    /// Fully-qualified names of the registered `midge.plugin.v1` services.
    pub(crate) services: Vec<String>,
    pub(crate) hooks: Vec<ConfigureHook>,
    pub(crate) interest: Option<InterestFn>,
    pub(crate) config: ConfigStore,
}

impl fmt::Debug for DescribeService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DescribeService")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("services", &self.services)
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl DescribeService {
    /// The response for the current interest (no events without an event handler).
    fn response(&self) -> pb::DescribeResponse {
        let interest = self
            .interest
            .as_ref()
            .map_or_else(EventInterest::none, |f| f());
        pb::DescribeResponse {
            name: self.name.clone(),
            version: self.version.clone(),
            events: interest.kinds.into_iter().map(Into::into).collect(),
            topic_filters: interest.topic_filters,
            omit_payload: !interest.payload,
            packet_bytes: interest.packet_bytes,
            services: self.services.clone(),
        }
    }
}

#[tonic::async_trait]
impl Plugin for DescribeService {
    async fn describe(
        &self,
        request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        let req = request.into_inner();
        let config = PluginConfig::new(
            req.alias,
            req.broker_version,
            req.config.unwrap_or_default(),
        );
        for hook in &self.hooks {
            if let Err(status) = hook(config.clone()).await {
                warn!(alias = config.alias(), %status, "config rejected");
                return Err(status);
            }
        }
        info!(
            alias = config.alias(),
            broker_version = config.broker_version(),
            "described to broker"
        );
        self.config.set(config);
        Ok(Response::new(self.response()))
    }
}

//! The `Describe` handshake of one plugin: its event interest (the config narrows, never
//! widens), the services it declares against the chains it is in, and a refusal (its config,
//! or a missing service) that makes its decisions take a fallback without a call.

use std::sync::atomic::Ordering;
use std::time::Duration;

use midge_proto::plugin::v1 as pb;
use tonic::{Code, Status};
use tracing::{info, warn};

use super::{FailureClass, Plugin};

/// The fully qualified name of the authentication service, as `DescribeResponse.services` lists it.
pub(crate) const AUTHENTICATOR_SERVICE: &str = "midge.plugin.v1.Authenticator";

/// The fully qualified name of the topic check service, as `DescribeResponse.services` lists it.
pub(crate) const TOPIC_FILTER_SERVICE: &str = "midge.plugin.v1.TopicFilter";

/// Why a reachable plugin's decisions take a fallback without a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `Describe` answered an error status (INVALID_ARGUMENT: it refused its config). Every
    /// decision takes `on-unavailable`, as `plugin.proto` says, until `Describe` succeeds.
    Describe(String),
    /// `DescribeResponse.services` leaves out a service the plugin's chains need: those
    /// decisions take `on-error` (a call would only answer UNIMPLEMENTED).
    MissingService {
        /// `Authenticator` is missing although the plugin is in `auth.plugins`.
        authenticator: bool,
        /// `TopicFilter` is missing although the plugin is in `topic-check.plugins`.
        topic_filter: bool,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Describe(why) => write!(f, "plugin refused: {why}"),
            Refusal::MissingService {
                authenticator,
                topic_filter,
            } => {
                let mut missing = Vec::new();
                if *authenticator {
                    missing.push(AUTHENTICATOR_SERVICE);
                }
                if *topic_filter {
                    missing.push(TOPIC_FILTER_SERVICE);
                }
                write!(
                    f,
                    "plugin does not implement {} (DescribeResponse.services), which its chains need",
                    missing.join(" and ")
                )
            }
        }
    }
}

impl Plugin {
    /// Calls `Plugin.Describe` with this plugin's config section and applies the answer: the
    /// event interest is what the plugin asked for, narrowed (never widened) by the config's
    /// `events`, and the config's `topics` / `payload` where given. A plugin that does not
    /// implement `Plugin` (UNIMPLEMENTED) counts as described with no wishes, and gets the
    /// config's `events` as they are.
    ///
    /// An error status from a reachable plugin (e.g. INVALID_ARGUMENT: it refused its config)
    /// is returned and also remembered: until a later `Describe` succeeds, the plugin's decision
    /// calls take `on-unavailable` without being made, and log why.
    pub(crate) async fn describe(&self, broker_version: &str) -> Result<(), Status> {
        let request = pb::DescribeRequest {
            broker_version: broker_version.to_string(),
            alias: self.alias.to_string(),
            config: midge_proto::json::json_to_struct(&self.config.config),
        };
        let mut client = pb::plugin_client::PluginClient::new(self.channel.clone());
        let mut request = tonic::Request::new(request);
        let deadline = self.config.timeout.max(Duration::from_secs(2));
        request.set_timeout(deadline);
        let (response, implemented) =
            match tokio::time::timeout(deadline, client.describe(request)).await {
                Err(_) => return Err(Status::deadline_exceeded("Describe timed out")),
                Ok(Ok(response)) => (response.into_inner(), true),
                Ok(Err(status)) if status.code() == Code::Unimplemented => {
                    (pb::DescribeResponse::default(), false)
                }
                Ok(Err(status)) => {
                    if !matches!(
                        status.code(),
                        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
                    ) {
                        *self.refusal.lock() = Some(Refusal::Describe(format!(
                            "Describe answered {:?}: {}",
                            status.code(),
                            status.message()
                        )));
                    }
                    return Err(status);
                }
            };
        let asked: Vec<pb::EventKind> = response.events().collect();
        let kinds = match crate::plugin::configured_kinds(&self.config) {
            None => asked,
            Some(_) if !implemented => {
                crate::plugin::configured_kinds(&self.config).unwrap_or_default()
            }
            Some(configured) => self.narrow_events(&asked, configured),
        };
        let topics = self
            .config
            .topics
            .clone()
            .unwrap_or_else(|| response.topic_filters.clone());
        let payload = self.config.payload.unwrap_or(!response.omit_payload);
        self.pipeline.set_interest(kinds, topics, payload);
        *self.refusal.lock() = self.check_services(&response.services);
        info!(alias = %self.alias, name = %response.name, version = %response.version, "plugin described");
        self.packet_bytes
            .store(response.packet_bytes, Ordering::Relaxed);
        *self.describe.lock() = Some(response);
        self.described.store(true, Ordering::Release);
        self.described_notify.notify_waiters();
        Ok(())
    }

    /// The event kinds the plugin gets: those it `asked` for in `Describe` that the config's
    /// `events` also lists (`all` there stands for whatever it asked, packet kinds included).
    /// A configured kind it did not ask for is left out with a warning naming the alias and the
    /// kind.
    fn narrow_events(
        &self,
        asked: &[pb::EventKind],
        configured: Vec<pb::EventKind>,
    ) -> Vec<pb::EventKind> {
        let all = self
            .config
            .events
            .as_ref()
            .is_some_and(|events| events.contains(&crate::config::EventKindName::All));
        if all {
            return asked.to_vec();
        }
        for kind in configured.iter().filter(|kind| !asked.contains(kind)) {
            warn!(
                alias = %self.alias,
                kind = kind.as_str_name(),
                "config lists an event kind the plugin did not ask for in Describe: not sent (events narrow, never widen)"
            );
        }
        configured
            .into_iter()
            .filter(|kind| asked.contains(kind))
            .collect()
    }

    /// Checks `services` (from `Describe`) against the chains the plugin is in. An empty list
    /// says nothing (the field is optional in the contract) and passes.
    fn check_services(&self, services: &[String]) -> Option<Refusal> {
        if services.is_empty() {
            return None;
        }
        let lacks = |name: &str| !services.iter().any(|s| s == name);
        let authenticator = self.roles.authenticator && lacks(AUTHENTICATOR_SERVICE);
        let topic_filter = self.roles.topic_filter && lacks(TOPIC_FILTER_SERVICE);
        if !authenticator && !topic_filter {
            return None;
        }
        let refusal = Refusal::MissingService {
            authenticator,
            topic_filter,
        };
        let why = refusal.to_string();
        warn!(alias = %self.alias, ?services, "{why}: those decisions take on-error");
        self.record_error(why);
        Some(refusal)
    }

    /// Why the plugin's decisions cannot be asked of it although it answered `Describe`:
    /// `Some` when it does not implement a service its chains need (for `mandatory` plugins
    /// that is a startup error).
    pub(crate) fn missing_service(&self) -> Option<String> {
        match &*self.refusal.lock() {
            Some(refusal @ Refusal::MissingService { .. }) => Some(refusal.to_string()),
            _ => None,
        }
    }

    /// The failure class and reason that a decision through `service` takes at once, without a
    /// call, if the plugin refused its config or lacks the service.
    pub(super) fn refused(&self, service: &str) -> Option<(FailureClass, String)> {
        match &*self.refusal.lock() {
            None => None,
            Some(Refusal::Describe(why)) => Some((FailureClass::Unavailable, why.clone())),
            Some(
                refusal @ Refusal::MissingService {
                    authenticator,
                    topic_filter,
                },
            ) => {
                let missing = match service {
                    AUTHENTICATOR_SERVICE => *authenticator,
                    _ => *topic_filter,
                };
                missing.then(|| (FailureClass::Error, refusal.to_string()))
            }
        }
    }
}

//! The `midge.plugin.v1.TopicFilter` service as a trait: may this client publish, subscribe or
//! receive on this topic?

use std::future::Future;

use tonic::Status;

use crate::{Decision, PluginConfig};

/// Decides topic access. Register it with [`crate::Server::topic_checker`] and list the plugin's
/// alias under `topic-check.plugins` in the broker's config.
///
/// The broker asks every listed checker concurrently: any `Deny` denies, otherwise at least one
/// `Allow` allows, and all `Ignore` denies. (Unlike aMQTT, `[Allow, Ignore]` allows.) A denied
/// SUBSCRIBE gets a failure SUBACK code, a denied PUBLISH is acked and dropped, a denied RECEIVE
/// skips that subscriber (retained replay included).
///
/// Caching matters here: a [`Decision::cache_for`] lets the broker answer the same client, topic
/// and action locally until it expires, keeping the PUBLISH hot path free of round trips.
///
/// ```
/// use std::time::Duration;
/// use midge_plugin::{Action, Decision, Status, TopicChecker, TopicRequest};
///
/// /// aMQTT's topic taboo plugin.
/// struct Taboo;
///
/// impl TopicChecker for Taboo {
///     async fn check_topic(&self, req: TopicRequest) -> Result<Decision, Status> {
///         let taboo = ["prohibited", "top-secret", "data/classified"];
///         let decision = if req.username.as_deref() != Some("admin") && taboo.contains(&req.topic.as_str()) {
///             Decision::deny("taboo topic")
///         } else {
///             Decision::allow()
///         };
///         Ok(decision.cache_for(Duration::from_secs(60)))
///     }
/// }
/// ```
pub trait TopicChecker: Send + Sync + 'static {
    /// Decide one (client, topic, action).
    ///
    /// # Errors
    ///
    /// An error status makes the broker take the alias's fallback for it: `on-timeout` for
    /// `DEADLINE_EXCEEDED` and `CANCELLED`, `on-unavailable` for `UNAVAILABLE`, `on-error` for
    /// any other status (`plugin.proto`, "Fallbacks").
    fn check_topic(
        &self,
        req: TopicRequest,
    ) -> impl Future<Output = Result<Decision, Status>> + Send;

    /// Called with the plugin's config section each time the broker (re)connects and calls
    /// `Describe`. The default accepts anything.
    ///
    /// # Errors
    ///
    /// An error is returned to the broker, which then treats the plugin as unavailable.
    fn on_configure(
        &self,
        config: &PluginConfig,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        let _ = config;
        async { Ok(()) }
    }
}

/// What is being done to a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The client publishes to a topic name.
    Publish,
    /// The client subscribes to a topic filter (wildcards allowed).
    Subscribe,
    /// A message on a topic name would be delivered to the client.
    Receive,
}

/// One topic check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicRequest {
    /// The client (the subscriber, for [`Action::Receive`]).
    pub client_id: String,
    /// Its user name; `None` when it has none.
    pub username: Option<String>,
    /// Publish, Receive: the topic name. Subscribe: the filter as sent.
    pub topic: String,
    /// What the client does.
    pub action: Action,
    /// Publish: message QoS. Subscribe: requested QoS. Receive: delivery QoS.
    pub qos: u8,
    /// Publish: the RETAIN flag. Receive: true for a retained replay. Subscribe: false.
    pub retain: bool,
    /// The listener the client is connected to.
    pub listener: String,
}

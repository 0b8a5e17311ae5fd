//! The broker's configuration: one YAML file, laid out like aMQTT's.
//!
//! The embedded [`DEFAULT_YAML`] documents every key; [`Config::default`] is what it parses
//! to. A top-level section left out of a file keeps its value from that default, a key left
//! out of a section takes the default stated on its field below. Durations are written with a
//! unit (`250ms`, `5s`, `1m30s`); unknown keys are errors.
//!
//! [`load`] and [`from_yaml`] validate everything while reading, so each problem, from a typo
//! to a `tls` listener without certificates or an undefined plugin alias, is reported as
//! `file:line:column: reason`.

mod admin;
mod aliases;
mod chains;
mod check;
mod de;
mod duration;
mod events;
mod load;
mod plugin;
mod settings;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

pub use admin::{
    AdminConfig, AdminToken, DEFAULT_ADMIN_BIND, DEFAULT_METRICS_BIND, MetricsConfig, check_token,
};
pub use events::EventKindName;
pub use load::{ConfigError, from_yaml, load};
pub use plugin::{
    BreakerConfig, Fallback, FallbackConfig, Overflow, PluginConfig, PluginTlsConfig,
};

/// The embedded default configuration file, with a comment on every key.
///
/// [`Config::default`] equals what this text parses to; a test keeps the two in step.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

/// Default `max-connections` of a listener: unlimited, i.e. bounded by the process's file
/// descriptor limit (raised to the hard limit at start, logged, and handled gracefully when
/// reached). A fixed number would either stop a user far below what the machine can hold, or
/// sit above the fd limit and never apply.
const DEFAULT_MAX_CONNECTIONS: usize = 0;
/// Default `connect-timeout` of a listener.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Smallest accepted `max-packet-size`: enough for a CONNECT with a short client id.
const MIN_PACKET_SIZE: u32 = 64;
/// Largest MQTT packet: a 268,435,455-byte remaining length plus a 5-byte fixed header.
const MAX_PACKET_SIZE: u32 = 268_435_460;

/// The whole broker configuration.
///
/// Its `Deserialize` implementation checks everything, including that every alias used in
/// `auth` and `topic-check` is defined under `plugins`; prefer [`load`] and [`from_yaml`],
/// which also report an undefined alias at its own line rather than at the top of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where the broker accepts MQTT connections: at least one listener, names unique.
    /// Default: one `tcp` listener named `default` on `0.0.0.0:1883`.
    pub listeners: Vec<ListenerConfig>,
    /// Protocol and queueing limits, shared by all listeners. Default: see [`Limits`].
    pub limits: Limits,
    /// How often the broker publishes its `$SYS` topics (`sys-interval`). Default `10s`;
    /// `0s` disables `$SYS` publishing.
    pub sys_interval: Duration,
    /// Who may connect. Default (section absent): `{allow-anonymous: true}`.
    pub auth: AuthConfig,
    /// Who may publish and subscribe to what (`topic-check`). Default: disabled.
    pub topic_check: TopicCheckConfig,
    /// The gRPC plugins, by alias, in the order of the file (an [`IndexMap`]: look one up
    /// with `plugins.get(alias)`, walk them in file order with `plugins.iter()`). Aliases are
    /// unique, non-empty, and made of ASCII letters, digits, `-` and `_`. Default: none.
    pub plugins: IndexMap<String, PluginConfig>,
    /// The gRPC admin API with health and reflection. Default: on, `127.0.0.1:50051`, no
    /// token, no TLS; see [`AdminConfig`].
    pub admin: AdminConfig,
    /// The Prometheus endpoint. Default: on, `127.0.0.1:9090`; see [`MetricsConfig`].
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listeners: vec![ListenerConfig::tcp(
                "default",
                SocketAddr::from(([0, 0, 0, 0], 1883)),
            )],
            limits: Limits::default(),
            sys_interval: Duration::from_secs(10),
            auth: AuthConfig {
                allow_anonymous: Some(true),
                plugins: Vec::new(),
            },
            topic_check: TopicCheckConfig::default(),
            plugins: IndexMap::new(),
            admin: AdminConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// One listening socket and the transport spoken on it.
///
/// Validated as it is read: `tls` and `wss` listeners need a [`TlsConfig`], `tcp` and `ws`
/// listeners refuse one, the name is not empty and `connect-timeout` is not zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Name used in logs, metrics and plugin calls; required, non-empty, unique.
    pub name: String,
    /// Transport: `tcp`, `tls`, `ws` or `wss`. Required.
    pub kind: ListenerKind,
    /// Socket address to bind, an IP and a port such as `0.0.0.0:1883` or `[::]:8883`.
    /// Required. Port `0` binds an ephemeral port (the bound address is logged).
    pub bind: SocketAddr,
    /// Most connections open at once on this listener (`max-connections`). A connection
    /// beyond it is accepted and closed at once, and counted as refused in the listener's
    /// stats; it does not wait in the OS backlog. Default `0`: unlimited, bounded by the file
    /// descriptor limit.
    pub max_connections: usize,
    /// Time a new connection has for the TLS and WebSocket handshakes and its CONNECT packet
    /// together (`connect-timeout`). Default `10s`; must be longer than `0s`.
    pub connect_timeout: Duration,
    /// Certificates; required for `tls` and `wss`, refused for `tcp` and `ws`. Default: none.
    pub tls: Option<TlsConfig>,
}

impl ListenerConfig {
    /// A plain TCP listener with default limits, e.g. for tests binding `127.0.0.1:0`.
    pub fn tcp(name: impl Into<String>, bind: SocketAddr) -> Self {
        Self {
            name: name.into(),
            kind: ListenerKind::Tcp,
            bind,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls: None,
        }
    }
}

/// The transport a listener speaks. WebSocket listeners serve MQTT on the path `/mqtt` with
/// the subprotocol `mqtt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// MQTT over plain TCP.
    Tcp,
    /// MQTT over TLS.
    Tls,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl ListenerKind {
    /// The name used in the config file: `tcp`, `tls`, `ws` or `wss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Whether the transport runs over TLS, and so needs a [`TlsConfig`].
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }
}

impl std::fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Server certificates of a `tls` or `wss` listener, and optional client certificate checks.
/// Relative paths are resolved against the broker's working directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file holding the server's certificate chain, leaf first. Required.
    pub cert: PathBuf,
    /// PEM file holding the server's private key. Required.
    pub key: PathBuf,
    /// PEM bundle of CAs that client certificates are verified against (`client-ca`).
    /// Default: none, clients are not asked for a certificate.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients that present no valid certificate (`require-client-cert`). Default
    /// `false`: a certificate is verified when presented but optional. `true` needs `client-ca`.
    pub require_client_cert: bool,
}

/// Protocol and queueing limits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Largest MQTT packet accepted, in bytes, fixed header included (`max-packet-size`).
    /// Default `1048576` (1 MiB); from 64 to 268435460 (the protocol's maximum). A client
    /// sending a larger packet is disconnected.
    #[serde(deserialize_with = "de::max_packet_size")]
    pub max_packet_size: u32,
    /// Outgoing QoS 1 and 2 messages a client may have unacknowledged at once
    /// (`max-inflight`). Default `256`, measured: at 32 one QoS 1 subscriber on loopback was
    /// bound by the window (about half the rate of 256); from 1 to 65535. An MQTT 5 client's
    /// Receive Maximum lowers it for that client.
    #[serde(deserialize_with = "de::max_inflight")]
    pub max_inflight: u16,
    /// Undelivered messages kept per session, while its client is offline or its inflight
    /// window is full (`max-queued-messages`). Default `10000` (memory is bounded by
    /// `max-queued-bytes` and `queued-bytes-budget`; 1,000 dropped QoS 0 in a 100-publisher
    /// fan-in); at least 1 (no unbounded queues).
    #[serde(deserialize_with = "de::max_queued_messages")]
    pub max_queued_messages: usize,
    /// Bytes of undelivered messages kept per session (`max-queued-bytes`): topic and payload
    /// of each queued message plus a fixed overhead. Default `16777216` (16 MiB); at least 1024.
    /// A queue holds at least one message whatever its size.
    #[serde(deserialize_with = "de::max_queued_bytes")]
    pub max_queued_bytes: usize,
    /// Bytes of undelivered messages kept by all sessions together (`queued-bytes-budget`), the
    /// broker-wide bound on queue memory. Default `1073741824` (1 GiB); at least 1 MiB. Offline
    /// sessions may fill three quarters of it; the rest is kept for online subscribers.
    #[serde(deserialize_with = "de::queued_bytes_budget")]
    pub queued_bytes_budget: usize,
    /// Which QoS 0 message is dropped when a session's queue is full (`queue-full-policy`).
    /// Default `drop-newest`, as mosquitto does. QoS 1/2 messages for a connected client are
    /// never dropped: the publisher waits instead (see `slow-consumer-timeout`).
    pub queue_full_policy: QueueFullPolicy,
    /// How long a publisher may wait for a connected subscriber's full queue to drain before
    /// that subscriber is disconnected as a slow consumer (`slow-consumer-timeout`; MQTT 5:
    /// DISCONNECT 0x97; a persistent session is kept). Default `10s`; longer than zero.
    #[serde(deserialize_with = "duration::deserialize_non_zero")]
    pub slow_consumer_timeout: Duration,
    /// How long a persistent (clean-session 0) session outlives its client's disconnection
    /// (`session-expiry`). Default `0s`, which means forever, as mosquitto does.
    #[serde(deserialize_with = "duration::deserialize")]
    pub session_expiry: Duration,
    /// MQTT 5: incoming QoS 2 messages a client may have unreleased at once (the Receive
    /// Maximum announced in CONNACK, `receive-maximum`). A client that exceeds it is
    /// disconnected with 0x93. Default `1024`; from 1 to 65535. (QoS 1 messages are
    /// acknowledged as soon as they are handled, so they never stay unacknowledged.)
    #[serde(deserialize_with = "de::receive_maximum")]
    pub receive_maximum: u16,
    /// MQTT 5: topic aliases a client may use towards the broker, and the most the broker
    /// uses towards a client (each side's limit is what the other announced)
    /// (`topic-alias-maximum`). Default `10`; `0` disables inbound aliases.
    pub topic_alias_maximum: u16,
    /// MQTT 5: the longest keep alive, in seconds, a client may choose (`max-keep-alive`).
    /// A client asking for more, or for none (0), is told this value as Server Keep Alive.
    /// Default `65535` (no limit). MQTT 3.1.1 cannot be told, so it applies to MQTT 5 only.
    #[serde(deserialize_with = "de::max_keep_alive")]
    pub max_keep_alive: u16,
    /// MQTT 5: the longest Session Expiry Interval a client may choose
    /// (`max-session-expiry`); a longer one is lowered and announced in CONNACK. Default
    /// `0s`, which means no limit.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_session_expiry: Duration,
    /// MQTT 5: whether `$share/{group}/{filter}` subscriptions are shared
    /// (`shared-subscriptions`). Default `true`; `false` refuses them with SUBACK 0x9E.
    pub shared_subscriptions: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet_size: 1_048_576,
            max_inflight: 256,
            max_queued_messages: 10_000,
            max_queued_bytes: 16 << 20,
            queued_bytes_budget: 1 << 30,
            queue_full_policy: QueueFullPolicy::DropNewest,
            slow_consumer_timeout: Duration::from_secs(10),
            session_expiry: Duration::ZERO,
            receive_maximum: 1024,
            topic_alias_maximum: 10,
            max_keep_alive: u16::MAX,
            max_session_expiry: Duration::ZERO,
            shared_subscriptions: true,
        }
    }
}

/// What a full session queue does with one more message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueFullPolicy {
    /// Drop the oldest queued message to make room for the new one (`drop-oldest`).
    DropOldest,
    /// Drop the new message and keep the queue as it is (`drop-newest`).
    #[default]
    DropNewest,
}

/// Authentication, decided as in aMQTT by the anonymous voter and the listed plugins: any
/// `DENY` denies, otherwise any `ALLOW` allows; with no vote at all the client is refused.
/// A section with neither `allow-anonymous` nor plugins (which would refuse every client) is
/// refused at load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// aMQTT's anonymous voter (`allow-anonymous`): `true` allows every client, `false`
    /// allows clients with a non-empty username and denies the others. Default within an
    /// `auth` section: absent, no vote. (Leaving out the whole `auth` section gives `true`.)
    pub allow_anonymous: Option<bool>,
    /// Aliases of the authentication plugins to ask, in this order, each defined under
    /// `plugins` and listed once. Default: none.
    pub plugins: Vec<String>,
}

/// Topic checks on PUBLISH, SUBSCRIBE and delivery, by plugins. When enabled, a `DENY`
/// denies, otherwise an `ALLOW` (or a session grant) allows, and anything else denies: all
/// `IGNORE`, or every plugin absent by its `ignore` fallback.
///
/// Refused at load: plugins listed while `enable` is false, and `enable: true` with no plugins
/// unless `auth` lists plugins (their session grants are then the only topic permissions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicCheckConfig {
    /// Whether topics are checked at all. Default `false`: everything is allowed.
    pub enable: bool,
    /// Aliases of the topic-check plugins to ask, in this order, each defined under
    /// `plugins` and listed once. Default: none.
    pub plugins: Vec<String>,
}

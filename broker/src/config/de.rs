//! Deserializers that validate while they read.
//!
//! serde_yaml attaches a position to an error only while the value it concerns is being
//! deserialized (inside the `Deserializer` method that was handed a visitor). So every check
//! here runs inside a visitor: a range check inside the integer's visitor points at the
//! number, a cross-field check inside a mapping's `visit_map` points at that mapping, and a
//! duplicate listener name points at the duplicate, not at the list.
//!
//! The cross-section checks (plugin aliases defined, `topic-check` against `auth`) use the first
//! pass of [`super::aliases`]; the whole-config check here is the backstop when a [`Config`] is
//! deserialized without it, reported at the start of the mapping. The generic building blocks
//! are in [`super::check`], the `auth` and `topic-check` sections in [`super::chains`].

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::chains::check_topic_check;
use super::check::{bounded, checked_map};

use super::{
    AdminConfig, AuthConfig, Config, Limits, MetricsConfig, PluginConfig, TopicCheckConfig,
};
use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, MAX_PACKET_SIZE, MIN_PACKET_SIZE};
use super::{ListenerConfig, ListenerKind, TlsConfig, duration, plugin};

/// The whole configuration as written, before the check that its plugin aliases are defined.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(deserialize_with = "listeners")]
    listeners: Vec<ListenerConfig>,
    limits: Limits,
    #[serde(deserialize_with = "duration::deserialize")]
    sys_interval: Duration,
    auth: AuthConfig,
    topic_check: TopicCheckConfig,
    #[serde(deserialize_with = "plugin::plugins")]
    plugins: indexmap::IndexMap<String, PluginConfig>,
    admin: AdminConfig,
    metrics: MetricsConfig,
}

impl Default for RawConfig {
    fn default() -> Self {
        let Config {
            listeners,
            limits,
            sys_interval,
            auth,
            topic_check,
            plugins,
            admin,
            metrics,
        } = Config::default();
        Self {
            listeners,
            limits,
            sys_interval,
            auth,
            topic_check,
            plugins,
            admin,
            metrics,
        }
    }
}

impl RawConfig {
    /// Checks that every alias in `auth` and `topic-check` is defined under `plugins`.
    ///
    /// Through [`super::load`] the alias visitors have already reported an undefined alias
    /// where it is written; this is the backstop for other ways of deserializing.
    fn validate(self) -> Result<Config, String> {
        let sections = [
            ("auth", &self.auth.plugins),
            ("topic-check", &self.topic_check.plugins),
        ];
        for (section, aliases) in sections {
            if let Some(alias) = aliases.iter().find(|a| !self.plugins.contains_key(*a)) {
                return Err(format!(
                    "{section}.plugins: plugin alias `{alias}` is not defined under `plugins`"
                ));
            }
        }
        check_topic_check(&self.topic_check, Some(!self.auth.plugins.is_empty()))?;
        Ok(Config {
            listeners: self.listeners,
            limits: self.limits,
            sys_interval: self.sys_interval,
            auth: self.auth,
            topic_check: self.topic_check,
            plugins: self.plugins,
            admin: self.admin,
            metrics: self.metrics,
        })
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(
            deserializer,
            "a mapping of configuration sections",
            RawConfig::validate,
        )
    }
}

/// A listener as written, before the checks that involve several of its fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawListener {
    name: String,
    kind: ListenerKind,
    #[serde(deserialize_with = "socket_addr")]
    bind: SocketAddr,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "duration::deserialize_non_zero"
    )]
    connect_timeout: Duration,
    #[serde(default)]
    tls: Option<TlsConfig>,
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

impl RawListener {
    fn validate(self) -> Result<ListenerConfig, String> {
        if self.name.trim().is_empty() {
            return Err("listener `name` must not be empty".into());
        }
        let kind = self.kind;
        match (kind.uses_tls(), &self.tls) {
            (true, None) => {
                return Err(format!(
                    "listener `{}` of kind `{kind}` needs a `tls` section with `cert` and `key`",
                    self.name
                ));
            }
            (false, Some(_)) => {
                return Err(format!(
                    "listener `{}` of kind `{kind}` takes no `tls` section \
                     (use kind `tls` or `wss` for TLS)",
                    self.name
                ));
            }
            _ => {}
        }
        Ok(ListenerConfig {
            name: self.name,
            kind,
            bind: self.bind,
            max_connections: self.max_connections,
            connect_timeout: self.connect_timeout,
            tls: self.tls,
        })
    }
}

/// A `tls` section as written, before the checks that involve several of its fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    client_ca: Option<PathBuf>,
    #[serde(default)]
    require_client_cert: bool,
}

impl RawTls {
    fn validate(self) -> Result<TlsConfig, String> {
        for (key, path) in [("cert", &self.cert), ("key", &self.key)] {
            if path.as_os_str().is_empty() {
                return Err(format!("`{key}` must not be empty"));
            }
        }
        if self.require_client_cert && self.client_ca.is_none() {
            return Err(
                "`require-client-cert: true` needs `client-ca`, the CAs to verify client \
                 certificates against"
                    .into(),
            );
        }
        Ok(TlsConfig {
            cert: self.cert,
            key: self.key,
            client_ca: self.client_ca,
            require_client_cert: self.require_client_cert,
        })
    }
}

impl<'de> Deserialize<'de> for ListenerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(deserializer, "a listener mapping", RawListener::validate)
    }
}

impl<'de> Deserialize<'de> for TlsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(deserializer, "a tls mapping", RawTls::validate)
    }
}

/// Deserializes `listeners`: a non-empty sequence of listeners with unique names.
pub(super) fn listeners<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ListenerConfig>, D::Error> {
    struct Listeners;

    impl<'de> Visitor<'de> for Listeners {
        type Value = Vec<ListenerConfig>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of listeners")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut names = HashSet::new();
            let mut listeners = Vec::new();
            while let Some(listener) = seq.next_element_seed(UniqueListener(&mut names))? {
                listeners.push(listener);
            }
            if listeners.is_empty() {
                return Err(de::Error::custom("at least one listener is required"));
            }
            Ok(listeners)
        }
    }

    /// One listener whose name must not be in the set yet.
    struct UniqueListener<'a>(&'a mut HashSet<String>);

    impl<'de> DeserializeSeed<'de> for UniqueListener<'_> {
        type Value = ListenerConfig;

        fn deserialize<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            checked_map(deserializer, "a listener mapping", |raw: RawListener| {
                let listener = raw.validate()?;
                if !self.0.insert(listener.name.clone()) {
                    return Err(format!("duplicate listener name `{}`", listener.name));
                }
                Ok(listener)
            })
        }
    }

    deserializer.deserialize_seq(Listeners)
}

/// Deserializes a bind address, with a more helpful error than `SocketAddr`'s own.
pub(super) fn socket_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    struct Addr;

    impl Visitor<'_> for Addr {
        type Value = SocketAddr;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an IP address and port such as `0.0.0.0:1883`")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<SocketAddr, E> {
            value.parse().map_err(|_| {
                E::custom(format_args!(
                    "`{value}` is not an IP address and port such as `0.0.0.0:1883` or \
                     `[::]:1883` (host names are not accepted)"
                ))
            })
        }
    }

    deserializer.deserialize_str(Addr)
}

/// Deserializes `max-packet-size`.
pub(super) fn max_packet_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    bounded(
        deserializer,
        MIN_PACKET_SIZE.into(),
        Some(MAX_PACKET_SIZE.into()),
    )
}

/// Deserializes `max-inflight`.
pub(super) fn max_inflight<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    bounded(deserializer, 1, Some(u16::MAX.into()))
}

/// Deserializes `receive-maximum`.
pub(super) fn receive_maximum<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    bounded(deserializer, 1, Some(u16::MAX.into()))
}

/// Deserializes `max-keep-alive` (0 would forbid every keep alive).
pub(super) fn max_keep_alive<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    bounded(deserializer, 1, Some(u16::MAX.into()))
}

/// Deserializes `max-queued-bytes`.
pub(super) fn max_queued_bytes<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<usize, D::Error> {
    bounded(deserializer, 1024, None)
}

/// Deserializes `queued-bytes-budget`.
pub(super) fn queued_bytes_budget<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<usize, D::Error> {
    bounded(deserializer, 1 << 20, None)
}

/// Deserializes `max-queued-messages`.
pub(super) fn max_queued_messages<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<usize, D::Error> {
    bounded(deserializer, 1, None)
}

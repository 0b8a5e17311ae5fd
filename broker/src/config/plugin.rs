//! The `plugins` section: the gRPC plugin services, each under an alias, and how the broker
//! calls them.
//!
//! As everywhere in this module, checks run inside serde visitors so that serde_yaml reports
//! the offending value's own line: a bad endpoint, event name or topic filter points at that
//! scalar, a duplicate alias at the second key, and a check across several keys (a `tls`
//! section on an `http` endpoint) at the plugin's mapping.
//!
//! Why one file over 500 lines: every key of a plugin's section is checked by its own visitor,
//! next to the field it fills; splitting them would separate a key from its rule.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::check::{bounded, checked_map};
use super::duration;
use super::events::EventKindName;
use super::settings::empty_object;

/// Default `timeout` of a plugin.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default `queue-size` of a plugin.
const DEFAULT_QUEUE_SIZE: usize = 10_000;
/// Default `startup-timeout` of a plugin.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `breaker.failures`.
const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default `breaker.cool-down`.
const DEFAULT_BREAKER_COOL_DOWN: Duration = Duration::from_secs(5);

/// One plugin: a gRPC service, registered under an alias (the key under `plugins`), that
/// authenticates clients (when its alias is in `auth.plugins`), checks topics (in
/// `topic-check.plugins`) and receives events.
///
/// Validated as it is read: see each field. [`PluginConfig::new`] builds one with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginConfig {
    /// gRPC endpoint, `http://host:port` or `https://host:port`: scheme `http` or `https`, a
    /// host (DNS name, IPv4 address or bracketed IPv6 address) and a port from 1 to 65535, no
    /// path. Required. An `https` endpoint needs [`PluginConfig::tls`] with a `ca`.
    pub endpoint: String,
    /// Deadline of each `Authenticate` / `CheckTopic` call, also sent to the plugin as
    /// `grpc-timeout`. Default `250ms`; must be longer than `0s`.
    pub timeout: Duration,
    /// What a failed decision call counts as, per failure class. Default: `deny` for each.
    pub fallback: FallbackConfig,
    /// Event kinds to send (`events`), as written (see [`PluginConfig::event_kinds`] for the
    /// expanded set); `all` stands for every kind but the two packet kinds. This narrows what
    /// the plugin asks for in `Describe` (and is all it gets if it does not implement
    /// `Describe`). Default `None` (key absent): what the plugin asks for. `[]`: no events.
    pub events: Option<Vec<EventKindName>>,
    /// MQTT topic filters for message events (`topics`), each a valid filter, at least one.
    /// Default `None` (key absent): what the plugin asks for in `Describe`, else every topic.
    pub topics: Option<Vec<String>>,
    /// Whether message events carry payloads (`payload`). Default `None` (key absent): what
    /// the plugin asks for in `Describe`, else `true`.
    pub payload: Option<bool>,
    /// Events queued for this plugin at most (`queue-size`). Default `10000`; at least 1.
    pub queue_size: usize,
    /// What a full event queue drops (`overflow`). Default [`Overflow::DropOldest`].
    pub overflow: Overflow,
    /// When `true`, listeners accept no clients until this plugin has answered `Describe`,
    /// and the broker fails to start after [`PluginConfig::startup_timeout`]. Default `false`.
    pub mandatory: bool,
    /// How long a mandatory plugin may take to answer `Describe` at start
    /// (`startup-timeout`). Default `10s`; must be longer than `0s`. Unused unless `mandatory`.
    pub startup_timeout: Duration,
    /// The circuit breaker of the calls to this plugin. Default: see [`BreakerConfig`].
    pub breaker: BreakerConfig,
    /// TLS to the plugin: required with an `https` endpoint, and then always with a `ca` (the
    /// broker uses no system trust roots for plugins); refused with an `http` one. So this is
    /// `Some` exactly when the endpoint is `https://...`. Default `None`.
    pub tls: Option<PluginTlsConfig>,
    /// The plugin's own settings (`config`), any YAML mapping, converted to JSON and sent to
    /// the plugin in `Describe` as a `google.protobuf.Struct`. Always a
    /// [`serde_json::Value::Object`]. Default: an empty object. Numbers must be finite and
    /// keys unique.
    pub config: serde_json::Value,
}

impl PluginConfig {
    /// A plugin at `endpoint` with every other key at its default. The endpoint is not
    /// validated here; [`super::load`] and [`super::from_yaml`] do that.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            timeout: DEFAULT_TIMEOUT,
            fallback: FallbackConfig::default(),
            events: None,
            topics: None,
            payload: None,
            queue_size: DEFAULT_QUEUE_SIZE,
            overflow: Overflow::default(),
            mandatory: false,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            breaker: BreakerConfig::default(),
            tls: None,
            config: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Whether the endpoint is `https://...`.
    pub fn is_https(&self) -> bool {
        self.endpoint.starts_with("https://")
    }

    /// The event kinds of [`PluginConfig::events`] with `all` expanded, each once, in the
    /// order of [`EventKindName::KINDS`]; `None` when `events` is absent.
    pub fn event_kinds(&self) -> Option<Vec<EventKindName>> {
        let events = self.events.as_ref()?;
        let wanted = |kind: &EventKindName| events.iter().any(|e| e.expand().contains(kind));
        Some(
            EventKindName::KINDS
                .iter()
                .copied()
                .filter(wanted)
                .collect(),
        )
    }
}

/// The fallback of each failure class of a decision call (`fallback`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FallbackConfig {
    /// The call's deadline (`timeout`) passed (`on-timeout`). Default `deny`.
    pub on_timeout: Fallback,
    /// The call returned a gRPC error or an invalid answer (`on-error`). Default `deny`.
    pub on_error: Fallback,
    /// No connection to the plugin, or its circuit breaker is open (`on-unavailable`).
    /// Default `deny`.
    pub on_unavailable: Fallback,
}

/// What a failed decision call counts as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// As if the plugin answered ALLOW (`allow`).
    Allow,
    /// As if the plugin answered DENY (`deny`, the default: fail closed).
    #[default]
    Deny,
    /// As if the plugin were not in the chain (`ignore`).
    Ignore,
}

/// What a full event queue drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Drop the oldest queued event to make room for the new one (`drop-oldest`, the default).
    #[default]
    DropOldest,
    /// Drop the new event (`drop-newest`).
    DropNewest,
}

/// The circuit breaker of a plugin (`breaker`): after `failures` consecutive failed calls the
/// plugin is open (unavailable) for `cool-down`, then one probe call decides whether it closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BreakerConfig {
    /// Consecutive failed calls that open the breaker. Default `5`; at least 1.
    #[serde(deserialize_with = "breaker_failures")]
    pub failures: u32,
    /// How long the breaker stays open before a probe call (`cool-down`). Default `5s`; must
    /// be longer than `0s`.
    #[serde(deserialize_with = "duration::deserialize_non_zero")]
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: DEFAULT_BREAKER_FAILURES,
            cool_down: DEFAULT_BREAKER_COOL_DOWN,
        }
    }
}

/// TLS to an `https` plugin (`tls`). Relative paths are resolved against the broker's working
/// directory; no path may be empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PluginTlsConfig {
    /// PEM bundle of the CAs the plugin's certificate is verified against. Default `None`,
    /// but a [`PluginConfig`] read from a file always has one (its endpoint is `https`).
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain presented to the plugin. Default `None`; set together
    /// with `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`. Default `None`; set together with `cert`.
    pub key: Option<PathBuf>,
}

/// A plugin as written, before the checks that involve several of its keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPlugin {
    #[serde(deserialize_with = "endpoint")]
    endpoint: String,
    #[serde(
        default = "default_timeout",
        deserialize_with = "duration::deserialize_non_zero"
    )]
    timeout: Duration,
    #[serde(default)]
    fallback: FallbackConfig,
    #[serde(default)]
    events: Option<Vec<EventKindName>>,
    #[serde(default, deserialize_with = "topic_filters")]
    topics: Option<Vec<String>>,
    #[serde(default)]
    payload: Option<bool>,
    #[serde(default = "default_queue_size", deserialize_with = "queue_size")]
    queue_size: usize,
    #[serde(default)]
    overflow: Overflow,
    #[serde(default)]
    mandatory: bool,
    #[serde(
        default = "default_startup_timeout",
        deserialize_with = "duration::deserialize_non_zero"
    )]
    startup_timeout: Duration,
    #[serde(default)]
    breaker: BreakerConfig,
    #[serde(default)]
    tls: Option<PluginTlsConfig>,
    #[serde(
        default = "empty_object",
        deserialize_with = "super::settings::plugin_settings"
    )]
    config: serde_json::Value,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_queue_size() -> usize {
    DEFAULT_QUEUE_SIZE
}

fn default_startup_timeout() -> Duration {
    DEFAULT_STARTUP_TIMEOUT
}

impl RawPlugin {
    fn validate(self) -> Result<PluginConfig, String> {
        let plugin = PluginConfig {
            endpoint: self.endpoint,
            timeout: self.timeout,
            fallback: self.fallback,
            events: self.events,
            topics: self.topics,
            payload: self.payload,
            queue_size: self.queue_size,
            overflow: self.overflow,
            mandatory: self.mandatory,
            startup_timeout: self.startup_timeout,
            breaker: self.breaker,
            tls: self.tls,
            config: self.config,
        };
        match (plugin.is_https(), &plugin.tls) {
            (false, Some(_)) => Err(format!(
                "a `tls` section needs an `https://` endpoint, not `{}`",
                plugin.endpoint
            )),
            (true, None | Some(PluginTlsConfig { ca: None, .. })) => Err(format!(
                "endpoint `{}` needs `tls.ca`, the CAs to verify the plugin's certificate \
                 against (no system trust roots are used)",
                plugin.endpoint
            )),
            _ => Ok(plugin),
        }
    }
}

/// A plugin's `tls` section as written, before the checks across its keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPluginTls {
    #[serde(default)]
    ca: Option<PathBuf>,
    #[serde(default)]
    cert: Option<PathBuf>,
    #[serde(default)]
    key: Option<PathBuf>,
}

impl RawPluginTls {
    fn validate(self) -> Result<PluginTlsConfig, String> {
        for (key, path) in [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)] {
            if path
                .as_ref()
                .is_some_and(|path| path.as_os_str().is_empty())
            {
                return Err(format!("`{key}` must not be empty"));
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => {
                Err("`cert` needs `key`, the client certificate's private key".into())
            }
            (None, Some(_)) => {
                Err("`key` needs `cert`, the client certificate it belongs to".into())
            }
            _ => Ok(PluginTlsConfig {
                ca: self.ca,
                cert: self.cert,
                key: self.key,
            }),
        }
    }
}

impl<'de> Deserialize<'de> for PluginConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(deserializer, "a plugin mapping", RawPlugin::validate)
    }
}

impl<'de> Deserialize<'de> for PluginTlsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(deserializer, "a tls mapping", RawPluginTls::validate)
    }
}

/// Whether `alias` can name a plugin: not empty, only ASCII letters, digits, `-` and `_`.
pub(super) fn check_alias(alias: &str) -> Result<(), String> {
    if alias.is_empty() {
        return Err("a plugin alias must not be empty".into());
    }
    if !alias
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "plugin alias `{alias}` may contain only letters, digits, `-` and `_`"
        ));
    }
    Ok(())
}

/// Deserializes the `plugins` section: a mapping from unique, valid aliases to plugins, in
/// the order of the file.
pub(super) fn plugins<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<IndexMap<String, PluginConfig>, D::Error> {
    struct Plugins;

    impl<'de> Visitor<'de> for Plugins {
        type Value = IndexMap<String, PluginConfig>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping from plugin aliases to plugins")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut plugins = IndexMap::new();
            while let Some(alias) = map.next_key_seed(NewAlias(&plugins))? {
                let plugin = map.next_value::<PluginConfig>()?;
                plugins.insert(alias, plugin);
            }
            Ok(plugins)
        }
    }

    /// A plugin alias that must be valid and not among the aliases read so far; checked
    /// inside its own visitor so that the error points at the key.
    struct NewAlias<'a>(&'a IndexMap<String, PluginConfig>);

    impl<'de> DeserializeSeed<'de> for NewAlias<'_> {
        type Value = String;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    impl Visitor<'_> for NewAlias<'_> {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a plugin alias")
        }

        fn visit_str<E: de::Error>(self, alias: &str) -> Result<String, E> {
            check_alias(alias).map_err(E::custom)?;
            if self.0.contains_key(alias) {
                return Err(E::custom(format_args!("duplicate plugin alias `{alias}`")));
            }
            Ok(alias.to_owned())
        }
    }

    deserializer.deserialize_map(Plugins)
}

/// Deserializes `endpoint`: `http://host:port` or `https://host:port`.
fn endpoint<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Endpoint;

    impl Visitor<'_> for Endpoint {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an endpoint such as `http://127.0.0.1:50051`")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
            check_endpoint(value).map_err(E::custom)?;
            Ok(value.to_owned())
        }
    }

    deserializer.deserialize_str(Endpoint)
}

/// Checks a plugin endpoint, `http://host:port` or `https://host:port`; the error is a reason
/// for a human.
pub(super) fn check_endpoint(endpoint: &str) -> Result<(), String> {
    const SHAPE: &str = "expected `http://host:port` or `https://host:port`";
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return Err(format!("endpoint `{endpoint}` has no scheme: {SHAPE}"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "endpoint `{endpoint}` has scheme `{scheme}`: use `http` or `https`"
        ));
    }
    if let Some(at) = rest.find(['/', '?', '#']) {
        return Err(format!(
            "endpoint `{endpoint}` has a path `{}`: {SHAPE}",
            &rest[at..]
        ));
    }
    if rest.contains('@') {
        return Err(format!(
            "endpoint `{endpoint}` has user information: {SHAPE}"
        ));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let Some((ip, port)) = bracketed.split_once(']') else {
                return Err(format!(
                    "endpoint `{endpoint}` has no `]` after its IPv6 address"
                ));
            };
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!(
                    "endpoint `{endpoint}`: `{ip}` is not an IPv6 address"
                ));
            }
            (None, port.strip_prefix(':'))
        }
        None => match rest.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(format!(
                    "endpoint `{endpoint}`: write an IPv6 address in brackets, as in \
                     `{scheme}://[::1]:50051`"
                ));
            }
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(rest), None),
        },
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(format!("endpoint `{endpoint}` has no host: {SHAPE}"));
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !host.split('.').all(label_ok) {
            return Err(format!(
                "endpoint `{endpoint}`: `{host}` is not a host name or IP address"
            ));
        }
    }
    match port {
        None | Some("") => Err(format!(
            "endpoint `{endpoint}` has no port: write it as in `{scheme}://host:50051`"
        )),
        Some(port) => match port.parse::<u16>() {
            Ok(number) if number > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ => Err(format!(
                "endpoint `{endpoint}`: port `{port}` is not a number from 1 to 65535"
            )),
        },
    }
}

/// Deserializes `queue-size`.
fn queue_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    bounded(deserializer, 1, None)
}

/// Deserializes `breaker.failures`.
fn breaker_failures<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    bounded(deserializer, 1, Some(u32::MAX.into()))
}

/// Deserializes `topics`: absent or null for `None`, else a non-empty list of valid MQTT
/// topic filters, each checked in its own visitor so that an error points at it.
fn topic_filters<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    struct Filters;

    impl<'de> Visitor<'de> for Filters {
        type Value = Option<Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of MQTT topic filters")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_seq(self)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut filters = Vec::new();
            while let Some(TopicFilter(filter)) = seq.next_element()? {
                filters.push(filter);
            }
            if filters.is_empty() {
                return Err(de::Error::custom(
                    "`topics` needs at least one topic filter (leave it out for every topic)",
                ));
            }
            Ok(Some(filters))
        }
    }

    /// One topic filter, checked in its own visitor.
    struct TopicFilter(String);

    impl<'de> Deserialize<'de> for TopicFilter {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_str(TopicFilterVisitor)
        }
    }

    struct TopicFilterVisitor;

    impl Visitor<'_> for TopicFilterVisitor {
        type Value = TopicFilter;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an MQTT topic filter")
        }

        fn visit_str<E: de::Error>(self, filter: &str) -> Result<TopicFilter, E> {
            if crate::topic::is_valid_topic_filter(filter) {
                Ok(TopicFilter(filter.to_owned()))
            } else {
                Err(E::custom(format_args!(
                    "`{filter}` is not a valid MQTT topic filter: it must not be empty, \
                     `#` may only be the whole last level and `+` only a whole level"
                )))
            }
        }
    }

    deserializer.deserialize_option(Filters)
}

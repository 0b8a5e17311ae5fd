//! Deserializers that validate while they read.
//!
//! serde_yaml attaches a position to an error only while the value it concerns is being
//! deserialized (inside the `Deserializer` method that was handed a visitor). So every check
//! here runs inside a visitor: a range check inside the integer's visitor points at the
//! number, a cross-field check inside a mapping's `visit_map` points at that mapping, and a
//! duplicate listener name points at the duplicate, not at the list.
//!
//! One check spans sections: every alias in `auth.plugins` and `topic-check.plugins` must be
//! defined under `plugins`, which may come later in the file. [`super::load`] therefore first
//! collects the defined aliases in a quick pass ([`AliasScan`]) and makes them known to the
//! alias visitors for the real pass ([`with_defined_aliases`]), so that an undefined alias is
//! reported where it is written. Deserializing a [`Config`] any other way still checks the
//! aliases, once the whole mapping is read, and reports them at its start.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// The first, lenient pass over a config file: only the aliases defined under `plugins`.
/// Every other section is skipped unread; a malformed `plugins` section fails this pass, and
/// the real pass then reports the problem.
/// It also notes whether `auth` lists plugins, which decides whether `topic-check` may be
/// enabled without plugins of its own (session grants from authenticators are then the
/// only source of topic permissions).
#[derive(Deserialize)]
pub(super) struct AliasScan {
    #[serde(default, deserialize_with = "alias_keys")]
    plugins: HashSet<String>,
    #[serde(default)]
    auth: AuthScan,
}

/// The lenient view of `auth` in [`AliasScan`]: only whether it lists plugins.
#[derive(Deserialize, Default)]
struct AuthScan {
    #[serde(default)]
    plugins: Vec<IgnoredAny>,
}

thread_local! {
    /// Whether `auth.plugins` of the file being read is non-empty, when known in advance; set
    /// only for the duration of [`with_defined_aliases`].
    static AUTH_HAS_PLUGINS: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether `auth` lists plugins; `None` when that is not known yet.
fn auth_has_plugins() -> Option<bool> {
    AUTH_HAS_PLUGINS.with(std::cell::Cell::get)
}

/// Deserializes the keys of a mapping, skipping the values.
fn alias_keys<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HashSet<String>, D::Error> {
    struct Keys;

    impl<'de> Visitor<'de> for Keys {
        type Value = HashSet<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.insert(key);
            }
            Ok(keys)
        }
    }

    deserializer.deserialize_map(Keys)
}

thread_local! {
    /// The aliases defined under `plugins` of the file being read, when known in advance;
    /// set only for the duration of [`with_defined_aliases`].
    static DEFINED_ALIASES: RefCell<Option<HashSet<String>>> = const { RefCell::new(None) };
}

/// Runs `read` with `aliases` as the plugin aliases the alias visitors accept (`None`: not
/// known, leave the check to the end of the mapping), then restores what was there before,
/// even if `read` panics.
pub(super) fn with_defined_aliases<T>(scan: Option<AliasScan>, read: impl FnOnce() -> T) -> T {
    struct Restore(Option<HashSet<String>>, Option<bool>);

    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            DEFINED_ALIASES.with(|defined| *defined.borrow_mut() = previous);
            AUTH_HAS_PLUGINS.with(|auth| auth.set(self.1));
        }
    }

    let (aliases, auth) = match scan {
        Some(scan) => (Some(scan.plugins), Some(!scan.auth.plugins.is_empty())),
        None => (None, None),
    };
    let _restore = Restore(
        DEFINED_ALIASES.with(|defined| defined.replace(aliases)),
        AUTH_HAS_PLUGINS.with(|cell| cell.replace(auth)),
    );
    read()
}

/// Whether `alias` is defined under `plugins`; `None` when that is not known yet.
fn is_defined(alias: &str) -> Option<bool> {
    DEFINED_ALIASES.with(|defined| {
        defined
            .borrow()
            .as_ref()
            .map(|aliases| aliases.contains(alias))
    })
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

/// Deserializes a mapping into `Raw`, then checks it with `check`, whose error is reported at
/// the mapping's position.
pub(super) fn checked_map<'de, D, Raw, T, F>(
    deserializer: D,
    expecting: &'static str,
    check: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    Raw: Deserialize<'de>,
    F: FnOnce(Raw) -> Result<T, String>,
{
    struct CheckedMap<Raw, F> {
        expecting: &'static str,
        check: F,
        raw: PhantomData<fn() -> Raw>,
    }

    impl<'de, Raw, T, F> Visitor<'de> for CheckedMap<Raw, F>
    where
        Raw: Deserialize<'de>,
        F: FnOnce(Raw) -> Result<T, String>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let raw = Raw::deserialize(MapAccessDeserializer::new(map))?;
            (self.check)(raw).map_err(de::Error::custom)
        }
    }

    deserializer.deserialize_map(CheckedMap {
        expecting,
        check,
        raw: PhantomData,
    })
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

/// Deserializes a list of plugin aliases, each listed once and defined under `plugins`.
///
/// Whether an alias is defined is checked here, pointing at the alias, when the defined
/// aliases are known in advance (see [`with_defined_aliases`]); otherwise [`RawConfig`]
/// checks it once the whole configuration is read.
pub(super) fn plugin_aliases<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct Aliases;

    impl<'de> Visitor<'de> for Aliases {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of plugin aliases")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut aliases = Vec::new();
            while let Some(alias) = seq.next_element_seed(DefinedAlias(&aliases))? {
                aliases.push(alias);
            }
            Ok(aliases)
        }
    }

    /// One alias, not among those listed before it; checked inside its own visitor so that
    /// the error points at it.
    struct DefinedAlias<'a>(&'a [String]);

    impl<'de> DeserializeSeed<'de> for DefinedAlias<'_> {
        type Value = String;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    impl Visitor<'_> for DefinedAlias<'_> {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a plugin alias")
        }

        fn visit_str<E: de::Error>(self, alias: &str) -> Result<String, E> {
            if is_defined(alias) == Some(false) {
                return Err(E::custom(format_args!(
                    "plugin alias `{alias}` is not defined under `plugins`"
                )));
            }
            if self.0.iter().any(|listed| listed == alias) {
                return Err(E::custom(format_args!(
                    "plugin alias `{alias}` is listed twice"
                )));
            }
            Ok(alias.to_owned())
        }
    }

    deserializer.deserialize_seq(Aliases)
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

/// Deserializes `max-queued-messages`.
pub(super) fn max_queued_messages<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<usize, D::Error> {
    bounded(deserializer, 1, None)
}

/// Deserializes an integer in `min..=max` (no upper bound but the type's when `max` is None).
pub(super) fn bounded<'de, D, T>(deserializer: D, min: u64, max: Option<u64>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Bounded<T> {
        min: u64,
        max: Option<u64>,
        target: PhantomData<fn() -> T>,
    }

    impl<T> Bounded<T> {
        fn out_of_range<E: de::Error>(&self, value: impl fmt::Display) -> E {
            match self.max {
                Some(max) => E::custom(format_args!(
                    "must be between {} and {max}, got {value}",
                    self.min
                )),
                None => E::custom(format_args!("must be at least {}, got {value}", self.min)),
            }
        }
    }

    impl<T: TryFrom<u64>> Visitor<'_> for Bounded<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an integer of at least {}", self.min)
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
            if value < self.min || self.max.is_some_and(|max| value > max) {
                return Err(self.out_of_range(value));
            }
            T::try_from(value).map_err(|_| self.out_of_range(value))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
            match u64::try_from(value) {
                Ok(value) => self.visit_u64(value),
                Err(_) => Err(self.out_of_range(value)),
            }
        }

        fn visit_u128<E: de::Error>(self, value: u128) -> Result<T, E> {
            Err(self.out_of_range(value))
        }

        fn visit_i128<E: de::Error>(self, value: i128) -> Result<T, E> {
            Err(self.out_of_range(value))
        }
    }

    deserializer.deserialize_any(Bounded {
        min,
        max,
        target: PhantomData,
    })
}

/// `topic-check` as written, before the checks between its fields.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct RawTopicCheck {
    enable: bool,
    #[serde(deserialize_with = "plugin_aliases")]
    plugins: Vec<String>,
}

impl Default for RawTopicCheck {
    fn default() -> Self {
        let TopicCheckConfig { enable, plugins } = TopicCheckConfig::default();
        Self { enable, plugins }
    }
}

impl<'de> Deserialize<'de> for TopicCheckConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(
            deserializer,
            "the topic-check section",
            |raw: RawTopicCheck| {
                let config = TopicCheckConfig {
                    enable: raw.enable,
                    plugins: raw.plugins,
                };
                check_topic_check(&config, auth_has_plugins())?;
                Ok(config)
            },
        )
    }
}

/// The rules of `topic-check` that keep it from failing open or silently: plugins listed
/// while `enable` is false would never be asked (refused rather than guessed at), and checks
/// enabled with no plugin to ask are refused unless `auth` lists plugins, whose session grants
/// are then the only source of topic permissions (everything they do not grant is denied).
/// `auth_has_plugins` is `None` when not known yet (the whole-config check runs it again).
fn check_topic_check(
    config: &TopicCheckConfig,
    auth_has_plugins: Option<bool>,
) -> Result<(), String> {
    if !config.enable && !config.plugins.is_empty() {
        return Err(
            "plugins are listed but `enable` is false, so they would never be asked; \
                    set `enable: true` to check topics, or remove the plugins"
                .into(),
        );
    }
    if config.enable && config.plugins.is_empty() && auth_has_plugins == Some(false) {
        return Err(
            "`enable: true` with no plugins, and no auth plugins that could grant \
                    topics, so every topic would be denied; list topic-check plugins or set \
                    `enable: false`"
                .into(),
        );
    }
    Ok(())
}

/// `auth` as written, before the check between its fields.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct RawAuth {
    allow_anonymous: Option<bool>,
    #[serde(deserialize_with = "plugin_aliases")]
    plugins: Vec<String>,
}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(deserializer, "the auth section", |raw: RawAuth| {
            if raw.allow_anonymous.is_none() && raw.plugins.is_empty() {
                return Err("neither `allow-anonymous` nor plugins, so every client \
                            would be refused; set `allow-anonymous: true` (or `false` to let in \
                            only clients with a username) or list auth plugins"
                    .into());
            }
            Ok(AuthConfig {
                allow_anonymous: raw.allow_anonymous,
                plugins: raw.plugins,
            })
        })
    }
}

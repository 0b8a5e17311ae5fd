//! The `admin` and `metrics` sections: the gRPC admin API (`midge.admin.v1.BrokerAdmin`, with
//! health and reflection) and the Prometheus `/metrics` endpoint.
//!
//! Both are on by default and bound to loopback, so an address reachable from elsewhere is
//! only ever used when written in the file. As everywhere in this module, checks run inside
//! serde visitors: a bad token points at the token, `token` together with `token-file` at the
//! section.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::TlsConfig;
use super::check::checked_map;
use super::de::socket_addr;

/// Default `admin.bind`: loopback only.
pub const DEFAULT_ADMIN_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 50051);
/// Default `metrics.bind`: loopback only.
pub const DEFAULT_METRICS_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);

/// The admin API (`admin`): `midge.admin.v1.BrokerAdmin`, `grpc.health.v1.Health` and gRPC
/// server reflection on one gRPC server of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Whether the admin server runs (`enable`). Default `true`.
    pub enable: bool,
    /// Address of the admin server (`bind`), an IP and a port. Default `127.0.0.1:50051`;
    /// port `0` binds an ephemeral port (logged as `admin listening`).
    pub bind: SocketAddr,
    /// The bearer token every `BrokerAdmin` and reflection call must carry
    /// (`authorization: Bearer TOKEN`), from `token` or read from `token-file` at start.
    /// Health checks need none. Default: none, no token is asked for.
    pub token: Option<AdminToken>,
    /// Serve TLS with this certificate and key (`tls`, as a listener's: `cert`, `key`, and
    /// optionally `client-ca` / `require-client-cert` for client certificates). Default: none,
    /// plaintext.
    pub tls: Option<TlsConfig>,
    /// Not a key: whether the `admin` section is written in the config file. When it is, a bind
    /// failure fails the start, as for a listener; the built-in default only logs an error, so
    /// that a second broker on the same host still starts.
    pub explicit: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enable: true,
            bind: DEFAULT_ADMIN_BIND,
            token: None,
            tls: None,
            explicit: false,
        }
    }
}

/// Where the admin bearer token comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// Written in the config file (`token`).
    Inline(String),
    /// Read from this file at start, surrounding whitespace removed (`token-file`).
    File(PathBuf),
}

impl fmt::Debug for AdminToken {
    /// Never shows an inline token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// The Prometheus endpoint (`metrics`): `GET /metrics` in the Prometheus text format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Whether the endpoint runs (`enable`). Default `true`.
    pub enable: bool,
    /// Address of the HTTP server (`bind`). Default `127.0.0.1:9090`; port `0` binds an
    /// ephemeral port (logged as `metrics listening`).
    pub bind: SocketAddr,
    /// Not a key: whether the `metrics` section is written in the config file (see
    /// [`AdminConfig::explicit`]).
    pub explicit: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enable: true,
            bind: DEFAULT_METRICS_BIND,
            explicit: false,
        }
    }
}

/// An `admin` section as written, before the checks across its keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAdmin {
    #[serde(default = "enabled")]
    enable: bool,
    #[serde(default = "default_admin_bind", deserialize_with = "socket_addr")]
    bind: SocketAddr,
    #[serde(default, deserialize_with = "token")]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    tls: Option<TlsConfig>,
}

impl RawAdmin {
    fn validate(self) -> Result<AdminConfig, String> {
        let token = match (self.token, self.token_file) {
            (Some(_), Some(_)) => {
                return Err("give either `token` or `token-file`, not both".into());
            }
            (Some(token), None) => Some(AdminToken::Inline(token)),
            (None, Some(path)) if path.as_os_str().is_empty() => {
                return Err("`token-file` must not be empty".into());
            }
            (None, Some(path)) => Some(AdminToken::File(path)),
            (None, None) => None,
        };
        Ok(AdminConfig {
            enable: self.enable,
            bind: self.bind,
            token,
            tls: self.tls,
            explicit: true,
        })
    }
}

/// A `metrics` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMetrics {
    #[serde(default = "enabled")]
    enable: bool,
    #[serde(default = "default_metrics_bind", deserialize_with = "socket_addr")]
    bind: SocketAddr,
}

fn enabled() -> bool {
    true
}

fn default_admin_bind() -> SocketAddr {
    DEFAULT_ADMIN_BIND
}

fn default_metrics_bind() -> SocketAddr {
    DEFAULT_METRICS_BIND
}

impl<'de> Deserialize<'de> for AdminConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(deserializer, "an admin mapping", RawAdmin::validate)
    }
}

impl<'de> Deserialize<'de> for MetricsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(deserializer, "a metrics mapping", |raw: RawMetrics| {
            Ok(MetricsConfig {
                enable: raw.enable,
                bind: raw.bind,
                explicit: true,
            })
        })
    }
}

/// Checks a bearer token: not empty, visible ASCII only (it travels in an HTTP header).
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the admin token must not be empty".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the admin token may contain only visible ASCII characters (no spaces)".into());
    }
    Ok(())
}

/// Deserializes `token`, checked in its own visitor so that an error points at it.
fn token<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct Token;

    impl Visitor<'_> for Token {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a bearer token")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            check_token(value).map_err(E::custom)?;
            Ok(Some(value.to_owned()))
        }
    }

    deserializer.deserialize_str(Token)
}

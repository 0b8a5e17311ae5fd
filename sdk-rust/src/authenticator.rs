//! The `midge.plugin.v1.Authenticator` service as a trait: may this client connect?

use std::{fmt, future::Future, net::SocketAddr, time::Duration};

use tonic::Status;

use crate::{Decision, PluginConfig, Verdict};

/// Decides whether a client may connect. Register it with [`crate::Server::authenticator`] and
/// list the plugin's alias under `auth.plugins` in the broker's config.
///
/// The broker asks every listed authenticator concurrently: any [`Verdict::Deny`] denies,
/// otherwise at least one [`Verdict::Allow`] allows, [`Verdict::Ignore`] abstains, and no vote at
/// all denies (`auth.allow-anonymous` votes too). Returning an `Err` is safe: the broker applies
/// the alias's fallback for the status (`on-error`, deny by default; see "Errors" below), so
/// answer `Ignore` only when the client is none of this plugin's business.
///
/// Implement it with plain `async fn`s:
///
/// ```
/// use midge_plugin::{AuthRequest, Authenticator, Decision, Status};
///
/// struct OnlyAlice;
///
/// impl Authenticator for OnlyAlice {
///     async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
///         Ok(match req.username.as_deref() {
///             Some("alice") => Decision::allow(),
///             Some(_) => Decision::deny("unknown user"),
///             None => Decision::ignore(),
///         })
///     }
/// }
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Decide on a CONNECT with user name / password (or any CONNECT, if
    /// [`Authenticator::authenticate_enhanced`] is not overridden).
    ///
    /// # Errors
    ///
    /// An error status makes the broker take the alias's fallback for it: `on-timeout` for
    /// `DEADLINE_EXCEEDED` and `CANCELLED`, `on-unavailable` for `UNAVAILABLE`, `on-error` for
    /// any other status (`plugin.proto`, "Fallbacks").
    fn authenticate(
        &self,
        req: AuthRequest,
    ) -> impl Future<Output = Result<Decision, Status>> + Send;

    /// One step of MQTT 5 enhanced authentication: called instead of `authenticate` when the
    /// CONNECT carried an Authentication Method ([`AuthRequest::enhanced`] is `Some`). The
    /// default calls [`Authenticator::authenticate`].
    ///
    /// # Errors
    ///
    /// As for `authenticate`.
    fn authenticate_enhanced(
        &self,
        req: AuthRequest,
    ) -> impl Future<Output = Result<AuthStep, Status>> + Send {
        async move { self.authenticate(req).await.map(AuthStep::from) }
    }

    /// Called with the plugin's config section each time the broker (re)connects and calls
    /// `Describe`, before any request on that connection. The default accepts anything.
    ///
    /// # Errors
    ///
    /// An error (for example a [`crate::ConfigError`] converted with `?`) is returned to the
    /// broker, which then treats the plugin as unavailable.
    fn on_configure(
        &self,
        config: &PluginConfig,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        let _ = config;
        async { Ok(()) }
    }
}

/// A connecting client, as the broker saw its CONNECT.
#[derive(Clone)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The client identifier (may be empty when the client sent none).
    pub client_id: String,
    /// The user name; `None` for an anonymous client.
    pub username: Option<String>,
    /// The password; `None` when CONNECT had none.
    pub password: Option<Password>,
    /// The client's address, when the broker sent a parsable one.
    pub remote_addr: Option<SocketAddr>,
    /// The listener's name from the broker's config.
    pub listener: String,
    /// The protocol version of the CONNECT.
    pub protocol_version: ProtocolVersion,
    /// The verified TLS client certificate's subject (RFC 4514), if any.
    pub tls_peer_subject: Option<String>,
    /// The clean session / clean start flag.
    pub clean_start: bool,
    /// The keep alive from CONNECT.
    pub keep_alive: Duration,
    /// Unique per network connection within a broker run; stable across enhanced-auth steps.
    pub connection_id: String,
    /// MQTT 5 enhanced authentication, when the CONNECT carried an Authentication Method.
    pub enhanced: Option<EnhancedAuth>,
    /// MQTT 5 user properties of the CONNECT, in order.
    pub user_properties: Vec<(String, String)>,
    /// When the broker stops waiting for this answer: the request's arrival plus the call's
    /// `grpc-timeout` (the alias's `timeout` in the broker's config), if the broker sent one.
    /// The server cancels the call then; a plugin that queues slow work can use it to answer
    /// early (or to refuse work it cannot finish in time) instead of being cut off.
    pub deadline: Option<tokio::time::Instant>,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("remote_addr", &self.remote_addr)
            .field("listener", &self.listener)
            .field("protocol_version", &self.protocol_version)
            .field("tls_peer_subject", &self.tls_peer_subject)
            .field("connection_id", &self.connection_id)
            .field("deadline", &self.deadline)
            .field(
                "enhanced",
                &self.enhanced.as_ref().map(|e| (&e.method, e.step)),
            )
            .finish_non_exhaustive()
    }
}

/// One step of MQTT 5 enhanced authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnhancedAuth {
    /// The Authentication Method (e.g. `SCRAM-SHA-256`).
    pub method: String,
    /// The Authentication Data: from CONNECT at step 0, from the client's AUTH packet after.
    pub data: Vec<u8>,
    /// 0 for the CONNECT, 1 for the client's first AUTH packet, and so on.
    pub step: u32,
}

/// The answer to one enhanced-authentication step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send `auth_data` to the client in an AUTH packet and ask again with its answer.
    Continue {
        /// Authentication Data for the AUTH packet.
        auth_data: Vec<u8>,
    },
    /// The exchange is over.
    Done {
        /// The decision.
        decision: Decision,
        /// Authentication Data for the CONNACK (with an `Allow`), e.g. a SCRAM server-final
        /// message.
        auth_data: Option<Vec<u8>>,
    },
}

impl From<Decision> for AuthStep {
    fn from(decision: Decision) -> Self {
        AuthStep::Done {
            decision,
            auth_data: None,
        }
    }
}

impl From<Verdict> for AuthStep {
    fn from(verdict: Verdict) -> Self {
        Decision::from(verdict).into()
    }
}

/// The MQTT protocol version a client connected with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// MQTT 3.1 (level 3).
    V3_1,
    /// MQTT 3.1.1 (level 4).
    V3_1_1,
    /// MQTT 5.0 (level 5).
    V5,
    /// Not sent or not known to this SDK.
    Unknown,
}

/// A password from CONNECT. MQTT passwords are binary; `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    /// Wrap raw password bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Password(bytes.into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The password as text, when it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Compares with `expected` in time that depends only on the lengths, not on where the
    /// bytes differ.
    pub fn matches(&self, expected: &[u8]) -> bool {
        self.0.len() == expected.len()
            && self
                .0
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted_and_compared_whole() {
        let p = Password::new("s3cret");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert!(p.matches(b"s3cret"));
        assert!(!p.matches(b"s3cre"));
        assert!(!p.matches(b"s3creT"));
        assert_eq!(p.as_str(), Some("s3cret"));
    }
}

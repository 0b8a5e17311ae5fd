//! The answer to a decision request: [`Verdict`], wrapped in a [`Decision`] with how long the
//! broker may cache it and, for authentication, the session's topic [`Grants`].

use std::time::Duration;

/// What a plugin decides about one request. How the broker combines the verdicts of several
/// plugins is written on [`crate::Authenticator`] and [`crate::TopicChecker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the client do it.
    Allow,
    /// Refuse, with a reason for the broker's log (and, for MQTT 5 clients, the reason string).
    Deny(String),
    /// No opinion: abstain, as if this plugin were not in the chain.
    Ignore,
}

/// A [`Verdict`] plus what the broker may do with it.
///
/// ```
/// use std::time::Duration;
/// use midge_plugin::{Decision, Verdict};
///
/// let d = Decision::deny("banned").cache_for(Duration::from_secs(30));
/// assert_eq!(d.verdict, Verdict::Deny("banned".into()));
/// let d: Decision = Verdict::Allow.into(); // no caching, no grants
/// assert_eq!(d.cache_for, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// How long the broker may reuse this decision instead of asking again; `None` (or zero)
    /// means never. Any verdict may be cached, denials included. Sent as `cache_ttl_ms`, rounded
    /// up to whole milliseconds.
    pub cache_for: Option<Duration>,
    /// Topic permissions for the new session. Only read from an `Allow` of an
    /// [`crate::Authenticator`]; ignored on topic checks.
    pub grants: Option<Grants>,
    /// For a `Deny` of an [`crate::Authenticator`]: the MQTT 5 CONNACK reason code the client
    /// gets (e.g. 0x86 Bad user name or password, 0x8A Banned); `None` means 0x87 Not
    /// authorized. MQTT 3.1.1 clients always get 0x05.
    pub reason_code: Option<u8>,
}

impl Decision {
    /// Allow, not cached.
    pub fn allow() -> Self {
        Verdict::Allow.into()
    }

    /// Deny with a reason, not cached.
    pub fn deny(reason: impl Into<String>) -> Self {
        Verdict::Deny(reason.into()).into()
    }

    /// Abstain, not cached.
    pub fn ignore() -> Self {
        Verdict::Ignore.into()
    }

    /// Let the broker reuse this decision for `ttl`.
    #[must_use]
    pub fn cache_for(mut self, ttl: Duration) -> Self {
        self.cache_for = Some(ttl);
        self
    }

    /// The MQTT 5 CONNACK reason code for a denial (authentication only).
    #[must_use]
    pub fn reason_code(mut self, code: u8) -> Self {
        self.reason_code = Some(code);
        self
    }

    /// Attach session grants (authentication only).
    #[must_use]
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = Some(grants);
        self
    }
}

impl From<Verdict> for Decision {
    fn from(verdict: Verdict) -> Self {
        Decision {
            verdict,
            cache_for: None,
            grants: None,
            reason_code: None,
        }
    }
}

/// Topic permissions granted to a session at CONNECT, which the broker then enforces itself
/// without asking the topic-check plugins for topics they cover (see `SessionGrants` in
/// `auth.proto` for the exact rule).
///
/// Patterns are MQTT topic filters with no placeholders: write the client id or user name into
/// them yourself.
///
/// ```
/// use midge_plugin::Grants;
///
/// let g = Grants::default()
///     .publish(["devices/dev-17/#"])
///     .subscribe(["commands/dev-17/+"])
///     .exclusive();
/// assert!(g.exclusive);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Topic filters the client may publish to.
    pub publish: Vec<String>,
    /// Topic filters the client may subscribe to.
    pub subscribe: Vec<String>,
    /// Topic filters the client may receive messages on.
    pub receive: Vec<String>,
    /// True: for each action with patterns, a topic matching none is denied without asking the
    /// topic-check plugins.
    pub exclusive: bool,
}

impl Grants {
    /// Add publish patterns.
    #[must_use]
    pub fn publish<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.publish.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Add subscribe patterns.
    #[must_use]
    pub fn subscribe<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.subscribe.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Add receive patterns.
    #[must_use]
    pub fn receive<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.receive.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Make the lists complete: unmatched topics are denied locally.
    #[must_use]
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self
    }
}

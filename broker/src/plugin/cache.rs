//! Decision caches: verdicts a plugin allowed us to reuse for a while (its `cache_ttl_ms`), so
//! the PUBLISH hot path pays no round trip per message. Errors and fallbacks are never cached.
//!
//! Topic decisions live in each session ([`TopicCache`], dropped when the client disconnects or
//! a plugin invalidates it); authentication decisions in one broker-wide [`AuthCache`] keyed by
//! the credentials.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use parking_lot::Mutex;
use smallvec::SmallVec;
use tokio::time::Instant;

use midge_proto::plugin::v1 as pb;

use super::decision::{Action, PluginVote};
use super::grants::Grants;
use crate::hash::FastHashMap;

/// Entries kept per session before expired ones are swept (and new ones refused if all live).
const TOPIC_CACHE_CAPACITY: usize = 4096;
/// Entries kept in the broker-wide authentication cache.
const AUTH_CACHE_CAPACITY: usize = 65_536;
/// Longest time a verdict is kept, whatever the plugin asked: a day. A plugin's `cache_ttl_ms`
/// goes up to `i64::MAX`, which no clock can add to `now`.
const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The clock topic verdicts expire by.
///
/// In the broker, the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux,
/// through `coarsetime`): the time of its last tick, a few milliseconds old. A cached verdict
/// is read for every PUBLISH and every delivery, and the precise clock costs tens of
/// nanoseconds under virtualization (7.5 % of the broker's CPU time in the cached topic-check
/// benchmark, by `perf`); a lifetime given in milliseconds needs no better. Unit tests use
/// tokio's clock, which they can pause and advance.
#[cfg(not(test))]
mod clock {
    use std::time::Duration;

    /// A reading of the clock.
    pub(super) type Stamp = coarsetime::Instant;

    /// Now (never updates `coarsetime`'s shared "recent" value: no write to a shared line).
    pub(super) fn now() -> Stamp {
        coarsetime::Instant::now_without_cache_update()
    }

    /// `ttl` after `now` (`ttl` is at most [`super::MAX_TTL`]).
    pub(super) fn after(now: Stamp, ttl: Duration) -> Stamp {
        now + coarsetime::Duration::from(ttl)
    }
}

#[cfg(test)]
mod clock {
    use std::time::Duration;

    pub(super) type Stamp = tokio::time::Instant;

    pub(super) fn now() -> Stamp {
        tokio::time::Instant::now()
    }

    pub(super) fn after(now: Stamp, ttl: Duration) -> Stamp {
        now + ttl
    }
}

/// Cached topic verdicts of one session, and the session grants of its current connection.
///
/// Nothing is allocated until a plugin lets a verdict be cached or grants arrive (most
/// sessions of a broker without topic checks never do), and [`clear`](Self::clear) frees it
/// all again. Entries are grouped by topic, so a lookup hashes the topic as a `&str` (no key
/// is built) and scans the few (plugin, action) entries of that topic.
#[derive(Debug, Default)]
pub(crate) struct TopicCache(Mutex<Option<Box<TopicEntries>>>);

/// What a [`TopicCache`] holds once used.
#[derive(Debug, Default)]
struct TopicEntries {
    /// By topic, one entry per (plugin, action) cached for it.
    by_topic: FastHashMap<ByteString, SmallVec<[Cached; 2]>>,
    /// Entries over all topics (expired ones included until swept).
    len: usize,
    /// The grants of the current connection.
    grants: Option<Arc<Grants>>,
}

/// One cached vote.
#[derive(Debug)]
struct Cached {
    plugin: u16,
    action: Action,
    vote: PluginVote,
    expires: clock::Stamp,
}

impl TopicCache {
    /// The cached, unexpired vote of plugin `plugin` on (`action`, `topic`).
    pub(crate) fn get(&self, plugin: u16, action: Action, topic: &str) -> Option<PluginVote> {
        self.peek(plugin, action, topic, PluginVote::clone)
    }

    /// `f` applied to the cached, unexpired vote of plugin `plugin` on (`action`, `topic`),
    /// without copying the vote out.
    pub(crate) fn peek<R>(
        &self,
        plugin: u16,
        action: Action,
        topic: &str,
        f: impl FnOnce(&PluginVote) -> R,
    ) -> Option<R> {
        self.view(topic, |view| view.vote(plugin, action).map(f))
    }

    /// `f` applied to everything the cache knows about `topic` (grants and the votes of every
    /// plugin), under one lock and one hash lookup: the hot path of cached verdicts, which
    /// reads the grants and then the vote of each plugin of the chain.
    pub(crate) fn view<R>(&self, topic: &str, f: impl FnOnce(&TopicView<'_>) -> R) -> R {
        let inner = self.0.lock();
        let view = match inner.as_deref() {
            None => TopicView {
                grants: None,
                votes: &[],
                now: None,
            },
            Some(entries) => TopicView {
                grants: entries.grants.as_deref(),
                votes: entries
                    .by_topic
                    .get(topic)
                    .map_or(&[], |list| list.as_slice()),
                // One clock read per lookup, and none when nothing is cached for the topic.
                now: None,
            },
        };
        f(&view.with_clock())
    }
    /// Caches `vote` for `ttl`.
    pub(crate) fn put(
        &self,
        plugin: u16,
        action: Action,
        topic: ByteString,
        vote: PluginVote,
        ttl: Duration,
    ) {
        let now = clock::now();
        let mut inner = self.0.lock();
        let entries = inner.get_or_insert_with(Box::default);
        if entries.len >= TOPIC_CACHE_CAPACITY {
            entries.retain(|c| c.expires > now);
            if entries.len >= TOPIC_CACHE_CAPACITY {
                return;
            }
        }
        let expires = clock::after(now, ttl.min(MAX_TTL));
        let list = entries.by_topic.entry(topic).or_default();
        match list
            .iter_mut()
            .find(|c| c.plugin == plugin && c.action == action)
        {
            Some(cached) => (cached.vote, cached.expires) = (vote, expires),
            None => {
                list.push(Cached {
                    plugin,
                    action,
                    vote,
                    expires,
                });
                entries.len += 1;
            }
        }
    }

    /// Forgets everything, grants included (disconnect, a new connection), and frees it.
    pub(crate) fn clear(&self) {
        *self.0.lock() = None;
    }

    /// Sets the grants of the current connection.
    pub(crate) fn set_grants(&self, grants: Option<Arc<Grants>>) {
        let mut inner = self.0.lock();
        match (inner.as_mut(), grants) {
            (Some(entries), grants) => entries.grants = grants,
            (None, Some(grants)) => {
                inner.get_or_insert_with(Box::default).grants = Some(grants);
            }
            (None, None) => {}
        }
    }

    /// What the grants say about `action` on `topic`, if anything.
    pub(crate) fn granted(&self, action: Action, topic: &str) -> Option<bool> {
        self.0
            .lock()
            .as_ref()?
            .grants
            .as_ref()?
            .decide(action, topic)
    }

    /// Forgets plugin `plugin`'s entries (its invalidation).
    pub(crate) fn clear_plugin(&self, plugin: u16) {
        if let Some(entries) = self.0.lock().as_mut() {
            entries.retain(|c| c.plugin != plugin);
        }
    }

    /// Number of entries (expired ones included until swept).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().as_ref().map_or(0, |entries| entries.len)
    }

    /// Whether the cache is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a [`TopicCache`] holds about one topic, seen under its lock (see
/// [`TopicCache::view`]).
#[derive(Debug)]
pub(crate) struct TopicView<'a> {
    grants: Option<&'a Grants>,
    votes: &'a [Cached],
    /// Now, read once if any vote is cached for the topic.
    now: Option<clock::Stamp>,
}

impl TopicView<'_> {
    /// Reads the clock once, if there is a vote whose expiry it decides.
    fn with_clock(self) -> Self {
        let now = (!self.votes.is_empty()).then(clock::now);
        Self { now, ..self }
    }

    /// What the grants of the current connection say about `action` on `topic`, if anything
    /// (`topic` is the one the view was made for).
    pub(crate) fn granted(&self, action: Action, topic: &str) -> Option<bool> {
        self.grants?.decide(action, topic)
    }

    /// The cached, unexpired vote of plugin `plugin` on `action`.
    pub(crate) fn vote(&self, plugin: u16, action: Action) -> Option<&PluginVote> {
        let cached = self
            .votes
            .iter()
            .find(|c| c.plugin == plugin && c.action == action)?;
        (self.now? < cached.expires).then_some(&cached.vote)
    }
}

impl TopicEntries {
    /// Keeps the entries `keep` accepts; drops topics left without any.
    fn retain(&mut self, mut keep: impl FnMut(&Cached) -> bool) {
        let mut len = 0;
        self.by_topic.retain(|_, list| {
            list.retain(|c| keep(c));
            len += list.len();
            !list.is_empty()
        });
        self.len = len;
    }
}

/// What an authentication decision is keyed by: plugin, client id, username, and a keyed hash
/// of the password, listener and TLS subject (the password itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AuthKey {
    plugin: u16,
    client_id: String,
    username: Option<String>,
    credentials_hash: u64,
}

/// A cached authentication answer (vote and grants) and when it expires.
type AuthEntry = (PluginVote, Option<pb::SessionGrants>, Instant);

/// Broker-wide cache of authentication verdicts.
#[derive(Debug)]
pub(crate) struct AuthCache {
    entries: Mutex<FastHashMap<AuthKey, AuthEntry>>,
    /// Random per process, so password hashes cannot be precomputed.
    hasher: std::collections::hash_map::RandomState,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            entries: Mutex::new(FastHashMap::default()),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl AuthCache {
    /// The key for the request of a CONNECT to plugin `plugin`.
    pub(crate) fn key(&self, plugin: u16, request: &pb::AuthenticateRequest) -> AuthKey {
        AuthKey {
            plugin,
            client_id: request.client_id.clone(),
            username: request.username.clone(),
            credentials_hash: self.hasher.hash_one((
                &request.password,
                &request.listener,
                &request.tls_peer_subject,
            )),
        }
    }

    /// The cached, unexpired vote for `key`.
    pub(crate) fn get(&self, key: &AuthKey) -> Option<(PluginVote, Option<pb::SessionGrants>)> {
        let entries = self.entries.lock();
        let (vote, grants, expires) = entries.get(key)?;
        (Instant::now() < *expires).then(|| (vote.clone(), grants.clone()))
    }

    /// Caches `vote` and its grants for `ttl`.
    pub(crate) fn put(
        &self,
        key: AuthKey,
        vote: PluginVote,
        grants: Option<pb::SessionGrants>,
        ttl: Duration,
    ) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() >= AUTH_CACHE_CAPACITY {
            entries.retain(|_, (_, _, expires)| *expires > now);
            if entries.len() >= AUTH_CACHE_CAPACITY {
                return;
            }
        }
        entries.insert(key, (vote, grants, now + ttl.min(MAX_TTL)));
    }

    /// Drops plugin `plugin`'s entries for a client id and/or a username, or all of its entries
    /// when both are `None` (a plugin's invalidation).
    pub(crate) fn invalidate(&self, plugin: u16, client_id: Option<&str>, username: Option<&str>) {
        let everything = client_id.is_none() && username.is_none();
        self.entries.lock().retain(|key, _| {
            let client_hit = client_id.is_some_and(|c| key.client_id == c);
            let user_hit = username.is_some_and(|u| key.username.as_deref() == Some(u));
            key.plugin != plugin || !(everything || client_hit || user_hit)
        });
    }
}

#[cfg(test)]
mod tests;

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
use tokio::time::Instant;

use midge_proto::plugin::v1 as pb;

use super::decision::{Action, PluginVote};
use super::grants::Grants;
use crate::hash::FastHashMap;

/// Entries kept per session before expired ones are swept (and new ones refused if all live).
const TOPIC_CACHE_CAPACITY: usize = 4096;
/// Entries kept in the broker-wide authentication cache.
const AUTH_CACHE_CAPACITY: usize = 65_536;

/// A cached vote and when it expires.
type Entry = (PluginVote, Instant);

/// Cached topic verdicts of one session, keyed by (plugin index, action, topic), and the
/// session grants of its current connection.
#[derive(Debug, Default)]
pub struct TopicCache {
    entries: Mutex<FastHashMap<(u16, Action, ByteString), Entry>>,
    grants: Mutex<Option<Arc<Grants>>>,
}

impl TopicCache {
    /// The cached, unexpired vote of plugin `plugin` on (`action`, `topic`).
    pub fn get(&self, plugin: u16, action: Action, topic: &ByteString) -> Option<PluginVote> {
        let entries = self.entries.lock();
        let (vote, expires) = entries.get(&(plugin, action, topic.clone()))?;
        (Instant::now() < *expires).then(|| vote.clone())
    }

    /// `f` applied to the cached, unexpired vote of plugin `plugin` on (`action`, `topic`),
    /// without copying the vote out (the hot path of cached verdicts).
    pub fn peek<R>(
        &self,
        plugin: u16,
        action: Action,
        topic: &ByteString,
        f: impl FnOnce(&PluginVote) -> R,
    ) -> Option<R> {
        let entries = self.entries.lock();
        let (vote, expires) = entries.get(&(plugin, action, topic.clone()))?;
        (Instant::now() < *expires).then(|| f(vote))
    }

    /// Caches `vote` for `ttl`.
    pub fn put(
        &self,
        plugin: u16,
        action: Action,
        topic: ByteString,
        vote: PluginVote,
        ttl: Duration,
    ) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() >= TOPIC_CACHE_CAPACITY {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= TOPIC_CACHE_CAPACITY {
                return;
            }
        }
        entries.insert((plugin, action, topic), (vote, now + ttl));
    }

    /// Forgets everything, grants included (disconnect, a new connection).
    pub fn clear(&self) {
        self.entries.lock().clear();
        *self.grants.lock() = None;
    }

    /// Sets the grants of the current connection.
    pub fn set_grants(&self, grants: Option<Arc<Grants>>) {
        *self.grants.lock() = grants;
    }

    /// What the grants say about `action` on `topic`, if anything.
    pub fn granted(&self, action: Action, topic: &str) -> Option<bool> {
        self.grants.lock().as_ref()?.decide(action, topic)
    }

    /// Forgets plugin `plugin`'s entries (its invalidation).
    pub fn clear_plugin(&self, plugin: u16) {
        self.entries.lock().retain(|(p, _, _), _| *p != plugin);
    }

    /// Number of entries (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an authentication decision is keyed by: plugin, client id, username, and a keyed hash
/// of the password, listener and TLS subject (the password itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthKey {
    plugin: u16,
    client_id: String,
    username: Option<String>,
    credentials_hash: u64,
}

/// A cached authentication answer (vote and grants) and when it expires.
type AuthEntry = (PluginVote, Option<pb::SessionGrants>, Instant);

/// Broker-wide cache of authentication verdicts.
#[derive(Debug)]
pub struct AuthCache {
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
    pub fn key(&self, plugin: u16, request: &pb::AuthenticateRequest) -> AuthKey {
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
    pub fn get(&self, key: &AuthKey) -> Option<(PluginVote, Option<pb::SessionGrants>)> {
        let entries = self.entries.lock();
        let (vote, grants, expires) = entries.get(key)?;
        (Instant::now() < *expires).then(|| (vote.clone(), grants.clone()))
    }

    /// Caches `vote` and its grants for `ttl`.
    pub fn put(
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
        entries.insert(key, (vote, grants, now + ttl));
    }

    /// Drops plugin `plugin`'s entries for a client id and/or a username, or all of its entries
    /// when both are `None` (a plugin's invalidation).
    pub fn invalidate(&self, plugin: u16, client_id: Option<&str>, username: Option<&str>) {
        let everything = client_id.is_none() && username.is_none();
        self.entries.lock().retain(|key, _| {
            let client_hit = client_id.is_some_and(|c| key.client_id == c);
            let user_hit = username.is_some_and(|u| key.username.as_deref() == Some(u));
            key.plugin != plugin || !(everything || client_hit || user_hit)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn topic_entries_expire() {
        let cache = TopicCache::default();
        let topic = ByteString::from("a/b");
        cache.put(
            0,
            Action::Publish,
            topic.clone(),
            PluginVote::Allow,
            Duration::from_secs(2),
        );
        assert_eq!(
            cache.get(0, Action::Publish, &topic),
            Some(PluginVote::Allow)
        );
        assert_eq!(cache.get(1, Action::Publish, &topic), None, "other plugin");
        assert_eq!(cache.get(0, Action::Receive, &topic), None, "other action");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.get(0, Action::Publish, &topic), None);
    }

    #[tokio::test(start_paused = true)]
    async fn auth_keys_include_the_credentials() {
        let cache = AuthCache::default();
        let request = |password: &[u8], listener: &str| pb::AuthenticateRequest {
            client_id: "c".into(),
            username: Some("u".into()),
            password: Some(password.to_vec()),
            listener: listener.into(),
            ..Default::default()
        };
        let right = cache.key(0, &request(b"pw", "tcp"));
        cache.put(
            right.clone(),
            PluginVote::Allow,
            None,
            Duration::from_secs(10),
        );
        assert_eq!(cache.get(&right), Some((PluginVote::Allow, None)));
        assert_eq!(cache.get(&cache.key(0, &request(b"px", "tcp"))), None);
        assert_eq!(cache.get(&cache.key(0, &request(b"pw", "tls"))), None);
        cache.invalidate(1, None, None);
        assert_eq!(
            cache.get(&right),
            Some((PluginVote::Allow, None)),
            "another plugin's invalidation"
        );
        cache.invalidate(0, None, Some("u"));
        assert_eq!(cache.get(&right), None);
    }
}

//! Retained messages: at most one per topic, replayed to new subscriptions (MQTT §3.3.1.3).
//!
//! Storage sits behind the [`RetainedStore`] trait so a durable store can replace the in-memory
//! one without touching the router.

use std::time::SystemTime;

use bytestring::ByteString;
use parking_lot::RwLock;

use crate::hash::FastHashMap;
use crate::message::Message;
use crate::topic;

/// A retained message with who stored it and when (for the admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retained {
    /// The message, retain flag set.
    pub(crate) message: Message,
    /// The publishing client's id; empty for the broker, the admin API or a plugin.
    pub(crate) publisher: ByteString,
    /// When it was stored.
    pub(crate) stored_at: SystemTime,
}

/// Where retained messages live.
pub(crate) trait RetainedStore: Send + Sync + std::fmt::Debug {
    /// Stores `retained` as the retained message of its topic, replacing any previous one.
    fn store(&self, retained: Retained);
    /// Removes the retained message of `topic`; returns whether there was one.
    fn clear(&self, topic: &str) -> bool;
    /// Appends every retained message whose topic matches `filter` to `out`, with who stored
    /// it and when.
    fn matching_entries(&self, filter: &str, out: &mut Vec<Retained>);
    /// Appends every retained message to `out`, `$` topics included (for the admin API).
    fn all(&self, out: &mut Vec<Retained>);
    /// Number of retained messages.
    fn len(&self) -> usize;

    /// Appends the retained messages whose topic matches `filter` to `out`, leaving out those
    /// whose MQTT 5 expiry interval has passed ([MQTT-3.3.2-5]).
    fn matching(&self, filter: &str, out: &mut Vec<Message>) {
        let mut entries = Vec::new();
        self.matching_entries(filter, &mut entries);
        let now = tokio::time::Instant::now();
        out.extend(
            entries
                .into_iter()
                .map(|r| r.message)
                .filter(|m| !m.is_expired(now)),
        );
    }
    /// The retained message of the topic name `topic`, if any.
    fn get(&self, topic: &str) -> Option<Retained> {
        let mut out = Vec::new();
        if !topic::has_wildcards(topic) {
            self.matching_entries(topic, &mut out);
        }
        out.pop()
    }
}

/// In-memory retained store: a map by topic. A filter without wildcards is one lookup; a
/// wildcard filter scans the map (subscribe-time only, never on the publish path).
#[derive(Debug, Default)]
pub(crate) struct MemoryRetainedStore {
    messages: RwLock<FastHashMap<ByteString, Retained>>,
}

impl RetainedStore for MemoryRetainedStore {
    fn store(&self, retained: Retained) {
        self.messages
            .write()
            .insert(retained.message.topic.clone(), retained);
    }

    fn clear(&self, topic: &str) -> bool {
        self.messages.write().remove(topic).is_some()
    }

    fn matching_entries(&self, filter: &str, out: &mut Vec<Retained>) {
        let messages = self.messages.read();
        if !topic::has_wildcards(filter) {
            out.extend(messages.get(filter).cloned());
            return;
        }
        out.extend(
            messages
                .values()
                .filter(|r| topic::matches(filter, &r.message.topic))
                .cloned(),
        );
    }

    fn all(&self, out: &mut Vec<Retained>) {
        out.extend(self.messages.read().values().cloned());
    }

    fn get(&self, topic: &str) -> Option<Retained> {
        self.messages.read().get(topic).cloned()
    }

    fn len(&self) -> usize {
        self.messages.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;

    fn msg(topic: &str) -> Retained {
        Retained {
            message: Message::new(
                topic.into(),
                bytes::Bytes::from_static(b"x"),
                QoS::AtLeastOnce,
                true,
            ),
            publisher: "p".into(),
            stored_at: SystemTime::now(),
        }
    }

    #[test]
    fn store_replace_clear_and_match() {
        let store = MemoryRetainedStore::default();
        store.store(msg("a/b"));
        store.store(msg("a/c"));
        store.store(msg("a/b"));
        store.store(msg("$SYS/x"));
        assert_eq!(store.len(), 3);
        let mut out = Vec::new();
        store.matching("a/+", &mut out);
        assert_eq!(out.len(), 2);
        out.clear();
        store.matching("#", &mut out);
        assert_eq!(out.len(), 2, "# does not match $ topics");
        assert!(store.clear("a/b"));
        assert!(!store.clear("a/b"));
        out.clear();
        store.matching("a/b", &mut out);
        assert!(out.is_empty());
        assert_eq!(
            store.get("a/c").map(|r| (r.message.topic, r.publisher)),
            Some(("a/c".into(), "p".into()))
        );
        assert_eq!(store.get("a/b"), None);
        let mut all = Vec::new();
        store.all(&mut all);
        assert_eq!(all.len(), 2, "all includes $ topics");
    }

    #[test]
    fn expired_messages_are_not_replayed() {
        let store = MemoryRetainedStore::default();
        let mut old = msg("a");
        old.message.expires_at = Some(tokio::time::Instant::now());
        store.store(old);
        store.store(msg("b"));
        let mut out = Vec::new();
        store.matching("#", &mut out);
        assert_eq!(
            out.iter().map(|m| m.topic.to_string()).collect::<Vec<_>>(),
            ["b"]
        );
    }
}

//! Retained messages: at most one per topic, replayed to new subscriptions (MQTT §3.3.1.3).
//!
//! Storage sits behind the [`RetainedStore`] trait so a durable store can replace the in-memory
//! one without touching the router.

use std::collections::HashMap;

use bytestring::ByteString;
use parking_lot::RwLock;

use crate::message::Message;
use crate::topic;

/// Where retained messages live.
pub trait RetainedStore: Send + Sync + std::fmt::Debug {
    /// Stores `message` as the retained message of its topic, replacing any previous one.
    fn store(&self, message: Message);
    /// Removes the retained message of `topic`; returns whether there was one.
    fn clear(&self, topic: &str) -> bool;
    /// Appends every retained message whose topic matches `filter` to `out`.
    fn matching(&self, filter: &str, out: &mut Vec<Message>);
    /// Appends every retained message to `out`, `$` topics included (for the admin API).
    fn all(&self, out: &mut Vec<Message>);
    /// The retained message of the topic name `topic`, if any.
    fn get(&self, topic: &str) -> Option<Message> {
        let mut out = Vec::new();
        if !topic::has_wildcards(topic) {
            self.matching(topic, &mut out);
        }
        out.pop()
    }
    /// Number of retained messages.
    fn len(&self) -> usize;
    /// Whether no message is retained.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// In-memory retained store: a map by topic. A filter without wildcards is one lookup; a
/// wildcard filter scans the map (subscribe-time only, never on the publish path).
#[derive(Debug, Default)]
pub struct MemoryRetainedStore {
    messages: RwLock<HashMap<ByteString, Message>>,
}

impl RetainedStore for MemoryRetainedStore {
    fn store(&self, message: Message) {
        self.messages.write().insert(message.topic.clone(), message);
    }

    fn clear(&self, topic: &str) -> bool {
        self.messages.write().remove(topic).is_some()
    }

    fn matching(&self, filter: &str, out: &mut Vec<Message>) {
        let messages = self.messages.read();
        if !topic::has_wildcards(filter) {
            out.extend(messages.get(filter).cloned());
            return;
        }
        out.extend(
            messages
                .values()
                .filter(|m| topic::matches(filter, &m.topic))
                .cloned(),
        );
    }

    fn all(&self, out: &mut Vec<Message>) {
        out.extend(self.messages.read().values().cloned());
    }

    fn get(&self, topic: &str) -> Option<Message> {
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

    fn msg(topic: &str) -> Message {
        Message::new(
            topic.into(),
            bytes::Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            true,
        )
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
        assert_eq!(store.get("a/c").map(|m| m.topic), Some("a/c".into()));
        assert_eq!(store.get("a/b"), None);
        store.all(&mut out);
        assert_eq!(out.len(), 2, "all includes $ topics");
    }
}

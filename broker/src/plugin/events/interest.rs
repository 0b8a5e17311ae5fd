//! What a plugin wants to receive, read on the hot path before an event is even built.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU32, Ordering},
};

use midge_proto::plugin::v1 as pb;
use parking_lot::RwLock;

use crate::topic;

/// A plugin's interest: event kinds, topic filters for message events, payloads.
///
/// The kinds are a bitmask in one atomic (bit `k` for the `EventKind` with value `k`), so
/// [`Interest::wants`] is a single load. Topic filters are consulted only for message kinds:
/// "all topics" is an atomic flag, and only a plugin that named filters costs a read lock on
/// an `RwLock` that is written once per (re)connect (uncontended, no waiting in practice).
#[derive(Debug, Default)]
pub(super) struct Interest {
    /// Bit `k` set: events of kind value `k` are wanted. Bit 0 (`Unspecified`) is never set.
    kinds: AtomicU32,
    /// Message events of every topic are wanted (no topic filters given).
    all_topics: AtomicBool,
    /// The topic filters, when `all_topics` is false.
    filters: RwLock<Arc<[String]>>,
    /// Message payloads are included (`DescribeResponse.omit_payload` is false).
    payload: AtomicBool,
}

/// The bit of `kind` in the mask; `None` for `Unspecified` (and values a `u32` cannot hold).
fn bit(kind: pb::EventKind) -> Option<u32> {
    match kind as i32 {
        value @ 1..=31 => Some(1 << value),
        _ => None,
    }
}

impl Interest {
    /// Replaces the interest. Empty `topic_filters` means every topic.
    pub(super) fn set(
        &self,
        kinds: impl IntoIterator<Item = pb::EventKind>,
        topic_filters: Vec<String>,
        payload: bool,
    ) {
        let mask = kinds.into_iter().filter_map(bit).fold(0, |m, b| m | b);
        let all_topics = topic_filters.is_empty();
        *self.filters.write() = topic_filters.into();
        self.all_topics.store(all_topics, Ordering::Release);
        self.payload.store(payload, Ordering::Relaxed);
        self.kinds.store(mask, Ordering::Release);
    }

    /// Whether events of `kind` are wanted.
    pub(super) fn wants(&self, kind: pb::EventKind) -> bool {
        bit(kind).is_some_and(|b| self.kinds.load(Ordering::Acquire) & b != 0)
    }

    /// Whether an event of `kind` about `topic` is wanted: the kind is wanted and, for message
    /// kinds, the topic matches one of the filters (or no filters were given).
    pub(super) fn wants_message(&self, kind: pb::EventKind, topic: &str) -> bool {
        if !self.wants(kind) {
            return false;
        }
        if !kind.is_message() || self.all_topics.load(Ordering::Acquire) {
            return true;
        }
        self.filters.read().iter().any(|f| topic::matches(f, topic))
    }

    /// Whether payloads are included in the events sent.
    pub(super) fn wants_payload(&self) -> bool {
        self.payload.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::EventKind as K;

    #[test]
    fn nothing_is_wanted_until_set() {
        let i = Interest::default();
        assert!(!i.wants(K::ClientConnected));
        assert!(!i.wants_message(K::MessageReceived, "a"));
        assert!(!i.wants_payload());
    }

    #[test]
    fn kinds_are_a_mask() {
        let i = Interest::default();
        i.set(
            [K::ClientConnected, K::Unspecified, K::PacketSent],
            vec![],
            true,
        );
        assert!(i.wants(K::ClientConnected));
        assert!(i.wants(K::PacketSent));
        assert!(!i.wants(K::ClientDisconnected));
        assert!(!i.wants(K::Unspecified));
        assert!(i.wants_payload());
        i.set(K::ALL_BUT_PACKETS, vec![], false);
        assert!(!i.wants(K::PacketSent));
        assert!(K::ALL_BUT_PACKETS.iter().all(|k| i.wants(*k)));
    }

    #[test]
    fn topic_filters_apply_to_message_kinds_only() {
        let i = Interest::default();
        i.set(
            [K::MessageReceived, K::ClientSubscribed],
            vec!["sensors/+/temp".into(), "alerts/#".into()],
            false,
        );
        assert!(i.wants_message(K::MessageReceived, "sensors/1/temp"));
        assert!(i.wants_message(K::MessageReceived, "alerts/fire/now"));
        assert!(!i.wants_message(K::MessageReceived, "sensors/1/humidity"));
        assert!(
            !i.wants_message(K::MessageBroadcast, "alerts/x"),
            "kind not wanted"
        );
        assert!(i.wants_message(K::ClientSubscribed, "anything"));
        // Without filters every topic is wanted, `$` topics included.
        i.set([K::MessageReceived], vec![], false);
        assert!(i.wants_message(K::MessageReceived, "x/y"));
        assert!(i.wants_message(K::MessageReceived, "$SYS/broker"));
    }
}

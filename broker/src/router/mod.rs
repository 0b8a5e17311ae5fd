//! The router: matches published messages against the subscription tree, hands one copy per
//! subscribed session to that session's queue, and keeps the retained store up to date.
//!
//! Publishing runs on the publisher's own connection task under a read lock of the tree — no
//! central router task to queue behind, so fan-in scales with connections. The only per-message
//! locks are the tree's read lock and each receiving session's short queue lock.

mod subscriptions;

use std::sync::Arc;

use bytestring::ByteString;
use parking_lot::RwLock;
use smallvec::SmallVec;

use crate::codec::QoS;
use crate::message::Message;
use crate::retained::RetainedStore;
use crate::session::Session;
use crate::stats::Stats;
use subscriptions::{Subscriber, SubscriptionTree};

/// Routes messages to sessions. Shared by every connection.
#[derive(Debug)]
pub struct Router {
    tree: RwLock<SubscriptionTree>,
    retained: Arc<dyn RetainedStore>,
    stats: Arc<Stats>,
}

impl Router {
    /// A router with no subscriptions over the given retained store.
    pub fn new(retained: Arc<dyn RetainedStore>, stats: Arc<Stats>) -> Self {
        Router {
            tree: RwLock::new(SubscriptionTree::default()),
            retained,
            stats,
        }
    }

    /// Stores or clears the retained message of `message`'s topic, if its retain flag is set.
    /// Returns `Some(true)` when stored, `Some(false)` when cleared (empty payload), `None` when
    /// the message is not retained.
    pub fn retain(&self, message: &Message) -> Option<bool> {
        if !message.retain {
            return None;
        }
        if message.payload.is_empty() {
            self.retained.clear(&message.topic);
            Some(false)
        } else {
            // A copy, so a long-lived retained message does not pin the whole read buffer it
            // was sliced from.
            self.retained.store(Message {
                topic: ByteString::from(message.topic.to_string()),
                payload: bytes::Bytes::copy_from_slice(&message.payload),
                qos: message.qos,
                retain: true,
            });
            Some(true)
        }
    }

    /// Queues one copy of `message` for every subscribed session at min(message QoS, highest
    /// matching subscription QoS), with the retain flag cleared ([MQTT-3.3.1-9]). Returns the
    /// number of sessions it was queued for. This is the path without per-subscriber checks.
    pub fn fan_out(&self, message: &Message) -> usize {
        let tree = self.tree.read();
        let mut hits: SmallVec<[&Subscriber; 8]> = SmallVec::new();
        tree.for_each_match(&message.topic, &mut |s| hits.push(s));
        dedup_by_session(&mut hits);
        hits.iter()
            .filter(|hit| {
                hit.session
                    .deliver(message.for_subscriber(hit.qos, false))
                    .is_ok()
            })
            .count()
    }

    /// Appends (session, highest granted QoS) for every session subscribed to `topic`, one entry
    /// per session, for callers that check each subscriber before delivering.
    pub fn subscribers(&self, topic: &str, out: &mut Vec<(Arc<Session>, QoS)>) {
        let tree = self.tree.read();
        let mut hits: SmallVec<[&Subscriber; 8]> = SmallVec::new();
        tree.for_each_match(topic, &mut |s| hits.push(s));
        dedup_by_session(&mut hits);
        out.extend(hits.iter().map(|hit| (hit.session.clone(), hit.qos)));
    }

    /// Adds (or replaces) `session`'s subscription to `filter` with `qos`. Returns true if new.
    pub fn subscribe(&self, session: &Arc<Session>, filter: &ByteString, qos: QoS) -> bool {
        let mut tree = self.tree.write();
        session.with_state(|st| st.subscriptions.insert(filter.clone(), qos));
        tree.insert(filter, session, qos)
    }

    /// Removes `session`'s subscription to `filter`. Returns whether it existed.
    pub fn unsubscribe(&self, session: &Session, filter: &str) -> bool {
        let mut tree = self.tree.write();
        session.with_state(|st| st.subscriptions.remove(filter));
        tree.remove(filter, session.id())
    }

    /// Removes every subscription of `session` (clean session end, expiry, discard).
    pub fn remove_session(&self, session: &Session) {
        let filters: Vec<ByteString> =
            session.with_state(|st| st.subscriptions.drain().map(|(f, _)| f).collect());
        if filters.is_empty() {
            return;
        }
        let mut tree = self.tree.write();
        for filter in &filters {
            tree.remove(filter, session.id());
        }
    }

    /// Appends the retained messages matching `filter` to `out`.
    pub fn retained_matching(&self, filter: &str, out: &mut Vec<Message>) {
        self.retained.matching(filter, out);
    }

    /// The retained store.
    pub fn retained(&self) -> &Arc<dyn RetainedStore> {
        &self.retained
    }

    /// Number of subscriptions across all sessions.
    pub fn subscription_count(&self) -> usize {
        self.tree.read().len()
    }

    /// Broker-wide counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }
}

/// Keeps one entry per session, the one with the highest QoS (overlapping subscriptions deliver
/// one copy, [MQTT-3.3.5-1]).
fn dedup_by_session(hits: &mut SmallVec<[&Subscriber; 8]>) {
    if hits.len() > 1 {
        hits.sort_unstable_by_key(|s| (s.session.id(), std::cmp::Reverse(s.qos)));
        hits.dedup_by_key(|s| s.session.id());
    }
}

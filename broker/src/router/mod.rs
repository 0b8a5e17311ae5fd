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
use crate::codec::v5::{SubscriptionId, SubscriptionOptions};
use crate::message::{Message, SubscriptionIds};
use crate::retained::RetainedStore;
use crate::session::Session;
use crate::stats::Stats;
use subscriptions::{Subscriber, SubscriptionTree};

/// One session's subscription to one filter: the MQTT 5 options (3.1.1 subscriptions have
/// only the QoS set) and the subscription identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Maximum QoS, No Local, Retain As Published, Retain Handling.
    pub options: SubscriptionOptions,
    /// The MQTT 5 Subscription Identifier, returned with every message it delivers.
    pub id: Option<SubscriptionId>,
}

impl Subscription {
    /// A plain subscription at `qos` (what 3.1.1 has).
    pub fn qos(qos: QoS) -> Self {
        Subscription {
            options: SubscriptionOptions::new(qos),
            id: None,
        }
    }
}

/// One session's copy of a message: the merge of every subscription of that session that
/// matched ([MQTT-3.3.4-2]: one copy, at the highest QoS, carrying every identifier).
#[derive(Debug, Clone)]
pub struct Target {
    /// The receiving session.
    pub session: Arc<Session>,
    /// The highest QoS granted among the matching subscriptions.
    pub qos: QoS,
    /// Whether a matching subscription has Retain As Published.
    pub retain_as_published: bool,
    /// The identifiers of the matching subscriptions that have one.
    pub subscription_ids: SubscriptionIds,
}

impl Target {
    /// The copy of `message` this target receives (live delivery: RETAIN cleared unless a
    /// subscription asked for Retain As Published, [MQTT-3.3.1-12]/[MQTT-3.3.1-13]).
    pub fn copy_of(&self, message: &Message) -> Message {
        let mut copy = message.for_subscriber(self.qos, message.retain && self.retain_as_published);
        copy.subscription_ids = self.subscription_ids.clone();
        copy
    }
}

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
    pub fn retain(&self, message: &Message, publisher: &str) -> Option<bool> {
        if !message.retain {
            return None;
        }
        if message.payload.is_empty() {
            self.retained.clear(&message.topic);
            Some(false)
        } else {
            // A copy, so a long-lived retained message does not pin the whole read buffer it
            // was sliced from.
            let mut stored = message.owned();
            stored.retain = true;
            self.retained.store(crate::retained::Retained {
                message: stored,
                publisher: ByteString::from(publisher),
                stored_at: std::time::SystemTime::now(),
            });
            Some(true)
        }
    }

    /// Queues one copy of `message` for every subscribed session at min(message QoS, highest
    /// matching subscription QoS), with the retain flag cleared unless asked to keep it
    /// ([MQTT-3.3.1-9]), skipping No Local subscriptions of the publisher `publisher`. Returns
    /// the number of sessions it was queued for. This is the path without per-subscriber
    /// checks.
    pub fn fan_out(&self, message: &Message, publisher: &str) -> usize {
        let tree = self.tree.read();
        let mut delivered = 0;
        for_each_target(
            &tree,
            &message.topic,
            publisher,
            |session, qos, rap, ids| {
                let mut copy = message.for_subscriber(qos, message.retain && rap);
                copy.subscription_ids = ids;
                if session.deliver(copy).is_ok() {
                    delivered += 1;
                }
            },
        );
        delivered
    }

    /// Appends one [`Target`] per session subscribed to `topic` (No Local subscriptions of
    /// `publisher` left out), for callers that check each subscriber before delivering.
    pub fn subscribers(&self, topic: &str, publisher: &str, out: &mut Vec<Target>) {
        let tree = self.tree.read();
        for_each_target(&tree, topic, publisher, |session, qos, rap, ids| {
            out.push(Target {
                session: session.clone(),
                qos,
                retain_as_published: rap,
                subscription_ids: ids,
            });
        });
    }

    /// Adds (or replaces) `session`'s subscription to `filter`. Returns true if it is new.
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &ByteString,
        sub: Subscription,
    ) -> bool {
        let mut tree = self.tree.write();
        session.with_state(|st| st.subscriptions.insert(filter.clone(), sub));
        tree.insert(filter, session, sub)
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

/// Calls `f(session, qos, retain_as_published, subscription_ids)` once per session with a
/// subscription matching `topic`, merging that session's matching subscriptions.
fn for_each_target<'a>(
    tree: &'a SubscriptionTree,
    topic: &str,
    publisher: &str,
    mut f: impl FnMut(&'a Arc<Session>, QoS, bool, SubscriptionIds),
) {
    let mut hits: SmallVec<[&Subscriber; 8]> = SmallVec::new();
    tree.for_each_match(topic, &mut |s| {
        // [MQTT-3.8.3-3]: No Local, never to the publishing client's own subscription.
        if !(s.sub.options.no_local && s.session.client_id() == publisher) {
            hits.push(s);
        }
    });
    if hits.len() > 1 {
        hits.sort_unstable_by_key(|s| s.session.id());
    }
    let mut rest = &hits[..];
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|s| s.session.id() == first.session.id())
            .count();
        let (group, tail) = rest.split_at(same);
        rest = tail;
        let qos = group
            .iter()
            .map(|s| s.sub.options.qos)
            .max()
            .unwrap_or(QoS::AtMostOnce);
        let rap = group.iter().any(|s| s.sub.options.retain_as_published);
        let ids = if group.iter().any(|s| s.sub.id.is_some()) {
            Some(group.iter().filter_map(|s| s.sub.id).collect())
        } else {
            None
        };
        f(&first.session, qos, rap, ids);
    }
}

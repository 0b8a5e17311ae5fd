//! The router: matches published messages against the subscription tree, hands one copy per
//! subscribed session to that session's queue, and keeps the retained store up to date.
//!
//! Publishing runs on the publisher's own connection task under a read lock of the tree — no
//! central router task to queue behind, so fan-in scales with connections. The only per-message
//! locks are the tree's read lock and each receiving session's short queue lock.
//!
//! # Shared subscriptions (MQTT 5 §4.8.2)
//!
//! `$share/{group}/{filter}` matches topics by `{filter}`, and each message goes to exactly one
//! member of each (group, filter) pair. The member is chosen **round robin, preferring online
//! members**: each group keeps a cursor; the member at the cursor gets the message if its
//! connection is up, otherwise the next online member does and the cursor moves past it, so
//! online members take equal turns. Only when no member is online does the member at the cursor
//! get it while offline (its session queues QoS 1/2 messages and drops QoS 0 ones). A session
//! that also has non-shared subscriptions matching the topic gets a separate copy for those;
//! the shared copy carries only the shared subscription's identifier, and its
//! [`Message::shared_origin`] names the group, so that when the member's connection ends
//! its unacknowledged QoS 1 and unsent messages go to another online member
//! (`dispatch::redeliver_shared`). QoS 2 messages already sent stay with their member, whose
//! delivery must complete on reconnect ([MQTT-4.8.2-4], [MQTT-4.8.2-5]).

mod subscriptions;

use std::sync::Arc;

use bytestring::ByteString;
use parking_lot::RwLock;
use smallvec::SmallVec;

use crate::codec::QoS;
use crate::message::{Message, SharedOrigin, SubscriptionIds};
use crate::retained::RetainedStore;
use crate::session::{Backlog, Session, Subscription};
use subscriptions::{Hit, SharedGroup, Subscriber, SubscriptionTree};

/// One session's copy of a message: the merge of every non-shared subscription of that session
/// that matched ([MQTT-3.3.4-2]: one copy, at the highest QoS, carrying every identifier), or
/// a candidate member of a shared subscription group.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The receiving session.
    pub(crate) session: Arc<Session>,
    /// The highest QoS granted among the matching subscriptions.
    pub(crate) qos: QoS,
    /// Whether a matching subscription has Retain As Published.
    pub(crate) retain_as_published: bool,
    /// The identifiers of the matching subscriptions that have one.
    pub(crate) subscription_ids: SubscriptionIds,
    /// For a shared subscription, its group key (`$share/{group}/{filter}`). The candidates of
    /// one group are adjacent in [`Router::subscribers`] (same `Arc`), most preferred first,
    /// and only one of them is to receive the message.
    pub(crate) shared: SharedOrigin,
}

impl Target {
    /// The copy of `message` this target receives (live delivery: RETAIN cleared unless a
    /// subscription asked for Retain As Published, [MQTT-3.3.1-12]/[MQTT-3.3.1-13]).
    pub(crate) fn copy_of(&self, message: &Message) -> Message {
        let mut copy = message.for_subscriber(self.qos, message.retain && self.retain_as_published);
        copy.subscription_ids = self.subscription_ids.clone();
        copy.shared_origin = self.shared.clone();
        copy
    }

    /// Whether `self` and `other` are candidates of the same shared group.
    pub(crate) fn same_group(&self, other: &Target) -> bool {
        match (&self.shared, &other.shared) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn member(sub: &Subscriber, key: &Arc<ByteString>) -> Target {
        Target {
            session: sub.session.clone(),
            qos: sub.sub.options.qos,
            retain_as_published: sub.sub.options.retain_as_published,
            subscription_ids: sub.sub.id.map(|id| Box::from([id])),
            shared: Some(key.clone()),
        }
    }
}

/// Routes messages to sessions. Shared by every connection.
#[derive(Debug)]
pub(crate) struct Router {
    tree: RwLock<SubscriptionTree>,
    retained: Arc<dyn RetainedStore>,
}

impl Router {
    /// A router with no subscriptions over the given retained store.
    pub(crate) fn new(retained: Arc<dyn RetainedStore>) -> Self {
        Router {
            tree: RwLock::new(SubscriptionTree::default()),
            retained,
        }
    }

    /// Stores or clears the retained message of `message`'s topic, if its retain flag is set.
    /// Returns `Some(true)` when stored, `Some(false)` when cleared (empty payload), `None` when
    /// the message is not retained.
    pub(crate) fn retain(&self, message: &Message, publisher: &str) -> Option<bool> {
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
    /// ([MQTT-3.3.1-9]), skipping No Local subscriptions of the publisher `publisher`, and one
    /// copy for one member of each matching shared subscription group. Returns the number of
    /// copies queued. Sessions whose queue this leaves over its bounds are added to `backlog`
    /// (the publisher waits for them). This is the path without per-subscriber checks.
    pub(crate) fn fan_out(
        &self,
        message: &Message,
        publisher: &str,
        backlog: &mut Backlog,
    ) -> usize {
        let tree = self.tree.read();
        let mut delivered = 0;
        for_each_target(
            &tree,
            &message.topic,
            publisher,
            |session, qos, rap, ids, shared| {
                let mut copy = message.for_subscriber(qos, message.retain && rap);
                copy.subscription_ids = ids;
                copy.shared_origin = shared.cloned();
                if session.deliver_noting(copy, backlog) {
                    delivered += 1;
                }
            },
            |group, out| {
                if let Some(member) = group.pick(None, false) {
                    out(member);
                }
            },
        );
        delivered
    }

    /// [`fan_out`](Self::fan_out) for a broker that checks each subscriber, with the verdicts
    /// that need no waiting given by `cached` (`Some(allowed)`, e.g. a cached verdict or a
    /// grant): allowed subscribers get their copy here, denied ones nothing, and those
    /// `cached` cannot decide (`None`) are appended to `unresolved`, followed by every member
    /// of each matching shared group as candidates, in the order of preference (online
    /// members round robin, then offline ones only if none is online): the caller delivers to
    /// the first candidate of the group it lets receive the message. No Local subscriptions of
    /// `publisher` are left out. Returns the number of copies queued here. So the usual cached
    /// case collects nothing per message.
    pub(crate) fn fan_out_cached(
        &self,
        message: &Message,
        publisher: &str,
        mut cached: impl FnMut(&Arc<Session>) -> Option<bool>,
        unresolved: &mut Vec<Target>,
        backlog: &mut Backlog,
    ) -> usize {
        let tree = self.tree.read();
        let mut delivered = 0;
        let mut members = Vec::new();
        for_each_target(
            &tree,
            &message.topic,
            publisher,
            |session, qos, rap, ids, shared| {
                if shared.is_none() {
                    match cached(session) {
                        Some(true) => {
                            let mut copy = message.for_subscriber(qos, message.retain && rap);
                            copy.subscription_ids = ids;
                            if session.deliver_noting(copy, backlog) {
                                delivered += 1;
                            }
                            return;
                        }
                        Some(false) => return,
                        None => {}
                    }
                }
                unresolved.push(Target {
                    session: session.clone(),
                    qos,
                    retain_as_published: rap,
                    subscription_ids: ids,
                    shared: shared.cloned(),
                });
            },
            |group, emit| {
                members.clear();
                group.candidates(None, false, &mut members);
                members.iter().for_each(|m| emit(m));
            },
        );
        delivered
    }

    /// The online members of shared group `key` (`$share/{group}/{filter}`) other than
    /// `exclude`, most preferred first (round robin), for redelivery.
    pub(crate) fn shared_candidates(
        &self,
        key: &Arc<ByteString>,
        exclude: u64,
        out: &mut Vec<Target>,
    ) {
        let tree = self.tree.read();
        let Some(group) = tree.group(key) else {
            return;
        };
        let mut members = Vec::new();
        group.candidates(Some(exclude), true, &mut members);
        out.extend(members.iter().map(|m| Target::member(m, &group.key)));
    }

    /// Whether shared group `key` has an online member other than `exclude`.
    pub(crate) fn shared_has_other_online(&self, key: &str, exclude: u64) -> bool {
        let tree = self.tree.read();
        tree.group(key).is_some_and(|g| {
            g.members
                .iter()
                .any(|m| m.session.id() != exclude && subscriptions::is_online(&m.session))
        })
    }

    /// Adds (or replaces) `session`'s subscription to `filter`. Returns true if it is new.
    pub(crate) fn subscribe(
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
    pub(crate) fn unsubscribe(&self, session: &Session, filter: &str) -> bool {
        let mut tree = self.tree.write();
        session.with_state(|st| st.subscriptions.remove(filter));
        tree.remove(filter, session.id())
    }

    /// Removes every subscription of `session` (clean session end, expiry, discard).
    pub(crate) fn remove_session(&self, session: &Session) {
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
    pub(crate) fn retained_matching(&self, filter: &str, out: &mut Vec<Message>) {
        self.retained.matching(filter, out);
    }

    /// The retained store.
    pub(crate) fn retained(&self) -> &Arc<dyn RetainedStore> {
        &self.retained
    }

    /// Number of subscriptions across all sessions.
    pub(crate) fn subscription_count(&self) -> usize {
        self.tree.read().len()
    }
}

/// Calls `f(session, qos, retain_as_published, subscription_ids, None)` once per session with
/// a non-shared subscription matching `topic`, merging that session's matching subscriptions;
/// then, for each matching shared group, `choose(group, emit)`, where `emit(member)` calls
/// `f(member's session, its QoS, its Retain As Published, its identifier, Some(group key))`.
fn for_each_target<'a>(
    tree: &'a SubscriptionTree,
    topic: &str,
    publisher: &str,
    mut f: impl FnMut(&'a Arc<Session>, QoS, bool, SubscriptionIds, Option<&'a Arc<ByteString>>),
    mut choose: impl FnMut(&'a SharedGroup, &mut dyn FnMut(&'a Subscriber)),
) {
    let mut hits: SmallVec<[&Subscriber; 8]> = SmallVec::new();
    let mut groups: SmallVec<[&SharedGroup; 2]> = SmallVec::new();
    tree.for_each_match(topic, &mut |hit| match hit {
        // [MQTT-3.8.3-3]: No Local, never to the publishing client's own subscription.
        Hit::One(s) => {
            if !(s.sub.options.no_local && s.session.client_id() == publisher) {
                hits.push(s);
            }
        }
        Hit::Shared(group) => groups.push(group),
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
        f(&first.session, qos, rap, ids, None);
    }
    for group in groups {
        choose(group, &mut |member| {
            let options = member.sub.options;
            let ids = member.sub.id.map(|id| Box::from([id]) as Box<[_]>);
            f(
                &member.session,
                options.qos,
                options.retain_as_published,
                ids,
                Some(&group.key),
            );
        });
    }
}

#[cfg(test)]
mod tests;

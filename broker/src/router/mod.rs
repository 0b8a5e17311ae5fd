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
use crate::session::{Session, Subscription};
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
    /// copies queued. This is the path without per-subscriber checks.
    pub(crate) fn fan_out(&self, message: &Message, publisher: &str) -> usize {
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
                if session.deliver(copy).is_ok() {
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
                            if session.deliver(copy).is_ok() {
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
mod tests {
    use std::collections::HashMap;

    use bytes::{Bytes, BytesMut};

    use super::*;
    use crate::codec::v5::SubscriptionId;
    use crate::config::QueueFullPolicy;
    use crate::retained::MemoryRetainedStore;
    use crate::session::{Owner, SessionLimits, SessionRegistry, SessionTerms};
    use crate::stats::Stats;

    struct Fixture {
        router: Router,
        sessions: SessionRegistry,
        next_connection: u64,
    }

    impl Fixture {
        fn new() -> Self {
            let stats = Arc::new(Stats::default());
            let limits = SessionLimits {
                max_inflight: 16,
                max_queued: 100,
                queue_full_policy: QueueFullPolicy::DropNewest,
            };
            Fixture {
                router: Router::new(Arc::new(MemoryRetainedStore::default())),
                sessions: SessionRegistry::new(limits, stats),
                next_connection: 1,
            }
        }

        /// An online, persistent session.
        fn online(&mut self, client_id: &str) -> Arc<Session> {
            self.next_connection += 1;
            let terms = SessionTerms {
                clean_start: false,
                ends_with_connection: false,
                expiry: None,
            };
            let owner = Owner::new(self.next_connection);
            self.sessions
                .attach(&ByteString::from(client_id), terms, owner)
                .session
        }

        fn go_offline(&self, session: &Arc<Session>) {
            let id = session.owner().expect("online").connection_id;
            assert_eq!(self.sessions.detach(session, id), Some(false));
        }

        fn sub(&self, session: &Arc<Session>, filter: &str, qos: QoS, id: Option<u32>) {
            let mut sub = Subscription::qos(qos);
            sub.id = id.and_then(SubscriptionId::new);
            self.router
                .subscribe(session, &ByteString::from(filter), sub);
        }

        fn publish(&self, topic: &str, qos: QoS) -> usize {
            let message = Message::new(topic.into(), Bytes::from_static(b"x"), qos, false);
            self.router.fan_out(&message, "publisher")
        }

        fn publish_checked(&self, topic: &str, qos: QoS) -> Vec<Target> {
            let message = Message::new(topic.into(), Bytes::from_static(b"x"), qos, false);
            let mut out = Vec::new();
            let queued = self
                .router
                .fan_out_cached(&message, "publisher", |_| None, &mut out);
            assert_eq!(queued, 0, "nothing is decided without verdicts");
            out
        }
    }

    #[test]
    fn cached_verdicts_deliver_or_skip_and_the_rest_is_left_to_the_caller() {
        let mut f = Fixture::new();
        let allowed = f.online("allowed");
        let denied = f.online("denied");
        let unknown = f.online("unknown");
        let member = f.online("member");
        for s in [&allowed, &denied, &unknown] {
            f.sub(s, "t/#", QoS::AtLeastOnce, None);
        }
        f.sub(&member, "$share/g/t/#", QoS::AtLeastOnce, None);
        let message = Message::new(
            "t/x".into(),
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            false,
        );
        let mut unresolved = Vec::new();
        let queued = f.router.fan_out_cached(
            &message,
            "publisher",
            |s| match s.client_id().as_ref() {
                "allowed" | "member" => Some(true),
                "denied" => Some(false),
                _ => None,
            },
            &mut unresolved,
        );
        assert_eq!(queued, 1);
        assert_eq!(allowed.queued_len(), 1);
        assert_eq!(denied.queued_len(), 0);
        let names: Vec<_> = unresolved
            .iter()
            .map(|t| (t.session.client_id().to_string(), t.shared.is_some()))
            .collect();
        assert_eq!(
            names,
            [("unknown".to_string(), false), ("member".to_string(), true)],
            "the undecided subscriber, then the group's candidates (never decided here)"
        );
        assert_eq!(member.queued_len(), 0);
    }

    /// What `session` has queued.
    fn queued(session: &Session) -> Vec<Message> {
        session.queued_for_test()
    }

    #[test]
    fn a_shared_group_gets_each_message_once_round_robin() {
        let mut f = Fixture::new();
        let members: Vec<_> = (0..3).map(|i| f.online(&format!("m{i}"))).collect();
        for m in &members {
            f.sub(m, "$share/g/a/+", QoS::AtLeastOnce, None);
        }
        for _ in 0..9 {
            assert_eq!(f.publish("a/b", QoS::AtLeastOnce), 1);
        }
        for m in &members {
            assert_eq!(m.queued_len(), 3, "{}", m.client_id());
            let copies = queued(m);
            assert!(
                copies
                    .iter()
                    .all(|c| c.shared_origin.as_deref().map(|k| &**k) == Some("$share/g/a/+"))
            );
        }
        assert_eq!(
            f.publish("b/b", QoS::AtLeastOnce),
            0,
            "matched by the inner filter only"
        );
        assert_eq!(f.publish("$share/g/a/b", QoS::AtLeastOnce), 0);
    }

    #[test]
    fn groups_and_plain_subscriptions_each_get_a_copy() {
        let mut f = Fixture::new();
        let a = f.online("a");
        let b = f.online("b");
        f.sub(&a, "$share/one/t/#", QoS::AtLeastOnce, Some(7));
        f.sub(&b, "$share/one/t/#", QoS::AtLeastOnce, Some(8));
        f.sub(&a, "$share/two/t/#", QoS::AtMostOnce, None);
        f.sub(&a, "t/x", QoS::ExactlyOnce, Some(9));
        // Plain copy for a, one copy for group "one" (a or b), one for "two" (a).
        assert_eq!(f.publish("t/x", QoS::ExactlyOnce), 3);
        let total = a.queued_len() + b.queued_len();
        assert_eq!(total, 3);
        let copies = queued(&a);
        let plain: Vec<_> = copies
            .iter()
            .filter(|c| c.shared_origin.is_none())
            .collect();
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].qos, QoS::ExactlyOnce);
        assert_eq!(
            plain[0].subscription_ids.as_deref(),
            Some(&[SubscriptionId::new(9).unwrap()][..])
        );
        let two: Vec<_> = copies
            .iter()
            .filter(|c| c.shared_origin.as_deref().map(|k| &**k) == Some("$share/two/t/#"))
            .collect();
        assert_eq!(two.len(), 1);
        assert_eq!(two[0].qos, QoS::AtMostOnce);
        assert_eq!(two[0].subscription_ids, None);
    }

    #[test]
    fn online_members_are_preferred_and_offline_ones_queue_only_when_alone() {
        let mut f = Fixture::new();
        let a = f.online("a");
        let b = f.online("b");
        let c = f.online("c");
        for m in [&a, &b, &c] {
            f.sub(m, "$share/g/t", QoS::AtLeastOnce, None);
        }
        f.go_offline(&b);
        for _ in 0..6 {
            assert_eq!(f.publish("t", QoS::AtLeastOnce), 1);
        }
        assert_eq!((a.queued_len(), b.queued_len(), c.queued_len()), (3, 0, 3));
        f.go_offline(&a);
        f.go_offline(&c);
        for _ in 0..3 {
            assert_eq!(f.publish("t", QoS::AtLeastOnce), 1);
        }
        assert_eq!(a.queued_len() + b.queued_len() + c.queued_len(), 9);
        assert_eq!(
            f.publish("t", QoS::AtMostOnce),
            0,
            "QoS 0 is not queued offline"
        );
        // The checked path lists candidates: online ones only, when there are some.
        let d = f.online("d");
        f.sub(&d, "$share/g/t", QoS::AtLeastOnce, None);
        let targets = f.publish_checked("t", QoS::AtLeastOnce);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].session.id(), d.id());
    }

    #[test]
    fn checked_path_candidates_rotate_and_group_together() {
        let mut f = Fixture::new();
        let a = f.online("a");
        let b = f.online("b");
        f.sub(&a, "$share/g/t", QoS::AtLeastOnce, None);
        f.sub(&b, "$share/g/t", QoS::AtLeastOnce, None);
        f.sub(&a, "t", QoS::AtLeastOnce, None);
        let mut firsts = HashMap::new();
        for _ in 0..4 {
            let targets = f.publish_checked("t", QoS::AtLeastOnce);
            assert_eq!(targets.len(), 3, "one plain target, two candidates");
            assert!(targets[0].shared.is_none());
            assert!(targets[1].same_group(&targets[2]));
            *firsts.entry(targets[1].session.id()).or_insert(0) += 1;
        }
        assert_eq!(firsts.values().copied().collect::<Vec<_>>(), vec![2, 2]);
    }

    #[test]
    fn unsubscribe_and_remove_session_leave_the_group() {
        let mut f = Fixture::new();
        let a = f.online("a");
        let b = f.online("b");
        f.sub(&a, "$share/g/t/#", QoS::AtLeastOnce, None);
        f.sub(&b, "$share/g/t/#", QoS::AtLeastOnce, None);
        f.sub(&a, "t/#", QoS::AtLeastOnce, None);
        assert_eq!(f.router.subscription_count(), 3);
        assert!(f.router.unsubscribe(&a, "$share/g/t/#"));
        assert!(!f.router.unsubscribe(&a, "$share/g/t/#"));
        assert!(!f.router.unsubscribe(&a, "$share/other/t/#"));
        for _ in 0..4 {
            f.publish("t/1", QoS::AtLeastOnce);
        }
        assert_eq!(
            (a.queued_len(), b.queued_len()),
            (4, 4),
            "a only through t/#"
        );
        f.router.remove_session(&b);
        assert_eq!(f.router.subscription_count(), 1);
        assert!(f.router.tree.read().group("$share/g/t/#").is_none());
        assert_eq!(f.publish("t/1", QoS::AtLeastOnce), 1);
    }

    #[test]
    fn shared_candidates_for_redelivery_are_other_online_members() {
        let mut f = Fixture::new();
        let a = f.online("a");
        let b = f.online("b");
        let c = f.online("c");
        for m in [&a, &b, &c] {
            f.sub(m, "$share/g/t", QoS::AtLeastOnce, Some(3));
        }
        f.go_offline(&c);
        let key = Arc::new(ByteString::from("$share/g/t"));
        assert!(f.router.shared_has_other_online(&key, a.id()));
        let mut out = Vec::new();
        f.router.shared_candidates(&key, a.id(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].session.id(), b.id());
        assert_eq!(out[0].subscription_ids.as_deref().map(<[_]>::len), Some(1));
        f.go_offline(&b);
        assert!(!f.router.shared_has_other_online(&key, a.id()));
        assert!(!f.router.shared_has_other_online("$share/nope/t", a.id()));
    }

    #[test]
    fn redelivery_takes_unacked_qos1_and_queued_shared_messages() {
        let mut f = Fixture::new();
        let a = f.online("a");
        f.sub(&a, "$share/g/t", QoS::ExactlyOnce, None);
        f.sub(&a, "t", QoS::AtLeastOnce, None);
        f.publish("t", QoS::AtLeastOnce); // one shared, one plain
        f.publish("t", QoS::ExactlyOnce); // one shared QoS 2, one plain
        let mut out = crate::outbound::Outbound::v4();
        let mut buf = BytesMut::new();
        assert_eq!(a.fill_outbound(&mut buf, usize::MAX, &mut out), 4);
        f.publish("t", QoS::AtLeastOnce); // queued: one shared, one plain
        let connection = a.owner().unwrap().connection_id;
        assert!(
            a.take_shared(connection + 1, |_| true).is_empty(),
            "not the owner"
        );
        let taken = a.take_shared(connection, |k| &**k == "$share/g/t");
        // The sent shared QoS 1 and the queued shared one; the sent QoS 2 stays.
        assert_eq!(taken.len(), 2);
        assert!(
            taken
                .iter()
                .all(|m| m.qos == QoS::AtLeastOnce && m.shared_origin.is_some())
        );
        assert_eq!(a.queued_len(), 1);
        assert_eq!(a.info().inflight, 3);
    }
}

//! Unit tests of the parent module.

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
            max_queued_bytes: 1 << 20,
            queue_full_policy: QueueFullPolicy::DropNewest,
        };
        Fixture {
            router: Router::new(Arc::new(MemoryRetainedStore::default())),
            sessions: SessionRegistry::new(limits, 1 << 30, stats),
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
        self.router.fan_out(&message, "publisher", &mut Vec::new())
    }

    fn publish_checked(&self, topic: &str, qos: QoS) -> Vec<Target> {
        let message = Message::new(topic.into(), Bytes::from_static(b"x"), qos, false);
        let mut out = Vec::new();
        let queued =
            self.router
                .fan_out_cached(&message, "publisher", |_| None, &mut out, &mut Vec::new());
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
        &mut Vec::new(),
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

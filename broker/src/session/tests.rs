//! The delivery policy of a session's queue (`Session::deliver`, see `flow`): what is queued,
//! what waits, what is dropped, per QoS, connection state and `queue-full-policy`.

use std::sync::Arc;

use bytes::Bytes;

use super::*;

const MAX_QUEUED: usize = 3;

fn session(policy: QueueFullPolicy, budget: usize, online: bool) -> Arc<Session> {
    let limits = SessionLimits {
        max_inflight: 1,
        max_queued: MAX_QUEUED,
        max_queued_bytes: 1 << 20,
        queue_full_policy: policy,
    };
    let session = Arc::new(Session::new(
        1,
        "s".into(),
        false,
        limits,
        Arc::new(Stats::default()),
        Arc::new(QueueBudget::new(budget)),
    ));
    if online {
        session.with_state(|st| st.owner = Some(Owner::new(7)));
    }
    session
}

fn msg(payload: &'static str, qos: QoS) -> Message {
    Message::new(
        "t".into(),
        Bytes::from_static(payload.as_bytes()),
        qos,
        false,
    )
}

fn queued(session: &Session) -> Vec<&'static str> {
    session
        .queued_for_test()
        .iter()
        .map(|m| match &m.payload[..] {
            b"a" => "a",
            b"b" => "b",
            b"c" => "c",
            b"d" => "d",
            _ => "?",
        })
        .collect()
}

fn fill(session: &Session, qos: QoS) {
    for p in ["a", "b", "c"] {
        assert_eq!(session.deliver(msg(p, qos)), Ok(Queued::Ok));
    }
}

#[test]
fn qos1_for_a_connected_client_is_queued_over_the_bound_and_asks_the_publisher_to_wait() {
    let s = session(QueueFullPolicy::DropNewest, 1 << 30, true);
    fill(&s, QoS::AtLeastOnce);
    assert!(s.has_drained(), "not pressed yet");
    assert_eq!(s.deliver(msg("d", QoS::AtLeastOnce)), Ok(Queued::Full));
    assert_eq!(queued(&s), ["a", "b", "c", "d"]);
    assert!(!s.has_drained());
    // Offline, the publishers held by it go on.
    s.with_state(|st| st.owner = None);
    assert!(s.has_drained());
}

#[test]
fn drop_oldest_never_evicts_a_promised_qos1_message_of_a_connected_client() {
    let s = session(QueueFullPolicy::DropOldest, 1 << 30, true);
    fill(&s, QoS::AtLeastOnce);
    assert_eq!(
        s.deliver(msg("d", QoS::AtMostOnce)),
        Err(DropReason::QueueFull)
    );
    assert_eq!(queued(&s), ["a", "b", "c"]);

    let s = session(QueueFullPolicy::DropOldest, 1 << 30, true);
    fill(&s, QoS::AtMostOnce);
    assert_eq!(s.deliver(msg("d", QoS::AtMostOnce)), Ok(Queued::Ok));
    assert_eq!(queued(&s), ["b", "c", "d"]);
}

#[test]
fn an_offline_session_drops_by_the_policy_whatever_the_qos() {
    let s = session(QueueFullPolicy::DropNewest, 1 << 30, false);
    fill(&s, QoS::AtLeastOnce);
    assert_eq!(
        s.deliver(msg("d", QoS::ExactlyOnce)),
        Err(DropReason::QueueFull)
    );
    assert_eq!(queued(&s), ["a", "b", "c"]);
    assert_eq!(
        s.deliver(msg("d", QoS::AtMostOnce)),
        Err(DropReason::OfflineQos0)
    );

    let s = session(QueueFullPolicy::DropOldest, 1 << 30, false);
    fill(&s, QoS::AtLeastOnce);
    assert_eq!(s.deliver(msg("d", QoS::AtLeastOnce)), Ok(Queued::Ok));
    assert_eq!(queued(&s), ["b", "c", "d"]);
}

#[test]
fn the_budget_bounds_offline_queues_at_three_quarters_and_presses_online_ones() {
    let one = flow::cost(&msg("a", QoS::AtLeastOnce));
    // Room for two messages offline (3/4 of 3), three online.
    let budget = 3 * one;
    let s = session(QueueFullPolicy::DropNewest, budget, false);
    assert_eq!(s.deliver(msg("a", QoS::AtLeastOnce)), Ok(Queued::Ok));
    assert_eq!(s.deliver(msg("b", QoS::AtLeastOnce)), Ok(Queued::Ok));
    assert_eq!(
        s.deliver(msg("c", QoS::AtLeastOnce)),
        Err(DropReason::MemoryBudget)
    );
    s.with_state(|st| st.owner = Some(Owner::new(7)));
    assert_eq!(s.deliver(msg("c", QoS::AtLeastOnce)), Ok(Queued::Ok));
    assert_eq!(
        s.deliver(msg("d", QoS::AtMostOnce)),
        Err(DropReason::QueueFull),
        "full by count first"
    );
    assert_eq!(s.budget.used(), budget);
    // A session that ends gives its bytes back.
    let shared = s.budget.clone();
    drop(s);
    assert_eq!(shared.used(), 0);
}

#[test]
fn replayed_retained_messages_are_bounded_like_qos0() {
    let s = session(QueueFullPolicy::DropNewest, 1 << 30, true);
    fill(&s, QoS::AtLeastOnce);
    assert_eq!(
        s.deliver_replay(msg("d", QoS::AtLeastOnce)),
        Err(DropReason::QueueFull)
    );
    assert!(s.has_drained(), "a replay presses nobody");
}

#[test]
fn draining_below_three_quarters_releases_the_publishers_and_the_budget() {
    let s = session(QueueFullPolicy::DropNewest, 1 << 30, true);
    fill(&s, QoS::AtMostOnce);
    assert_eq!(s.deliver(msg("d", QoS::AtLeastOnce)), Ok(Queued::Full));
    let mut out = crate::outbound::Outbound::v4();
    let mut buf = BytesMut::new();
    // QoS 0 first: three leave at once (the window of 1 then holds the QoS 1 one).
    let written = s.fill_outbound(&mut buf, usize::MAX, &mut out);
    assert_eq!(written, 4);
    assert!(s.has_drained());
    assert_eq!(s.budget.used(), 0);
}

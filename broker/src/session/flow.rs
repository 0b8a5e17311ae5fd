//! Flow control of session queues: the broker-wide byte budget all queues draw from, the cost
//! of a queued message, and the wake-up of publishers waiting for a full queue to drain.
//!
//! The policy (see `Session::deliver`, and `backpressure` for the waiting side):
//! - a QoS 1/2 message for a connected subscriber is always queued; when that puts the queue
//!   over its bound (`max-queued-messages`, `max-queued-bytes`) or the broker over its budget
//!   (`queued-bytes-budget`), the delivery reports [`Queued::Full`] and the publisher waits,
//!   before acknowledging, until the queue has drained to [`DRAINED_NUM`]/[`DRAINED_DEN`] of
//!   its bounds and the budget is back under its limit (bounded by `slow-consumer-timeout`);
//! - a QoS 1/2 message for an offline session is dropped when its queue is full or when queues
//!   hold [`OFFLINE_NUM`]/[`OFFLINE_DEN`] of the budget: the rest is kept for connected
//!   subscribers, whose queues drain;
//! - a QoS 0 message is dropped when the queue is full or the budget spent
//!   (`queue-full-policy` says which one).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::message::Message;

/// A pressed queue counts as drained again at this fraction of its bounds (hysteresis: the
/// publishers it held then deliver a quarter of the queue before they can be held again,
/// instead of waking and waiting once per message).
pub(crate) const DRAINED_NUM: usize = 3;
/// See [`DRAINED_NUM`].
pub(crate) const DRAINED_DEN: usize = 4;

/// Offline sessions may fill this fraction of the budget.
const OFFLINE_NUM: usize = 3;
/// See [`OFFLINE_NUM`].
const OFFLINE_DEN: usize = 4;

/// What a delivery did with a message it queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Queued within the bounds.
    Ok,
    /// Queued, but the subscriber's queue is now over its bounds or the broker over its budget:
    /// the publisher should wait for it to drain before acknowledging (flow control).
    Full,
}

/// The bytes a queued message is counted for: its topic and payload and the message itself.
/// Payloads are shared between the copies of one publish, so this counts them once per
/// subscriber, which errs on the safe side.
pub(crate) fn cost(message: &Message) -> usize {
    message.topic.len() + message.payload.len() + std::mem::size_of::<Message>()
}

/// Bytes queued by all sessions, against `queued-bytes-budget`, and the publishers waiting for
/// queues to drain. One per broker, shared by every session.
#[derive(Debug)]
pub(crate) struct QueueBudget {
    used: AtomicUsize,
    limit: usize,
    /// Set when a delivery took the budget over its limit: the release that brings it back
    /// under wakes the waiting publishers.
    exceeded: AtomicBool,
    /// Woken (every waiter) when a pressed queue drained, a pressed session went offline, or
    /// the budget came back under its limit. Waiters check their own condition again.
    drained: Notify,
}

impl QueueBudget {
    /// An empty budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        QueueBudget {
            used: AtomicUsize::new(0),
            limit,
            exceeded: AtomicBool::new(false),
            drained: Notify::new(),
        }
    }

    /// Bytes queued now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether queues hold more than the budget.
    pub(crate) fn is_over(&self) -> bool {
        self.used() > self.limit
    }

    /// Whether `cost` more bytes would take the budget over its limit.
    pub(crate) fn would_exceed(&self, cost: usize) -> bool {
        self.used() + cost > self.limit
    }

    /// Whether an offline session may queue `cost` more bytes.
    pub(crate) fn offline_room(&self, cost: usize) -> bool {
        self.used() + cost <= self.limit / OFFLINE_DEN * OFFLINE_NUM
    }

    /// Counts `cost` bytes queued; `over` says whether this delivery found the budget spent (so
    /// the release that brings it back wakes the publishers).
    pub(crate) fn take(&self, cost: usize, over: bool) {
        self.used.fetch_add(cost, Ordering::Relaxed);
        if over {
            self.exceeded.store(true, Ordering::Relaxed);
        }
    }

    /// Counts `cost` bytes no longer queued.
    pub(crate) fn release(&self, cost: usize) {
        if cost == 0 {
            return;
        }
        let before = self.used.fetch_sub(cost, Ordering::Relaxed);
        if before.saturating_sub(cost) <= self.limit
            && self.exceeded.load(Ordering::Relaxed)
            && self.exceeded.swap(false, Ordering::Relaxed)
        {
            self.wake();
        }
    }

    /// Wakes every publisher waiting for a queue to drain.
    pub(crate) fn wake(&self) {
        self.drained.notify_waiters();
    }

    /// Resolves at the next [`wake`](Self::wake) after it was made (enable it, then check the
    /// condition, then await).
    pub(crate) fn drained(&self) -> Notified<'_> {
        self.drained.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_below_the_limit_wakes_once_after_an_excess() {
        let budget = QueueBudget::new(100);
        budget.take(150, true);
        assert!(budget.is_over());
        let waiter = budget.drained();
        tokio::pin!(waiter);
        waiter.as_mut().enable();
        budget.release(20);
        assert!(budget.is_over());
        budget.release(40);
        assert!(!budget.is_over());
        assert_eq!(budget.used(), 90);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(waiter.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn offline_sessions_keep_a_quarter_free() {
        let budget = QueueBudget::new(1000);
        budget.take(700, false);
        assert!(budget.offline_room(50));
        assert!(!budget.offline_room(51));
        assert!(!budget.would_exceed(300));
        assert!(budget.would_exceed(301));
    }
}

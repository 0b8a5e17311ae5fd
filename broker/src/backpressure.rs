//! Backpressure: a publisher whose message left a subscriber's queue over its bounds waits,
//! before acknowledging (and before reading its next packet), until that queue has drained.
//!
//! This is how an acknowledged QoS 1/2 message is never dropped for a connected subscriber
//! (the policy is in `session::flow`): the message is queued whatever the queue holds, and the
//! publisher is slowed to the pace of its slowest subscriber instead, as HiveMQ's overload
//! protection and TCP itself do. The publisher's socket is not read while it waits, so its
//! client feels ordinary TCP flow control, and its PUBACK / PUBREC comes once there is room.
//!
//! The wait is bounded by `slow-consumer-timeout`: a subscriber whose queue has not drained
//! by then is disconnected as a slow consumer (MQTT 5: DISCONNECT 0x97 Quota exceeded), its
//! persistent session kept, and the publisher goes on. One stalled consumer therefore holds a
//! publisher for at most that long. A wait for the broker-wide budget alone
//! (`queued-bytes-budget`) disconnects nobody: the publisher goes on at the deadline.
//! A broker shutdown, or a takeover or kick of the publisher, ends the wait at once.
//!
//! Who waits: a client's PUBLISH, a plugin's publish control (its control stream is not read
//! meanwhile) and the admin API's `Publish`. Wills and `$SYS` updates do not (one will per
//! closing connection; `$SYS` is QoS 0). Retained messages replayed at SUBSCRIBE are bounded
//! like QoS 0 instead (`Session::deliver_replay`): the queue they fill is drained by the very
//! connection that would wait.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use crate::context::BrokerContext;
use crate::session::{Backlog, Owner, Session};
use crate::stats::Stats;

/// Waits until every session of `backlog` has drained (or gone offline) and the queue budget
/// is back under its limit, for at most `slow-consumer-timeout`; then disconnects, as slow
/// consumers, the subscribers still holding it. Returns early when the broker shuts down or
/// `publisher` (the waiting connection's owner) is kicked.
///
/// # Cancel safety
/// Cancel safe: it only waits (and kicks at its deadline).
pub(crate) async fn wait_for_room(
    ctx: &BrokerContext,
    publisher: Option<&Owner>,
    mut backlog: Backlog,
) {
    backlog.sort_unstable_by_key(|s| s.id());
    backlog.dedup_by_key(|s| s.id());
    let budget = ctx.sessions.budget();
    let started = Instant::now();
    let deadline = started + ctx.config.limits.slow_consumer_timeout;
    Stats::add(&ctx.stats.publisher_waits, 1);
    let timed_out = loop {
        // Made before the check: a wake-up between the check and the wait is not lost.
        let drained = budget.drained();
        tokio::pin!(drained);
        drained.as_mut().enable();
        backlog.retain(|session| !session.has_drained());
        if backlog.is_empty() && !budget.is_over() {
            break false;
        }
        tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => break false,
            () = kicked(publisher) => break false,
            () = drained => {}
            () = tokio::time::sleep_until(deadline) => break true,
        }
    };
    let waited = started.elapsed();
    Stats::add(&ctx.stats.publisher_wait_micros, micros(waited));
    if timed_out {
        for session in &backlog {
            slow_consumer(ctx, session);
        }
    } else {
        debug!(?waited, "publisher waited for subscriber queues to drain");
    }
}

/// Resolves when `owner` is kicked; never without one.
async fn kicked(owner: Option<&Owner>) {
    match owner {
        Some(owner) => owner.kicked().await,
        None => std::future::pending().await,
    }
}

/// Disconnects `session`'s client as a slow consumer, if its queue is still over its bounds.
fn slow_consumer(ctx: &BrokerContext, session: &Session) {
    if session.kick_slow_consumer() {
        Stats::add(&ctx.stats.slow_consumers, 1);
        warn!(
            client_id = %session.client_id(),
            timeout = ?ctx.config.limits.slow_consumer_timeout,
            "disconnecting a slow consumer: its queue did not drain while publishers waited \
             (a persistent session is kept)"
        );
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

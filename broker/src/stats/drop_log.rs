//! The log of dropped messages: every drop is logged, rate-limited per client and reason.
//!
//! The first drop of a client for a reason is logged at once (with its topic and QoS); later
//! ones are summed and logged by [`DropLog::flush`], which the broker calls every
//! [`DROP_LOG_INTERVAL`]. So a client whose queue overflows for an hour gives two lines per
//! interval, not one per message, and none is silent.
//!
//! Bounded: at most [`MAX_CLIENTS`] clients are summed one by one per interval; drops of further
//! clients are summed together and logged as one line.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{info, warn};

use super::DropReason;

/// How often the sums are logged.
pub(crate) const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Clients logged and summed one by one per interval: at most about two lines per client and
/// reason every interval, for this many clients; the rest are summed together in one line per
/// reason (a broadcast to thousands of offline sessions must not flood the log).
const MAX_CLIENTS: usize = 100;

/// Drops not yet logged, per client and reason (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct DropLog {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Client id → drops after the first, per reason (index: [`DropReason::index`]).
    clients: HashMap<Box<str>, [u64; DropReason::COUNT]>,
    /// Drops of clients beyond [`MAX_CLIENTS`], per reason.
    others: [u64; DropReason::COUNT],
}

impl DropLog {
    /// Records one message for `client_id` dropped for `reason`: logged now if it is the
    /// client's first for that reason in this interval, else summed.
    pub(crate) fn record(&self, client_id: &str, reason: DropReason, topic: &str, qos: u8) {
        let index = reason.index();
        let first = {
            let mut pending = self.pending.lock();
            let pending = &mut *pending;
            if let Some(counts) = pending.clients.get_mut(client_id) {
                counts[index] += 1;
                counts[index] == 1
            } else if pending.clients.len() >= MAX_CLIENTS {
                pending.others[index] += 1;
                false
            } else {
                let mut counts = [0; DropReason::COUNT];
                counts[index] = 1;
                pending.clients.insert(Box::from(client_id), counts);
                true
            }
        };
        if !first {
            return;
        }
        // The first of this client and reason in the interval (the count of 1 stands for it).
        log(
            reason,
            client_id,
            format_args!(
                "message dropped ({}); more are summed up every {}s",
                reason.describe(),
                DROP_LOG_INTERVAL.as_secs()
            ),
            Some((topic, qos)),
            1,
        );
    }

    /// Logs the drops summed since the last flush (those after each client's first) and starts
    /// a new interval.
    pub(crate) fn flush(&self) {
        let Pending { clients, others } = std::mem::take(&mut *self.pending.lock());
        for (client_id, counts) in clients {
            for reason in DropReason::ALL {
                // The first was logged when it happened.
                let more = counts[reason.index()].saturating_sub(1);
                if more > 0 {
                    log(
                        reason,
                        &client_id,
                        format_args!("more messages dropped ({})", reason.describe()),
                        None,
                        more,
                    );
                }
            }
        }
        for reason in DropReason::ALL {
            let n = others[reason.index()];
            if n > 0 {
                log(
                    reason,
                    "(other clients)",
                    format_args!("messages dropped ({})", reason.describe()),
                    None,
                    n,
                );
            }
        }
    }
}

/// Logs at warn, except the drops MQTT itself calls for (QoS 0 for an offline client, an
/// expired message), at info.
fn log(
    reason: DropReason,
    client_id: &str,
    what: std::fmt::Arguments<'_>,
    message: Option<(&str, u8)>,
    count: u64,
) {
    let (topic, qos) = message.unzip();
    let label = reason.label();
    match reason {
        DropReason::OfflineQos0 | DropReason::Expired => {
            info!(client_id, reason = label, count, topic, qos, "{what}")
        }
        _ => warn!(client_id, reason = label, count, topic, qos, "{what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_drop_is_logged_and_the_rest_summed_per_client_and_reason() {
        let log = DropLog::default();
        log.record("a", DropReason::QueueFull, "t", 1);
        log.record("a", DropReason::QueueFull, "t", 1);
        log.record("a", DropReason::Expired, "t", 1);
        log.record("b", DropReason::QueueFull, "t", 0);
        {
            let pending = log.pending.lock();
            let a = pending.clients["a"];
            assert_eq!(a[DropReason::QueueFull.index()], 2);
            assert_eq!(a[DropReason::Expired.index()], 1);
            assert_eq!(pending.clients["b"][DropReason::QueueFull.index()], 1);
        }
        log.flush();
        assert!(log.pending.lock().clients.is_empty());
    }

    #[test]
    fn clients_beyond_the_bound_are_summed_together() {
        let log = DropLog::default();
        for i in 0..MAX_CLIENTS + 5 {
            log.record(&i.to_string(), DropReason::QueueFull, "t", 1);
        }
        let pending = log.pending.lock();
        assert_eq!(pending.clients.len(), MAX_CLIENTS);
        assert_eq!(pending.others[DropReason::QueueFull.index()], 5);
    }
}

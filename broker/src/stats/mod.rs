//! Broker-wide counters behind `$SYS` (and, later, the metrics endpoint).
//!
//! Plain relaxed atomics: each is a monotonic count or a gauge read for reporting only, so no
//! ordering between them is needed.

mod drop_log;

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use drop_log::{DROP_LOG_INTERVAL, DropLog};

/// Broker-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Clients currently connected (CONNACK accepted, not yet closed).
    pub(crate) clients_connected: AtomicU64,
    /// Connections that completed CONNECT since start.
    pub(crate) clients_total: AtomicU64,
    /// CONNECTs refused with a non-zero CONNACK.
    pub(crate) connects_refused: AtomicU64,
    /// Packets received from clients.
    pub(crate) packets_received: AtomicU64,
    /// Packets sent to clients.
    pub(crate) packets_sent: AtomicU64,
    /// Bytes received from clients.
    pub(crate) bytes_received: AtomicU64,
    /// Bytes sent to clients.
    pub(crate) bytes_sent: AtomicU64,
    /// PUBLISH packets received from clients.
    pub(crate) publish_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub(crate) publish_sent: AtomicU64,
    /// Messages dropped because a session queue was full.
    pub(crate) dropped_queue_full: AtomicU64,
    /// Messages dropped because session queues together held the `queued-bytes-budget`.
    pub(crate) dropped_memory_budget: AtomicU64,
    /// Subscribers disconnected because their queue did not drain within
    /// `slow-consumer-timeout`.
    pub(crate) slow_consumers: AtomicU64,
    /// Publishers that waited for a full subscriber queue (flow control), and how long in total.
    pub(crate) publisher_waits: AtomicU64,
    /// Microseconds publishers spent waiting for full queues, in total.
    pub(crate) publisher_wait_micros: AtomicU64,
    /// QoS 0 messages dropped for offline clients.
    pub(crate) dropped_offline_qos0: AtomicU64,
    /// MQTT 5 messages whose expiry interval passed before they could be sent.
    pub(crate) dropped_expired: AtomicU64,
    /// MQTT 5 messages larger than the subscriber's Maximum Packet Size.
    pub(crate) dropped_too_large: AtomicU64,
    /// Connections closed because of a malformed or protocol-violating packet.
    pub(crate) protocol_errors: AtomicU64,
    /// Packets and bytes per packet type, both directions (for the metrics).
    pub(crate) by_type: PacketTypeCounters,
    /// The rate-limited log of dropped messages.
    pub(crate) drop_log: DropLog,
}

/// Packets and their bytes (fixed header included) per packet type, indexed by the type
/// nibble (1 = CONNECT ... 15 = AUTH; 0 unused). Unlike [`Stats::packets_received`], CONNECT
/// counts too.
#[derive(Debug, Default)]
pub(crate) struct PacketTypeCounters {
    /// Packets decoded from clients.
    pub(crate) packets_received: [AtomicU64; 16],
    /// Bytes of the packets decoded from clients.
    pub(crate) bytes_received: [AtomicU64; 16],
    /// Packets queued for clients.
    pub(crate) packets_sent: [AtomicU64; 16],
    /// Bytes of the packets queued for clients.
    pub(crate) bytes_sent: [AtomicU64; 16],
}

impl Stats {
    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads `counter`.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one message dropped for `client_id` and logs it (rate-limited, see [`DropLog`]).
    pub(crate) fn dropped(&self, reason: DropReason, client_id: &str, topic: &str, qos: u8) {
        self.dropped_n(reason, 1);
        self.drop_log.record(client_id, reason, topic, qos);
    }

    /// Counts `n` dropped messages.
    pub(crate) fn dropped_n(&self, reason: DropReason, n: u64) {
        let counter = match reason {
            DropReason::QueueFull => &self.dropped_queue_full,
            DropReason::MemoryBudget => &self.dropped_memory_budget,
            DropReason::OfflineQos0 => &self.dropped_offline_qos0,
            DropReason::Expired => &self.dropped_expired,
            DropReason::TooLarge => &self.dropped_too_large,
        };
        Stats::add(counter, n);
    }

    /// Messages dropped for any reason.
    pub(crate) fn dropped_total(&self) -> u64 {
        Stats::get(&self.dropped_queue_full)
            + Stats::get(&self.dropped_memory_budget)
            + Stats::get(&self.dropped_offline_qos0)
            + Stats::get(&self.dropped_expired)
            + Stats::get(&self.dropped_too_large)
    }
}

/// Why a message was not queued for a subscriber (`Session::deliver`), as counted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// QoS 0 message for a client that is offline (not queued, as mosquitto does by default).
    OfflineQos0,
    /// The session queue was full (`max-queued-messages` or `max-queued-bytes`): a QoS 0
    /// message (see `queue-full-policy`) or one for an offline session.
    QueueFull,
    /// Session queues together held the `queued-bytes-budget`: a QoS 0 message, or one for an
    /// offline session.
    MemoryBudget,
    /// The MQTT 5 message expiry interval passed before the message could be sent.
    Expired,
    /// The message is larger than the client's MQTT 5 Maximum Packet Size.
    TooLarge,
}

impl DropReason {
    /// Every reason, in the order of [`index`](Self::index).
    pub(crate) const ALL: [DropReason; 5] = [
        DropReason::OfflineQos0,
        DropReason::QueueFull,
        DropReason::MemoryBudget,
        DropReason::Expired,
        DropReason::TooLarge,
    ];
    /// How many reasons there are.
    pub(crate) const COUNT: usize = Self::ALL.len();

    /// A dense index, for tables per reason.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The `reason` label of the metric and the log.
    pub(crate) fn label(self) -> &'static str {
        match self {
            DropReason::OfflineQos0 => "offline_qos0",
            DropReason::QueueFull => "queue_full",
            DropReason::MemoryBudget => "memory_budget",
            DropReason::Expired => "expired",
            DropReason::TooLarge => "too_large",
        }
    }

    /// What happened, for a human.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            DropReason::OfflineQos0 => "QoS 0 for an offline client",
            DropReason::QueueFull => "the client's queue is full",
            DropReason::MemoryBudget => "the broker's queued-bytes-budget is spent",
            DropReason::Expired => "its message expiry interval passed",
            DropReason::TooLarge => "larger than the client's maximum packet size",
        }
    }
}

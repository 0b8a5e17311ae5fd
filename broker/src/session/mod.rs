//! Sessions: the state of one client id that outlives a network connection — subscriptions,
//! the queue of messages not yet sent, the outgoing QoS 1/2 window, and incoming QoS 2 ids.
//!
//! Publishers on any connection push into a subscriber's session ([`Session::deliver`]) under a
//! short mutex and wake the connection that owns it; that connection drains the queue into its
//! write buffer ([`Session::fill_outbound`]). The same queue holds messages while the client is
//! offline, so online and offline delivery are one mechanism.

mod flow;
mod outgoing;
mod owner;
mod registry;
mod subscription;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use bytestring::ByteString;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::codec::{PacketId, ProtocolVersion, QoS, v4};
use crate::config::QueueFullPolicy;
use crate::message::Message;
use crate::outbound::{Encoded, Outbound};
use crate::plugin::cache::TopicCache;
use crate::stats::{DropReason, Stats};

pub(crate) use flow::{QueueBudget, Queued};

/// Sessions whose queue a delivery left over its bounds: the queues a publisher waits for
/// before acknowledging (see [`flow`]).
pub(crate) type Backlog = Vec<Arc<Session>>;
pub(crate) use outgoing::{Awaiting, OutgoingWindow};
pub(crate) use owner::Owner;
pub(crate) use registry::{Attached, SessionRegistry, SessionTerms};
pub(crate) use subscription::Subscription;

/// Whether a publisher was promised a delivery (see [`Session::deliver_replay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Promise {
    /// A message a publisher has been (or will be) acknowledged for.
    Acked,
    /// A retained message replayed at SUBSCRIBE.
    BestEffort,
}

/// An empty queue whose buffer holds more messages than this gives it back.
const QUEUE_SHRINK_ABOVE: usize = 64;

/// Per-session limits, copied from the `limits` section of the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// Unacknowledged outgoing QoS 1/2 messages per client (`max-inflight`).
    pub(crate) max_inflight: u16,
    /// Messages waiting to be sent, online or offline (`max-queued-messages`).
    pub(crate) max_queued: usize,
    /// Bytes of messages waiting to be sent (`max-queued-bytes`, see [`flow::cost`]).
    pub(crate) max_queued_bytes: usize,
    /// What to drop when the queue is full (`queue-full-policy`).
    pub(crate) queue_full_policy: QueueFullPolicy,
}

/// Facts about the connection that attached to a session last, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionInfo {
    /// The client's address.
    pub(crate) remote_addr: SocketAddr,
    /// The protocol version of its CONNECT.
    pub(crate) protocol: ProtocolVersion,
    /// Keep alive in seconds, from its CONNECT.
    pub(crate) keep_alive: u16,
    /// When the connection was accepted (CONNACK sent).
    pub(crate) since: SystemTime,
}

/// The handle of a will waiting for its MQTT 5 Will Delay Interval.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingWill {
    cancel: CancellationToken,
    fire: CancellationToken,
}

impl PendingWill {
    /// A handle whose `cancel` also follows `parent` (the broker's shutdown).
    pub(crate) fn child_of(parent: &CancellationToken) -> Self {
        PendingWill {
            cancel: parent.child_token(),
            fire: CancellationToken::new(),
        }
    }

    /// Do not send the will: a connection resumed the session ([MQTT-3.1.3-9]).
    pub(crate) fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Send the will now: the session ended before the delay (§3.1.3.2.2).
    pub(crate) fn fire(&self) {
        self.fire.cancel();
    }

    /// Resolves to `true` when the will is to be sent now, `false` when it is cancelled.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(crate) async fn decided(&self) -> bool {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => false,
            () = self.fire.cancelled() => true,
        }
    }
}

/// A copy of a session's state, for the admin API ([`Session::info`]).
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    /// The client identifier.
    pub(crate) client_id: ByteString,
    /// User name of the current (or last) connection.
    pub(crate) username: Option<ByteString>,
    /// Whether a connection is attached now.
    pub(crate) connected: bool,
    /// Listener of the current (or last) connection.
    pub(crate) listener: Arc<str>,
    /// The current (or last) connection.
    pub(crate) connection: Option<ConnectionInfo>,
    /// Clean session flag of the connection that created or last resumed the session.
    pub(crate) clean: bool,
    /// Subscriptions: filter and granted QoS, in no particular order.
    pub(crate) subscriptions: Vec<(ByteString, QoS)>,
    /// Outgoing QoS 1/2 messages sent and not acknowledged yet.
    pub(crate) inflight: usize,
    /// Messages queued and not sent yet.
    pub(crate) queued: usize,
}

/// A set of packet identifiers, allocated only once one is added: most sessions never see
/// an incoming QoS 2 message, and every session carries this (bench: RSS per idle connection).
#[derive(Debug, Default)]
// Boxed on purpose: an empty `HashSet` takes 48 bytes in every session, the box 8.
#[allow(clippy::box_collection)]
pub(crate) struct PacketIds(Option<Box<HashSet<PacketId>>>);

impl PacketIds {
    /// Whether `id` is in the set.
    pub(crate) fn contains(&self, id: &PacketId) -> bool {
        self.0.as_ref().is_some_and(|set| set.contains(id))
    }

    /// Number of identifiers in the set.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |set| set.len())
    }

    /// Adds `id`; `false` if it was there already.
    pub(crate) fn insert(&mut self, id: PacketId) -> bool {
        self.0.get_or_insert_with(Box::default).insert(id)
    }

    /// Removes `id`; `false` if it was not there. The set stays allocated: a client that sends
    /// QoS 2 messages keeps sending them.
    pub(crate) fn remove(&mut self, id: &PacketId) -> bool {
        self.0.as_mut().is_some_and(|set| set.remove(id))
    }
}

/// One client id's session. Shared as `Arc<Session>` by the registry, the subscription tree and
/// the owning connection.
#[derive(Debug)]
pub(crate) struct Session {
    id: u64,
    client_id: ByteString,
    /// `max-queued-messages`, capped at `u32::MAX` (8 bytes with the policy instead of the 16
    /// of [`SessionLimits`]: every session carries them).
    max_queued: u32,
    /// `max-queued-bytes`, capped at `u32::MAX`.
    max_queued_bytes: u32,
    queue_full_policy: QueueFullPolicy,
    state: Mutex<SessionState>,
    wake: Notify,
    stats: Arc<Stats>,
    budget: Arc<QueueBudget>,
    decisions: TopicCache,
}

impl Drop for Session {
    /// Gives the bytes still queued back to the budget.
    fn drop(&mut self) {
        self.budget.release(self.state.get_mut().queued_bytes);
    }
}

/// The mutable part of a session. Locked only for short, await-free sections.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// The session ends when its connection does: clean session 1 (3.1.1), or a Session
    /// Expiry Interval of 0 (MQTT 5).
    pub(crate) clean: bool,
    /// How long the session outlives its connection once offline; `None` means forever.
    /// Unused while `clean`.
    pub(crate) expiry: Option<Duration>,
    /// A will waiting for its MQTT 5 Will Delay Interval; cancelled when a connection takes
    /// the session again ([MQTT-3.1.3-9]).
    pub(crate) pending_will: Option<Box<PendingWill>>,
    /// Why the admin API or a plugin disconnected the client: the MQTT 5 reason string of
    /// the DISCONNECT it gets.
    pub(crate) kick_reason: Option<Box<str>>,
    /// Topic filter (as subscribed, `$share/...` included) → subscription.
    pub(crate) subscriptions: HashMap<ByteString, Subscription>,
    /// Messages not yet sent, oldest first.
    queue: VecDeque<Message>,
    /// Bytes of `queue` ([`flow::cost`] of each message), also counted in the budget.
    queued_bytes: usize,
    /// A delivery found the queue over its bounds while the client was online: publishers may
    /// be waiting for it to drain (see [`flow`]).
    pressed: bool,
    /// Sent QoS 1/2 messages awaiting acknowledgement.
    pub(crate) outgoing: OutgoingWindow,
    /// Incoming QoS 2 packet ids received and not yet released by PUBREL.
    pub(crate) incoming_qos2: PacketIds,
    /// The attached connection, if the client is online.
    pub(crate) owner: Option<Owner>,
    /// The owner is closing: deliveries are handled as for an offline client.
    pub(crate) closing: bool,
    /// When the last connection detached (for session expiry).
    pub(crate) offline_since: Option<Instant>,
    /// User name of the current (or last) connection.
    pub(crate) username: Option<ByteString>,
    /// Listener of the current (or last) connection.
    pub(crate) listener: Arc<str>,
    /// The current (or last) connection, for the admin API.
    pub(crate) connection: Option<ConnectionInfo>,
}

impl Session {
    fn new(
        id: u64,
        client_id: ByteString,
        clean: bool,
        limits: SessionLimits,
        stats: Arc<Stats>,
        budget: Arc<QueueBudget>,
    ) -> Self {
        Session {
            id,
            client_id,
            max_queued: u32::try_from(limits.max_queued).unwrap_or(u32::MAX),
            max_queued_bytes: u32::try_from(limits.max_queued_bytes).unwrap_or(u32::MAX),
            queue_full_policy: limits.queue_full_policy,
            state: Mutex::new(SessionState {
                clean,
                expiry: None,
                pending_will: None,
                kick_reason: None,
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                pressed: false,
                outgoing: OutgoingWindow::new(limits.max_inflight),
                incoming_qos2: PacketIds::default(),
                owner: None,
                closing: false,
                offline_since: None,
                username: None,
                listener: Arc::from(""),
                connection: None,
            }),
            decisions: TopicCache::default(),
            wake: Notify::new(),
            stats,
            budget,
        }
    }

    /// Unique id of this session object (a new session for the same client id gets a new id).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Cached topic-check verdicts for this client (dropped on disconnect and invalidation).
    pub(crate) fn decisions(&self) -> &TopicCache {
        &self.decisions
    }

    /// The client identifier.
    pub(crate) fn client_id(&self) -> &ByteString {
        &self.client_id
    }

    /// Runs `f` with the session state locked. Keep `f` short and await-free.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut SessionState) -> R) -> R {
        f(&mut self.state.lock())
    }

    /// Queues `message` (already downgraded to the subscription's QoS) for this client and wakes
    /// its connection, or drops it (counted and logged), following the policy of [`flow`]:
    /// QoS 1/2 for a connected client is always queued, [`Queued::Full`] telling the publisher
    /// to wait when the queue is over its bounds. QoS 1/2 for an offline session, and QoS 0 for
    /// a connected client, are bounded by the queue and the budget (offline sessions: their
    /// share of it): `queue-full-policy` then drops the new message, or the oldest queued one
    /// (for a connected client only a QoS 0 one). QoS 0 for an offline client is dropped.
    pub(crate) fn deliver(&self, message: Message) -> Result<Queued, DropReason> {
        self.deliver_as(message, Promise::Acked)
    }

    /// Queues a retained message replayed at SUBSCRIBE: bounded like QoS 0 (dropped by the
    /// policy when the queue is full), whatever its QoS. Nobody waits on it (the subscriber's
    /// own connection is the one that would drain the queue), and no publisher was promised
    /// it now.
    pub(crate) fn deliver_replay(&self, message: Message) -> Result<Queued, DropReason> {
        self.deliver_as(message, Promise::BestEffort)
    }

    fn deliver_as(&self, message: Message, promise: Promise) -> Result<Queued, DropReason> {
        let cost = flow::cost(&message);
        let mut evicted = None;
        let (online, outcome, refused) = {
            let mut state = self.state.lock();
            let state = &mut *state;
            let online = state.owner.is_some() && !state.closing;
            // A queue always takes one message, whatever its size.
            let full = !state.queue.is_empty()
                && (state.queue.len() >= self.max_queued as usize
                    || state.queued_bytes + cost > self.max_queued_bytes as usize);
            let over_budget = self.budget.would_exceed(cost);
            let outcome = if !online && message.qos == QoS::AtMostOnce {
                Err(DropReason::OfflineQos0)
            } else if online && message.qos != QoS::AtMostOnce && promise == Promise::Acked {
                // Never dropped: the publisher waits instead (see `flow`).
                if full || over_budget {
                    state.pressed = true;
                    Ok(Queued::Full)
                } else {
                    Ok(Queued::Ok)
                }
            } else {
                // QoS 0 (or a replay) for a connected client, or QoS 1/2 for an offline
                // session: bounded by the queue and the budget (offline: its share), dropped by
                // the policy.
                let limit = if full {
                    Some(DropReason::QueueFull)
                } else if (online && over_budget) || (!online && !self.budget.offline_room(cost)) {
                    Some(DropReason::MemoryBudget)
                } else {
                    None
                };
                // Drop-oldest evicts the oldest message, unless a publisher was promised that
                // one (QoS 1/2 queued while the client was connected).
                let evictable = |m: &Message| !online || m.qos == QoS::AtMostOnce;
                match limit {
                    None => Ok(Queued::Ok),
                    Some(reason)
                        if self.queue_full_policy == QueueFullPolicy::DropOldest
                            && state.queue.front().is_some_and(evictable) =>
                    {
                        evicted = state.queue.pop_front().map(|old| (old, reason));
                        if let Some((old, _)) = &evicted {
                            let old_cost = flow::cost(old);
                            state.queued_bytes -= old_cost;
                            self.budget.release(old_cost);
                        }
                        Ok(Queued::Ok)
                    }
                    Some(reason) => Err(reason),
                }
            };
            let refused = match outcome {
                Ok(_) => {
                    state.queued_bytes += cost;
                    self.budget.take(cost, over_budget && online);
                    state.queue.push_back(message);
                    None
                }
                Err(_) => Some(message),
            };
            (online, outcome, refused)
        };
        if let Some((old, reason)) = evicted {
            self.count_drop(reason, &old);
        }
        match (outcome, refused) {
            (Err(reason), Some(message)) => self.count_drop(reason, &message),
            _ if online => self.wake.notify_one(),
            _ => {}
        }
        outcome
    }

    /// [`deliver`](Self::deliver) for a publisher that can wait: a delivery that leaves this
    /// queue over its bounds adds the session to `backlog`, the queues the publisher is to wait
    /// for. Returns whether the message was queued.
    pub(crate) fn deliver_noting(
        self: &Arc<Self>,
        message: Message,
        backlog: &mut Backlog,
    ) -> bool {
        match self.deliver(message) {
            Ok(Queued::Ok) => true,
            Ok(Queued::Full) => {
                backlog.push(self.clone());
                true
            }
            Err(_) => false,
        }
    }

    /// Counts and logs `message` as dropped for this client.
    fn count_drop(&self, reason: DropReason, message: &Message) {
        self.stats
            .dropped(reason, &self.client_id, &message.topic, message.qos as u8);
    }

    /// Whether publishers held by this session's full queue may go on: the queue drained to
    /// its low mark, or the client is offline (deliveries then follow the offline policy).
    pub(crate) fn has_drained(&self) -> bool {
        let state = self.state.lock();
        !state.pressed || state.owner.is_none() || state.closing || self.below_low_mark(&state)
    }

    fn below_low_mark(&self, state: &SessionState) -> bool {
        let low = |bound: u32| bound as usize / flow::DRAINED_DEN * flow::DRAINED_NUM;
        state.queue.len() <= low(self.max_queued)
            && state.queued_bytes <= low(self.max_queued_bytes)
    }

    /// Disconnects the attached connection as a slow consumer (see
    /// [`Owner::is_slow_consumer`]), if it is still pressed: its queue did not drain while a
    /// publisher waited. Returns whether it was kicked.
    pub(crate) fn kick_slow_consumer(&self) -> bool {
        let owner = {
            let state = self.state.lock();
            if !state.pressed || state.closing || self.below_low_mark(&state) {
                return false;
            }
            match state.owner.clone() {
                Some(owner) => owner,
                None => return false,
            }
        };
        owner.mark_slow_consumer();
        self.kick_owner(&owner);
        true
    }

    /// Lets publishers held by this session go on (it went offline).
    pub(crate) fn release_publishers(&self) {
        if self.with_state(|st| std::mem::take(&mut st.pressed)) {
            self.budget.wake();
        }
    }

    /// Marks the session offline for deliveries while connection `connection_id`, still its
    /// owner, closes (no-op if another connection owns it now).
    pub(crate) fn mark_closing(&self, connection_id: u64) {
        self.with_state(|st| {
            if st.owner.as_ref().map(|o| o.connection_id) == Some(connection_id) {
                st.closing = true;
            }
        });
        self.release_publishers();
    }

    /// Waits until a message was queued for this session.
    ///
    /// # Cancel safety
    /// Cancel safe: a wake-up that arrives while nobody waits is kept for the next call.
    pub(crate) fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    /// Moves queued messages into `buf` as PUBLISH packets encoded by `out` until the queue is
    /// empty, the outgoing window is full, or `buf` holds `max_bytes`. Messages that expired
    /// while queued, or that the client could not accept, are dropped and counted. Returns how
    /// many were written; if work remains because of `max_bytes`, the session wakes itself
    /// again.
    pub(crate) fn fill_outbound(
        &self,
        buf: &mut BytesMut,
        max_bytes: usize,
        out: &mut Outbound,
    ) -> usize {
        let mut written = 0;
        let mut state = self.state.lock();
        let state = &mut *state;
        let now = Instant::now();
        let mut released = 0;
        // Silly-window avoidance: QoS 1/2 sending starts again only once a batch of the window
        // is free (see `OutgoingWindow::has_batch_room`), then fills it.
        let mut window_open = state.outgoing.has_batch_room();
        while buf.len() < max_bytes {
            let Some(front) = state.queue.front() else {
                break;
            };
            if front.qos != QoS::AtMostOnce && !(window_open && state.outgoing.has_room()) {
                break;
            }
            let Some(message) = state.queue.pop_front() else {
                break;
            };
            released += flow::cost(&message);
            if message.is_expired(now) {
                self.count_drop(DropReason::Expired, &message);
                continue;
            }
            let packet_id =
                (message.qos != QoS::AtMostOnce).then(|| state.outgoing.push(message.clone()));
            match out.encode(&message, packet_id, false, now, buf) {
                Ok(Encoded::Written) => written += 1,
                Ok(Encoded::TooLarge) => {
                    self.count_drop(DropReason::TooLarge, &message);
                    if let Some(id) = packet_id {
                        state.outgoing.forget(id);
                    }
                }
                Err(error) => {
                    // Only a payload beyond the protocol's 256 MiB limit gets here; drop that one.
                    tracing::warn!(%error, topic = %message.topic, "dropping a message that cannot be encoded");
                    if let Some(id) = packet_id {
                        state.outgoing.forget(id);
                    }
                }
            }
        }
        window_open = window_open || state.outgoing.has_batch_room();
        let more = state.queue.front().is_some_and(|m| {
            m.qos == QoS::AtMostOnce || (window_open && state.outgoing.has_room())
        });
        state.queued_bytes -= released;
        self.budget.release(released);
        if state.queue.is_empty() && state.queue.capacity() > QUEUE_SHRINK_ABOVE {
            // A burst's buffer is not kept by a session that went quiet.
            state.queue = VecDeque::new();
        }
        let unblock = state.pressed && self.below_low_mark(state);
        if unblock {
            state.pressed = false;
        }
        if more {
            self.wake.notify_one();
        }
        if unblock {
            self.budget.wake();
        }
        written
    }

    /// Encodes every unacknowledged outgoing message into `buf` for a resumed session: PUBLISH
    /// with DUP set, or PUBREL for QoS 2 flows past PUBREC ([MQTT-4.4.0-1]).
    pub(crate) fn fill_resend(&self, buf: &mut BytesMut, out: &mut Outbound) -> usize {
        let state = self.state.lock();
        let now = Instant::now();
        for (id, awaiting) in state.outgoing.iter() {
            match awaiting {
                // Each of these was encoded once already, so it encodes again.
                Awaiting::Ack(message) => {
                    let _ = out.encode(message, Some(id), true, now, buf);
                }
                Awaiting::Comp => match out.protocol() {
                    ProtocolVersion::V5 => {
                        let rel = crate::codec::v5::Packet::PubRel(
                            crate::codec::v5::PubResponse::success(id),
                        );
                        let _ = crate::codec::v5::encode(&rel, buf);
                    }
                    _ => {
                        let _ = v4::encode(&v4::Packet::PubRel(id), buf);
                    }
                },
            }
        }
        state.outgoing.len()
    }

    /// Number of queued (not yet sent) messages.
    #[cfg(test)]
    pub(crate) fn queued_len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// A copy of the session's state (one short lock), for the admin API.
    pub(crate) fn info(&self) -> SessionInfo {
        let state = self.state.lock();
        SessionInfo {
            client_id: self.client_id.clone(),
            username: state.username.clone(),
            connected: state.owner.is_some(),
            listener: state.listener.clone(),
            connection: state.connection.clone(),
            clean: state.clean,
            subscriptions: state
                .subscriptions
                .iter()
                .map(|(filter, sub)| (filter.clone(), sub.options.qos))
                .collect(),
            inflight: state.outgoing.len(),
            queued: state.queue.len(),
        }
    }

    /// Disconnects the attached connection (admin API, plugin control) with `reason` as the
    /// MQTT 5 reason string of its DISCONNECT 0x98. Returns the connection kicked, if any.
    pub(crate) fn kick(&self, reason: &str) -> Option<Owner> {
        let mut state = self.state.lock();
        let owner = state.owner.clone()?;
        state.kick_reason = (!reason.is_empty()).then(|| Box::from(reason));
        self.kick_owner(&owner);
        Some(owner)
    }

    /// Tells `owner`, the connection attached to this session (or attached until a takeover),
    /// to end: sets its kick flag and wakes it wherever it waits (see [`Owner::kick_seen`]).
    pub(crate) fn kick_owner(&self, owner: &Owner) {
        owner.kick();
        // Stores no permit: only a wait already made (the owner's) is woken, and a later
        // owner's wait for deliveries is not.
        self.wake.notify_waiters();
    }

    /// Takes the reason given by [`kick`](Self::kick).
    pub(crate) fn take_kick_reason(&self) -> Option<ByteString> {
        self.state.lock().kick_reason.take().map(ByteString::from)
    }

    /// The connection attached to the session now, if any.
    pub(crate) fn owner(&self) -> Option<Owner> {
        self.state.lock().owner.clone()
    }
}

#[cfg(test)]
mod tests;

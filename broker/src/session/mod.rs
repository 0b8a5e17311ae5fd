//! Sessions: the state of one client id that outlives a network connection — subscriptions,
//! the queue of messages not yet sent, the outgoing QoS 1/2 window, and incoming QoS 2 ids.
//!
//! Publishers on any connection push into a subscriber's session ([`Session::deliver`]) under a
//! short mutex and wake the connection that owns it; that connection drains the queue into its
//! write buffer ([`Session::fill_outbound`]). The same queue holds messages while the client is
//! offline, so online and offline delivery are one mechanism.

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

pub(crate) use outgoing::{Awaiting, OutgoingWindow};
pub(crate) use owner::Owner;
pub(crate) use registry::{Attached, SessionRegistry, SessionTerms};
pub(crate) use subscription::Subscription;

/// Per-session limits, copied from the `limits` section of the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// Unacknowledged outgoing QoS 1/2 messages per client (`max-inflight`).
    pub(crate) max_inflight: u16,
    /// Messages waiting to be sent, online or offline (`max-queued-messages`).
    pub(crate) max_queued: usize,
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
    queue_full_policy: QueueFullPolicy,
    state: Mutex<SessionState>,
    wake: Notify,
    stats: Arc<Stats>,
    decisions: TopicCache,
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
    ) -> Self {
        Session {
            id,
            client_id,
            max_queued: u32::try_from(limits.max_queued).unwrap_or(u32::MAX),
            queue_full_policy: limits.queue_full_policy,
            state: Mutex::new(SessionState {
                clean,
                expiry: None,
                pending_will: None,
                kick_reason: None,
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
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
    /// its connection.
    ///
    /// Full-queue decision: `drop-newest` refuses the new message, `drop-oldest` evicts the oldest
    /// queued one; either way the drop is counted in [`Stats`]. QoS 0 messages for an offline client
    /// are dropped and counted.
    pub(crate) fn deliver(&self, message: Message) -> Result<(), DropReason> {
        let online = {
            let mut state = self.state.lock();
            let online = state.owner.is_some() && !state.closing;
            if !online && message.qos == QoS::AtMostOnce {
                drop(state);
                self.stats.dropped(DropReason::OfflineQos0);
                return Err(DropReason::OfflineQos0);
            }
            if state.queue.len() >= self.max_queued as usize {
                match self.queue_full_policy {
                    QueueFullPolicy::DropNewest => {
                        drop(state);
                        self.stats.dropped(DropReason::QueueFull);
                        return Err(DropReason::QueueFull);
                    }
                    QueueFullPolicy::DropOldest => {
                        state.queue.pop_front();
                        self.stats.dropped(DropReason::QueueFull);
                    }
                }
            }
            state.queue.push_back(message);
            online
        };
        if online {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Marks the session offline for deliveries while connection `connection_id`, still its
    /// owner, closes (no-op if another connection owns it now).
    pub(crate) fn mark_closing(&self, connection_id: u64) {
        self.with_state(|st| {
            if st.owner.as_ref().map(|o| o.connection_id) == Some(connection_id) {
                st.closing = true;
            }
        });
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
        while buf.len() < max_bytes {
            let Some(front) = state.queue.front() else {
                break;
            };
            if front.qos != QoS::AtMostOnce && !state.outgoing.has_room() {
                break;
            }
            let Some(message) = state.queue.pop_front() else {
                break;
            };
            if message.is_expired(now) {
                self.stats.dropped(DropReason::Expired);
                continue;
            }
            let packet_id =
                (message.qos != QoS::AtMostOnce).then(|| state.outgoing.push(message.clone()));
            match out.encode(&message, packet_id, false, now, buf) {
                Ok(Encoded::Written) => written += 1,
                Ok(Encoded::TooLarge) => {
                    self.stats.dropped(DropReason::TooLarge);
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
        let more = state
            .queue
            .front()
            .is_some_and(|m| m.qos == QoS::AtMostOnce || state.outgoing.has_room());
        if more {
            self.wake.notify_one();
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
                    let _ = out.encode(message, Some(*id), true, now, buf);
                }
                Awaiting::Comp => match out.protocol() {
                    ProtocolVersion::V5 => {
                        let rel = crate::codec::v5::Packet::PubRel(
                            crate::codec::v5::PubResponse::success(*id),
                        );
                        let _ = crate::codec::v5::encode(&rel, buf);
                    }
                    _ => {
                        let _ = v4::encode(&v4::Packet::PubRel(*id), buf);
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

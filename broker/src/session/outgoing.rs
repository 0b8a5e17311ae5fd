//! The outgoing QoS 1/2 window of one session: packet identifiers in use and what each one is
//! waiting for, kept across reconnects so unacknowledged messages are re-sent ([MQTT-4.4.0-1]).

use std::collections::VecDeque;
use std::num::NonZeroU16;

use bytestring::ByteString;

use super::Session;
use crate::codec::{PacketId, QoS};
use crate::message::Message;

/// What an outgoing packet identifier is waiting for.
#[derive(Debug, Clone)]
pub(crate) enum Awaiting {
    /// QoS 1: PUBACK; QoS 2: PUBREC. Keeps the message for a re-send with DUP.
    Ack(Message),
    /// QoS 2 after PUBREC: PUBCOMP (a re-send repeats PUBREL).
    Comp,
}

/// Outgoing messages sent to the client and not yet acknowledged, in send order.
///
/// Acknowledgements come in send order as a rule, so finding one scans from the front and stops
/// at once. A new packet identifier is the next one in sequence; it can only be in use when the
/// oldest entry is a whole turn of identifiers old, which [`Entry::turn`] tells without a scan.
#[derive(Debug)]
pub(crate) struct OutgoingWindow {
    entries: VecDeque<Entry>,
    capacity: u16,
    last_id: u16,
    /// Identifiers stepped over since the window was made (allocated or skipped as in use).
    steps: u64,
}

/// One unacknowledged message.
#[derive(Debug)]
struct Entry {
    id: PacketId,
    /// [`OutgoingWindow::steps`] when `id` was allocated: entries are in allocation order, so
    /// the front one is the oldest.
    turn: u64,
    awaiting: Awaiting,
}

/// An empty window whose buffer holds more entries than this gives it back.
const SHRINK_ABOVE: usize = 64;

/// Packet identifiers in one turn (1 to 65,535).
const IDS: u64 = u16::MAX as u64;

impl OutgoingWindow {
    /// An empty window holding at most `capacity` (≥ 1) unacknowledged messages.
    pub(crate) fn new(capacity: u16) -> Self {
        OutgoingWindow {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            last_id: 0,
            steps: 0,
        }
    }

    /// Changes how many messages may be unacknowledged at once (a new connection's MQTT 5
    /// Receive Maximum). Entries already in flight stay; no new one is sent until fewer remain.
    pub(crate) fn set_capacity(&mut self, capacity: u16) {
        self.capacity = capacity.max(1);
    }

    /// Whether another QoS 1/2 message may be sent now.
    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < usize::from(self.capacity)
    }

    /// Whether enough of the window is free to start sending QoS 1/2 messages again: a quarter
    /// of it (at least one slot), or all of it. Sending one message per freed slot would make
    /// one small write per acknowledgement (the silly-window pattern); waiting for a batch
    /// makes one write per batch. Once started, a refill goes on while
    /// [`has_room`](Self::has_room).
    pub(crate) fn has_batch_room(&self) -> bool {
        let capacity = usize::from(self.capacity);
        let free = capacity.saturating_sub(self.entries.len());
        self.entries.is_empty() || free >= (capacity / 4).max(1)
    }

    /// Number of unacknowledged messages.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records `message` as sent and returns the packet identifier assigned to it.
    ///
    /// Callers check [`has_room`](Self::has_room) first; the capacity is far below 65,535, so a
    /// free identifier always exists.
    pub(crate) fn push(&mut self, message: Message) -> PacketId {
        let id = self.next_free_id();
        self.entries.push_back(Entry {
            id,
            turn: self.steps,
            awaiting: Awaiting::Ack(message),
        });
        id
    }

    fn next_free_id(&mut self) -> PacketId {
        loop {
            self.last_id = self.last_id.wrapping_add(1);
            let Some(id) = NonZeroU16::new(self.last_id) else {
                continue;
            };
            self.steps += 1;
            // Entries less than a turn old hold other identifiers than this one: only when the
            // oldest is a turn old (a client that never acknowledged it) is a scan needed.
            let fresh = self
                .entries
                .front()
                .is_none_or(|oldest| self.steps - oldest.turn < IDS);
            if fresh || !self.entries.iter().any(|e| e.id == id) {
                return id;
            }
        }
    }

    /// PUBACK received: releases a QoS 1 identifier. Returns false for an unknown identifier.
    pub(crate) fn on_puback(&mut self, id: PacketId) -> bool {
        self.remove_if(
            id,
            |a| matches!(a, Awaiting::Ack(m) if m.qos == crate::codec::QoS::AtLeastOnce),
        )
    }

    /// PUBREC received: the QoS 2 message moves on to waiting for PUBCOMP. Returns whether the
    /// identifier is known (a PUBREL is sent either way, as the spec asks).
    pub(crate) fn on_pubrec(&mut self, id: PacketId) -> bool {
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(entry) => {
                entry.awaiting = Awaiting::Comp;
                true
            }
            None => false,
        }
    }

    /// PUBCOMP received: releases a QoS 2 identifier. Returns false for an unknown identifier.
    pub(crate) fn on_pubcomp(&mut self, id: PacketId) -> bool {
        self.remove_if(id, |a| matches!(a, Awaiting::Comp))
    }

    /// Releases `id` whatever it waits for (a message that could not be sent after all).
    pub(crate) fn forget(&mut self, id: PacketId) {
        self.remove_if(id, |_| true);
    }

    fn remove_if(&mut self, id: PacketId, pred: impl Fn(&Awaiting) -> bool) -> bool {
        match self
            .entries
            .iter()
            .position(|e| e.id == id && pred(&e.awaiting))
        {
            Some(index) => {
                self.entries.remove(index);
                if self.entries.is_empty() && self.entries.capacity() > SHRINK_ABOVE {
                    // A burst's buffer is not kept by a session that went quiet.
                    self.entries = VecDeque::new();
                }
                true
            }
            None => false,
        }
    }

    /// Moves the QoS 1 messages awaiting PUBACK that `take` accepts into `out`, in send order,
    /// releasing their identifiers.
    pub(crate) fn take_qos1_where(
        &mut self,
        mut take: impl FnMut(&Message) -> bool,
        out: &mut Vec<Message>,
    ) {
        self.entries.retain(|entry| match &entry.awaiting {
            Awaiting::Ack(m) if m.qos == QoS::AtLeastOnce && take(m) => {
                out.push(m.clone());
                false
            }
            _ => true,
        });
    }

    /// Every unacknowledged entry in send order, for the re-send after a reconnect.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (PacketId, &Awaiting)> {
        self.entries.iter().map(|e| (e.id, &e.awaiting))
    }
}

impl Session {
    /// Takes out, for redelivery to another member of their shared subscription group, the
    /// messages that came through a shared subscription whose key `take` accepts: QoS 1 ones
    /// sent and not acknowledged, then queued ones (any QoS), each in order. QoS 2 messages
    /// already sent stay: their delivery must complete with this client ([MQTT-4.8.2-4]).
    ///
    /// Only while connection `connection_id` still owns the session (nothing is taken from a
    /// session another connection has taken over: that one re-sends them).
    pub(crate) fn take_shared(
        &self,
        connection_id: u64,
        take: impl Fn(&ByteString) -> bool,
    ) -> Vec<Message> {
        let mut out = Vec::new();
        let mut state = self.state.lock();
        let state = &mut *state;
        if state.owner.as_ref().map(|o| o.connection_id) != Some(connection_id) {
            return out;
        }
        let wanted = |m: &Message| m.shared_origin.as_deref().is_some_and(&take);
        state.outgoing.take_qos1_where(wanted, &mut out);
        if state.queue.iter().any(wanted) {
            let queue = std::mem::take(&mut state.queue);
            for message in queue {
                if wanted(&message) {
                    out.push(message);
                } else {
                    state.queue.push_back(message);
                }
            }
        }
        out
    }

    /// A copy of the queue (unit tests of the router).
    #[cfg(test)]
    pub(crate) fn queued_for_test(&self) -> Vec<Message> {
        self.state.lock().queue.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(qos: QoS) -> Message {
        Message::new("t".into(), bytes::Bytes::new(), qos, false)
    }

    #[test]
    fn ids_are_unique_and_skip_zero_on_wrap() {
        let mut window = OutgoingWindow::new(3);
        window.last_id = u16::MAX - 1;
        let a = window.push(msg(QoS::AtLeastOnce));
        let b = window.push(msg(QoS::AtLeastOnce));
        assert_eq!((a.get(), b.get()), (u16::MAX, 1));
        assert!(window.has_room());
        window.push(msg(QoS::AtLeastOnce));
        assert!(!window.has_room());
    }

    #[test]
    fn an_identifier_a_whole_turn_old_is_skipped() {
        let mut window = OutgoingWindow::new(4);
        let stuck = window.push(msg(QoS::AtLeastOnce));
        assert_eq!(stuck.get(), 1);
        // A client that acknowledges everything but the first message, for a whole turn.
        for _ in 0..u16::MAX - 1 {
            let id = window.push(msg(QoS::AtLeastOnce));
            assert_ne!(id, stuck);
            assert!(window.on_puback(id));
        }
        assert_eq!(window.last_id, u16::MAX);
        let next = window.push(msg(QoS::AtLeastOnce));
        assert_eq!(next.get(), 2, "1 is still in flight");
        let after = window.push(msg(QoS::AtLeastOnce));
        assert_eq!(after.get(), 3);
        assert_eq!(window.len(), 3);
    }

    #[test]
    fn qos2_flow_and_unknown_ids() {
        let mut window = OutgoingWindow::new(4);
        let id = window.push(msg(QoS::ExactlyOnce));
        assert!(!window.on_puback(id), "PUBACK does not end a QoS 2 flow");
        assert!(window.on_pubrec(id));
        assert!(!window.on_pubcomp(NonZeroU16::MIN.saturating_add(100)));
        assert!(window.on_pubcomp(id));
        assert_eq!(window.len(), 0);
    }

    #[test]
    fn only_matching_qos1_messages_are_taken() {
        let mut window = OutgoingWindow::new(8);
        let shared = |qos| {
            let mut m = msg(qos);
            m.shared_origin = Some(std::sync::Arc::new("$share/g/t".into()));
            m
        };
        window.push(msg(QoS::AtLeastOnce));
        let a = window.push(shared(QoS::AtLeastOnce));
        window.push(shared(QoS::ExactlyOnce));
        let mut out = Vec::new();
        window.take_qos1_where(|m| m.shared_origin.is_some(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(window.len(), 2);
        assert!(!window.on_puback(a), "its identifier is released");
    }
}

//! The pipeline's state behind its mutex: the bounded queue of events not yet taken for the
//! stream, the window of sequenced events not yet acked, the cursors of the current connection
//! and the counters. Pure bookkeeping: no I/O, no waiting, so every rule is unit-tested here.
//!
//! Events are held **encoded**: each one is encoded once, when it is pushed, without its
//! sequence number (a proto3 zero is not written); a batch is the concatenation of the events'
//! bytes, each prefixed with its `sequence` field. So sending, and re-sending after a
//! reconnect, copies bytes and never re-encodes or clones an event's strings.
//!
//! Events are encoded into an **arena**: one block of [`ARENA_BLOCK`] bytes that events are
//! appended to and split off (a `Bytes` sharing the block), so an event costs no allocation of
//! its own and releasing it is a reference-count decrement. A block is freed when its last
//! event is released; events leave in the order they came (acks and overflow both take the
//! oldest), so a pipeline holds its live events' bytes plus at most about one block of
//! released ones, except behind an awaited event (start, shutdown) that overflow cannot drop.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use prost::encoding::{WireType, encoded_len_varint};

use super::{Overflow, PipelineSettings, PipelineStats};
use crate::plugin::wire::SliceWriter;

use crate::plugin::fields::{
    event::SEQUENCE as SEQUENCE_FIELD, event_batch::EVENTS as EVENTS_FIELD,
};
/// Size of a fresh arena block (see the module docs); an event larger than what is left of
/// the block gets a block of its own size.
const ARENA_BLOCK: usize = 64 * 1024;
/// Longest `EventBatch.events` head: key, length and `sequence` field (two keys, two varints).
const EVENT_HEAD_MAX: usize = 2 + 2 * 10;

/// One event on its way: queued (`seq == 0`) or in the un-acked window.
#[derive(Debug)]
struct Entry {
    /// Order of arrival (1, 2, ...), given to every event that entered the queue. Queue and
    /// window are both sorted by it, so "everything up to ticket T is settled" is a look at
    /// the oldest entry left.
    ticket: u64,
    /// Pushed with `push_and_wait`: never dropped on overflow, never displaced by others.
    awaited: bool,
    /// The sequence number, set when the event moves into the window (0 before).
    seq: u64,
    /// The encoded `Event`, without its `sequence` field.
    event: Bytes,
}

/// Where [`Buffer::next_batch`] writes a batch: tonic's encode buffer on the stream (so the
/// events are copied once, from the arena into the bytes HTTP/2 sends), a `BytesMut` in tests.
pub(super) trait BatchOut {
    /// Makes room for at least `additional` more bytes.
    fn reserve(&mut self, additional: usize);
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl BatchOut for BytesMut {
    fn reserve(&mut self, additional: usize) {
        BytesMut::reserve(self, additional);
    }

    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Entry {
    /// Appends this event to `out` as one `EventBatch.events` field: key, length, the
    /// `sequence` field, then the event's own fields (at most [`EVENT_HEAD_MAX`] bytes more
    /// than the event).
    fn write_to(&self, out: &mut impl BatchOut) {
        let seq_len = 1 + encoded_len_varint(self.seq);
        let mut head = [0u8; EVENT_HEAD_MAX];
        let mut w = SliceWriter::new(&mut head);
        w.delimited_head(EVENTS_FIELD, seq_len + self.event.len());
        w.key(SEQUENCE_FIELD, WireType::Varint);
        w.raw_varint(self.seq);
        let head_len = w.written();
        out.put(&head[..head_len]);
        out.put(&self.event);
    }
}

/// What `Buffer::push` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pushed {
    /// The ticket of the pushed event, or `None` if it was dropped (`drop-newest`).
    pub(super) ticket: Option<u64>,
    /// Whether an event was dropped (the new one, or the oldest queued one).
    pub(super) dropped: bool,
}

/// Queue + un-acked window + counters. Invariants: the window holds sequences
/// `acked + 1 ..= last_seq` without gaps, in order; `acked <= sent_upto <= last_seq`.
#[derive(Debug)]
pub(super) struct Buffer {
    /// Bound of `queue` (events awaited by `push_and_wait` may exceed it, see `push`).
    queue_size: usize,
    /// What a full queue does with one more event.
    overflow: Overflow,
    /// Most events per `EventBatch`.
    max_batch: usize,
    /// Bound of `window`: at most this many sequenced events wait for an ack.
    max_unacked: usize,
    /// Events not yet sequenced, oldest first.
    queue: VecDeque<Entry>,
    /// Sequenced events not yet acked, lowest sequence first.
    window: VecDeque<Entry>,
    /// The last ticket given out.
    last_ticket: u64,
    /// The last sequence number given out (0: none yet).
    last_seq: u64,
    /// Highest sequence acked (cumulative).
    acked_seq: u64,
    /// Highest sequence sent on the current connection; what follows it in the window is sent
    /// (or re-sent) next.
    sent_upto: u64,
    /// Highest sequence ever sent, on any connection: sending at or below it is a replay.
    max_sent: u64,
    /// The stream task found nothing to send and waits for a push to wake it (set and taken
    /// under the pipeline's lock, so a wake-up is never missed).
    pub(super) stream_idle: bool,
    /// The current connection attempt (incremented when one begins and when one fails): a
    /// batch is only taken for the call of the current one, never for a call that outlived
    /// its connection (see `stream::Outbound`).
    connection: u64,
    /// What is left of the current arena block; events are encoded at its start and split off.
    arena: BytesMut,
    /// `(sent, replayed, max_sent)` as they were when the current connection began, while its
    /// stream has not opened: if it never does, they are restored (see `failed`).
    unopened: Option<(u64, u64, u64)>,
    /// Counters reported by `stats`.
    pub(super) stats: PipelineStats,
}

impl Buffer {
    /// An empty buffer with the given bounds (each at least 1).
    pub(super) fn new(settings: &PipelineSettings) -> Self {
        Self {
            queue_size: settings.queue_size.max(1),
            overflow: settings.overflow,
            max_batch: settings.max_batch.max(1),
            max_unacked: settings.max_unacked.max(1),
            queue: VecDeque::new(),
            window: VecDeque::new(),
            last_ticket: 0,
            last_seq: 0,
            acked_seq: 0,
            sent_upto: 0,
            max_sent: 0,
            stream_idle: false,
            connection: 0,
            arena: BytesMut::new(),
            unopened: None,
            stats: PipelineStats::default(),
        }
    }

    /// Queues the event that `encode` appends to the buffer it is given. A full queue applies
    /// the overflow policy first: `DropNewest` refuses the new event (`encode` is not called),
    /// `DropOldest` removes the oldest queued event that nobody awaits (or refuses the new one
    /// when every queued event is awaited). An `awaited` event is always queued, even over the
    /// bound: the broker awaits at most a handful of them per run (start and shutdown), and
    /// losing one would make the broker wait out its deadline for nothing.
    pub(super) fn push(&mut self, awaited: bool, encode: impl FnOnce(&mut BytesMut)) -> Pushed {
        let mut dropped = false;
        if !awaited && self.queue.len() >= self.queue_size {
            dropped = true;
            self.stats.dropped += 1;
            let victim = match self.overflow {
                Overflow::DropNewest => None,
                Overflow::DropOldest => self.queue.iter().position(|e| !e.awaited),
            };
            match victim {
                Some(index) => {
                    self.queue.remove(index);
                }
                None => {
                    return Pushed {
                        ticket: None,
                        dropped,
                    };
                }
            }
        }
        let event = self.encode_in_arena(encode);
        self.last_ticket += 1;
        self.queue.push_back(Entry {
            ticket: self.last_ticket,
            awaited,
            seq: 0,
            event,
        });
        self.stats.enqueued += 1;
        Pushed {
            ticket: Some(self.last_ticket),
            dropped,
        }
    }

    /// Runs `encode` at the end of the arena and splits what it wrote off as the event's bytes.
    fn encode_in_arena(&mut self, encode: impl FnOnce(&mut BytesMut)) -> Bytes {
        // A block is never grown in place (other events share it): an event that does not fit
        // in what is left starts a new block, or gets one of its own size if it is larger.
        // Small events fit in what is left almost always; when one does not, `reserve` below
        // allocates, and that event starts the next block.
        if self.arena.capacity() < ARENA_BLOCK / 16 {
            self.arena = BytesMut::with_capacity(ARENA_BLOCK);
        }
        encode(&mut self.arena);
        self.arena.split().freeze()
    }
    /// The ticket of the newest event queued so far (0 if none ever was).
    pub(super) fn last_ticket(&self) -> u64 {
        self.last_ticket
    }

    /// Whether every event up to `ticket` has left the pipeline: acked, or dropped on overflow.
    pub(super) fn settled(&self, ticket: u64) -> bool {
        let oldest = self.window.front().or_else(|| self.queue.front());
        oldest.is_none_or(|e| e.ticket > ticket)
    }

    /// Starts a connection: everything in the window is sent again, from the lowest sequence.
    pub(super) fn begin_connection(&mut self) -> u64 {
        self.connection += 1;
        self.sent_upto = self.acked_seq;
        self.unopened = Some((self.stats.sent, self.stats.replayed, self.max_sent));
        self.connection
    }

    /// The current connection attempt (see `begin_connection`).
    pub(super) fn connection(&self) -> u64 {
        self.connection
    }

    /// Ends the current connection attempt without a new one (the pipeline stops): a call
    /// still running takes nothing more.
    pub(super) fn end_connection(&mut self) {
        self.connection += 1;
    }

    /// The plugin answered the call: the stream is open, what it carries counts.
    pub(super) fn opened(&mut self) {
        self.unopened = None;
        self.stats.connected = true;
    }

    /// The connection failed. Events are handed to the call before the plugin answers it
    /// (some servers answer only with their first reply), so if it never answered, the counts
    /// of that attempt are taken back: an outage does not inflate `sent` and `replayed`.
    pub(super) fn failed(&mut self) {
        self.connection += 1;
        if let Some((sent, replayed, max_sent)) = self.unopened.take() {
            self.stats.sent = sent;
            self.stats.replayed = replayed;
            self.max_sent = max_sent;
        }
        self.stats.connected = false;
        self.stats.reconnects += 1;
    }

    /// Whether `next_batch` has something to send: window events not yet sent on this
    /// connection, or queued events and room in the window.
    pub(super) fn has_work(&self) -> bool {
        self.sent_upto < self.last_seq
            || (!self.queue.is_empty() && self.window.len() < self.max_unacked)
    }

    /// Appends the next events to send, at most `max_batch`, to `out` as `EventBatch.events`
    /// fields, and returns how many: first the window's unsent tail (a replay after a
    /// reconnect, same sequence numbers), then events taken from the queue, each given the next
    /// sequence number as it moves into the window, while the window has room. 0 when there is
    /// nothing to send. The caller sends the result at once (it counts as sent).
    pub(super) fn next_batch(&mut self, out: &mut impl BatchOut) -> usize {
        let mut count = 0;
        let mut replayed = 0;
        // `sent_upto >= acked_seq`, and the window starts at `acked_seq + 1`.
        let unsent_from = usize::try_from(self.sent_upto - self.acked_seq).unwrap_or(usize::MAX);
        // Room for everything this batch takes, reserved once (no regrowth while writing).
        let replays = self.window.iter().skip(unsent_from).take(self.max_batch);
        let room = self.max_unacked.saturating_sub(self.window.len());
        let fresh = self.queue.iter().take(room.min(self.max_batch));
        let bytes: usize = replays
            .chain(fresh)
            .take(self.max_batch)
            .map(|e| EVENT_HEAD_MAX + e.event.len())
            .sum();
        out.reserve(bytes);
        for entry in self.window.iter().skip(unsent_from).take(self.max_batch) {
            entry.write_to(out);
            count += 1;
            self.sent_upto = entry.seq;
            replayed += usize::from(entry.seq <= self.max_sent);
        }
        while count < self.max_batch && self.window.len() < self.max_unacked {
            let Some(mut entry) = self.queue.pop_front() else {
                break;
            };
            self.last_seq += 1;
            entry.seq = self.last_seq;
            entry.write_to(out);
            count += 1;
            self.sent_upto = entry.seq;
            self.window.push_back(entry);
        }
        if count > 0 {
            self.max_sent = self.max_sent.max(self.sent_upto);
            self.stats.sent += count as u64;
            self.stats.replayed += replayed as u64;
        }
        count
    }

    /// Applies a cumulative ack: releases every window event with sequence `<= ack` and returns
    /// how many were released. An ack at or below an earlier one changes nothing; an ack above
    /// anything ever sent is taken as acking what was sent (a plugin cannot have handled more).
    pub(super) fn ack(&mut self, ack: u64) -> usize {
        let ack = ack.min(self.max_sent);
        if ack <= self.acked_seq {
            return 0;
        }
        let released = usize::try_from(ack - self.acked_seq).unwrap_or(usize::MAX);
        let released = released.min(self.window.len());
        self.window.drain(..released);
        self.acked_seq = ack;
        // An ack for events sent on an earlier connection and not yet replayed on this one.
        self.sent_upto = self.sent_upto.max(ack);
        self.stats.acked += released as u64;
        released
    }

    /// A snapshot of the counters with the current depths.
    pub(super) fn snapshot(&self) -> PipelineStats {
        PipelineStats {
            queue_depth: self.queue.len(),
            unacked: self.window.len(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use midge_proto::plugin::v1 as pb;
    use prost::Message as _;

    use super::*;

    fn settings(queue_size: usize, overflow: Overflow) -> PipelineSettings {
        PipelineSettings {
            queue_size,
            overflow,
            max_batch: 3,
            max_unacked: 4,
        }
    }

    /// An encoded event told apart by its `time.nanos`.
    fn ev(mark: i32) -> Bytes {
        pb::Event {
            time: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: mark,
            }),
            ..pb::Event::default()
        }
        .encode_to_vec()
        .into()
    }

    /// Queues an encoded event.
    fn push(b: &mut Buffer, event: Bytes, awaited: bool) -> Pushed {
        b.push(awaited, |out| out.extend_from_slice(&event))
    }

    /// The next batch as (sequence, mark) pairs, decoded as a plugin would.
    fn next(b: &mut Buffer) -> Vec<(u64, i32)> {
        let mut out = BytesMut::new();
        let count = b.next_batch(&mut out);
        let batch = pb::EventBatch::decode(out.freeze()).expect("a valid EventBatch");
        assert_eq!(batch.events.len(), count);
        batch
            .events
            .iter()
            .map(|e| (e.sequence, e.time.map_or(-1, |t| t.nanos)))
            .collect()
    }

    #[test]
    fn batches_are_bounded_and_sequenced_without_gaps() {
        let mut b = Buffer::new(&settings(10, Overflow::DropOldest));
        for i in 0..6 {
            push(&mut b, ev(i), false);
        }
        assert_eq!(next(&mut b), [(1, 0), (2, 1), (3, 2)]);
        // Window bound 4: one more, then nothing until an ack.
        assert_eq!(next(&mut b), [(4, 3)]);
        assert!(!b.has_work());
        assert!(next(&mut b).is_empty());
        assert_eq!(b.ack(2), 2);
        assert_eq!(next(&mut b), [(5, 4), (6, 5)]);
        assert_eq!(b.snapshot().sent, 6);
        assert_eq!(b.snapshot().unacked, 4);
    }

    #[test]
    fn acks_are_cumulative_monotonic_and_clamped() {
        let mut b = Buffer::new(&settings(10, Overflow::DropOldest));
        for i in 0..3 {
            push(&mut b, ev(i), false);
        }
        next(&mut b);
        assert_eq!(b.ack(0), 0);
        assert_eq!(b.ack(2), 2);
        assert_eq!(b.ack(1), 0, "a lower ack is ignored");
        assert_eq!(b.ack(99), 1, "clamped to what was sent");
        push(&mut b, ev(3), false);
        assert_eq!(next(&mut b), [(4, 3)]);
        assert_eq!(b.snapshot().acked, 3);
    }

    #[test]
    fn reconnect_replays_unacked_with_the_same_sequences() {
        let mut b = Buffer::new(&settings(10, Overflow::DropOldest));
        for i in 0..4 {
            push(&mut b, ev(i), false);
        }
        next(&mut b);
        b.ack(1);
        b.failed();
        b.begin_connection();
        assert_eq!(next(&mut b), [(2, 1), (3, 2), (4, 3)]);
        assert_eq!(b.snapshot().replayed, 2);
        // That connection never opened: its sends are not counted.
        b.failed();
        assert_eq!((b.snapshot().sent, b.snapshot().replayed), (3, 0));
        // A late ack for events sent before the reconnect moves the replay cursor past them.
        b.begin_connection();
        b.ack(3);
        assert_eq!(next(&mut b), [(4, 3)]);
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_spares_awaited_events() {
        let mut b = Buffer::new(&settings(2, Overflow::DropOldest));
        push(&mut b, ev(0), true);
        push(&mut b, ev(1), false);
        let p = push(&mut b, ev(2), false);
        assert!(p.dropped && p.ticket.is_some());
        assert_eq!(next(&mut b), [(1, 0), (2, 2)]);
        assert_eq!(b.snapshot().dropped, 1);
        assert_eq!(b.snapshot().enqueued, 3);
    }

    #[test]
    fn drop_newest_refuses_but_awaited_events_always_enter() {
        let mut b = Buffer::new(&settings(1, Overflow::DropNewest));
        push(&mut b, ev(0), false);
        let p = push(&mut b, ev(1), false);
        assert_eq!(
            p,
            Pushed {
                ticket: None,
                dropped: true
            }
        );
        assert!(!push(&mut b, ev(2), true).dropped);
        assert_eq!(b.snapshot().queue_depth, 2);
        assert_eq!(next(&mut b), [(1, 0), (2, 2)]);
    }

    #[test]
    fn settled_means_acked_or_dropped() {
        let mut b = Buffer::new(&settings(1, Overflow::DropOldest));
        assert!(b.settled(b.last_ticket()));
        push(&mut b, ev(0), false);
        push(&mut b, ev(1), false); // drops ev(0)
        let t = b.last_ticket();
        assert!(!b.settled(t));
        assert!(b.settled(1), "the dropped event is settled");
        next(&mut b);
        assert!(!b.settled(t));
        b.ack(1);
        assert!(b.settled(t));
    }
}

//! One bounded event pipeline per plugin: the broker's hot path enqueues, a task streams the
//! events to the plugin's `EventSink.Stream` and keeps what is not acked for replay.
//!
//! ```text
//!  push() ──▶ queue (bounded: queue_size, overflow policy) ──▶ window (bounded: max_unacked)
//!  hot path,        FIFO, one per plugin                        sequenced, sent, kept until acked
//!  never waits                                                     │  ▲ cumulative acks
//!                                                                  ▼  │
//!                                                      EventSink.Stream (run(): reconnect,
//!                                                      replay the window, then batches)
//! ```
//!
//! Decisions (the contract's side of them is in `events.proto`):
//!
//! - **Sequence numbers** are per pipeline, start at 1 and strictly increase. An event gets its
//!   number when it moves from the queue into the un-acked window, so events dropped on
//!   overflow leave no gap and the window always holds a contiguous range: a cumulative ack
//!   `N` releases a prefix of it, and a replay re-sends the rest with its original numbers.
//! - **The window is bounded** by [`PipelineSettings::max_unacked`]. When it is full nothing
//!   more is taken from the queue, so a slow or hung plugin fills its own queue and the
//!   overflow policy applies there: back-pressure never reaches publishers. Events in the
//!   window are never dropped.
//! - **`stream_id`** is random per pipeline, made at [`EventPipeline::new`], and the same for
//!   every reconnect. The sequence numbers belong to the pipeline, so a plugin must see a new
//!   id exactly when they start again at 1: after a broker restart, or if the broker ever
//!   rebuilds a pipeline.
//! - **Order**: one FIFO per plugin, never reordered; overflow only removes events. So the
//!   events of one client arrive in the order they were pushed.
//! - **Awaited events** ([`EventPipeline::push_and_wait`]: start and shutdown) are never
//!   dropped: they enter the queue even when it is full, and `drop-oldest` skips them. They
//!   are a handful per broker run, so the queue's bound grows by at most that.
//! - **Memory** per plugin is bounded by `queue_size + max_unacked` events (plus the awaited
//!   ones), each held encoded in the pipeline's arena (`buffer`: no allocation per event, at
//!   most about one arena block of released bytes besides); the call of one connection holds
//!   at most about one encoded chunk beyond its HTTP/2 send window (`stream::outbound`).
//! - **Encoding** happens once per event and plugin, on the emitting task
//!   ([`EventPipeline::push`], [`EventPipeline::push_message`]). Sending only concatenates
//!   encoded events (with their sequence numbers) into batches, written by the gRPC codec
//!   (`stream::BatchCodec`) straight into tonic's buffer when HTTP/2 asks for the next chunk,
//!   so each event's bytes are copied once on their way out.
//! - **Wake-ups**: a push wakes the request stream only when it waits for events (it says so
//!   in the buffer, under the lock it checks for work under), so a busy stream costs the hot
//!   path no wake-up per event.
//! - **The channel** given to [`EventPipeline::run`] must not carry a per-request timeout
//!   (`Endpoint::timeout`): it would end the long-lived stream. HTTP/2 keep-alive on it is
//!   what detects a plugin host that vanished without closing the connection.

mod buffer;
mod interest;
mod stream;
#[cfg(test)]
mod tests;

use std::{
    pin::pin,
    sync::Arc,
    time::{Instant as StdInstant, SystemTime},
};

use bytes::BytesMut;
use futures_util::future::BoxFuture;
use midge_proto::plugin::v1 as pb;
use parking_lot::Mutex;
use prost::Message as _;
use tokio::{sync::Notify, time::Instant};

use self::{buffer::Buffer, interest::Interest};
use super::emit::MessageEvent;

/// How often, at most, a pipeline logs that it drops events (each drop is counted regardless).
const DROP_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The rate limit of the "events dropped" warning.
#[derive(Debug, Default)]
struct DropLog {
    /// When the last warning was logged.
    at: Option<StdInstant>,
    /// The drop count (`PipelineStats::dropped`) it reported up to.
    reported: u64,
}

/// What a full event queue does with one more event (the alias's `overflow` setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Overflow {
    /// Drop the oldest queued event to make room (`drop-oldest`, the default): the plugin sees
    /// the most recent events.
    #[default]
    DropOldest,
    /// Drop the new event and keep the queue as it is (`drop-newest`).
    DropNewest,
}

/// Bounds and policy of one plugin's pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PipelineSettings {
    /// Events waiting to be sent, at most. Default `10_000`; `0` is taken as `1`.
    pub(crate) queue_size: usize,
    /// What a full queue does. Default [`Overflow::DropOldest`].
    pub(crate) overflow: Overflow,
    /// Most events in one `EventBatch`. Default `256`; `0` is taken as `1`.
    pub(crate) max_batch: usize,
    /// Events sent but not yet acked, at most (the replay window). Default: `queue_size`;
    /// `0` is taken as `1`.
    pub(crate) max_unacked: usize,
}

impl PipelineSettings {
    /// Settings with the given queue bound and policy, a window as large as the queue, and
    /// the default batch size.
    pub(crate) fn new(queue_size: usize, overflow: Overflow) -> Self {
        Self {
            queue_size,
            overflow,
            max_batch: 256,
            max_unacked: queue_size,
        }
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self::new(10_000, Overflow::DropOldest)
    }
}

/// A snapshot of a pipeline's counters (totals since it was created) and state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PipelineStats {
    /// Events that entered the queue.
    pub(crate) enqueued: u64,
    /// Events lost to the overflow policy: the refused new one (`drop-newest`) or the
    /// displaced oldest one (`drop-oldest`).
    pub(crate) dropped: u64,
    /// Events written to the stream, replays included. Events handed to a call that the
    /// plugin never answered (a failed connect) are not counted.
    pub(crate) sent: u64,
    /// Events released by the plugin's acks.
    pub(crate) acked: u64,
    /// Events sent again after a reconnect (included in `sent`).
    pub(crate) replayed: u64,
    /// Events in the queue now.
    pub(crate) queue_depth: usize,
    /// Events in the un-acked window now (sequenced, sent or about to be re-sent).
    pub(crate) unacked: usize,
    /// Failed connection attempts and broken streams, each followed by a retry.
    pub(crate) reconnects: u64,
    /// Whether a stream is open now (the plugin answered the `Stream` call).
    pub(crate) connected: bool,
}

/// What the pipeline needs from the broker when a stream (re)connects and when the plugin
/// sends controls.
pub(crate) trait PipelineHooks: Send + Sync + 'static {
    /// Called after each (re)connect of the channel, before events flow: the broker calls
    /// `Plugin.Describe` here and updates the interest. An error counts as a failed connect
    /// (back off, retry). The future must end on its own (a call timeout): the stream task
    /// waits for it, cancellable only by shutdown.
    fn on_connect(&self) -> BoxFuture<'static, Result<(), tonic::Status>>;
    /// A control message from the plugin (publish / disconnect / invalidate), in the order the
    /// plugin sent them. Called from the stream task: it must not block.
    fn on_control(&self, control: pb::Control);
}

/// One plugin's event pipeline, shared as `Arc<EventPipeline>` between the hot path
/// ([`push`](Self::push)), the broker's lifecycle ([`push_and_wait`](Self::push_and_wait),
/// [`drain`](Self::drain)) and the task running [`run`](Self::run).
#[derive(Debug)]
pub(crate) struct EventPipeline {
    /// The plugin's alias, for logs.
    alias: Arc<str>,
    /// `EventBatch.stream_id`: random, fixed for this pipeline's life.
    stream_id: String,
    /// What the plugin wants.
    interest: Interest,
    /// Queue, window, counters. Held only for short, non-async critical sections.
    buffer: Mutex<Buffer>,
    /// Wakes the request stream (`stream::outbound`) when an event is queued or an ack makes
    /// room (`notify_one`: a wake-up is never lost).
    queued: Notify,
    /// Wakes `push_and_wait` / `drain` callers when events are acked or dropped.
    settled: Notify,
    /// When the last "events dropped" warning was logged, and the drop count it reported.
    drop_log: Mutex<DropLog>,
}

impl EventPipeline {
    /// A pipeline for `alias`, empty, wanting nothing until [`set_interest`](Self::set_interest).
    pub(crate) fn new(alias: Arc<str>, settings: PipelineSettings) -> Arc<Self> {
        Arc::new(Self {
            alias,
            stream_id: stream::new_stream_id(),
            interest: Interest::default(),
            buffer: Mutex::new(Buffer::new(&settings)),
            queued: Notify::new(),
            settled: Notify::new(),
            drop_log: Mutex::new(DropLog::default()),
        })
    }

    /// The `stream_id` this pipeline sends in every batch.
    #[cfg(test)]
    pub(crate) fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// Sets which event kinds the plugin gets (kinds as a bitmask; `Unspecified` is ignored),
    /// the topic filters for message events (empty: every topic) and whether payloads are
    /// included. Called from Describe + config; read lock-free on the hot path.
    pub(crate) fn set_interest(
        &self,
        kinds: impl IntoIterator<Item = pb::EventKind>,
        topic_filters: Vec<String>,
        payload: bool,
    ) {
        self.interest.set(kinds, topic_filters, payload);
    }

    /// Whether the plugin wants events of `kind` (one atomic load).
    pub(crate) fn wants(&self, kind: pb::EventKind) -> bool {
        self.interest.wants(kind)
    }

    /// Whether the plugin wants an event of `kind` about `topic`: the kind is wanted and, for
    /// message kinds, `topic` matches one of its topic filters (or it gave none).
    pub(crate) fn wants_message(&self, kind: pb::EventKind, topic: &str) -> bool {
        self.interest.wants_message(kind, topic)
    }

    /// Whether message payloads should be included in the events for this plugin.
    pub(crate) fn wants_payload(&self) -> bool {
        self.interest.wants_payload()
    }

    /// Queues `event` (hot path): never awaits, never touches the network. A full queue applies
    /// the overflow policy, and every drop is counted. `time` is set to now when unset; the
    /// sequence number is assigned later, when the event is taken for the stream. Checking
    /// interest ([`wants`](Self::wants)) is the caller's job.
    pub(crate) fn push(&self, event: pb::Event) {
        self.enqueue(event, false);
    }

    /// Queues a message event (hot path), encoded straight into the pipeline with the payload
    /// or without it, as the plugin asked; otherwise as [`push`](Self::push). Checking interest
    /// ([`wants_message`](Self::wants_message)) is the caller's job.
    pub(crate) fn push_message(&self, event: &MessageEvent<'_>) {
        let payload = self.wants_payload();
        self.enqueue_with(false, |out| event.encode(payload, out));
    }

    /// Queues `event` and waits until the plugin acked it, or `deadline` passes; returns
    /// whether it was acked in time. For the start and shutdown events: such an event is never
    /// dropped on overflow, and while the plugin is not connected this waits for a
    /// (re)connection within the deadline. Needs [`run`](Self::run) to be running.
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops the waiting only: the event stays queued and is delivered.
    pub(crate) async fn push_and_wait(&self, event: pb::Event, deadline: Instant) -> bool {
        match self.enqueue(event, true) {
            Some(ticket) => self.wait_settled(ticket, deadline).await,
            None => false,
        }
    }

    /// Waits until every event queued so far has been sent and acked (or dropped on overflow,
    /// which is counted), or `deadline` passes; returns whether everything was. Events pushed
    /// meanwhile are not waited for. Used for the graceful-shutdown drain.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub(crate) async fn drain(&self, deadline: Instant) -> bool {
        let ticket = self.buffer.lock().last_ticket();
        let drained = self.wait_settled(ticket, deadline).await;
        // The broker is stopping: drops not reported yet are reported now, whatever the rate.
        self.report_drops(true);
        drained
    }

    /// A snapshot of the counters and state.
    pub(crate) fn stats(&self) -> PipelineStats {
        self.buffer.lock().snapshot()
    }

    /// Stamps, encodes and queues `event`; returns its ticket, or `None` if it was dropped.
    fn enqueue(&self, mut event: pb::Event, awaited: bool) -> Option<u64> {
        if event.time.is_none() {
            event.time = Some(SystemTime::now().into());
        }
        event.sequence = 0;
        self.enqueue_with(awaited, |out| {
            out.reserve(event.encoded_len());
            event.encode_raw(out);
        })
    }

    /// Queues the event `encode` writes (encoded once, under the lock, into the buffer's
    /// arena); returns its ticket, or `None` if it was dropped. Wakes the request stream only if
    /// it waits for events: a busy one finds them when it builds its next batch.
    fn enqueue_with(&self, awaited: bool, encode: impl FnOnce(&mut BytesMut)) -> Option<u64> {
        let (pushed, wake) = {
            let mut buffer = self.buffer.lock();
            let pushed = buffer.push(awaited, encode);
            let wake = pushed.ticket.is_some() && std::mem::take(&mut buffer.stream_idle);
            (pushed, wake)
        };
        if pushed.dropped {
            self.on_drop();
        }
        if wake {
            self.queued.notify_one();
        }
        pushed.ticket
    }

    /// After an overflow drop: wakes drain waiters (a drop may settle what they wait for) and
    /// reports the drops (rate-limited).
    #[cold]
    fn on_drop(&self) {
        self.settled.notify_waiters();
        self.report_drops(false);
    }

    /// Logs a warning with the events dropped since the last one (`dropped`) and in all
    /// (`total`), if there are any: at most once per [`DROP_LOG_INTERVAL`] unless `now`. Called
    /// on each drop, and by the stream task as it goes on (acks, reconnects), so drops that came
    /// after a warning are reported by a later one, not only when more drops follow; and at the
    /// shutdown drain with `now`. The warnings' `dropped` add up to the `dropped` counter.
    pub(crate) fn report_drops(&self, now: bool) {
        let total = self.buffer.lock().stats.dropped;
        let at = StdInstant::now();
        let mut log = self.drop_log.lock();
        let pending = total - log.reported;
        if pending == 0
            || (!now
                && log
                    .at
                    .is_some_and(|last| at.duration_since(last) < DROP_LOG_INTERVAL))
        {
            return;
        }
        log.at = Some(at);
        log.reported = total;
        drop(log);
        tracing::warn!(
            plugin = %self.alias,
            dropped = pending,
            total,
            "plugin event queue full: events dropped"
        );
    }

    /// Waits until every event up to `ticket` is settled (acked or dropped) or `deadline`.
    async fn wait_settled(&self, ticket: u64, deadline: Instant) -> bool {
        loop {
            // Register before checking, so a `notify_waiters` in between is not missed.
            let mut notified = pin!(self.settled.notified());
            notified.as_mut().enable();
            if self.buffer.lock().settled(ticket) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.buffer.lock().settled(ticket);
            }
        }
    }
}

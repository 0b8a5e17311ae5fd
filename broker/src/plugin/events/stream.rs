//! The stream task of a pipeline: (re)connect with backoff, replay the un-acked window, send
//! batches as events arrive, apply acks, forward controls.

use std::{
    convert::Infallible,
    hash::{BuildHasher, RandomState},
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use midge_proto::plugin::v1 as pb;
use tokio_util::sync::CancellationToken;
use tonic::{
    GrpcMethod, Request, Status, Streaming,
    codec::{BufferSettings, Codec, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::Channel,
};
use tonic_prost::ProstDecoder;

use super::{EventPipeline, PipelineHooks, buffer::BatchOut};
/// First delay before a reconnect.
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest delay between reconnects: a plugin that comes back is found within this.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Why a connection attempt or an open stream ended (logged, then retried).
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// `PipelineHooks::on_connect` (Describe) failed.
    #[error("connect hook failed: {:?}: {}", .0.code(), .0.message())]
    Connect(Status),
    /// The `Stream` call was refused or could not be made.
    #[error("stream call failed: {:?}: {}", .0.code(), .0.message())]
    Open(Status),
    /// The open stream failed.
    #[error("stream broken: {:?}: {}", .0.code(), .0.message())]
    Broken(Status),
    /// The plugin ended the stream without an error.
    #[error("plugin ended the stream")]
    Ended,
}

/// Reconnect state: the backoff and whether the current outage was already logged.
#[derive(Debug)]
struct Link {
    /// The next delay, before jitter.
    delay: Duration,
    /// A failure was logged and no stream opened since (later failures log at debug).
    down: bool,
}

impl Link {
    fn new() -> Self {
        Self {
            delay: BACKOFF_INITIAL,
            down: false,
        }
    }

    /// A stream opened: reset the backoff.
    fn opened(&mut self, alias: &str, replaying: usize) {
        self.delay = BACKOFF_INITIAL;
        self.down = false;
        tracing::info!(plugin = %alias, replaying, "plugin event stream open");
    }

    /// A failure: log it (warn at the start of an outage, debug while it lasts) and return the
    /// delay before the next attempt: doubling from 100 ms to 10 s, ±10 % jitter.
    fn failed(&mut self, alias: &str, error: &LinkError) -> Duration {
        if self.down {
            tracing::debug!(plugin = %alias, %error, "plugin event stream still down");
        } else {
            self.down = true;
            tracing::warn!(plugin = %alias, %error, "plugin event stream down, reconnecting");
        }
        let base = self.delay;
        self.delay = (base * 2).min(BACKOFF_MAX);
        let span = u64::try_from(base.as_nanos() / 5)
            .unwrap_or(u64::MAX)
            .max(1);
        base - base / 10 + Duration::from_nanos(random_u64() % span)
    }
}

/// A random number (not for secrets): std's per-process random hash keys over a counter.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A fresh `stream_id`: 128 random bits as 32 hex digits.
pub(super) fn new_stream_id() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// Calls `EventSink.Stream` with the batches `codec` writes, one per [`Pull`] of `pulls` (what
/// the generated client does, with [`BatchCodec`] in place of the prost codec).
async fn open_stream(
    channel: Channel,
    pulls: impl Stream<Item = Pull> + Send + 'static,
    codec: BatchCodec,
) -> Result<tonic::Response<Streaming<pb::StreamReply>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("plugin channel not ready: {e}")))?;
    let mut request = Request::new(pulls);
    request
        .extensions_mut()
        .insert(GrpcMethod::new("midge.plugin.v1.EventSink", "Stream"));
    grpc.streaming(
        request,
        PathAndQuery::from_static("/midge.plugin.v1.EventSink/Stream"),
        codec,
    )
    .await
}

/// One item of the request stream: "the pipeline has events to send". The encoder takes
/// them from the pipeline ([`BatchEncoder::encode`]) when tonic encodes the item.
#[derive(Debug, Clone, Copy)]
struct Pull;

/// The request stream of connection attempt `connection`: yields a [`Pull`] whenever the
/// pipeline has something to send, waits for a push (or an ack that makes room) otherwise,
/// and ends once the attempt is over (the pipeline began another one or stopped).
///
/// There is no queue of batches between the pipeline and the call: hyper polls the request
/// body only while the HTTP/2 stream has send capacity, and tonic encodes an item as soon as
/// it gets it, so events are taken from the queue only when HTTP/2 can take them. When the
/// plugin reads slowly (flow control), the call holds at most one encoded chunk of about
/// [`YIELD_THRESHOLD`] bytes plus a batch beyond the window; everything else waits in the
/// pipeline's window and queue, where the overflow policy applies. Nothing is lost either
/// way: what was taken and not acked is in the window and replayed on the next connection.
fn outbound(pipeline: Arc<EventPipeline>, connection: u64) -> impl Stream<Item = Pull> {
    futures_util::stream::unfold(pipeline, move |pipeline| async move {
        loop {
            let work = {
                // Made before the check, so a push in between is not missed (`notify_one`
                // leaves a permit when nobody waits yet).
                let queued = pipeline.queued.notified();
                let work = {
                    let mut buffer = pipeline.buffer.lock();
                    let work = buffer.has_work();
                    // Pushes (and acks) wake this only while it is set (see `enqueue_with`).
                    buffer.stream_idle = !work;
                    (buffer.connection() == connection).then_some(work)
                };
                if work == Some(false) {
                    queued.await;
                    continue;
                }
                work
            };
            return work.map(|_| (Pull, pipeline));
        }
    })
}

/// The codec of the event stream: each [`Pull`] is encoded as the next `EventBatch` taken
/// from the pipeline, written straight into tonic's buffer (the `stream_id` field, encoded
/// once, then the events' bytes from the arena with their `sequence`); replies are decoded by
/// prost.
#[derive(Debug, Clone)]
struct BatchCodec {
    /// The pipeline the batches come from.
    pipeline: Arc<EventPipeline>,
    /// The connection attempt whose call this is.
    connection: u64,
    /// `EventBatch.stream_id`, encoded: every batch starts with it.
    head: Bytes,
}

/// Writes the next `EventBatch` of the pipeline for each [`Pull`].
#[derive(Debug, Clone)]
struct BatchEncoder(BatchCodec);

/// tonic's encode buffer: room for a few full batches (256 events of a few hundred bytes), so
/// it is not regrown for each one.
const ENCODE_BUFFER: usize = 128 * 1024;
/// Encoded batches are handed to HTTP/2 once this many bytes are buffered (tonic's default is
/// 32 KiB). Less than a full batch, so a full batch goes out alone, right after it is written:
/// when the buffer must grow (every few batches), it copies only what was written since the
/// last hand-over, not several batches (measured: the growth copies then cost as much as the
/// copy this encoding saves).
const YIELD_THRESHOLD: usize = 8 * 1024;

impl BatchOut for EncodeBuf<'_> {
    fn reserve(&mut self, additional: usize) {
        EncodeBuf::reserve(self, additional);
    }

    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}

impl Encoder for BatchEncoder {
    type Item = Pull;
    type Error = Status;

    fn encode(&mut self, _: Pull, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let codec = &self.0;
        let mut buffer = codec.pipeline.buffer.lock();
        // A call that outlived its connection attempt takes nothing (the events stay for the
        // current one); its stream ends with this error.
        if buffer.connection() != codec.connection {
            return Err(Status::cancelled("event stream replaced"));
        }
        dst.put_slice(&codec.head);
        // `next_batch` reserves what the batch needs, once. It finds events: the request
        // stream yielded the `Pull` because there were some, and only this takes them.
        let count = buffer.next_batch(dst);
        debug_assert!(count > 0, "a pull with nothing to send");
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(ENCODE_BUFFER, YIELD_THRESHOLD)
    }
}

impl Codec for BatchCodec {
    type Encode = Pull;
    type Decode = pb::StreamReply;
    type Encoder = BatchEncoder;
    type Decoder = ProstDecoder<pb::StreamReply>;

    fn encoder(&mut self) -> BatchEncoder {
        BatchEncoder(self.clone())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

/// The next reply of an open stream; pending while the stream is not open yet.
///
/// # Cancel safety
///
/// Cancel safe (`Streaming::message` is).
async fn next_reply(
    replies: &mut Option<Streaming<pb::StreamReply>>,
) -> Result<Option<pb::StreamReply>, Status> {
    match replies {
        Some(replies) => replies.message().await,
        None => std::future::pending().await,
    }
}

impl EventPipeline {
    /// The stream loop; the broker spawns it on its `TaskTracker`, once per pipeline.
    ///
    /// Owns the connection to `EventSink.Stream` over `channel` (created lazily by the caller,
    /// without a request timeout). On each (re)connect it calls `hooks.on_connect()`, then
    /// opens the stream, re-sends the un-acked window first (same sequence numbers), then
    /// sends batches of up to `max_batch` events as soon as events are queued (no added
    /// delay). Acks are cumulative: ack `N` releases every event with sequence `<= N`. Controls
    /// go to `hooks.on_control`, in order. Any error or end of the stream is logged once with
    /// the alias (warn when an outage starts, debug while it lasts), counted as a reconnect,
    /// and followed by a retry after an exponential, jittered, cancellable backoff.
    ///
    /// Returns when `shutdown` is cancelled, which ends the broker's side of the stream.
    /// [`push`](Self::push) still accepts events afterwards, but nothing is sent.
    pub(crate) async fn run(
        self: Arc<Self>,
        channel: Channel,
        hooks: Arc<dyn PipelineHooks>,
        shutdown: CancellationToken,
    ) {
        let mut link = Link::new();
        loop {
            let attempt = Self::stream_once(&self, &channel, &*hooks, &mut link);
            let Err(error) = tokio::select! {
                () = shutdown.cancelled() => break,
                result = attempt => result,
            };
            self.buffer.lock().failed();
            // The attempt's request stream, if it still waits for events, ends now.
            self.queued.notify_waiters();
            self.report_drops(false);
            let delay = link.failed(&self.alias, &error);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        {
            let mut buffer = self.buffer.lock();
            buffer.end_connection();
            buffer.stats.connected = false;
        }
        // The last request stream, if it waits for events, ends now: the plugin sees the end
        // of the broker's side.
        self.queued.notify_waiters();
    }

    /// One connection: connect hook, open the stream, then send and receive until it fails.
    /// Returns only with the reason it ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the queue and window are consistent at every await; what was handed to the
    /// call and not acked is in the window and is replayed by the next connection.
    async fn stream_once(
        self: &Arc<Self>,
        channel: &Channel,
        hooks: &dyn PipelineHooks,
        link: &mut Link,
    ) -> Result<Infallible, LinkError> {
        hooks.on_connect().await.map_err(LinkError::Connect)?;
        let connection = self.buffer.lock().begin_connection();
        // `EventBatch.stream_id`, encoded once: every batch starts with it.
        let head = {
            let mut head = BytesMut::new();
            prost::encoding::string::encode(1, &self.stream_id, &mut head);
            head.freeze()
        };
        let codec = BatchCodec {
            pipeline: Arc::clone(self),
            connection,
            head,
        };
        // The call resolves with the plugin's response headers, which some servers send only
        // with their first reply; so events are sent while it is pending. Bounds and the full
        // policy of what it sends: see `outbound`.
        let pulls = outbound(Arc::clone(self), connection);
        let mut call = pin!(open_stream(channel.clone(), pulls, codec));
        let mut replies = None;
        loop {
            tokio::select! {
                biased;
                opened = &mut call, if replies.is_none() => {
                    replies = Some(opened.map_err(LinkError::Open)?.into_inner());
                    let replaying = {
                        let mut buffer = self.buffer.lock();
                        buffer.opened();
                        buffer.snapshot().unacked
                    };
                    link.opened(&self.alias, replaying);
                }
                reply = next_reply(&mut replies) => match reply {
                    Ok(Some(reply)) => self.on_reply(reply, hooks),
                    Ok(None) => return Err(LinkError::Ended),
                    Err(status) => return Err(LinkError::Broken(status)),
                },
            }
        }
    }

    /// Applies a reply: the cumulative ack, then the controls in order.
    fn on_reply(&self, reply: pb::StreamReply, hooks: &dyn PipelineHooks) {
        if reply.ack > 0 {
            let (released, wake) = {
                let mut buffer = self.buffer.lock();
                let released = buffer.ack(reply.ack);
                // The ack made room in the window for queued events: wake the request stream
                // if it waits (see `outbound`).
                let wake =
                    released > 0 && buffer.has_work() && std::mem::take(&mut buffer.stream_idle);
                (released, wake)
            };
            if wake {
                self.queued.notify_one();
            }
            if released > 0 {
                self.settled.notify_waiters();
                self.report_drops(false);
            }
        }
        for control in reply.controls {
            hooks.on_control(control);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_ten_seconds_with_little_jitter() {
        let mut link = Link::new();
        let mut delays = Vec::new();
        for _ in 0..10 {
            delays.push(link.failed("p", &LinkError::Ended));
        }
        for (delay, base) in delays.iter().zip([100u64, 200, 400, 800, 1600, 3200, 6400]) {
            let base = Duration::from_millis(base);
            assert!(
                *delay >= base * 9 / 10 && *delay < base * 11 / 10,
                "{delay:?}"
            );
        }
        assert!(delays[9] >= Duration::from_secs(9) && delays[9] < Duration::from_secs(11));
        link.opened("p", 0);
        assert!(link.failed("p", &LinkError::Ended) < Duration::from_millis(110));
    }

    #[test]
    fn stream_ids_differ() {
        let a = new_stream_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_stream_id());
    }
}

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
use midge_proto::plugin::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{
    GrpcMethod, Request, Status, Streaming,
    codec::{BufferSettings, Codec, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::Channel,
};
use tonic_prost::ProstDecoder;

use super::{EventPipeline, PipelineHooks};

/// Batches buffered between the stream task and the gRPC call. When it is full (HTTP/2 flow
/// control: the plugin reads slowly) the task stops taking events, which wait in the window
/// and the queue, and goes on reading acks.
const OUTBOUND_BATCHES: usize = 4;
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
    /// The call dropped our side of the stream.
    #[error("request stream closed")]
    Closed,
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

/// Calls `EventSink.Stream` with batches that are already encoded `EventBatch` messages (what
/// the generated client does, with [`BatchCodec`] in place of the prost codec).
async fn open_stream(
    channel: Channel,
    batches: ReceiverStream<Bytes>,
) -> Result<tonic::Response<Streaming<pb::StreamReply>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("plugin channel not ready: {e}")))?;
    let mut request = Request::new(batches);
    request
        .extensions_mut()
        .insert(GrpcMethod::new("midge.plugin.v1.EventSink", "Stream"));
    grpc.streaming(
        request,
        PathAndQuery::from_static("/midge.plugin.v1.EventSink/Stream"),
        BatchCodec,
    )
    .await
}

/// The codec of the event stream: batches go out as the bytes the pipeline encoded (see
/// `buffer`), replies are decoded by prost.
#[derive(Debug, Clone, Copy, Default)]
struct BatchCodec;

/// Writes an encoded `EventBatch` as it is.
#[derive(Debug, Clone, Copy, Default)]
struct BatchEncoder;

/// tonic's encode buffer: room for a few full batches (256 events of a few hundred bytes), so
/// it is not regrown (and copied) for each one; default yield threshold.
const ENCODE_BUFFER: usize = 128 * 1024;
/// tonic's default: encoded batches are handed to HTTP/2 once this many bytes are buffered.
const YIELD_THRESHOLD: usize = 32 * 1024;

impl Encoder for BatchEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(ENCODE_BUFFER, YIELD_THRESHOLD)
    }
}

impl Codec for BatchCodec {
    type Encode = Bytes;
    type Decode = pb::StreamReply;
    type Encoder = BatchEncoder;
    type Decoder = ProstDecoder<pb::StreamReply>;

    fn encoder(&mut self) -> BatchEncoder {
        BatchEncoder
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
            let attempt = self.stream_once(&channel, &*hooks, &mut link);
            let Err(error) = tokio::select! {
                () = shutdown.cancelled() => break,
                result = attempt => result,
            };
            self.buffer.lock().failed();
            self.report_drops(false);
            let delay = link.failed(&self.alias, &error);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.buffer.lock().stats.connected = false;
    }

    /// One connection: connect hook, open the stream, then send and receive until it fails.
    /// Returns only with the reason it ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the queue and window are consistent at every await; what was handed to the
    /// call and not acked is in the window and is replayed by the next connection.
    async fn stream_once(
        &self,
        channel: &Channel,
        hooks: &dyn PipelineHooks,
        link: &mut Link,
    ) -> Result<Infallible, LinkError> {
        hooks.on_connect().await.map_err(LinkError::Connect)?;
        // Capacity and full policy: see `OUTBOUND_BATCHES` (the task waits, nothing is lost).
        let (tx, rx) = mpsc::channel::<Bytes>(OUTBOUND_BATCHES);
        self.buffer.lock().begin_connection();
        // The call resolves with the plugin's response headers, which some servers send only
        // with their first reply; so events are sent while it is pending.
        let mut call = pin!(open_stream(channel.clone(), ReceiverStream::new(rx)));
        // `EventBatch.stream_id`, encoded once: every batch starts with it.
        let batch_head = {
            let mut head = BytesMut::new();
            prost::encoding::string::encode(1, &self.stream_id, &mut head);
            head.freeze()
        };
        let mut replies = None;
        loop {
            let has_work = {
                let mut buffer = self.buffer.lock();
                let has_work = buffer.has_work();
                // Pushes wake the task only while this is set (see `enqueue_with`).
                buffer.stream_idle = !has_work;
                has_work
            };
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
                permit = tx.reserve(), if has_work => {
                    let permit = permit.map_err(|_| LinkError::Closed)?;
                    // `next_batch` reserves what the batch needs, once.
                    let mut batch = BytesMut::from(&batch_head[..]);
                    if self.buffer.lock().next_batch(&mut batch) > 0 {
                        permit.send(batch.freeze());
                    }
                }
                () = self.queued.notified(), if !has_work => {}
            }
        }
    }

    /// Applies a reply: the cumulative ack, then the controls in order.
    fn on_reply(&self, reply: pb::StreamReply, hooks: &dyn PipelineHooks) {
        if reply.ack > 0 && self.buffer.lock().ack(reply.ack) > 0 {
            self.settled.notify_waiters();
            self.report_drops(false);
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

//! The `EventSink` gRPC service around an [`EventHandler`]: duplicate dropping, in-order
//! handling and cumulative acks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::{Mutex as AsyncMutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::{
    Context, EventHandler,
    config::ConfigStore,
    context::ReplySender,
    pb::{self, event_sink_server::EventSink},
};

/// Replies (acks and control messages) buffered per stream before a sender waits. A handler
/// sending controls faster than the broker reads them waits here (backpressure, nothing is
/// dropped); acks are at most one per batch.
const REPLY_CAPACITY: usize = 64;

/// The highest sequence number handled, per broker stream id, for the life of this process, so
/// replays after a reconnect are skipped. Each cursor is an async mutex held while a batch is
/// handled: if the broker reconnects while an old stream is still finishing a batch, the new
/// stream waits for it instead of handling the same events twice.
#[derive(Debug, Default)]
struct Cursors(Mutex<HashMap<String, Arc<AsyncMutex<u64>>>>);

impl Cursors {
    fn get(&self, stream_id: &str) -> Arc<AsyncMutex<u64>> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(stream_id.to_owned()).or_default())
    }
}

/// The `midge.plugin.v1.EventSink` implementation.
#[derive(Debug)]
pub(crate) struct EventSinkService<H> {
    handler: Arc<H>,
    cursors: Arc<Cursors>,
    config: ConfigStore,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl<H: EventHandler> EventSinkService<H> {
    /// `shutdown` ends every open stream (after its current batch); `tracker` runs the
    /// per-stream tasks so the server can wait for them.
    pub(crate) fn new(
        handler: Arc<H>,
        config: ConfigStore,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        EventSinkService {
            handler,
            cursors: Arc::default(),
            config,
            shutdown,
            tracker,
        }
    }
}

#[tonic::async_trait]
impl<H: EventHandler> EventSink for EventSinkService<H> {
    type StreamStream = ReceiverStream<Result<pb::StreamReply, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::EventBatch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let (tx, rx) = mpsc::channel(REPLY_CAPACITY);
        let stream = StreamTask {
            handler: Arc::clone(&self.handler),
            cursors: Arc::clone(&self.cursors),
            config: self.config.clone(),
            replies: tx,
        };
        let shutdown = self.shutdown.clone();
        self.tracker
            .spawn(stream.run(request.into_inner(), shutdown));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// One open `EventSink.Stream` call.
struct StreamTask<H> {
    handler: Arc<H>,
    cursors: Arc<Cursors>,
    config: ConfigStore,
    replies: ReplySender,
}

impl<H: EventHandler> StreamTask<H> {
    async fn run(self, mut inbound: Streaming<pb::EventBatch>, shutdown: CancellationToken) {
        loop {
            // Cancel safety: only `inbound.message()` is cancelled here, between batches, and
            // we return right after, so no partially read batch is lost.
            let batch = tokio::select! {
                () = shutdown.cancelled() => {
                    let status = Status::unavailable("plugin is shutting down");
                    let _ = self.replies.send(Err(status)).await;
                    return;
                }
                () = self.replies.closed() => return,
                msg = inbound.message() => msg,
            };
            match batch {
                Ok(Some(batch)) => {
                    if !self.handle(batch).await {
                        return;
                    }
                }
                Ok(None) => return,
                Err(status) => {
                    debug!(%status, "event stream ended");
                    return;
                }
            }
        }
    }

    /// Handles one batch, then acks. Returns false when the reply side is gone.
    async fn handle(&self, batch: pb::EventBatch) -> bool {
        let stream_id: Arc<str> = batch.stream_id.into();
        let cursor = self.cursors.get(&stream_id);
        let mut highest = cursor.lock().await;
        for event in batch.events {
            if event.sequence <= *highest {
                debug!(stream_id = %stream_id, sequence = event.sequence, "duplicate event dropped");
                continue;
            }
            let ctx = Context::new(
                Arc::clone(&stream_id),
                &event,
                self.replies.clone(),
                self.config.clone(),
            );
            if let Err(status) = self.handler.on_event(&ctx, &event).await {
                warn!(
                    stream_id = %stream_id,
                    sequence = event.sequence,
                    kind = event.kind().as_str_name(),
                    %status,
                    "event handler failed; event acked anyway"
                );
            }
            *highest = event.sequence;
        }
        let ack = *highest;
        drop(highest);
        if ack == 0 {
            return true;
        }
        let reply = pb::StreamReply {
            ack,
            controls: Vec::new(),
        };
        self.replies.send(Ok(reply)).await.is_ok()
    }
}

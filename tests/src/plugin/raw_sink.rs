//! [`RawEventSink`]: an `EventSink` without the SDK, seeing the stream as the broker sends it.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// RawEventSink

/// One event as a [`RawEventSink`] received it off the wire.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Which `Stream` call carried it: 1 for the first, 2 after the first reconnect, ...
    pub connection: u32,
    /// `EventBatch.stream_id`.
    pub stream_id: String,
    /// The event, `sequence` as sent.
    pub event: pb::Event,
}

impl Delivery {
    /// `Event.sequence`.
    pub fn sequence(&self) -> u64 {
        self.event.sequence
    }

    /// The message payload of a message event, if any.
    pub fn payload(&self) -> Option<&[u8]> {
        message_event(&self.event)?
            .message
            .as_ref()
            .map(|m| m.payload.as_slice())
    }
}

struct RawState {
    kinds: Vec<pb::EventKind>,
    acking: AtomicBool,
    /// Kinds whose next event, once it arrives, stops the acks just before it.
    hold_at: Mutex<Vec<pb::EventKind>>,
    /// Bumped by `release_acks`: every stream acks all it received and holds no more.
    released: watch::Sender<u64>,
    connections: AtomicU32,
    deliveries: Mutex<Vec<Delivery>>,
    changed: watch::Sender<u64>,
}

#[derive(Clone)]
struct RawService(Arc<RawState>);

#[tonic::async_trait]
impl pb::plugin_server::Plugin for RawService {
    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Ok(Response::new(pb::DescribeResponse {
            name: "raw-event-sink".into(),
            version: "1.0.0".into(),
            events: self.0.kinds.iter().map(|k| *k as i32).collect(),
            services: vec![midge_proto::service_names::EVENT_SINK.into()],
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl pb::event_sink_server::EventSink for RawService {
    type StreamStream = ReceiverStream<Result<pb::StreamReply, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::EventBatch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let state = Arc::clone(&self.0);
        let connection = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let (tx, rx) = mpsc::channel(64);
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            let mut highest = 0;
            let mut acked = 0;
            // The sequence of a held event: acks stop just before it until released.
            let mut held: Option<u64> = None;
            let mut released = state.released.subscribe();
            loop {
                tokio::select! {
                    message = inbound.message() => {
                        let Ok(Some(batch)) = message else { return };
                        {
                            let mut deliveries = lock(&state.deliveries);
                            let mut hold_at = lock(&state.hold_at);
                            for event in batch.events {
                                highest = highest.max(event.sequence);
                                let kind = event.kind();
                                if held.is_none()
                                    && let Some(at) = hold_at.iter().position(|k| *k == kind)
                                {
                                    hold_at.remove(at);
                                    held = Some(event.sequence);
                                }
                                deliveries.push(Delivery {
                                    connection,
                                    stream_id: batch.stream_id.clone(),
                                    event,
                                });
                            }
                        }
                        state.changed.send_modify(|n| *n += 1);
                    }
                    changed = released.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        held = None;
                    }
                }
                let ack = held.map_or(highest, |at| at - 1);
                if state.acking.load(Ordering::SeqCst) && ack > acked {
                    acked = ack;
                    let reply = pb::StreamReply {
                        ack,
                        controls: Vec::new(),
                    };
                    if tx.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// An `EventSink` (plus `Plugin.Describe`) written directly against the generated tonic
/// traits: it records every event exactly as it arrives, duplicates included, and acks each
/// batch cumulatively only while acking is on (and only up to an event held by
/// [`hold_acks_at`](Self::hold_acks_at)). Dropping it kills it.
pub struct RawEventSink {
    state: Arc<RawState>,
    hosted: Hosted,
}

impl std::fmt::Debug for RawEventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEventSink")
            .field("hosted", &self.hosted)
            .finish_non_exhaustive()
    }
}

impl RawEventSink {
    /// Starts one on `127.0.0.1:0` that asks for `kinds` and acks.
    pub async fn start(kinds: &[pb::EventKind]) -> RawEventSink {
        let state = Arc::new(RawState {
            kinds: kinds.to_vec(),
            acking: AtomicBool::new(true),
            hold_at: Mutex::default(),
            released: watch::channel(0).0,
            connections: AtomicU32::new(0),
            deliveries: Mutex::default(),
            changed: watch::channel(0).0,
        });
        let hosted = Hosted::spawn(0, Self::serve(Arc::clone(&state)));
        RawEventSink { state, hosted }
    }

    fn serve(state: Arc<RawState>) -> Serve {
        Box::new(move |listener, signal| {
            Box::pin(async move {
                let service = RawService(state);
                let result = tonic::transport::Server::builder()
                    .add_service(pb::plugin_server::PluginServer::new(service.clone()))
                    .add_service(pb::event_sink_server::EventSinkServer::new(service))
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                    .await;
                if let Err(e) = result {
                    eprintln!("raw event sink failed: {e}");
                }
            })
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.hosted.endpoint()
    }

    /// A `plugins:` entry for it under `alias`.
    pub fn yaml(&self, alias: &str, extra: &str) -> String {
        plugin_yaml(alias, &self.endpoint(), extra)
    }

    /// Turns acking on (each later batch is acked up to the highest sequence seen on its
    /// connection) or off (nothing is acked).
    pub fn set_acking(&self, on: bool) {
        self.state.acking.store(on, Ordering::SeqCst);
    }

    /// The next event of `kind` to arrive is not acknowledged, nor any after it, until
    /// [`release_acks`](Self::release_acks): the broker waits for it as for a slow plugin.
    /// Events keep being received and recorded meanwhile.
    pub fn hold_acks_at(&self, kind: pb::EventKind) {
        lock(&self.state.hold_at).push(kind);
    }

    /// Acknowledges everything received so far (while acking is on) and holds no more acks.
    pub fn release_acks(&self) {
        self.state.released.send_modify(|n| *n += 1);
    }

    /// Every event received, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state.deliveries).clone()
    }

    /// Waits up to [`TIMEOUT`](crate::TIMEOUT) for a delivery `pred` accepts.
    ///
    /// # Panics
    ///
    /// If none arrives in time.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Delivery) -> bool) -> Delivery {
        let deadline = Instant::now() + TIMEOUT;
        let mut rx = self.state.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(found) = lock(&self.state.deliveries).iter().find(|d| pred(d)) {
                return found.clone();
            }
            match timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("raw event sink state dropped"),
                Err(_) => panic!(
                    "raw event sink: no delivery {what} within {TIMEOUT:?}; got {:?}",
                    self.deliveries()
                        .iter()
                        .map(|d| (d.connection, d.sequence(), d.event.kind().as_str_name()))
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Kills it (listener and connections close at once).
    pub async fn kill(&mut self) {
        self.hosted.end(Stop::Kill).await;
    }

    /// Starts it again on the same port, with the same records.
    pub async fn restart_on_same_port(&mut self) {
        self.kill().await;
        let serve = Self::serve(Arc::clone(&self.state));
        self.hosted.restart(serve).await;
    }
}

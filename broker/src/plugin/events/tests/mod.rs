//! Pipeline tests against real tonic `EventSink` servers on 127.0.0.1 (no transport mocks).
//!
//! Each [`TestServer`] runs on its own runtime and thread, so killing it drops the listener and
//! every connection at once, as a crashed plugin would. The test drives each `Stream` call by
//! hand: it reads the batches and decides when to ack.

mod delivery;
mod recovery;

use std::{
    net::{SocketAddr, TcpListener as StdTcpListener},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread::JoinHandle as ThreadHandle,
    time::Duration,
};

use futures_util::future::BoxFuture;
use midge_proto::plugin::v1 as pb;
use parking_lot::Mutex;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming, transport::Endpoint};

use super::{EventPipeline, PipelineHooks, PipelineSettings, PipelineStats};

/// The bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// An event told apart by its mark (carried as the client id).
fn ev(mark: u32) -> pb::Event {
    pb::Event {
        body: Some(pb::event::Body::ClientSubscribed(pb::ClientSubscribed {
            client_id: mark.to_string(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The mark of an event made by [`ev`].
fn mark(event: &pb::Event) -> u32 {
    match &event.body {
        Some(pb::event::Body::ClientSubscribed(s)) => s.client_id.parse().expect("a mark"),
        other => panic!("unexpected body {other:?}"),
    }
}

/// `(sequence, mark)` of each event.
fn seq_marks(events: &[pb::Event]) -> Vec<(u64, u32)> {
    events.iter().map(|e| (e.sequence, mark(e))).collect()
}

/// Polls `cond` on the pipeline's stats until it holds, or panics after [`WAIT`].
async fn wait_stats(pipeline: &EventPipeline, what: &str, cond: impl Fn(&PipelineStats) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = pipeline.stats();
        if cond(&stats) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One `Stream` call as the server saw it.
struct Call {
    batches: Streaming<pb::EventBatch>,
    replies: mpsc::Sender<Result<pb::StreamReply, Status>>,
}

impl Call {
    /// The next batch; panics if the stream ends or nothing arrives in time.
    async fn batch(&mut self) -> pb::EventBatch {
        tokio::time::timeout(WAIT, self.batches.message())
            .await
            .expect("a batch in time")
            .expect("stream ok")
            .expect("stream still open")
    }

    /// Reads batches until exactly `n` events came, checking each batch's size and stream id.
    async fn events(&mut self, n: usize, max_batch: usize, stream_id: &str) -> Vec<pb::Event> {
        let mut events = Vec::new();
        while events.len() < n {
            let batch = self.batch().await;
            assert_eq!(batch.stream_id, stream_id);
            assert!(!batch.events.is_empty() && batch.events.len() <= max_batch);
            events.extend(batch.events);
        }
        assert_eq!(events.len(), n, "more events than expected");
        events
    }

    /// Sends a reply.
    async fn reply(&self, ack: u64, controls: Vec<pb::Control>) {
        self.replies
            .send(Ok(pb::StreamReply { ack, controls }))
            .await
            .expect("reply stream open");
    }
}

/// The test `EventSink`: hands every call to the test.
struct Sink {
    calls: mpsc::UnboundedSender<Call>,
}

#[tonic::async_trait]
impl pb::event_sink_server::EventSink for Sink {
    type StreamStream = ReceiverStream<Result<pb::StreamReply, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::EventBatch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let (replies, rx) = mpsc::channel(16);
        let call = Call {
            batches: request.into_inner(),
            replies,
        };
        self.calls
            .send(call)
            .map_err(|_| Status::unavailable("test gone"))?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A real `EventSink` server on its own thread and runtime.
struct TestServer {
    addr: SocketAddr,
    calls: mpsc::UnboundedReceiver<Call>,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<ThreadHandle<()>>,
}

impl TestServer {
    /// Starts a server on `addr` (port 0: any free port). Retries the bind until [`WAIT`]
    /// passes, since a just-killed server's port may not be free yet.
    fn start(addr: SocketAddr) -> Self {
        let deadline = std::time::Instant::now() + WAIT;
        let listener = loop {
            match bind(addr) {
                Ok(listener) => break listener,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("bind {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().expect("local addr");
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (kill, killed) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let sink = pb::event_sink_server::EventSinkServer::new(Sink { calls: calls_tx });
                let serve = tonic::transport::Server::builder()
                    .add_service(sink)
                    .serve_with_incoming(TcpListenerStream::new(listener));
                tokio::select! {
                    result = serve => result.expect("server runs"),
                    _ = killed => {}
                }
            });
            // Dropping the runtime drops the listener and every connection task.
        });
        Self {
            addr,
            calls,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// The next `Stream` call.
    async fn call(&mut self) -> Call {
        tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("a stream call in time")
            .expect("server alive")
    }

    /// Kills the server: listener and connections close at once, nothing is flushed.
    fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A listening socket with `SO_REUSEADDR`, so a restarted server gets its old port back.
fn bind(addr: SocketAddr) -> std::io::Result<StdTcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A free port on 127.0.0.1, with nothing listening on it.
fn free_addr() -> SocketAddr {
    let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    listener.local_addr().expect("local addr")
}

/// Hooks that record what they see; the first `fail_connects` connects fail.
#[derive(Debug, Default)]
struct Hooks {
    fail_connects: usize,
    connects: AtomicUsize,
    controls: Mutex<Vec<pb::Control>>,
}

impl PipelineHooks for Hooks {
    fn on_connect(&self) -> BoxFuture<'static, Result<(), Status>> {
        let n = self.connects.fetch_add(1, Ordering::SeqCst);
        let fail = n < self.fail_connects;
        Box::pin(async move {
            if fail {
                Err(Status::unavailable("describe failed (test)"))
            } else {
                Ok(())
            }
        })
    }

    fn on_control(&self, control: pb::Control) {
        self.controls.lock().push(control);
    }
}

/// A pipeline whose stream task runs against `addr`, stopped (and joined) on drop.
struct Running {
    pipeline: Arc<EventPipeline>,
    hooks: Arc<Hooks>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Running {
    fn start(pipeline: Arc<EventPipeline>, addr: SocketAddr, hooks: Hooks) -> Self {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        let hooks = Arc::new(hooks);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&pipeline).run(
            channel,
            Arc::clone(&hooks) as Arc<dyn PipelineHooks>,
            shutdown.clone(),
        ));
        Self {
            pipeline,
            hooks,
            shutdown,
            task: Some(task),
        }
    }

    fn new(settings: PipelineSettings, addr: SocketAddr) -> Self {
        Self::start(
            EventPipeline::new("test".into(), settings),
            addr,
            Hooks::default(),
        )
    }

    /// Cancels the stream task and waits for it to return.
    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("run returns after cancel")
                .expect("run did not panic");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

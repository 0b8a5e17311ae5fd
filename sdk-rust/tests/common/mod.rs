//! A plugin [`Server`] on `127.0.0.1:0` for tests, with a client channel and a clean stop.

use std::time::Duration;

use midge_plugin::{ServeError, Server};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Channel, Endpoint};

/// How long a test waits for anything before it fails instead of hanging.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

pub(crate) struct TestServer {
    pub(crate) channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    /// Binds first, so the server is reachable as soon as this returns (no sleeping).
    pub(crate) async fn start(server: Server) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve_with_listener(listener, async {
            let _ = stopped.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_timeout(DEADLINE)
            .connect()
            .await
            .expect("connect");
        TestServer {
            channel,
            stop: Some(stop),
            task,
        }
    }

    /// Signals shutdown and waits for `serve` to return, within [`DEADLINE`].
    pub(crate) async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("server stopped before the deadline")
            .expect("server task did not panic")
    }
}

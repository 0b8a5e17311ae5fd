//! In-process gRPC servers, each on its own thread and current-thread runtime.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Server threads

/// How to end an in-process server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its own graceful shutdown.
    Graceful,
    /// Drop everything at once, connections included.
    Kill,
}

pub(crate) type Serve = Box<
    dyn FnOnce(tokio::net::TcpListener, BoxFuture<'static, ()>) -> BoxFuture<'static, ()> + Send,
>;

/// Where a test plugin listens and the thread serving it: restartable on the same port, so a
/// broker's configured endpoint stays valid (shared by [`super::TestPlugin`] and
/// [`super::RawEventSink`]).
#[derive(Debug)]
pub(crate) struct Hosted {
    addr: SocketAddr,
    server: Option<ServerThread>,
}

impl Hosted {
    /// Serves `serve` on `127.0.0.1:port` (0: an ephemeral port).
    pub(crate) fn spawn(port: u16, serve: Serve) -> Self {
        let (server, addr) = ServerThread::spawn(port, serve);
        Hosted {
            addr,
            server: Some(server),
        }
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for the broker's config.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends the server as `stop` says, if it runs.
    pub(crate) async fn end(&mut self, stop: Stop) {
        if let Some(server) = self.server.take() {
            server.end(stop).await;
        }
    }

    /// Kills the server if it runs, then serves `serve` on the same port.
    pub(crate) async fn restart(&mut self, serve: Serve) {
        self.end(Stop::Kill).await;
        *self = Hosted::spawn(self.addr.port(), serve);
    }
}

/// A gRPC server running on its own thread and current-thread runtime.
#[derive(Debug)]
pub(crate) struct ServerThread {
    stop: Option<oneshot::Sender<Stop>>,
    done: Option<oneshot::Receiver<()>>,
}

impl ServerThread {
    /// Binds `127.0.0.1:port` (SO_REUSEADDR, so a port just released can be taken again) and
    /// serves `serve` on it. Returns the thread and the bound address.
    pub(crate) fn spawn(port: u16, serve: Serve) -> (ServerThread, SocketAddr) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("binding the test plugin to port {port}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the listener's address");
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("test-plugin-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the test plugin's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("registering the listener");
                    let (graceful_tx, graceful_rx) = oneshot::channel::<()>();
                    let signal: BoxFuture<'static, ()> = Box::pin(async move {
                        let _ = graceful_rx.await;
                    });
                    let server = tokio::spawn(serve(listener, signal));
                    match stop_rx.await {
                        Ok(Stop::Graceful) => {
                            let _ = graceful_tx.send(());
                            let _ = server.await;
                        }
                        Ok(Stop::Kill) | Err(_) => server.abort(),
                    }
                });
                // Dropping the runtime drops every task it still has: the listener and all
                // connections close here.
                drop(runtime);
                let _ = done_tx.send(());
            })
            .expect("spawning the test plugin's thread");
        let thread = ServerThread {
            stop: Some(stop_tx),
            done: Some(done_rx),
        };
        (thread, addr)
    }

    pub(crate) async fn end(mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(done) = self.done.take() {
            let _ = within("the test plugin to stop", done).await;
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Kill);
        }
    }
}

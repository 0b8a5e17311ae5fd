//! Listeners: accept loops for TCP, TLS and WebSocket that hand each connection's byte stream
//! ([`Transport`]) and facts about the peer ([`PeerInfo`]) to the broker's connection handler.
//!
//! # Lifecycle
//!
//! [`bind_all`] binds every configured listener and loads its TLS material before anything is
//! served, so a busy port or a bad certificate fails start-up with an error naming the listener
//! and the file. [`BoundListener::serve`] then runs the accept loop, which only accepts and
//! spawns: each accepted socket gets its own task on the broker's `TaskTracker`, in which the
//! TLS handshake and/or WebSocket upgrade run, bounded by the connect deadline
//! (`accept time + connect-timeout`), and then the handler, which gets the same deadline in
//! [`PeerInfo::connect_deadline`] for reading CONNECT. Each connection task runs in a `connection`
//! span with `peer`, `listener` and an empty `client_id` field for the connection code to record.
//!
//! # Connection limit
//!
//! `max-connections` (0 = unlimited) is a [`Semaphore`]. When the listener is full, a new
//! connection is still accepted and then closed at once, counted in
//! [`ListenerStats::refused`] and logged at debug: the client sees a refusal immediately rather
//! than hanging in the kernel backlog until its own timeout. The permit of an admitted connection
//! lives in its task and is released when the handler returns.
//!
//! Every connection also holds a file descriptor, so the process's fd limit bounds them all,
//! whatever `max-connections` says (the default 0 leaves the fd limit as the only bound). The
//! limits are logged at start ([`log_connection_limits`]), and an `accept` that fails for lack
//! of descriptors is retried with a short back-off while existing connections are served (see
//! the `tcp` module).
//!
//! # Shutdown
//!
//! Cancelling the `shutdown` token given to [`BoundListener::serve`] stops accepting at once and
//! closes the listening socket; connections still in their transport handshake are dropped.
//! Connections already handed to the handler are the handler's to stop.

mod limits;
mod tcp;
#[cfg(test)]
mod testutil;
mod tls;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt as _;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, Span, debug, info, info_span};

use crate::config::{ListenerConfig, ListenerKind};

pub(crate) use limits::log_connection_limits;

/// A bidirectional byte stream carrying MQTT packets, whatever the transport underneath.
pub(crate) trait MqttStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> MqttStream for T {}

/// A connection's transport once TLS / WebSocket handshakes are done. Plain TCP is held
/// inline: boxing it would cost every connection an allocation (bench: RSS per idle
/// connection); TLS and WebSocket streams are boxed.
pub(crate) enum Transport {
    /// A plain TCP connection.
    Tcp(TcpStream),
    /// A TLS and/or WebSocket stream.
    Boxed(Box<dyn MqttStream>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp(stream) => f.debug_tuple("Tcp").field(stream).finish(),
            Transport::Boxed(_) => f.write_str("Boxed"),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Boxed(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Boxed(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Transport::Boxed(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(stream) => stream.is_write_vectored(),
            Transport::Boxed(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Boxed(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Boxed(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// What the listener knows about a newly accepted peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    /// The peer's socket address.
    pub(crate) addr: SocketAddr,
    /// Name of the listener that accepted the connection (from config).
    pub(crate) listener: Arc<str>,
    /// Subject of the verified TLS client certificate, when one was presented.
    pub(crate) tls_subject: Option<String>,
    /// When the CONNECT timeout expires: transport handshakes and the CONNECT packet must both
    /// complete before this instant.
    pub(crate) connect_deadline: Instant,
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The listening socket could not be created or bound (port in use, no permission, ...).
    #[error("listener {name:?}: cannot listen on {addr}")]
    Bind {
        /// The listener's configured name.
        name: String,
        /// The configured bind address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A certificate, key or CA file could not be read or was rejected.
    #[error("listener {name:?}: TLS file {}: {reason}", path.display())]
    Tls {
        /// The listener's configured name.
        name: String,
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The listener's configuration is inconsistent (e.g. a `tls` listener without TLS settings).
    #[error("listener {name:?}: {reason}")]
    Config {
        /// The listener's configured name.
        name: String,
        /// What is inconsistent.
        reason: String,
    },
}

/// Connection counters of one listener, shared between its accept loop and its connection tasks.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    accepted: AtomicU64,
    current: AtomicUsize,
    refused: AtomicU64,
    accept_errors: AtomicU64,
    /// `max-connections` as permits, one per admitted connection; `None` when it is 0
    /// (unlimited).
    limit: Option<Semaphore>,
}

impl ListenerStats {
    /// Connections admitted since start (refused ones are not counted).
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now: admitted and not yet finished (handshake or handler still running).
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Connections closed right after accept because the listener was at `max-connections`.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Failed `accept` calls, mostly for lack of file descriptors; each is retried after a
    /// back-off (see the `tcp` module).
    pub(crate) fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }
}

/// The transport handshake a listener performs on each accepted socket.
#[derive(Debug)]
enum Handshake {
    Tcp,
    Tls(Arc<ServerConfig>),
    Ws,
    Wss(Arc<ServerConfig>),
}

impl Handshake {
    /// Turns an accepted socket into a [`Transport`], returning the TLS client subject if any.
    async fn run(&self, stream: TcpStream) -> io::Result<(Transport, Option<String>)> {
        Ok(match self {
            Handshake::Tcp => (Transport::Tcp(stream), None),
            Handshake::Tls(config) => {
                let (stream, subject) = tls::accept(config, stream).await?;
                (Transport::Boxed(Box::new(stream)), subject)
            }
            Handshake::Ws => (Transport::Boxed(Box::new(ws::accept(stream).await?)), None),
            Handshake::Wss(config) => {
                let (stream, subject) = tls::accept(config, stream).await?;
                (
                    Transport::Boxed(Box::new(ws::accept(stream).await?)),
                    subject,
                )
            }
        })
    }
}

/// Binds every configured listener up front (so a busy port or a bad certificate fails start-up
/// with a clear error) and loads its TLS material.
///
/// # Errors
///
/// The first listener that cannot be set up, as a [`ListenerError`]; listeners bound before it
/// are closed again.
pub(crate) async fn bind_all(
    configs: &[ListenerConfig],
) -> Result<Vec<BoundListener>, ListenerError> {
    configs.iter().map(BoundListener::bind).collect()
}

/// A listener whose socket is bound and whose TLS material is loaded, ready to [`serve`].
///
/// [`serve`]: BoundListener::serve
#[derive(Debug)]
pub(crate) struct BoundListener {
    name: Arc<str>,
    listener: TcpListener,
    local_addr: SocketAddr,
    handshake: Arc<Handshake>,
    connect_timeout: Duration,
    stats: Arc<ListenerStats>,
}

impl BoundListener {
    fn bind(cfg: &ListenerConfig) -> Result<Self, ListenerError> {
        let tls = || match &cfg.tls {
            Some(tls) => tls::server_config(&cfg.name, tls),
            None => Err(ListenerError::Config {
                name: cfg.name.clone(),
                reason: "a tls/wss listener needs a tls section".to_owned(),
            }),
        };
        let handshake = match cfg.kind {
            ListenerKind::Tcp => Handshake::Tcp,
            ListenerKind::Tls => Handshake::Tls(tls()?),
            ListenerKind::Ws => Handshake::Ws,
            ListenerKind::Wss => Handshake::Wss(tls()?),
        };
        let bind_err = |source| ListenerError::Bind {
            name: cfg.name.clone(),
            addr: cfg.bind,
            source,
        };
        let listener = tcp::bind(cfg.bind).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Self {
            name: cfg.name.as_str().into(),
            listener,
            local_addr,
            handshake: Arc::new(handshake),
            connect_timeout: cfg.connect_timeout,
            stats: Arc::new(ListenerStats {
                limit: (cfg.max_connections > 0).then(|| Semaphore::new(cfg.max_connections)),
                ..ListenerStats::default()
            }),
        })
    }

    /// The listener's configured name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The transport this listener speaks.
    pub(crate) fn kind(&self) -> ListenerKind {
        match *self.handshake {
            Handshake::Tcp => ListenerKind::Tcp,
            Handshake::Tls(_) => ListenerKind::Tls,
            Handshake::Ws => ListenerKind::Ws,
            Handshake::Wss(_) => ListenerKind::Wss,
        }
    }

    /// The address actually bound (with the real port when the config asked for port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This listener's connection counters; the handle stays valid after `serve` consumed `self`.
    pub(crate) fn stats(&self) -> Arc<ListenerStats> {
        self.stats.clone()
    }

    /// Accept loop. Returns when `shutdown` is cancelled (stops accepting at once).
    ///
    /// Every admitted connection runs in a task spawned on `tracker`: transport handshake under
    /// the connect deadline, then `handler(transport, peer)` inside the connection span. Accept
    /// errors (e.g. out of file descriptors) are counted, logged rate-limited and retried after
    /// a back-off of 10 ms, doubling up to 1 s; connections already accepted are served meanwhile.
    pub(crate) async fn serve<H, F>(
        self,
        handler: H,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) where
        H: Fn(Transport, PeerInfo) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        info!(listener = %self.name, kind = ?self.kind(), addr = %self.local_addr, "listening");
        let mut failures = tcp::FailureLog::new(self.name.clone());
        while let Some((stream, addr)) =
            tcp::accept(&self.listener, &shutdown, &self.stats, &mut failures).await
        {
            // A full listener accepts and closes at once (see the module doc): the client learns
            // immediately instead of waiting in the backlog, and the refusal is counted.
            // The permit is given back by the connection's guard.
            if let Some(limit) = &self.stats.limit {
                match limit.try_acquire() {
                    Ok(permit) => permit.forget(),
                    Err(_) => {
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        debug!(listener = %self.name, peer = %addr, "max-connections reached, refusing");
                        drop(stream);
                        continue;
                    }
                }
            }
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            self.stats.current.fetch_add(1, Ordering::Relaxed);
            let guard = ConnectionGuard {
                stats: self.stats.clone(),
            };
            let connect_deadline = Instant::now() + self.connect_timeout;
            let span = info_span!(
                "connection",
                peer = %addr,
                listener = %self.name,
                client_id = tracing::field::Empty,
            );
            let peer = PeerInfo {
                addr,
                listener: self.name.clone(),
                tls_subject: None,
                connect_deadline,
            };
            // The guard rides along in a `map` rather than an `async` block: a block holding the
            // connection future would keep room for it twice (its capture and its await).
            // Plain TCP has no transport handshake: the task is the handler's future itself, so
            // an idle connection's task holds nothing else.
            if matches!(*self.handshake, Handshake::Tcp) {
                let task = handler(Transport::Tcp(stream), peer).map(move |()| drop(guard));
                spawn(&tracker, task, span);
            } else {
                let task = connect(stream, peer, &self.handshake, &handler, shutdown.clone())
                    .map(move |()| drop(guard));
                spawn(&tracker, task, span);
            }
        }
        info!(listener = %self.name, "stopped accepting");
    }
}

/// Spawns a connection task on `tracker`, in `span` unless the span is disabled (the log level
/// is above info): a disabled span is not carried by every task.
fn spawn(tracker: &TaskTracker, task: impl Future<Output = ()> + Send + 'static, span: Span) {
    if span.is_disabled() {
        tracker.spawn(task);
    } else {
        tracker.spawn(task.instrument(span));
    }
}

/// One TLS or WebSocket connection task after accept: the transport handshake under
/// `peer.connect_deadline` (given up on shutdown), then the handler. Boxed: the TLS and
/// WebSocket handshake states are large (about 10 KB with rustls), and would otherwise stay in
/// every connection's task for its whole life.
fn connect<H, F>(
    stream: TcpStream,
    peer: PeerInfo,
    handshake: &Arc<Handshake>,
    handler: &Arc<H>,
    shutdown: CancellationToken,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    H: Fn(Transport, PeerInfo) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (handshake, handler) = (handshake.clone(), handler.clone());
    Box::pin(async move {
        let mut peer = peer;
        let handshake =
            tokio::time::timeout_at(peer.connect_deadline, Box::pin(handshake.run(stream)));
        let done = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                debug!("shutdown during transport handshake");
                return;
            }
            res = handshake => res,
        };
        let transport = match done {
            Ok(Ok((transport, tls_subject))) => {
                peer.tls_subject = tls_subject;
                transport
            }
            Ok(Err(error)) => {
                debug!(%error, "transport handshake failed");
                return;
            }
            Err(_) => {
                debug!("transport handshake timed out");
                return;
            }
        };
        handler(transport, peer).await;
    })
}

/// Held by a connection task: releases the connection's permit and decrements
/// [`ListenerStats::current`] when the task ends, however it ends.
///
/// One pointer: every connection task carries it.
struct ConnectionGuard {
    stats: Arc<ListenerStats>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.stats.current.fetch_sub(1, Ordering::Relaxed);
        if let Some(limit) = &self.stats.limit {
            limit.add_permits(1);
        }
    }
}

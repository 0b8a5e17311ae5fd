//! Plain TCP: binding the listening socket and accepting with back-off on errors.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Listen backlog: room for a burst of reconnecting clients (e.g. after a broker restart)
/// without the kernel dropping SYNs; the OS caps it at `somaxconn`.
const BACKLOG: i32 = 1024;

/// First wait after a failed `accept`; doubles on each consecutive failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Longest wait between `accept` retries.
const MAX_BACKOFF: Duration = Duration::from_secs(64);

/// Binds a non-blocking listening socket on `addr` with `SO_REUSEADDR` and [`BACKLOG`].
///
/// # Errors
///
/// The socket error (address in use, permission denied, ...). Must run inside a tokio runtime.
pub(super) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts the next connection and sets `TCP_NODELAY` on it (MQTT packets are small and
/// latency-sensitive), or returns `None` once `shutdown` is cancelled.
///
/// Accept errors are logged and retried after a back-off starting at [`FIRST_BACKOFF`] and
/// doubling up to [`MAX_BACKOFF`]; the wait is cut short by `shutdown`.
///
/// # Cancel safety
///
/// Cancel safe: a connection is either returned or still in the kernel's queue.
pub(super) async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let res = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            res = listener.accept() => res,
        };
        match res {
            Ok((stream, addr)) => {
                if let Err(error) = stream.set_nodelay(true) {
                    warn!(peer = %addr, %error, "cannot set TCP_NODELAY");
                }
                return Some((stream, addr));
            }
            Err(error) => {
                warn!(%error, retry_in = ?backoff, "accept failed");
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = next_backoff(backoff);
            }
        }
    }
}

fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    use super::*;
    use crate::config::ListenerKind;
    use crate::listener::testutil::{self, listener_config};
    use crate::listener::{ListenerError, bind_all};

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut d = FIRST_BACKOFF;
        let mut seen = vec![d];
        for _ in 0..8 {
            d = next_backoff(d);
            seen.push(d);
        }
        let secs: Vec<_> = seen.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
    }

    #[tokio::test]
    async fn echo_through_handler() {
        let server = testutil::start(ListenerKind::Tcp, 0).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        assert!(stream.nodelay().is_ok());
        testutil::assert_echo(&mut stream).await;
        let peer = server.peers.lock().unwrap()[0].clone();
        assert_eq!(&*peer.listener, "test");
        assert_eq!(peer.addr, stream.local_addr().unwrap());
        assert!(peer.connect_deadline > tokio::time::Instant::now());
        server.stop().await;
    }

    #[tokio::test]
    async fn full_listener_closes_new_connections_at_once() {
        let server = testutil::start(ListenerKind::Tcp, 2).await;
        let mut first = TcpStream::connect(server.addr).await.unwrap();
        let mut second = TcpStream::connect(server.addr).await.unwrap();
        testutil::assert_echo(&mut first).await;
        testutil::assert_echo(&mut second).await;

        let mut third = TcpStream::connect(server.addr).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
            .await
            .expect("refused connection was left hanging");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert_eq!(server.stats.refused(), 1);
        assert_eq!(server.stats.accepted(), 2);

        // Closing one admitted connection frees its permit.
        drop(first);
        testutil::wait_until(|| server.stats.current() == 1).await;
        let mut fourth = TcpStream::connect(server.addr).await.unwrap();
        testutil::assert_echo(&mut fourth).await;
        assert_eq!(server.stats.accepted(), 3);
        assert_eq!(server.stats.refused(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_stops_the_accept_loop() {
        let server = testutil::start(ListenerKind::Tcp, 0).await;
        let addr = server.addr;
        server.stop().await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn busy_port_is_a_bind_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut cfg = listener_config(ListenerKind::Tcp, 0);
        cfg.bind = taken.local_addr().unwrap();
        match bind_all(&[cfg]).await {
            Err(ListenerError::Bind { name, addr, .. }) => {
                assert_eq!(name, "test");
                assert_eq!(addr, taken.local_addr().unwrap());
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
    }
}

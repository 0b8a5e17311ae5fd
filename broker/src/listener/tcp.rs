//! Plain TCP: binding the listening socket and accepting with back-off on errors.
//!
//! # Failed accepts
//!
//! `accept` fails mostly when the process is out of file descriptors (`EMFILE`, or `ENFILE` for
//! the whole system). The connection then stays in the kernel's listen backlog, so the listening
//! socket stays readable and an immediate retry would spin. The loop waits instead, from
//! [`FIRST_BACKOFF`] doubling to [`MAX_BACKOFF`], so it accepts again soon after descriptors are
//! freed (a connection closing) without burning a CPU meanwhile. Connections already accepted
//! are separate tasks and keep being served. Failures are counted in
//! [`ListenerStats::accept_errors`](super::ListenerStats::accept_errors) and logged
//! rate-limited by [`FailureLog`]: a warning for the first one, then at most one summary per
//! [`LOG_INTERVAL`] with the count, and a line when accepting works again.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ListenerStats;

/// Listen backlog: room for a burst of reconnecting clients (e.g. after a broker restart)
/// without the kernel dropping SYNs; the OS caps it at `somaxconn`.
const BACKLOG: i32 = 1024;

/// First wait after a failed `accept`; doubles on each consecutive failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// Longest wait between `accept` retries: once descriptors are free again, a waiting client is
/// accepted within about this long.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Least time between two warnings about failed accepts; the failures in between are counted
/// and summarised in the next one.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

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
/// Accept errors are counted in `stats`, logged through `log` and retried after a back-off
/// starting at [`FIRST_BACKOFF`] and doubling up to [`MAX_BACKOFF`]; the wait is cut short by
/// `shutdown`.
///
/// # Cancel safety
///
/// Cancel safe: a connection is either returned or still in the kernel's queue.
pub(super) async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    stats: &ListenerStats,
    log: &mut FailureLog,
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
                if let Some(failures) = log.succeeded() {
                    info!(
                        listener = %log.listener,
                        failures_since_last_report = failures,
                        "accepting connections again"
                    );
                }
                if let Err(error) = stream.set_nodelay(true) {
                    warn!(peer = %addr, %error, "cannot set TCP_NODELAY");
                }
                return Some((stream, addr));
            }
            Err(error) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(failures) = log.failed(Instant::now()) {
                    warn_failed(&log.listener, &error, failures, backoff);
                }
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

/// The warning for `failures` failed accepts, the last one `error`.
fn warn_failed(listener: &str, error: &io::Error, failures: u64, retry_in: Duration) {
    if is_out_of_fds(error) {
        let (soft, hard) = super::limits::fd_limits();
        warn!(
            listener,
            %error,
            failures,
            retry_in = ?retry_in,
            fd_limit = %soft,
            fd_hard_limit = %hard,
            "accept failed: out of file descriptors; new clients wait in the listen backlog \
             until connections close (raise the fd limit, e.g. `ulimit -n` or systemd \
             LimitNOFILE, or lower max-connections)"
        );
    } else {
        warn!(listener, %error, failures, retry_in = ?retry_in, "accept failed");
    }
}

/// Whether `error` is `EMFILE` (this process's descriptor limit) or `ENFILE` (the system's).
fn is_out_of_fds(error: &io::Error) -> bool {
    let errno = rustix::io::Errno::from_io_error(error);
    errno == Some(rustix::io::Errno::MFILE) || errno == Some(rustix::io::Errno::NFILE)
}

fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(MAX_BACKOFF)
}

/// When to log failed accepts of one listener: the first failure at once, then at most one
/// line per [`LOG_INTERVAL`] carrying the count of failures since the previous line, and one
/// line when an accept succeeds after a logged failure.
#[derive(Debug)]
pub(super) struct FailureLog {
    listener: std::sync::Arc<str>,
    /// Failures not yet reported in a log line.
    unreported: u64,
    /// When the last failure line was written.
    last_warning: Option<Instant>,
    /// A failure line was written and no "accepting again" line since.
    recovery_pending: bool,
}

impl FailureLog {
    /// A log for the listener called `listener`.
    pub(super) fn new(listener: std::sync::Arc<str>) -> Self {
        Self {
            listener,
            unreported: 0,
            last_warning: None,
            recovery_pending: false,
        }
    }

    /// Records a failed accept at `now`; returns the number of failures to report when a line
    /// is due.
    fn failed(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        let due = self
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= LOG_INTERVAL);
        if !due {
            return None;
        }
        self.last_warning = Some(now);
        self.recovery_pending = true;
        Some(std::mem::take(&mut self.unreported))
    }

    /// Records a successful accept; returns the failures not yet reported when the "accepting
    /// again" line is due (once after each failure line).
    fn succeeded(&mut self) -> Option<u64> {
        if !self.recovery_pending {
            return None;
        }
        self.recovery_pending = false;
        Some(std::mem::take(&mut self.unreported))
    }
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
        let ms: Vec<_> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    }

    #[test]
    fn failures_are_logged_first_then_summarised_once_per_interval() {
        let mut log = FailureLog::new("test".into());
        let t0 = Instant::now();
        assert_eq!(log.succeeded(), None, "nothing failed yet");
        assert_eq!(
            log.failed(t0),
            Some(1),
            "the first failure is logged at once"
        );
        for i in 1..=5 {
            assert_eq!(log.failed(t0 + Duration::from_secs(i)), None);
        }
        // Recovery is announced once, with the failures not yet reported.
        assert_eq!(log.succeeded(), Some(5));
        assert_eq!(log.succeeded(), None);
        // Flapping within the interval stays quiet...
        assert_eq!(log.failed(t0 + Duration::from_secs(6)), None);
        assert_eq!(log.succeeded(), None);
        assert_eq!(log.failed(t0 + Duration::from_secs(9)), None);
        // ...and is summarised by the first failure after the interval.
        assert_eq!(log.failed(t0 + LOG_INTERVAL), Some(3));
        assert_eq!(log.failed(t0 + LOG_INTERVAL), None);
        assert_eq!(log.succeeded(), Some(1));
    }

    #[test]
    fn out_of_descriptors_is_recognised() {
        assert!(is_out_of_fds(&io::Error::from_raw_os_error(
            rustix::io::Errno::MFILE.raw_os_error()
        )));
        assert!(is_out_of_fds(&io::Error::from_raw_os_error(
            rustix::io::Errno::NFILE.raw_os_error()
        )));
        assert!(!is_out_of_fds(&io::Error::from_raw_os_error(
            rustix::io::Errno::CONNABORTED.raw_os_error()
        )));
        assert!(!is_out_of_fds(&io::Error::other("not an OS error")));
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

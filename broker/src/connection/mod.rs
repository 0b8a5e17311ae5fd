//! One client connection: the CONNECT phase, then a loop that reads and handles packets, writes
//! queued deliveries, enforces keepalive, and reacts to takeover and shutdown. On exit it
//! publishes the will when the protocol asks for it and detaches from the session.

mod handshake;
mod inbound;
mod io;
mod will;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytestring::ByteString;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

use crate::codec::ProtocolVersion;
use crate::codec::v5::{self, LastWill, ReasonCode};
use crate::context::BrokerContext;
use crate::dispatch;
use crate::listener::{PeerInfo, Transport};
use crate::plugin::emit::EventClock;
use crate::plugin::{DisconnectReason, PacketSource, SessionFacts};
use crate::session::Owner;
use crate::stats::Stats;
pub(crate) use io::IoError;
use io::PacketStream;

/// How long a write may stay blocked (the client not reading) before the connection is closed;
/// 1.5 × keepalive when that is longer.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// How long closing may take when the broker ends a connection: to write what is still
/// buffered (the DISCONNECT), then to read and discard what the client still sends so that it
/// can read the DISCONNECT rather than a reset. One deadline for both, so a connection's task
/// (and its slot) outlives its end by at most this, and a broker shutdown, whose connections
/// close concurrently, by no more.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The client sent DISCONNECT: the will is discarded.
    Disconnect,
    /// The client sent an MQTT 5 DISCONNECT with reason 0x04: the will is published.
    DisconnectWithWill,
    /// The peer closed the socket without DISCONNECT.
    Closed,
    /// No packet within 1.5 × keepalive ([MQTT-3.1.2-24]).
    KeepAliveTimeout,
    /// Another connection took over the client id.
    TakenOver,
    /// Disconnected by the admin API or a plugin's `DisconnectControl`: the will is published.
    Kicked,
    /// Disconnected because its queue did not drain while publishers waited
    /// (`slow-consumer-timeout`): the will is published, a persistent session kept.
    SlowConsumer,
    /// The broker is shutting down: no will ([MQTT-3.1.2-8] lists only client-side causes).
    Shutdown,
    /// A malformed or protocol-violating packet; the MQTT 5 reason sent in DISCONNECT.
    ProtocolError(ReasonCode),
    /// The socket failed.
    IoError,
}

impl Exit {
    /// The reason reported in the `client_disconnected` event.
    pub(crate) fn event_reason(self) -> DisconnectReason {
        match self {
            Exit::Disconnect | Exit::DisconnectWithWill => DisconnectReason::Normal,
            Exit::Closed | Exit::IoError => DisconnectReason::Abnormal,
            Exit::KeepAliveTimeout => DisconnectReason::KeepaliveTimeout,
            Exit::TakenOver => DisconnectReason::TakenOver,
            Exit::Kicked | Exit::SlowConsumer => DisconnectReason::Kicked,
            Exit::Shutdown => DisconnectReason::Shutdown,
            Exit::ProtocolError(_) => DisconnectReason::ProtocolError,
        }
    }

    /// The reason code of the DISCONNECT the broker sends an MQTT 5 client for this ending,
    /// or `None` when the client ended the connection itself.
    pub(crate) fn server_reason(self) -> Option<ReasonCode> {
        match self {
            Exit::Disconnect | Exit::DisconnectWithWill | Exit::Closed | Exit::IoError => None,
            Exit::KeepAliveTimeout => Some(ReasonCode::KeepAliveTimeout),
            Exit::TakenOver => Some(ReasonCode::SessionTakenOver),
            Exit::Kicked => Some(ReasonCode::AdministrativeAction),
            Exit::SlowConsumer => Some(ReasonCode::QuotaExceeded),
            Exit::Shutdown => Some(ReasonCode::ServerShuttingDown),
            Exit::ProtocolError(reason) => Some(reason),
        }
    }

    /// Whether the will message is published for this ending.
    pub(crate) fn publishes_will(self) -> bool {
        !matches!(self, Exit::Disconnect | Exit::Shutdown)
    }
}

/// Serves one accepted transport until it closes. Never panics on peer input.
///
/// The task of an idle connection is mostly this future, so it is kept small (bench: RSS per
/// idle connection): the CONNECT phase and the closing steps run in boxed futures that exist
/// only while they run, packet handling is boxed per read, and the waits of the connected phase
/// hold little (one timer for both keep alive and a write that waits, one `Notified`).
///
/// Tokio allocates a task in steps of 128 bytes on x86-64 (its task cell is 128-byte aligned),
/// so only a step counts: this future is 624 bytes (print-type-sizes, release build), in a
/// 768-byte task; about 24 bytes more would make the task 896.
pub(crate) fn serve(
    ctx: Arc<BrokerContext>,
    transport: Transport,
    peer: PeerInfo,
) -> impl Future<Output = ()> + Send + 'static {
    // Boxed: the CONNECT phase (authentication calls included) is large and over quickly, so it
    // does not stay in the connection task's memory. Created here rather than in the `async`
    // block, which would otherwise keep room for the arguments for the connection's whole life.
    let connecting = Box::pin(connect(ctx, transport, peer));
    async move {
        let Some(mut live) = connecting.await else {
            return;
        };
        // The connected phase, written out here rather than as an `async fn` awaited here: that
        // would keep a second reference to `live` and its own state tag in the task (bench: RSS
        // per idle connection).
        let exit = 'run: {
            // [MQTT-3.1.2-24]: one and a half times the keepalive without a packet closes the
            // connection.
            let first = match keep_alive_limit(live.conn.keep_alive) {
                Some(limit) => Instant::now() + limit,
                None => Instant::now() + Duration::from_secs(86_400 * 365),
            };
            let deadline = sleep_until(first);
            tokio::pin!(deadline);
            live.stream.queue_deliveries(live.conn.session());

            loop {
                live.conn
                    .ctx()
                    .plugins
                    .packets_sent(&live.source(), &live.stream.write_buf);
                // The write is polled once first: one that completes at once (the usual case)
                // touches no timer. (Its result is consumed in this statement, so none is kept in
                // the connection future while a write waits.)
                let pending = match poll_fn(|cx| Poll::Ready(live.stream.poll_flush(cx))).await {
                    Poll::Ready(written) => match write_outcome(written) {
                        Some(exit) => break 'run exit,
                        None => false,
                    },
                    Poll::Pending => true,
                };
                // The socket is full. A client that stops reading must not pin this task:
                // takeover and shutdown still interrupt the write, and a write that makes no
                // headway for `write_stall` ends it. The keep alive timer serves as that deadline
                // while the write waits (keep alive is not checked meanwhile), then is set back:
                // one timer in the connection task instead of two (bench: RSS per idle
                // connection).
                if pending {
                    let keep_alive_at = deadline.deadline();
                    deadline
                        .as_mut()
                        .reset(Instant::now() + write_stall(live.conn.keep_alive));
                    let written = tokio::select! {
                        biased;
                        _ = live.owner.kicked() => break 'run kicked(&live.conn),
                        written = poll_fn(|cx| live.stream.poll_flush(cx)) => written,
                        _ = &mut deadline => {
                            let stall = write_stall(live.conn.keep_alive);
                            info!(write_stall = ?stall, "client stopped reading: closing");
                            break 'run Exit::IoError;
                        }
                    };
                    if let Some(exit) = write_outcome(written) {
                        break 'run exit;
                    }
                    deadline.as_mut().reset(keep_alive_at);
                }
                flush_counters(live.conn.ctx(), &mut live.stream);
                // The select only says what happened; the handling follows outside it, so no
                // select state is kept while packets are handled (a smaller connection future).
                let woke = tokio::select! {
                    biased;
                    // Both made before either is polled: a kick after `woken` was made
                    // wakes it, and one before is seen by `kick_seen`.
                    _ = live.owner.kick_seen() => Woke::Kicked,
                    _ = &mut deadline => Woke::KeepAlive,
                    // A poll function: no read future in the task, only a pointer.
                    read = poll_fn(|cx| live.stream.poll_fill(cx)) => {
                        Woke::Read(read_outcome(live.conn.ctx(), read))
                    }
                    _ = live.conn.session().woken() => Woke::Deliveries,
                };
                match woke {
                    Woke::Kicked => break 'run kicked(&live.conn),
                    Woke::KeepAlive => break 'run Exit::KeepAliveTimeout,
                    Woke::Read(Some(exit)) => break 'run exit,
                    Woke::Read(None) => {
                        if let Some(limit) = keep_alive_limit(live.conn.keep_alive) {
                            deadline.as_mut().reset(Instant::now() + limit);
                        }
                        // Boxed: handling packets (an MQTT 5 PUBLISH with its properties, the
                        // checks, the fan-out) needs far more state than waiting does, and an idle
                        // connection should not carry it (bench: RSS per idle connection). One box
                        // per read.
                        let handling = handle_buffered(
                            &mut live.conn,
                            &mut live.stream,
                            live.owner.connection_id,
                        );
                        if let Err(exit) = Box::pin(handling).await {
                            break 'run exit;
                        }
                        live.stream.queue_deliveries(live.conn.session());
                    }
                    Woke::Deliveries => live.stream.queue_deliveries(live.conn.session()),
                }
            }
        };
        // Borrowed, not moved: a move would need a drop flag in this future.
        Box::pin(close(&mut live, exit)).await;
    }
}

/// A connection past CONNECT: what it keeps while connected.
struct Live {
    conn: inbound::Connection,
    stream: PacketStream,
    owner: Owner,
    will: Option<Box<LastWill>>,
    addr: SocketAddr,
}

impl Live {
    /// Who packet events are about.
    fn source(&self) -> PacketSource<'_> {
        source(&self.conn, self.owner.connection_id)
    }

    /// The session facts events carry.
    fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            client_id: self.conn.client_id(),
            username: self.conn.username().map(|u| &**u),
            clean_start: self.conn.clean_start,
            keep_alive: self.conn.keep_alive,
            protocol: self.stream.protocol().unwrap_or(ProtocolVersion::V311),
            remote_addr: self.addr,
            listener: self.conn.listener(),
            connection_id: self.owner.connection_id,
        }
    }
}

/// The CONNECT phase: `None` when the connection ended in it.
async fn connect(ctx: Arc<BrokerContext>, transport: Transport, peer: PeerInfo) -> Option<Live> {
    let mut stream = PacketStream::new(
        transport,
        ctx.config.limits.max_packet_size,
        ctx.stats.clone(),
    );
    let Some(accepted) = handshake::handshake(&ctx, &mut stream, &peer).await else {
        flush_counters(&ctx, &mut stream);
        return None;
    };
    Stats::add(&ctx.stats.clients_connected, 1);
    Stats::add(&ctx.stats.clients_total, 1);

    let mut conn = inbound::Connection::new(
        ctx.clone(),
        accepted.session,
        accepted.username,
        peer.listener.clone(),
        accepted.session_expiry,
    );
    conn.keep_alive = accepted.keep_alive;
    conn.clean_start = accepted.clean_start;
    let live = Live {
        conn,
        stream,
        owner: accepted.owner,
        will: accepted.will,
        addr: peer.addr,
    };
    let session_present = accepted.session_present;
    ctx.plugins
        .client_connected(|| live.facts(), session_present);
    let connect_type = crate::codec::PacketType::Connect as u8;
    ctx.plugins
        .packet_received(&live.source(), connect_type, live.stream.last_size(), None);
    Some(live)
}

/// The end of a connection: the server DISCONNECT, the will, the events, the session released.
async fn close(live: &mut Live, exit: Exit) {
    let ctx = live.conn.ctx_arc().clone();
    let session = live.conn.session().clone();
    let connection_id = live.owner.connection_id;
    // Offline for delivery first, so nothing published from here on is queued as if the client
    // were online; the session itself is released last, after the events below.
    session.mark_closing(connection_id);
    let exit = match exit {
        Exit::TakenOver | Exit::Kicked if ctx.shutdown.is_cancelled() => Exit::Shutdown,
        other => other,
    };
    // Shared subscriptions: what this member did not acknowledge goes to another member.
    dispatch::redeliver_shared(&ctx, &session, connection_id).await;
    let grace_until = Instant::now() + CLOSE_GRACE;
    if let Some(reason) = exit.server_reason() {
        // MQTT 5 clients learn why ([MQTT-4.13.2-1]); 3.1.1 has no server DISCONNECT, so
        // `queue` writes nothing for them.
        let reason_string = match exit {
            Exit::Kicked => session.take_kick_reason(),
            Exit::SlowConsumer => Some(ByteString::from_static(
                "slow consumer: the queue did not drain within slow-consumer-timeout",
            )),
            _ => None,
        };
        let disconnect = v5::Packet::Disconnect(v5::Disconnect {
            reason_code: reason,
            properties: v5::DisconnectProperties {
                reason_string,
                ..v5::DisconnectProperties::default()
            },
        });
        let _ = live.stream.queue(&disconnect);
    }
    // Best effort, bounded: a client that stopped reading gets no more time.
    let _ = tokio::time::timeout_at(grace_until, live.stream.close()).await;
    flush_counters(&ctx, &mut live.stream);
    ctx.stats
        .clients_connected
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);

    match exit {
        Exit::Disconnect | Exit::DisconnectWithWill | Exit::Closed | Exit::Shutdown => {
            debug!(?exit, "disconnected")
        }
        _ => info!(?exit, "disconnected"),
    }
    let will = live.will.as_deref().filter(|_| exit.publishes_will());
    if let Some(will) = will {
        will::will_after_delay(&ctx, &session, will).await;
    }
    ctx.plugins
        .client_disconnected(|| live.facts(), exit.event_reason(), will.is_some());
    // Released only now, so a reconnect of the same client id (which waits for `done` on a
    // takeover, and finds the session only after `detach` otherwise) is reported after this
    // disconnect.
    if ctx.sessions.detach(&session, connection_id) == Some(true) {
        ctx.router.remove_session(&session);
    }
    live.owner.release();
    // Last, after the session is released (a takeover does not wait for it): when the broker
    // ended the connection, the client may still be writing.
    if exit.server_reason().is_some() {
        live.stream.drain(grace_until).await;
    }
}

/// What ended a wait of the connected phase.
enum Woke {
    /// The owner was kicked.
    Kicked,
    /// The keep alive limit passed without a packet.
    KeepAlive,
    /// Bytes were read; `Some` when the connection must end.
    Read(Option<Exit>),
    /// Messages were queued for the client.
    Deliveries,
}

/// The exit a write calls for, if any. A function taking the result, so that the result is
/// not kept in the connection future beside the waits that follow.
fn write_outcome(written: Result<(), IoError>) -> Option<Exit> {
    let error = written.err()?;
    debug!(%error, "write failed");
    Some(Exit::IoError)
}

/// The exit a read calls for, if any.
fn read_outcome(ctx: &BrokerContext, read: Result<bool, IoError>) -> Option<Exit> {
    match read {
        Ok(true) => None,
        Ok(false) => Some(Exit::Closed),
        Err(IoError::Decode(error)) => Some(protocol_error(ctx, &error)),
        Err(error) => {
            debug!(%error, "read failed");
            Some(Exit::IoError)
        }
    }
}

/// How long the client may stay silent: 1.5 × its keep alive ([MQTT-3.1.2-24]); `None` when
/// keep alive is off.
fn keep_alive_limit(keep_alive: u16) -> Option<Duration> {
    (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500))
}

/// How long a write may make no headway: [`WRITE_STALL`], or the keep alive limit when longer.
fn write_stall(keep_alive: u16) -> Duration {
    keep_alive_limit(keep_alive)
        .unwrap_or(WRITE_STALL)
        .max(WRITE_STALL)
}

/// Handles every complete packet in the read buffer; `Err` when the connection must end.
async fn handle_buffered(
    conn: &mut inbound::Connection,
    stream: &mut PacketStream,
    connection_id: u64,
) -> Result<(), Exit> {
    // The time of this read, for the events of the packets it brought (read if one is wanted).
    let mut read = EventClock::default();
    loop {
        let raw = conn
            .ctx()
            .plugins
            .wants_received_bytes()
            .then(|| stream.peek_packet())
            .flatten();
        match stream.next_buffered() {
            Ok(Some(packet)) => {
                let type_nibble = packet.packet_type() as u8;
                let size = stream.last_size();
                let source = source(conn, connection_id);
                conn.ctx()
                    .plugins
                    .packet_received(&source, type_nibble, size, raw.as_deref());
                if let Some(exit) = conn.handle(packet, stream, &mut read).await {
                    return Err(exit);
                }
            }
            Ok(None) => return Ok(()),
            Err(IoError::Decode(error)) => return Err(protocol_error(conn.ctx(), &error)),
            Err(error) => {
                debug!(%error, "read failed");
                return Err(Exit::IoError);
            }
        }
    }
}

/// Who packet events are about.
fn source(conn: &inbound::Connection, connection_id: u64) -> PacketSource<'_> {
    PacketSource {
        client_id: conn.client_id(),
        connection_id,
    }
}

/// The exit for a kicked owner: a broker shutdown, a takeover (which hands the session
/// to the new connection before kicking), or a kick (which leaves the session with us).
fn kicked(conn: &inbound::Connection) -> Exit {
    if conn.ctx().shutdown.is_cancelled() {
        Exit::Shutdown
    } else if conn.session().owner().is_some_and(|o| o.is_slow_consumer()) {
        Exit::SlowConsumer
    } else if conn.session().owner().is_some_and(|o| o.is_kicked()) {
        Exit::Kicked
    } else {
        Exit::TakenOver
    }
}

fn protocol_error(ctx: &BrokerContext, error: &crate::codec::DecodeError) -> Exit {
    warn!(%error, "closing connection: protocol error");
    Stats::add(&ctx.stats.protocol_errors, 1);
    Exit::ProtocolError(error.v5_reason())
}

fn flush_counters(ctx: &BrokerContext, stream: &mut PacketStream) {
    Stats::add(
        &ctx.stats.bytes_received,
        u64::from(std::mem::take(&mut stream.bytes_in)),
    );
    Stats::add(
        &ctx.stats.bytes_sent,
        u64::from(std::mem::take(&mut stream.bytes_out)),
    );
    Stats::add(
        &ctx.stats.packets_sent,
        u64::from(std::mem::take(&mut stream.packets_out)),
    );
    Stats::add(
        &ctx.stats.publish_sent,
        u64::from(std::mem::take(&mut stream.publishes_out)),
    );
    stream.flush_by_type();
}

#[cfg(test)]
mod tests;

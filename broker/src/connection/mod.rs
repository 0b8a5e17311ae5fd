//! One client connection: the CONNECT phase, then a loop that reads and handles packets, writes
//! queued deliveries, enforces keepalive, and reacts to takeover and shutdown. On exit it
//! publishes the will when the protocol asks for it and detaches from the session.

mod handshake;
mod inbound;
mod io;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

use crate::codec::v4::{Connect, LastWill};
use crate::context::BrokerContext;
use crate::listener::{PeerInfo, Transport};
use crate::message::Message;
use crate::stats::Stats;
pub use io::IoError;
use io::PacketStream;

/// At most this many bytes of deliveries are encoded per loop turn, so reading is not starved.
const WRITE_BATCH: usize = 64 * 1024;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The client sent DISCONNECT: the will is discarded.
    Disconnect,
    /// The peer closed the socket without DISCONNECT.
    Closed,
    /// No packet within 1.5 × keepalive ([MQTT-3.1.2-24]).
    KeepAliveTimeout,
    /// Another connection took over the client id.
    TakenOver,
    /// The broker is shutting down: no will ([MQTT-3.1.2-8] lists only client-side causes).
    Shutdown,
    /// A malformed or protocol-violating packet.
    ProtocolError,
    /// The socket failed.
    IoError,
}

impl Exit {
    /// Whether the will message is published for this ending.
    pub fn publishes_will(self) -> bool {
        !matches!(self, Exit::Disconnect | Exit::Shutdown)
    }
}

/// Serves one accepted transport until it closes. Never panics on peer input.
pub async fn serve(ctx: Arc<BrokerContext>, transport: Transport, peer: PeerInfo) {
    let mut stream = PacketStream::new(transport, ctx.config.limits.max_packet_size);
    let Some(accepted) = handshake::handshake(&ctx, &mut stream, &peer).await else {
        flush_counters(&ctx, &mut stream);
        return;
    };
    Stats::add(&ctx.stats.clients_connected, 1);
    Stats::add(&ctx.stats.clients_total, 1);

    let mut conn = inbound::Connection::new(ctx.clone(), accepted.session.clone());
    let exit = run(
        &mut conn,
        &mut stream,
        &accepted.connect,
        &accepted.owner.kick,
    )
    .await;
    stream.close().await;
    flush_counters(&ctx, &mut stream);
    ctx.stats
        .clients_connected
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);

    let exit = match exit {
        Exit::TakenOver if ctx.shutdown.is_cancelled() => Exit::Shutdown,
        other => other,
    };
    match exit {
        Exit::Disconnect | Exit::Closed | Exit::Shutdown => debug!(?exit, "disconnected"),
        _ => info!(?exit, "disconnected"),
    }
    if exit.publishes_will()
        && let Some(will) = &accepted.connect.will
    {
        publish_will(&ctx, will);
    }
    if ctx
        .sessions
        .detach(&accepted.session, accepted.owner.connection_id)
        == Some(true)
    {
        ctx.router.remove_session(&accepted.session);
    }
    accepted.owner.done.cancel();
    let _ = accepted.client_id;
}

/// The connected phase.
async fn run(
    conn: &mut inbound::Connection,
    stream: &mut PacketStream,
    connect: &Connect,
    kick: &tokio_util::sync::CancellationToken,
) -> Exit {
    // [MQTT-3.1.2-24]: one and a half times the keepalive without a packet closes the connection.
    let keep_alive = (connect.keep_alive > 0)
        .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let deadline = sleep_until(keep_alive.map_or(far_future, |k| Instant::now() + k));
    tokio::pin!(deadline);
    conn.session()
        .fill_outbound(&mut stream.write_buf, WRITE_BATCH);

    loop {
        if let Err(error) = stream.flush().await {
            debug!(%error, "write failed");
            return Exit::IoError;
        }
        flush_counters(conn.ctx(), stream);
        tokio::select! {
            biased;
            _ = kick.cancelled() => {
                return if conn.ctx().shutdown.is_cancelled() { Exit::Shutdown } else { Exit::TakenOver };
            }
            _ = &mut deadline => return Exit::KeepAliveTimeout,
            read = stream.fill() => {
                match read {
                    Ok(true) => {}
                    Ok(false) => return Exit::Closed,
                    Err(IoError::Decode(error)) => return protocol_error(conn.ctx(), &error),
                    Err(error) => {
                        debug!(%error, "read failed");
                        return Exit::IoError;
                    }
                }
                if let Some(k) = keep_alive {
                    deadline.as_mut().reset(Instant::now() + k);
                }
                loop {
                    match stream.next_buffered() {
                        Ok(Some(packet)) => {
                            if let Some(exit) = conn.handle(packet, stream) {
                                return exit;
                            }
                        }
                        Ok(None) => break,
                        Err(IoError::Decode(error)) => return protocol_error(conn.ctx(), &error),
                        Err(error) => {
                            debug!(%error, "read failed");
                            return Exit::IoError;
                        }
                    }
                }
                conn.session().fill_outbound(&mut stream.write_buf, WRITE_BATCH);
            }
            _ = conn.session().woken() => {
                conn.session().fill_outbound(&mut stream.write_buf, WRITE_BATCH);
            }
        }
    }
}

fn protocol_error(ctx: &BrokerContext, error: &dyn std::fmt::Display) -> Exit {
    warn!(%error, "closing connection: protocol error");
    Stats::add(&ctx.stats.protocol_errors, 1);
    Exit::ProtocolError
}

fn publish_will(ctx: &BrokerContext, will: &LastWill) {
    debug!(topic = %will.topic, "publishing will");
    ctx.router.publish(&Message {
        topic: will.topic.clone(),
        payload: will.message.clone(),
        qos: will.qos,
        retain: will.retain,
    });
}

fn flush_counters(ctx: &BrokerContext, stream: &mut PacketStream) {
    Stats::add(
        &ctx.stats.bytes_received,
        std::mem::take(&mut stream.bytes_in),
    );
    Stats::add(&ctx.stats.bytes_sent, std::mem::take(&mut stream.bytes_out));
}

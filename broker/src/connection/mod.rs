//! One client connection: the CONNECT phase, then a loop that reads and handles packets, writes
//! queued deliveries, enforces keepalive, and reacts to takeover and shutdown. On exit it
//! publishes the will when the protocol asks for it and detaches from the session.

mod handshake;
mod inbound;
mod io;
mod packet_events;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

use crate::codec::v5::{self, LastWill, ReasonCode};
use crate::context::BrokerContext;
use crate::dispatch;
use crate::listener::{PeerInfo, Transport};
use crate::message::Message;
use crate::stats::Stats;
pub use io::IoError;
use io::PacketStream;
use midge_proto::plugin::v1 as pb;

/// How long a write may stay blocked (the client not reading) before the connection is closed;
/// 1.5 × keepalive when that is longer.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// How long closing may take to write what is still buffered.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
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
    /// The broker is shutting down: no will ([MQTT-3.1.2-8] lists only client-side causes).
    Shutdown,
    /// A malformed or protocol-violating packet; the MQTT 5 reason sent in DISCONNECT.
    ProtocolError(ReasonCode),
    /// The socket failed.
    IoError,
}

impl Exit {
    /// The reason reported in the `client_disconnected` event.
    pub fn event_reason(self) -> pb::DisconnectReason {
        match self {
            Exit::Disconnect | Exit::DisconnectWithWill => pb::DisconnectReason::Normal,
            Exit::Closed | Exit::IoError => pb::DisconnectReason::Abnormal,
            Exit::KeepAliveTimeout => pb::DisconnectReason::KeepaliveTimeout,
            Exit::TakenOver => pb::DisconnectReason::TakenOver,
            Exit::Kicked => pb::DisconnectReason::Kicked,
            Exit::Shutdown => pb::DisconnectReason::Shutdown,
            Exit::ProtocolError(_) => pb::DisconnectReason::ProtocolError,
        }
    }

    /// The reason code of the DISCONNECT the broker sends an MQTT 5 client for this ending,
    /// or `None` when the client ended the connection itself.
    pub fn server_reason(self) -> Option<ReasonCode> {
        match self {
            Exit::Disconnect | Exit::DisconnectWithWill | Exit::Closed | Exit::IoError => None,
            Exit::KeepAliveTimeout => Some(ReasonCode::KeepAliveTimeout),
            Exit::TakenOver => Some(ReasonCode::SessionTakenOver),
            Exit::Kicked => Some(ReasonCode::AdministrativeAction),
            Exit::Shutdown => Some(ReasonCode::ServerShuttingDown),
            Exit::ProtocolError(reason) => Some(reason),
        }
    }

    /// Whether the will message is published for this ending.
    pub fn publishes_will(self) -> bool {
        !matches!(self, Exit::Disconnect | Exit::Shutdown)
    }
}

/// Serves one accepted transport until it closes. Never panics on peer input.
pub async fn serve(ctx: Arc<BrokerContext>, transport: Transport, peer: PeerInfo) {
    let mut stream = PacketStream::new(transport, ctx.config.limits.max_packet_size);
    // Boxed: the CONNECT phase (authentication calls included) is large and over quickly, so it
    // does not stay in the connection task's memory.
    let Some(accepted) = Box::pin(handshake::handshake(&ctx, &mut stream, &peer)).await else {
        flush_counters(&ctx, &mut stream);
        return;
    };
    Stats::add(&ctx.stats.clients_connected, 1);
    Stats::add(&ctx.stats.clients_total, 1);

    ctx.plugins.emit(pb::EventKind::ClientConnected, || {
        pb::event::Body::ClientConnected(pb::ClientConnected {
            session: Some(accepted.facts.clone()),
            session_present: accepted.session_present,
        })
    });
    let mut conn = inbound::Connection::new(
        ctx.clone(),
        accepted.session.clone(),
        accepted.connect.username.clone(),
        peer.listener.clone(),
        accepted.session_expiry,
    );
    let source = packet_events::PacketSource {
        client_id: accepted.facts.client_id.clone(),
        connection_id: accepted.facts.connection_id.clone(),
    };
    let connect_type = crate::codec::PacketType::Connect as u8;
    packet_events::received(&ctx, &source, connect_type, stream.last_size(), None);
    let exit = run(
        &mut conn,
        &mut stream,
        accepted.keep_alive,
        &accepted.owner.kick,
        &source,
    )
    .await;
    // Offline for delivery first, so nothing published from here on is queued as if the client
    // were online; the session itself is released last, after the events below.
    accepted.session.mark_closing(accepted.owner.connection_id);
    let exit = match exit {
        Exit::TakenOver | Exit::Kicked if ctx.shutdown.is_cancelled() => Exit::Shutdown,
        other => other,
    };
    // Shared subscriptions: what this member did not acknowledge goes to another member.
    dispatch::redeliver_shared(&ctx, &accepted.session, accepted.owner.connection_id).await;
    if let Some(reason) = exit.server_reason() {
        // MQTT 5 clients learn why ([MQTT-4.13.2-1]); 3.1.1 has no server DISCONNECT, so
        // `queue` writes nothing for them.
        let reason_string = match exit {
            Exit::Kicked => accepted.session.take_kick_reason(),
            _ => None,
        };
        let disconnect = v5::Packet::Disconnect(v5::Disconnect {
            reason_code: reason,
            properties: v5::DisconnectProperties {
                reason_string,
                ..v5::DisconnectProperties::default()
            },
        });
        let _ = stream.queue(&disconnect);
    }
    // Best effort, bounded: a client that stopped reading gets no more time.
    let _ = tokio::time::timeout(CLOSE_GRACE, stream.close()).await;
    flush_counters(&ctx, &mut stream);
    ctx.stats
        .clients_connected
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);

    match exit {
        Exit::Disconnect | Exit::DisconnectWithWill | Exit::Closed | Exit::Shutdown => {
            debug!(?exit, "disconnected")
        }
        _ => info!(?exit, "disconnected"),
    }
    let will = accepted
        .connect
        .will
        .as_ref()
        .filter(|_| exit.publishes_will());
    if let Some(will) = will {
        will_after_delay(&ctx, &accepted.session, will).await;
    }
    ctx.plugins.emit(pb::EventKind::ClientDisconnected, || {
        pb::event::Body::ClientDisconnected(pb::ClientDisconnected {
            session: Some(accepted.facts),
            reason: exit.event_reason() as i32,
            will_published: will.is_some(),
        })
    });
    // Released only now, so a reconnect of the same client id (which waits for `done` on a
    // takeover, and finds the session only after `detach` otherwise) is reported after this
    // disconnect.
    if ctx
        .sessions
        .detach(&accepted.session, accepted.owner.connection_id)
        == Some(true)
    {
        ctx.router.remove_session(&accepted.session);
    }
    accepted.owner.done.cancel();
}

/// The connected phase.
async fn run(
    conn: &mut inbound::Connection,
    stream: &mut PacketStream,
    keep_alive: u16,
    kick: &tokio_util::sync::CancellationToken,
    source: &packet_events::PacketSource,
) -> Exit {
    // [MQTT-3.1.2-24]: one and a half times the keepalive without a packet closes the connection.
    let keep_alive = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let deadline = sleep_until(keep_alive.map_or(far_future, |k| Instant::now() + k));
    tokio::pin!(deadline);
    let write_stall = keep_alive.unwrap_or(WRITE_STALL).max(WRITE_STALL);
    stream.queue_deliveries(conn.session());

    loop {
        packet_events::sent(conn.ctx(), source, &stream.write_buf);
        // A client that stops reading must not pin this task: takeover and shutdown still
        // interrupt the write, and a write that makes no headway for WRITE_STALL ends it.
        tokio::select! {
            biased;
            _ = kick.cancelled() => return kicked(conn),
            written = stream.flush() => {
                if let Err(error) = written {
                    debug!(%error, "write failed");
                    return Exit::IoError;
                }
            }
            _ = tokio::time::sleep(write_stall) => {
                info!(?write_stall, "client stopped reading: closing");
                return Exit::IoError;
            }
        }
        flush_counters(conn.ctx(), stream);
        tokio::select! {
            biased;
            _ = kick.cancelled() => return kicked(conn),
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
                    let raw = packet_events::wants_received_bytes(conn.ctx()).then(|| stream.peek_packet()).flatten();
                    match stream.next_buffered() {
                        Ok(Some(packet)) => {
                            let type_nibble = packet.packet_type() as u8;
                            let size = stream.last_size();
                            packet_events::received(conn.ctx(), source, type_nibble, size, raw.as_deref());
                            // Boxed: handling a packet (an MQTT 5 PUBLISH with its properties,
                            // the checks, the fan-out) needs far more state than waiting does,
                            // and an idle connection should not carry it (bench: RSS per idle
                            // connection).
                            if let Some(exit) = Box::pin(conn.handle(packet, stream)).await {
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
                stream.queue_deliveries(conn.session());
            }
            _ = conn.session().woken() => {
                stream.queue_deliveries(conn.session());
            }
        }
    }
}

/// The exit for a cancelled kick token: a broker shutdown, a takeover (which hands the session
/// to the new connection before kicking), or a kick (which leaves the session with us).
fn kicked(conn: &inbound::Connection) -> Exit {
    if conn.ctx().shutdown.is_cancelled() {
        Exit::Shutdown
    } else if conn
        .session()
        .owner()
        .is_some_and(|o| o.kick.is_cancelled())
    {
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

/// Publishes the will now, or (MQTT 5 Will Delay Interval) after min(delay, session expiry)
/// unless a connection takes the session over first ([MQTT-3.1.3-9]). The delayed will is a
/// task owned by the session's `pending_will` token, a child of the broker's shutdown token:
/// a broker shutdown drops it unsent, as it does immediate wills.
async fn will_after_delay(
    ctx: &Arc<BrokerContext>,
    session: &Arc<crate::session::Session>,
    will: &LastWill,
) {
    let delay = will.properties.will_delay_interval.unwrap_or(0);
    let (ends, expiry) = session.with_state(|st| (st.clean, st.expiry));
    let delay = Duration::from_secs(u64::from(delay));
    let wait = match (ends, expiry) {
        _ if delay.is_zero() => Duration::ZERO,
        (true, _) => Duration::ZERO,
        (false, Some(expiry)) => delay.min(expiry),
        (false, None) => delay,
    };
    let message = will_message(will);
    if wait.is_zero() {
        publish_will(ctx, &message).await;
        return;
    }
    let pending = crate::session::PendingWill::child_of(&ctx.shutdown);
    session.with_state(|st| st.pending_will = Some(pending.clone()));
    debug!(?wait, "will delayed");
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let send = tokio::select! {
            now = pending.decided() => now,
            () = tokio::time::sleep(wait) => true,
        };
        if send {
            publish_will(&ctx, &message).await;
        } else {
            debug!(topic = %message.topic, "delayed will cancelled");
        }
    });
}

/// The will as a message, with its MQTT 5 properties.
fn will_message(will: &LastWill) -> Message {
    let p = &will.properties;
    let mut message = Message::new(
        will.topic.clone(),
        will.payload.clone(),
        will.qos,
        will.retain,
    );
    message.properties = crate::message::MessageProperties::from_publish(&v5::PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_properties: p.user_properties.clone(),
        ..Default::default()
    });
    message.expires_at = p
        .message_expiry_interval
        .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs)));
    message
}

/// Publishes the will. Like aMQTT, no PUBLISH check and no message events: it goes straight to
/// dispatch, where RECEIVE checks still apply.
async fn publish_will(ctx: &BrokerContext, message: &Message) {
    debug!(topic = %message.topic, "publishing will");
    dispatch::dispatch(ctx, dispatch::Origin::default(), message).await;
}

fn flush_counters(ctx: &BrokerContext, stream: &mut PacketStream) {
    Stats::add(
        &ctx.stats.bytes_received,
        std::mem::take(&mut stream.bytes_in),
    );
    Stats::add(&ctx.stats.bytes_sent, std::mem::take(&mut stream.bytes_out));
    Stats::add(
        &ctx.stats.packets_sent,
        std::mem::take(&mut stream.packets_out),
    );
    Stats::add(
        &ctx.stats.publish_sent,
        std::mem::take(&mut stream.publishes_out),
    );
    let (local, global) = (std::mem::take(&mut stream.by_type), &ctx.stats.by_type);
    for index in 1..16 {
        Stats::add(
            &global.packets_received[index],
            u64::from(local.packets_in[index]),
        );
        Stats::add(
            &global.bytes_received[index],
            u64::from(local.bytes_in[index]),
        );
        Stats::add(
            &global.packets_sent[index],
            u64::from(local.packets_out[index]),
        );
        Stats::add(&global.bytes_sent[index], u64::from(local.bytes_out[index]));
    }
}

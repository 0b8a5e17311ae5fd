//! The CONNECT phase: read CONNECT before the deadline, apply the client id and authentication
//! rules, attach the session (takeover, clean session) and answer with CONNACK.

use std::sync::Arc;

use bytestring::ByteString;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::io::{IoError, PacketStream};
use crate::codec::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use crate::context::BrokerContext;
use crate::listener::PeerInfo;
use crate::plugin::emit;
use crate::session::{Owner, Session};
use crate::stats::Stats;
use midge_proto::plugin::v1 as pb;

/// How long a new connection waits for the connection it took over to let go of the session.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// A connection that passed CONNECT.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) connect: Box<Connect>,
    pub(crate) session: Arc<Session>,
    pub(crate) session_present: bool,
    pub(crate) owner: Owner,
    /// The session facts events carry.
    pub(crate) facts: pb::Session,
}

/// Runs the CONNECT phase. `None` means the connection is to be closed (the reason is logged and
/// any CONNACK refusal already written).
pub(crate) async fn handshake(
    ctx: &BrokerContext,
    stream: &mut PacketStream,
    peer: &PeerInfo,
) -> Option<Accepted> {
    let read = tokio::select! {
        read = tokio::time::timeout_at(peer.connect_deadline, stream.read_packet()) => read,
        () = ctx.shutdown.cancelled() => {
            debug!("shutdown before CONNECT");
            return None;
        }
    };
    let connect = match read {
        Err(_) => {
            debug!("no CONNECT before the connect timeout");
            return None;
        }
        Ok(Ok(None)) => {
            debug!("closed before CONNECT");
            return None;
        }
        Ok(Ok(Some(Packet::Connect(connect)))) => owned(connect),
        Ok(Ok(Some(other))) => {
            warn!(
                packet = other.name(),
                "first packet is not CONNECT [MQTT-3.1.0-1]"
            );
            Stats::add(&ctx.stats.protocol_errors, 1);
            return None;
        }
        Ok(Err(IoError::Decode(error))) => {
            warn!(%error, "bad CONNECT");
            Stats::add(&ctx.stats.protocol_errors, 1);
            if let Some(code) = error.connack_code() {
                refuse(ctx, stream, code).await;
            }
            return None;
        }
        Ok(Err(error)) => {
            debug!(%error, "connection failed before CONNECT");
            return None;
        }
    };

    let client_id = if connect.client_id.is_empty() {
        if !connect.clean_session {
            info!("refused: empty client id requires clean session [MQTT-3.1.3-8]");
            refuse(ctx, stream, ConnectReturnCode::IdentifierRejected).await;
            return None;
        }
        ctx.assign_client_id()
    } else {
        connect.client_id.clone()
    };
    tracing::Span::current().record("client_id", &*client_id);

    let connection_id = ctx.next_connection_id();
    let request = pb::AuthenticateRequest {
        client_id: client_id.to_string(),
        username: connect.username.as_ref().map(|u| u.to_string()),
        password: connect.password.as_ref().map(|p| p.to_vec()),
        remote_addr: peer.addr.to_string(),
        listener: peer.listener.to_string(),
        protocol_version: emit::protocol_version(connect.protocol) as i32,
        tls_peer_subject: peer.tls_subject.clone().unwrap_or_default(),
        clean_start: connect.clean_session,
        keep_alive_secs: u32::from(connect.keep_alive),
        connection_id: connection_id.to_string(),
        ..Default::default()
    };
    let grants = match ctx.plugins.authenticate(&request).await {
        Ok(grants) => grants,
        Err(reason) => {
            info!(username = connect.username.as_deref(), %reason, "refused: not authorized");
            refuse(ctx, stream, ConnectReturnCode::NotAuthorized).await;
            return None;
        }
    };
    drop(request);
    let mut connect = connect;
    connect.password = None;

    let owner = Owner {
        connection_id,
        kick: ctx.shutdown.child_token(),
        done: CancellationToken::new(),
    };
    let attached = ctx
        .sessions
        .attach(&client_id, connect.clean_session, owner.clone());
    if let Some(previous) = attached.previous_owner {
        info!("session taken over from an existing connection");
        if tokio::time::timeout(TAKEOVER_WAIT, previous.done.cancelled())
            .await
            .is_err()
        {
            warn!("previous connection did not release the session in time");
        }
    }
    if let Some(discarded) = attached.discarded {
        ctx.router.remove_session(&discarded);
    }
    attached.session.decisions().set_grants(grants);
    attached.session.with_state(|st| {
        st.username = connect.username.clone();
        st.listener = peer.listener.clone();
        st.connection = Some(crate::session::ConnectionInfo {
            remote_addr: peer.addr,
            protocol: connect.protocol,
            keep_alive: connect.keep_alive,
            since: std::time::SystemTime::now(),
        });
    });

    let connack = Packet::ConnAck(ConnAck {
        session_present: attached.session_present,
        return_code: ConnectReturnCode::Accepted,
    });
    if stream.queue(&connack).is_err() {
        return None;
    }
    let resent = attached.session.fill_resend(&mut stream.write_buf);
    debug!(
        clean_session = connect.clean_session,
        session_present = attached.session_present,
        keep_alive = connect.keep_alive,
        resent,
        "connected"
    );
    let facts = pb::Session {
        client_id: client_id.to_string(),
        username: connect.username.as_ref().map(|u| u.to_string()),
        clean_start: connect.clean_session,
        keep_alive_secs: u32::from(connect.keep_alive),
        protocol_version: emit::protocol_version(connect.protocol) as i32,
        remote_addr: peer.addr.to_string(),
        listener: peer.listener.to_string(),
        connection_id: owner.connection_id.to_string(),
    };
    Some(Accepted {
        connect,
        session: attached.session,
        session_present: attached.session_present,
        owner,
        facts,
    })
}

/// Sends a refusing CONNACK and counts it; the caller closes the connection.
async fn refuse(ctx: &BrokerContext, stream: &mut PacketStream, code: ConnectReturnCode) {
    Stats::add(&ctx.stats.connects_refused, 1);
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        return_code: code,
    });
    if stream.queue(&connack).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.close()).await;
    }
}

/// CONNECT with its strings copied out of the read buffer, so the connection does not pin that
/// buffer for its whole life (the decoder slices without copying; this is the one place where a
/// copy saves memory). The password is dropped after authentication.
fn owned(mut connect: Box<Connect>) -> Box<Connect> {
    let copy = |s: &ByteString| ByteString::from(s.to_string());
    connect.client_id = copy(&connect.client_id);
    connect.username = connect.username.as_ref().map(copy);
    connect.password = connect
        .password
        .as_deref()
        .map(bytes::Bytes::copy_from_slice);
    if let Some(will) = connect.will.as_mut() {
        will.topic = copy(&will.topic);
        will.message = bytes::Bytes::copy_from_slice(&will.message);
    }
    connect
}

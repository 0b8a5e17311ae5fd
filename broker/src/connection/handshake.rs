//! The CONNECT phase: read CONNECT before the deadline, apply the client id and authentication
//! rules, attach the session (takeover, clean session) and answer with CONNACK.

use std::sync::Arc;

use bytestring::ByteString;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::io::{IoError, PacketStream};
use crate::codec::PacketType;
use crate::codec::ProtocolVersion;
use crate::codec::v5::{
    Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, LastWill, Packet, ReasonCode,
};
use crate::config::Limits;
use crate::context::BrokerContext;
use crate::listener::PeerInfo;
use crate::outbound::Outbound;
use crate::plugin::{AuthOutcome, AuthQuery, ConnectFacts};
use crate::session::{Attached, Owner, Session, SessionTerms};
use crate::stats::Stats;

/// How long a client may take to answer one AUTH challenge of enhanced authentication.
const AUTH_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new connection waits for the connection it took over to let go of the session.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// A connection that passed CONNECT.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The will of the CONNECT, kept for the end of the connection. Boxed: most clients have
    /// none, and the rest of CONNECT is not kept.
    pub(crate) will: Option<Box<LastWill>>,
    /// The user name of the CONNECT.
    pub(crate) username: Option<ByteString>,
    /// The Clean Start (3.1.1: clean session) flag of the CONNECT.
    pub(crate) clean_start: bool,
    /// The keep alive in force: the client's, or the Server Keep Alive the broker imposed.
    pub(crate) keep_alive: u16,
    /// The MQTT 5 Session Expiry Interval accepted (0 for 3.1.1), for the DISCONNECT rule
    /// that it cannot be raised from 0 ([MQTT-3.14.2-2]).
    pub(crate) session_expiry: u32,
    pub(crate) session: Arc<Session>,
    pub(crate) session_present: bool,
    pub(crate) owner: Owner,
}

/// Runs the CONNECT phase. `None` means the connection is to be closed (the reason is logged and
/// any CONNACK refusal already written). The steps: read CONNECT, settle the client id,
/// authenticate (before anything touches a session), negotiate the session terms, attach the
/// session (taking it over from a connection that holds it), answer CONNACK.
pub(crate) async fn handshake(
    ctx: &BrokerContext,
    stream: &mut PacketStream,
    peer: &PeerInfo,
) -> Option<Accepted> {
    let connect = read_connect(ctx, stream, peer).await?;
    let protocol = stream.protocol().unwrap_or(ProtocolVersion::V311);
    let v5 = protocol == ProtocolVersion::V5;
    let limits = &ctx.config.limits;
    let (client_id, assigned) = client_id(ctx, stream, &connect, v5).await?;
    tracing::Span::current().record("client_id", &*client_id);

    let connection_id = ctx.next_connection_id();
    let query = auth_query(&connect, &client_id, peer, protocol, connection_id);
    if v5 {
        // Known before authentication, so that a refusal too fits the client's Maximum Packet
        // Size ([MQTT-3.1.2-24]).
        let client_aliases = connect.properties.topic_alias_maximum.unwrap_or(0);
        stream.out = Outbound::v5(
            connect.properties.maximum_packet_size.map(|m| m.get()),
            client_aliases.min(limits.topic_alias_maximum),
        );
    }
    let (grants, auth_data) = Box::pin(authenticate(ctx, stream, query, &connect)).await?;
    let mut connect = connect;
    connect.password = None;
    connect.properties.authentication_data = None;
    connect.properties.user_properties = Vec::new();

    let mut connack = ConnAckProperties::default();
    let (terms, session_expiry) = session_terms(&connect, limits, v5, &mut connack);
    let keep_alive = keep_alive(&connect, limits, v5, &mut connack);

    let owner = Owner::new(connection_id);
    let attached = attach(ctx, &client_id, terms, &owner).await;
    attached.session.decisions().set_grants(grants);
    // The client's Receive Maximum bounds what we send unacknowledged ([MQTT-3.3.4-9]).
    let client_receive_max = connect
        .properties
        .receive_maximum
        .map_or(u16::MAX, |r| r.get());
    attached.session.with_state(|st| {
        st.username = connect.username.clone();
        st.listener = peer.listener.clone();
        st.outgoing
            .set_capacity(limits.max_inflight.min(client_receive_max));
        st.connection = Some(crate::session::ConnectionInfo {
            remote_addr: peer.addr,
            protocol,
            keep_alive,
            since: std::time::SystemTime::now(),
        });
    });

    if v5 {
        limits_to_connack(limits, &mut connack);
        connack.assigned_client_identifier = assigned.then(|| client_id.clone());
        if let Some(method) = &connect.properties.authentication_method {
            connack.authentication_method = Some(method.clone());
            connack.authentication_data = (!auth_data.is_empty()).then(|| auth_data.into());
        }
    }
    let ack = Packet::ConnAck(Box::new(ConnAck {
        session_present: attached.session_present,
        reason_code: ReasonCode::Success,
        properties: connack,
    }));
    if stream.queue(&ack).is_err() {
        return None;
    }
    let resent = attached
        .session
        .fill_resend(&mut stream.write_buf, &mut stream.out);
    debug!(
        clean_start = connect.clean_start,
        session_present = attached.session_present,
        keep_alive,
        session_expiry,
        resent,
        %protocol,
        "connected"
    );
    let connect = *connect;
    Some(Accepted {
        will: connect.will.map(Box::new),
        username: connect.username,
        clean_start: connect.clean_start,
        keep_alive,
        session_expiry,
        session: attached.session,
        session_present: attached.session_present,
        owner,
    })
}

/// Reads the CONNECT before the connect deadline (or a shutdown). A bad one is answered with
/// the CONNACK refusal its version has for it, if any.
async fn read_connect(
    ctx: &BrokerContext,
    stream: &mut PacketStream,
    peer: &PeerInfo,
) -> Option<Box<Connect>> {
    let read = tokio::select! {
        read = tokio::time::timeout_at(peer.connect_deadline, stream.read_packet()) => read,
        () = ctx.shutdown.cancelled() => {
            debug!("shutdown before CONNECT");
            return None;
        }
    };
    match read {
        Err(_) => {
            debug!("no CONNECT before the connect timeout");
            None
        }
        Ok(Ok(None)) => {
            debug!("closed before CONNECT");
            None
        }
        Ok(Ok(Some(Packet::Connect(connect)))) => Some(owned(connect)),
        Ok(Ok(Some(other))) => {
            warn!(
                packet = other.name(),
                "first packet is not CONNECT [MQTT-3.1.0-1]"
            );
            Stats::add(&ctx.stats.protocol_errors, 1);
            None
        }
        Ok(Err(IoError::Decode(error))) => {
            warn!(%error, "bad CONNECT");
            Stats::add(&ctx.stats.protocol_errors, 1);
            if stream.is_v5() {
                // MQTT 5 answers a bad CONNECT with its reason ([MQTT-4.13.1-1] allows it).
                refuse(ctx, stream, error.v5_reason(), None).await;
            } else if error.connack_code().is_some() {
                let reason = match error {
                    crate::codec::DecodeError::EmptyClientId(_) => {
                        ReasonCode::ClientIdentifierNotValid
                    }
                    _ => ReasonCode::UnsupportedProtocolVersion,
                };
                refuse(ctx, stream, reason, None).await;
            }
            None
        }
        Ok(Err(error)) => {
            debug!(%error, "connection failed before CONNECT");
            None
        }
    }
}

/// The client id, and whether the broker assigned it (the client sent none). `None` when the
/// client was refused (CONNACK sent).
async fn client_id(
    ctx: &BrokerContext,
    stream: &mut PacketStream,
    connect: &Connect,
    v5: bool,
) -> Option<(ByteString, bool)> {
    if !connect.client_id.is_empty() {
        return Some((connect.client_id.clone(), false));
    }
    // MQTT 5 assigns an identifier whatever Clean Start says ([MQTT-3.1.3-7]); 3.1.1 only for a
    // clean session ([MQTT-3.1.3-8]).
    if !v5 && !connect.clean_start {
        info!("refused: empty client id requires clean session [MQTT-3.1.3-8]");
        refuse(ctx, stream, ReasonCode::ClientIdentifierNotValid, None).await;
        return None;
    }
    Some((ctx.assign_client_id(), true))
}

/// What the authentication chain is asked about this CONNECT.
fn auth_query(
    connect: &Connect,
    client_id: &str,
    peer: &PeerInfo,
    protocol: ProtocolVersion,
    connection_id: u64,
) -> AuthQuery {
    let props = &connect.properties;
    let facts = ConnectFacts {
        client_id,
        username: connect.username.as_deref(),
        password: connect.password.as_deref(),
        remote_addr: peer.addr,
        listener: &peer.listener,
        protocol,
        tls_subject: peer.tls_subject.as_deref(),
        clean_start: connect.clean_start,
        keep_alive: connect.keep_alive,
        connection_id,
        auth_method: props.authentication_method.as_deref(),
        auth_data: props.authentication_data.as_deref(),
    };
    let user_properties = props.user_properties.iter().map(|(k, v)| (&**k, &**v));
    AuthQuery::new(facts, user_properties)
}

/// The session's terms, and the Session Expiry Interval accepted (0 for 3.1.1). 3.1.1 takes
/// `session-expiry` for persistent sessions; MQTT 5 asks for its own, capped by
/// `max-session-expiry` (the cap is announced in `connack`).
fn session_terms(
    connect: &Connect,
    limits: &Limits,
    v5: bool,
    connack: &mut ConnAckProperties,
) -> (SessionTerms, u32) {
    if !v5 {
        let terms = SessionTerms {
            clean_start: connect.clean_start,
            ends_with_connection: connect.clean_start,
            expiry: (!limits.session_expiry.is_zero()).then_some(limits.session_expiry),
        };
        return (terms, 0);
    }
    let mut session_expiry = connect.properties.session_expiry_interval.unwrap_or(0);
    let cap = u32::try_from(limits.max_session_expiry.as_secs()).unwrap_or(u32::MAX);
    if cap > 0 && session_expiry > cap {
        session_expiry = cap;
        connack.session_expiry_interval = Some(cap);
    }
    let terms = SessionTerms {
        clean_start: connect.clean_start,
        ends_with_connection: session_expiry == 0,
        expiry: (session_expiry != u32::MAX)
            .then(|| Duration::from_secs(u64::from(session_expiry))),
    };
    (terms, session_expiry)
}

/// The keep alive in force: the client's, or for MQTT 5 the Server Keep Alive `max-keep-alive`
/// imposes (announced in `connack`).
fn keep_alive(
    connect: &Connect,
    limits: &Limits,
    v5: bool,
    connack: &mut ConnAckProperties,
) -> u16 {
    let keep_alive = connect.keep_alive;
    if v5
        && limits.max_keep_alive < u16::MAX
        && (keep_alive == 0 || keep_alive > limits.max_keep_alive)
    {
        connack.server_keep_alive = Some(limits.max_keep_alive);
        return limits.max_keep_alive;
    }
    keep_alive
}

/// Attaches the session (only after authentication allowed the client): a connection that owns
/// the client id now is kicked (takeover) and given a few seconds to let go.
async fn attach(
    ctx: &BrokerContext,
    client_id: &ByteString,
    terms: SessionTerms,
    owner: &Owner,
) -> Attached {
    let attached = ctx.sessions.attach(client_id, terms, owner.clone());
    // A broker shutdown kicks the owners it finds in the registry after cancelling the token;
    // one that attached too late for that sees the token cancelled here.
    if ctx.shutdown.is_cancelled() {
        attached.session.kick_owner(owner);
    }
    if let Some(previous) = &attached.previous_owner {
        info!("session taken over from an existing connection");
        if tokio::time::timeout(TAKEOVER_WAIT, previous.released())
            .await
            .is_err()
        {
            warn!("previous connection did not release the session in time");
        }
    }
    if let Some(discarded) = &attached.discarded {
        ctx.router.remove_session(discarded);
    }
    attached
}

/// The broker's MQTT 5 limits, announced in CONNACK.
fn limits_to_connack(limits: &Limits, connack: &mut ConnAckProperties) {
    connack.receive_maximum = (limits.receive_maximum < u16::MAX)
        .then(|| std::num::NonZeroU16::new(limits.receive_maximum))
        .flatten();
    connack.maximum_packet_size = std::num::NonZeroU32::new(limits.max_packet_size);
    connack.topic_alias_maximum =
        (limits.topic_alias_maximum > 0).then_some(limits.topic_alias_maximum);
    connack.shared_subscription_available = (!limits.shared_subscriptions).then_some(false);
}

/// Runs the authentication chain, and for an MQTT 5 CONNECT with an Authentication Method the
/// AUTH exchange a plugin asks for (§4.12): AUTH 0x18 with the plugin's data, the client's AUTH
/// 0x18 back, until the plugin decides. Returns the session grants and the Authentication Data
/// for CONNACK, or `None` when the client was refused (CONNACK sent) or went away.
async fn authenticate(
    ctx: &BrokerContext,
    stream: &mut PacketStream,
    mut query: AuthQuery,
    connect: &Connect,
) -> Option<(
    Option<std::sync::Arc<crate::plugin::grants::Grants>>,
    Vec<u8>,
)> {
    let mut outcome = ctx.plugins.authenticate(&query).await;
    loop {
        let pending = match outcome {
            AuthOutcome::Allowed { grants, auth_data } => return Some((grants, auth_data)),
            AuthOutcome::Refused {
                reason,
                reason_code,
            } => {
                info!(username = connect.username.as_deref(), %reason, "refused: not authorized");
                let code = refusal_code(reason_code, stream.is_v5());
                refuse(ctx, stream, code, Some(reason)).await;
                return None;
            }
            AuthOutcome::Continue(pending) => pending,
        };
        let method = connect.properties.authentication_method.clone();
        let challenge = Packet::Auth(Auth {
            reason_code: ReasonCode::ContinueAuthentication,
            properties: AuthProperties {
                authentication_method: method.clone(),
                authentication_data: Some(pending.auth_data.clone().into()),
                ..AuthProperties::default()
            },
        });
        if stream.queue(&challenge).is_err() || stream.flush().await.is_err() {
            return None;
        }
        let answer = tokio::time::timeout(AUTH_STEP_TIMEOUT, stream.read_packet()).await;
        let auth = match answer {
            Ok(Ok(Some(Packet::Auth(auth)))) => auth,
            Ok(Ok(Some(other))) => {
                warn!(
                    packet = other.name(),
                    "expected AUTH during authentication [MQTT-4.12.0-1]"
                );
                refuse(ctx, stream, ReasonCode::ProtocolError, None).await;
                return None;
            }
            Err(_) => {
                info!("no AUTH answer in time: closing");
                return None;
            }
            Ok(_) => {
                debug!("closed during authentication");
                return None;
            }
        };
        if auth.reason_code != ReasonCode::ContinueAuthentication
            || auth.properties.authentication_method != method
        {
            // [MQTT-4.12.0-5]: the same method throughout.
            info!("AUTH with another method or reason: refused");
            refuse(ctx, stream, ReasonCode::BadAuthenticationMethod, None).await;
            return None;
        }
        query.next_step(
            auth.properties
                .authentication_data
                .map(|d| d.to_vec())
                .unwrap_or_default(),
        );
        outcome = ctx.plugins.continue_auth(pending, &query).await;
    }
}

/// The CONNACK reason code of a refusal by the authentication chain, whose denying plugin
/// asked for `reason_code` (0: none). MQTT 5 gets the plugin's code if CONNACK may carry it as a
/// refusal, else 0x87 not authorized. 3.1.1 gets 0x04 bad user name or password for 0x86 and
/// 0x05 not authorized for anything else: never 0x03 server unavailable, which clients take
/// as temporary and retry at once, forever.
fn refusal_code(reason_code: u32, v5: bool) -> ReasonCode {
    let code = u8::try_from(reason_code)
        .ok()
        .and_then(|c| ReasonCode::try_from(c).ok())
        .filter(|c| c.is_error() && c.allowed_in(PacketType::ConnAck));
    match code {
        Some(code) if v5 => code,
        Some(ReasonCode::BadUserNameOrPassword) => ReasonCode::BadUserNameOrPassword,
        _ => ReasonCode::NotAuthorized,
    }
}

/// Sends a refusing CONNACK (in the client's protocol: the nearest 3.1.1 return code for
/// 3.1.1 clients) and counts it; the caller closes the connection.
async fn refuse(
    ctx: &BrokerContext,
    stream: &mut PacketStream,
    reason: ReasonCode,
    reason_string: Option<String>,
) {
    Stats::add(&ctx.stats.connects_refused, 1);
    let connack = Packet::ConnAck(Box::new(ConnAck {
        session_present: false,
        reason_code: reason,
        properties: ConnAckProperties {
            reason_string: reason_string
                .filter(|r| !r.is_empty())
                .map(ByteString::from),
            ..ConnAckProperties::default()
        },
    }));
    if stream.queue(&connack).is_ok() {
        // As for a DISCONNECT: one second to write it and to let the client read it.
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        let _ = tokio::time::timeout_at(until, stream.close()).await;
        stream.drain(until).await;
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
        will.payload = bytes::Bytes::copy_from_slice(&will.payload);
        let p = &mut will.properties;
        p.content_type = p.content_type.as_ref().map(copy);
        p.response_topic = p.response_topic.as_ref().map(copy);
        p.correlation_data = p
            .correlation_data
            .as_deref()
            .map(bytes::Bytes::copy_from_slice);
        p.user_properties = p
            .user_properties
            .iter()
            .map(|(k, v)| (copy(k), copy(v)))
            .collect();
    }
    connect.properties.authentication_method =
        connect.properties.authentication_method.as_ref().map(copy);
    connect.properties.user_properties = connect
        .properties
        .user_properties
        .iter()
        .map(|(k, v)| (copy(k), copy(v)))
        .collect();
    connect
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_codes() {
        let cases = [
            (0, true, ReasonCode::NotAuthorized),
            (0, false, ReasonCode::NotAuthorized),
            (0x86, true, ReasonCode::BadUserNameOrPassword),
            (0x86, false, ReasonCode::BadUserNameOrPassword),
            (0x88, true, ReasonCode::ServerUnavailable),
            (0x88, false, ReasonCode::NotAuthorized),
            (0x8A, true, ReasonCode::Banned),
            (0x97, false, ReasonCode::NotAuthorized),
            // Not a refusal, or not one CONNACK may carry: the default.
            (0x00, true, ReasonCode::NotAuthorized),
            (0x8E, true, ReasonCode::NotAuthorized),
            (0x1_0087, true, ReasonCode::NotAuthorized),
        ];
        for (plugin, v5, expected) in cases {
            assert_eq!(refusal_code(plugin, v5), expected, "{plugin:#x} v5 {v5}");
        }
    }
}

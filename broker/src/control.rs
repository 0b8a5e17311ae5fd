//! Applying the control messages plugins send on their event streams: publish a message,
//! disconnect a client, invalidate cached decisions — aMQTT's `BrokerContext` reach, out of
//! process.

use std::sync::Arc;

use bytes::Bytes;
use midge_proto::plugin::v1 as pb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::codec::QoS;
use crate::context::BrokerContext;
use crate::dispatch;
use crate::message::Message;
use crate::message::Origin;
use crate::plugin::sanitize::MAX_FIELD;
use crate::plugin::{ControlRequest, emit};
use crate::topic;

/// Applies control messages until `shutdown`.
pub async fn run(
    ctx: Arc<BrokerContext>,
    mut controls: mpsc::Receiver<ControlRequest>,
    shutdown: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => return,
            request = controls.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        apply(&ctx, request).await;
    }
}

/// Applies one control message. Invalid ones are logged and ignored.
pub async fn apply(ctx: &BrokerContext, request: ControlRequest) {
    let alias = &request.alias;
    match request.control.action {
        Some(pb::control::Action::Publish(publish)) => {
            let qos = u8::try_from(publish.qos)
                .ok()
                .and_then(|q| QoS::try_from(q).ok());
            // MQTT strings and binary fields are at most 65,535 bytes: a longer topic or
            // correlation data could not be sent to anyone.
            let fits = publish.topic.len() <= MAX_FIELD
                && publish
                    .properties
                    .as_ref()
                    .is_none_or(|p| p.correlation_data.len() <= MAX_FIELD);
            let (Some(qos), true) = (qos, fits && topic::is_valid_topic_name(&publish.topic))
            else {
                let shown = crate::plugin::sanitize::truncate(&publish.topic, 256);
                warn!(%alias, topic = %shown, qos = publish.qos, "plugin publish refused: bad topic, qos or size");
                return;
            };
            let (properties, expires_at) = emit::from_pb_properties(publish.properties.as_ref());
            let mut message = Message::new(
                publish.topic.into(),
                Bytes::from(publish.payload),
                qos,
                publish.retain,
            );
            message.properties = properties;
            message.expires_at = expires_at;
            info!(%alias, topic = %message.topic, "plugin publishes a message");
            // Like a client's message that passed its checks, with an empty client id.
            ctx.plugins
                .emit_message(pb::EventKind::MessageBroadcast, Origin::default(), &message);
            dispatch::dispatch(ctx, Origin::default(), &message).await;
        }
        Some(pb::control::Action::Disconnect(disconnect)) => {
            let kicked = ctx
                .sessions
                .get(&disconnect.client_id)
                .and_then(|session| session.kick(&disconnect.reason));
            match kicked {
                Some(_) => {
                    info!(%alias, client_id = %disconnect.client_id, reason = %disconnect.reason, "plugin disconnects a client");
                }
                None => {
                    info!(%alias, client_id = %disconnect.client_id, "plugin asked to disconnect a client that is not connected")
                }
            }
        }
        Some(pb::control::Action::Invalidate(invalidate)) => {
            // Only the sending plugin's entries; with neither field set, all of them.
            let client_id = Some(invalidate.client_id.as_str()).filter(|c| !c.is_empty());
            let username = Some(invalidate.username.as_str()).filter(|u| !u.is_empty());
            let Some(plugin) = ctx.plugins.plugin(alias) else {
                return;
            };
            ctx.plugins.invalidate_auth(alias, client_id, username);
            let everything = client_id.is_none() && username.is_none();
            for session in ctx.sessions.all() {
                let user_hit = username
                    .is_some_and(|u| session.with_state(|st| st.username.as_deref() == Some(u)));
                if everything || client_id.is_some_and(|c| &**session.client_id() == c) || user_hit
                {
                    session.decisions().clear_plugin(plugin.index());
                }
            }
            // Logged once applied, so the log never runs ahead of what happened.
            info!(%alias, ?client_id, ?username, "plugin invalidates cached decisions");
        }
        None => warn!(%alias, "empty control message ignored"),
    }
}

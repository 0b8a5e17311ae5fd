//! Applying the control messages plugins send on their event streams (read and checked by
//! `plugin::control`): publish a message, disconnect a client, invalidate cached decisions —
//! aMQTT's `BrokerContext` reach, out of process.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::backpressure;
use crate::context::BrokerContext;
use crate::dispatch;
use crate::message::Origin;
use crate::plugin::{Control, ControlRequest, MessageMoment};

/// Applies control messages until `shutdown`.
pub(crate) async fn run(
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

/// Applies one control message (already checked by the plugin layer).
pub(crate) async fn apply(ctx: &BrokerContext, request: ControlRequest) {
    let alias = &request.alias;
    match request.control {
        Control::Publish(message) => {
            info!(%alias, topic = %message.topic, "plugin publishes a message");
            // Like a client's message that passed its checks, with an empty client id.
            ctx.plugins
                .message(MessageMoment::Broadcast, Origin::default(), &message);
            let delivered = dispatch::dispatch(ctx, Origin::default(), &message).await;
            // A plugin publishing into full queues is held like a client: the control stream
            // is not read meanwhile (bounded by `slow-consumer-timeout`).
            if !delivered.backlog.is_empty() {
                backpressure::wait_for_room(ctx, None, delivered.backlog).await;
            }
        }
        Control::Disconnect { client_id, reason } => {
            let kicked = ctx
                .sessions
                .get(&client_id)
                .and_then(|session| session.kick(&reason));
            match kicked {
                Some(_) => {
                    info!(%alias, %client_id, %reason, "plugin disconnects a client");
                }
                None => {
                    info!(%alias, %client_id, "plugin asked to disconnect a client that is not connected")
                }
            }
        }
        Control::Invalidate {
            client_id,
            username,
        } => {
            // Only the sending plugin's entries; with neither field set, all of them.
            let (client_id, username) = (client_id.as_deref(), username.as_deref());
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
    }
}

//! Dispatching one accepted application message: retained store, events, and delivery to every
//! subscriber — through the RECEIVE topic check when topic checks are on.

use futures_util::future::join_all;
use midge_proto::plugin::v1 as pb;

use crate::codec::QoS;
use crate::context::BrokerContext;
use crate::message::Message;
use crate::plugin::TopicQuery;
use crate::plugin::cache::TopicCache;
use crate::plugin::decision::Action;
use crate::plugin::emit;
use crate::router::Target;
use crate::session::Session;

/// Who published a message (for events); `None` fields for broker-originated messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// Publishing client's id ("" for the broker itself).
    pub client_id: &'a str,
    /// Publishing client's user name.
    pub username: Option<&'a str>,
}

/// Stores or clears the retained message (with its event), then delivers `message` to every
/// subscriber allowed to receive it. The message has passed any PUBLISH check already.
/// Returns how many subscribers it was delivered or queued to.
pub async fn dispatch(ctx: &BrokerContext, origin: Origin<'_>, message: &Message) -> usize {
    if let Some(stored) = ctx.router.retain(message, origin.client_id) {
        let kind = if stored {
            pb::EventKind::RetainedStored
        } else {
            pb::EventKind::RetainedCleared
        };
        ctx.plugins.emit_message(
            kind,
            |payload| {
                let body = emit::message_event(origin.client_id, origin.username, message, payload);
                if stored {
                    pb::event::Body::RetainedStored(body)
                } else {
                    pb::event::Body::RetainedCleared(body)
                }
            },
            &message.topic,
        );
    }
    if !ctx.plugins.topic_check_enabled() {
        return ctx.router.fan_out(message, origin.client_id);
    }
    // Boxed, so the checked path's state stays out of the publishing connection's task.
    Box::pin(fan_out_checked(ctx, message, origin.client_id)).await
}

/// Fan-out with a RECEIVE check per subscriber (checks run concurrently).
async fn fan_out_checked(ctx: &BrokerContext, message: &Message, publisher: &str) -> usize {
    let mut targets: Vec<Target> = Vec::new();
    ctx.router
        .subscribers(&message.topic, publisher, &mut targets);
    let mut receivers = 0;
    let mut deliver = |target: &Target| {
        if target.session.deliver(target.copy_of(message)).is_ok() {
            receivers += 1;
        }
    };
    // Cached verdicts decide here without awaiting; only the misses ask the plugins, together.
    let mut misses = Vec::new();
    for target in &targets {
        match ctx.plugins.cached_verdict(
            target.session.decisions(),
            Action::Receive,
            &message.topic,
        ) {
            Some(true) => deliver(target),
            Some(false) => {}
            None => misses.push(target),
        }
    }
    if !misses.is_empty() {
        let checks = misses
            .iter()
            .map(|target| receive_checked(ctx, &target.session, message, target.qos));
        for (target, allowed) in misses.iter().zip(join_all(checks).await) {
            if allowed {
                deliver(target);
            }
        }
    }
    receivers
}

/// Runs the topic-check chain for `query`: answered from `cache` without awaiting when it can
/// be, else through the plugins (boxed: that state is large and only needed on a miss).
pub async fn topic_allowed(
    ctx: &BrokerContext,
    cache: &TopicCache,
    query: &TopicQuery<'_>,
) -> bool {
    match ctx.plugins.cached_topic_verdict(cache, query) {
        Some(allowed) => allowed,
        None => Box::pin(ctx.plugins.check_topic(cache, query)).await,
    }
}

/// The RECEIVE check of `session` for `message` delivered under a subscription granted
/// `granted` (also used for retained replay). The plugin sees the delivery QoS.
pub async fn may_receive(
    ctx: &BrokerContext,
    session: &Session,
    message: &Message,
    granted: QoS,
) -> bool {
    if let Some(allowed) =
        ctx.plugins
            .cached_verdict(session.decisions(), Action::Receive, &message.topic)
    {
        return allowed;
    }
    // Boxed, so connections without topic checks carry none of this state.
    Box::pin(receive_checked(ctx, session, message, granted)).await
}

async fn receive_checked(
    ctx: &BrokerContext,
    session: &Session,
    message: &Message,
    granted: QoS,
) -> bool {
    let (username, listener) = session.with_state(|st| (st.username.clone(), st.listener.clone()));
    let query = TopicQuery {
        client_id: session.client_id(),
        username: username.as_ref(),
        topic: &message.topic,
        action: Action::Receive,
        qos: message.qos.min(granted) as u8,
        retain: message.retain,
        listener: &listener,
    };
    topic_allowed(ctx, session.decisions(), &query).await
}

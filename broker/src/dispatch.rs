//! Dispatching one accepted application message: retained store, events, and delivery to every
//! subscriber — through the RECEIVE topic check when topic checks are on — and the redelivery
//! of a departed shared-subscription member's messages to the rest of its group.

use std::sync::Arc;

use bytestring::ByteString;
use futures_util::future::join_all;

use crate::codec::QoS;
use crate::context::BrokerContext;
use crate::message::{Message, Origin};
use crate::plugin::cache::TopicCache;
use crate::plugin::decision::Action;
use crate::plugin::{MessageMoment, TopicQuery};
use crate::router::Target;
use crate::session::{Backlog, Session};

/// What a dispatch did: how many subscribers the message was queued for, and the queues it
/// left over their bounds, which a publisher waits for before acknowledging
/// ([`crate::backpressure`]).
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    /// Subscribers the message was delivered or queued to.
    pub(crate) receivers: usize,
    /// Sessions whose queue is now over its bounds.
    pub(crate) backlog: Backlog,
}

/// Stores or clears the retained message (with its event), then delivers `message` to every
/// subscriber allowed to receive it. The message has passed any PUBLISH check already.
pub(crate) async fn dispatch(
    ctx: &BrokerContext,
    origin: Origin<'_>,
    message: &Message,
) -> Delivered {
    if let Some(stored) = ctx.router.retain(message, origin.client_id) {
        let moment = if stored {
            MessageMoment::RetainedStored
        } else {
            MessageMoment::RetainedCleared
        };
        ctx.plugins.message(moment, origin, message);
    }
    deliver(ctx, origin.client_id, message).await
}

/// Delivers `message` to every subscriber allowed to receive it (the RECEIVE check when topic
/// checks are on), without retained storage or events: the second half of [`dispatch`], and
/// the whole of a `$SYS` update, which is the broker's own bookkeeping (no events) but reaches
/// only subscribers the topic checks let read it.
pub(crate) async fn deliver(ctx: &BrokerContext, publisher: &str, message: &Message) -> Delivered {
    let mut backlog = Backlog::new();
    if !ctx.plugins.topic_check_enabled() {
        let receivers = ctx.router.fan_out(message, publisher, &mut backlog);
        return Delivered { receivers, backlog };
    }
    // Cached verdicts decide inside the router's walk, without waiting; only the misses (and
    // shared groups, which need a pick among allowed members) are collected.
    let mut unresolved: Vec<Target> = Vec::new();
    let receivers = ctx.router.fan_out_cached(
        message,
        publisher,
        |session| {
            ctx.plugins
                .cached_verdict(session.decisions(), Action::Receive, &message.topic)
        },
        &mut unresolved,
        &mut backlog,
    );
    if unresolved.is_empty() {
        return Delivered { receivers, backlog };
    }
    // Boxed, so the checked path's state stays out of the publishing connection's task.
    let more = Box::pin(deliver_unresolved(ctx, message, unresolved, &mut backlog)).await;
    Delivered {
        receivers: receivers + more,
        backlog,
    }
}

/// Delivers to the subscribers no cached verdict decided: the misses are checked with the
/// plugins (concurrently); a shared subscription group's copy goes to the first of its
/// candidates allowed to receive it. Returns how many copies were queued.
async fn deliver_unresolved(
    ctx: &BrokerContext,
    message: &Message,
    unresolved: Vec<Target>,
    backlog: &mut Backlog,
) -> usize {
    let mut receivers = 0;
    let shared_from = unresolved
        .iter()
        .position(|t| t.shared.is_some())
        .unwrap_or(unresolved.len());
    let (misses, shared) = unresolved.split_at(shared_from);
    let mut deliver = |target: &Target| {
        if target
            .session
            .deliver_noting(target.copy_of(message), backlog)
        {
            receivers += 1;
        }
    };
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
    for group in shared.chunk_by(|a, b| a.same_group(b)) {
        if let Some(target) = first_allowed(ctx, group, message).await {
            deliver(target);
        }
    }
    receivers
}

/// The first of `candidates` whose session may receive `message` (checked one by one, in
/// order of preference).
async fn first_allowed<'t>(
    ctx: &BrokerContext,
    candidates: &'t [Target],
    message: &Message,
) -> Option<&'t Target> {
    for target in candidates {
        if !ctx.plugins.topic_check_enabled()
            || may_receive(ctx, &target.session, message, target.qos).await
        {
            return Some(target);
        }
    }
    None
}

/// Shared subscription redelivery, when connection `connection_id` of member `session` has
/// ended: its messages from shared subscriptions that were not acknowledged (QoS 1 sent, any
/// queued) go to another online member of the same group, through the RECEIVE check. Messages
/// of a group with no other member online stay with the session (as do QoS 2 messages already
/// sent, see [`Session::take_shared`]). Returns how many were redelivered.
pub(crate) async fn redeliver_shared(
    ctx: &BrokerContext,
    session: &Arc<Session>,
    connection_id: u64,
) -> usize {
    if ctx.shutdown.is_cancelled() {
        return 0;
    }
    let keys: Vec<ByteString> = session.with_state(|st| {
        st.subscriptions
            .keys()
            .filter(|f| crate::topic::is_shared(f))
            .cloned()
            .collect()
    });
    // Without the session lock: this looks at other sessions.
    let movable: Vec<ByteString> = keys
        .into_iter()
        .filter(|key| ctx.router.shared_has_other_online(key, session.id()))
        .collect();
    if movable.is_empty() {
        return 0;
    }
    let messages = session.take_shared(connection_id, |origin| movable.contains(origin));
    let mut redelivered = 0;
    let mut candidates = Vec::new();
    for message in messages {
        let Some(key) = message.shared_origin.clone() else {
            continue;
        };
        candidates.clear();
        ctx.router
            .shared_candidates(&key, session.id(), &mut candidates);
        match first_allowed(ctx, &candidates, &message).await {
            Some(target) => {
                let mut copy = message.for_subscriber(target.qos, message.retain);
                copy.retain = message.retain && target.retain_as_published;
                copy.subscription_ids = target.subscription_ids.clone();
                copy.shared_origin = Some(key);
                if target.session.deliver(copy).is_ok() {
                    redelivered += 1;
                }
            }
            // Gone offline (or not allowed) meanwhile: back to its session.
            None => {
                let _ = session.deliver(message);
            }
        }
    }
    if redelivered > 0 {
        tracing::debug!(
            client_id = %session.client_id(),
            redelivered,
            "shared subscription messages redelivered to other members"
        );
    }
    redelivered
}

/// Runs the topic-check chain for `query`: answered from `cache` without awaiting when it can
/// be, else through the plugins (boxed: that state is large and only needed on a miss).
pub(crate) async fn topic_allowed(
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
pub(crate) async fn may_receive(
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

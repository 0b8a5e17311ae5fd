//! The will: published when a connection ends without DISCONNECT, at once or after the MQTT 5
//! Will Delay Interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tracing::debug;

use crate::codec::v5::{self, LastWill};
use crate::context::BrokerContext;
use crate::dispatch;
use crate::message::Message;

/// Publishes the will now, or (MQTT 5 Will Delay Interval) after min(delay, session expiry)
/// unless a connection takes the session over first ([MQTT-3.1.3-9]). The delayed will is a
/// task on the broker's tracker (`ctx.tasks`), decided by the session's `pending_will` token,
/// a child of the broker's shutdown token: a broker shutdown drops it unsent, as it does
/// immediate wills.
pub(super) async fn will_after_delay(
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
    session.with_state(|st| st.pending_will = Some(Box::new(pending.clone())));
    debug!(?wait, "will delayed");
    let owner = ctx.clone();
    let ctx = ctx.clone();
    // Owned by the broker's tracker, not the connection (which is gone by then); it ends when
    // the will is decided, at the latest at shutdown (`pending` is a child of its token).
    owner.tasks.spawn(async move {
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
    dispatch::dispatch(ctx, crate::message::Origin::default(), message).await;
}

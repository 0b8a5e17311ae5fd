//! `$SYS` topics, published as retained messages every `sys-interval`, with mosquitto's names.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::codec::QoS;
use crate::context::BrokerContext;
use crate::message::Message;
use crate::stats::Stats;

/// Publishes the `$SYS` tree every `interval` until `shutdown`. An interval of zero disables it.
pub(crate) async fn run(ctx: Arc<BrokerContext>, interval: Duration, shutdown: CancellationToken) {
    if interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => publish_all(&ctx).await,
        }
    }
}

/// Publishes every `$SYS` value once.
pub(crate) async fn publish_all(ctx: &BrokerContext) {
    let s = &ctx.stats;
    let connected = Stats::get(&s.clients_connected);
    let sessions = ctx.sessions.len() as u64;
    let values: [(&str, String); 17] = [
        ("version", crate::VERSION.to_string()),
        (
            "uptime",
            format!("{} seconds", ctx.started.elapsed().as_secs()),
        ),
        ("clients/connected", connected.to_string()),
        ("clients/active", connected.to_string()),
        ("clients/total", sessions.max(connected).to_string()),
        (
            "clients/disconnected",
            sessions.saturating_sub(connected).to_string(),
        ),
        (
            "messages/received",
            Stats::get(&s.packets_received).to_string(),
        ),
        ("messages/sent", Stats::get(&s.packets_sent).to_string()),
        (
            "publish/messages/received",
            Stats::get(&s.publish_received).to_string(),
        ),
        (
            "publish/messages/sent",
            Stats::get(&s.publish_sent).to_string(),
        ),
        ("publish/messages/dropped", s.dropped_total().to_string()),
        (
            "load/bytes/received",
            Stats::get(&s.bytes_received).to_string(),
        ),
        ("load/bytes/sent", Stats::get(&s.bytes_sent).to_string()),
        ("bytes/received", Stats::get(&s.bytes_received).to_string()),
        ("bytes/sent", Stats::get(&s.bytes_sent).to_string()),
        (
            "subscriptions/count",
            ctx.router.subscription_count().to_string(),
        ),
        (
            "retained messages/count",
            ctx.router.retained().len().to_string(),
        ),
    ];
    // `$SYS` updates are the broker's own bookkeeping, so they raise no plugin events; but each
    // subscriber receives them only through the RECEIVE check, like any other delivery (retained
    // replay of them is checked at SUBSCRIBE time as usual).
    for (name, value) in values {
        let message = Message::new(
            format!("$SYS/broker/{name}").into(),
            Bytes::from(value),
            QoS::AtMostOnce,
            true,
        );
        ctx.router.retain(&message, "");
        crate::dispatch::deliver(ctx, "", &message).await;
    }
}

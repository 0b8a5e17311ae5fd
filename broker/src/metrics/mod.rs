//! Prometheus metrics: `GET /metrics` on `metrics.bind` (default `127.0.0.1:9090`), in the
//! Prometheus text format (version 0.0.4).
//!
//! Almost every value is read at scrape time from counters the broker keeps anyway
//! ([`crate::stats::Stats`], listener stats, plugin stats, event pipeline stats): the message
//! path pays nothing for metrics. The exception is the per-plugin call latency, a
//! [`LatencyHistogram`] that each answered plugin call records (three relaxed atomic adds) and
//! that the admin API also reads for its percentiles.
//!
//! Built on `prometheus-client`: one registry per broker (no process-global recorder, so several
//! brokers in one process, as in tests, do not mix), with a custom collector that encodes the
//! values when scraped, and served by a minimal axum server (axum and hyper come with tonic).
//!
//! # Metric names
//!
//! This table is the reference (a test checks that every metric served is in it). Counters
//! end in `_total`; `plugin` is the plugin's alias, `listener` the listener's name.
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `midge_uptime_seconds` | gauge | | seconds since the broker started |
//! | `midge_listener_connections` | gauge | `listener` | connections open now (handshakes included) |
//! | `midge_listener_connections_accepted_total` | counter | `listener` | connections admitted |
//! | `midge_listener_connections_refused_total` | counter | `listener` | connections closed at once: `max-connections` reached |
//! | `midge_listener_accept_errors_total` | counter | `listener` | failed accepts (mostly out of file descriptors), retried after a back-off |
//! | `midge_clients_connected` | gauge | | MQTT clients connected now (CONNACK accepted) |
//! | `midge_client_connects_total` | counter | | successful CONNECTs |
//! | `midge_client_connects_refused_total` | counter | | CONNECTs refused with a non-zero CONNACK |
//! | `midge_protocol_errors_total` | counter | | connections closed for a malformed or protocol-violating packet |
//! | `midge_packets_received_total` | counter | `type`: `connect`, `publish`, `puback`, ... | MQTT packets received, by type |
//! | `midge_packets_sent_total` | counter | `type`: `connack`, `publish`, `suback`, ... | MQTT packets sent, by type |
//! | `midge_packet_bytes_received_total` | counter | `type` | bytes of the packets received (fixed header included), by type |
//! | `midge_packet_bytes_sent_total` | counter | `type` | bytes of the packets sent, by type |
//! | `midge_bytes_received_total` | counter | | bytes read from clients |
//! | `midge_bytes_sent_total` | counter | | bytes written to clients |
//! | `midge_messages_received_total` | counter | | PUBLISH packets received from clients |
//! | `midge_messages_delivered_total` | counter | | PUBLISH packets sent to clients |
//! | `midge_messages_dropped_total` | counter | `reason`: `queue_full`, `memory_budget`, `offline_qos0`, `expired`, `too_large` | messages not queued for a subscriber (each also logged, rate-limited) |
//! | `midge_slow_consumers_total` | counter | | subscribers disconnected because their queue did not drain within `slow-consumer-timeout` |
//! | `midge_publisher_waits_total` | counter | | times a publisher waited for a full subscriber queue (flow control) |
//! | `midge_publisher_wait_milliseconds_total` | counter | | time publishers spent waiting for full queues |
//! | `midge_queued_bytes` | gauge | | bytes of messages queued in sessions, against `queued-bytes-budget` |
//! | `midge_retained_messages` | gauge | | retained messages stored |
//! | `midge_subscriptions` | gauge | | subscriptions of all sessions |
//! | `midge_sessions` | gauge | | sessions stored, online and offline |
//! | `midge_event_watchers` | gauge | | admin API `WatchEvents` calls open |
//! | `midge_plugin_state` | gauge | `plugin`, `state`: `connected`, `reconnecting`, `breaker_open` | 1 for the plugin's state now, 0 for the others |
//! | `midge_plugin_calls_total` | counter | `plugin` | decision calls sent (Authenticate, CheckTopic): cache hits and calls an open breaker answered not included |
//! | `midge_plugin_answers_total` | counter | `plugin`, `answer`: `allow`, `deny`, `ignore` | answers received |
//! | `midge_plugin_call_failures_total` | counter | `plugin`, `failure`: `timeout`, `error`, `unavailable` | failed calls, each answered by a fallback |
//! | `midge_plugin_fallbacks_total` | counter | `plugin` | fallbacks taken |
//! | `midge_plugin_cache_hits_total` | counter | `plugin` | decisions answered from the cache |
//! | `midge_plugin_breaker_opened_total` | counter | `plugin` | times the circuit breaker opened |
//! | `midge_plugin_call_duration_seconds` | histogram | `plugin` | latency of answered decision calls |
//! | `midge_plugin_events_enqueued_total` | counter | `plugin` | events queued for the plugin |
//! | `midge_plugin_events_sent_total` | counter | `plugin` | events sent on its stream (replays included) |
//! | `midge_plugin_events_acked_total` | counter | `plugin` | events it acknowledged |
//! | `midge_plugin_events_dropped_total` | counter | `plugin` | events dropped by its overflow policy |
//! | `midge_plugin_event_queue_depth` | gauge | `plugin` | events waiting in its queue now |
//! | `midge_plugin_events_unacked` | gauge | `plugin` | events sent and not acknowledged yet |
//! | `midge_plugin_reconnects_total` | counter | `plugin` | failed connection attempts and broken event streams |
//!
//! Why one file over 500 lines: the table below is the reference of every metric, and the code
//! that renders them follows it in the same order, so a metric and its documentation change in
//! one place.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::admin::PluginState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::admin::Runtime;
use crate::codec::PacketType;
use crate::config::MetricsConfig;
use crate::context::BrokerContext;
use crate::stats::Stats;

/// The packet types a client sends (the `type` values of the `*_received` metrics).
const RECEIVED_TYPES: [PacketType; 11] = [
    PacketType::Connect,
    PacketType::Publish,
    PacketType::PubAck,
    PacketType::PubRec,
    PacketType::PubRel,
    PacketType::PubComp,
    PacketType::Subscribe,
    PacketType::Unsubscribe,
    PacketType::PingReq,
    PacketType::Disconnect,
    PacketType::Auth,
];

/// The packet types the broker sends (the `type` values of the `*_sent` metrics).
const SENT_TYPES: [PacketType; 11] = [
    PacketType::ConnAck,
    PacketType::Publish,
    PacketType::PubAck,
    PacketType::PubRec,
    PacketType::PubRel,
    PacketType::PubComp,
    PacketType::SubAck,
    PacketType::UnsubAck,
    PacketType::PingResp,
    PacketType::Disconnect,
    PacketType::Auth,
];

/// How long open HTTP connections may go on once the broker has stopped.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Why the metrics endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("metrics: cannot listen on {addr}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// The metrics endpoint, bound and ready to [`serve`](BoundMetrics::serve).
#[derive(Debug)]
pub(crate) struct BoundMetrics {
    listener: TcpListener,
    local_addr: SocketAddr,
}

/// Binds the endpoint of `config`. `Ok(None)` when it is disabled, or when the built-in default
/// address is busy (logged as an error); a bind failure of a `metrics` section written in the
/// config file is an error.
///
/// # Errors
///
/// A failed bind of an explicit `metrics` section.
pub(crate) async fn bind(config: &MetricsConfig) -> Result<Option<BoundMetrics>, MetricsError> {
    if !config.enable {
        return Ok(None);
    }
    let bind_error = |source| MetricsError::Bind {
        addr: config.bind,
        source,
    };
    let listener = match TcpListener::bind(config.bind).await {
        Ok(listener) => listener,
        Err(source) if !config.explicit => {
            error!(addr = %config.bind, error = %source,
                "metrics not served: cannot listen on the default address (write a `metrics` section to choose another)");
            return Ok(None);
        }
        Err(source) => return Err(bind_error(source)),
    };
    let local_addr = listener.local_addr().map_err(bind_error)?;
    Ok(Some(BoundMetrics {
        listener,
        local_addr,
    }))
}

impl BoundMetrics {
    /// Serves `GET /metrics` until `stop` (plus a short grace). Errors are logged.
    pub(crate) async fn serve(
        self,
        ctx: Arc<BrokerContext>,
        runtime: Arc<Runtime>,
        stop: CancellationToken,
    ) {
        let router = axum::Router::new()
            .route("/metrics", axum::routing::get(scrape))
            .with_state(Arc::new(registry(ctx, runtime)));
        info!(addr = %self.local_addr, "metrics listening");
        let server = axum::serve(self.listener, router)
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::select! {
            result = server => if let Err(err) = result {
                error!(error = %err, "metrics endpoint failed");
            },
            () = async { stop.cancelled().await; tokio::time::sleep(STOP_GRACE).await } => {}
        }
        info!("metrics stopped");
    }
}

/// The registry of one broker: one collector that reads everything at scrape time.
pub(crate) fn registry(ctx: Arc<BrokerContext>, runtime: Arc<Runtime>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector { ctx, runtime }));
    registry
}

/// Encodes `registry` in the Prometheus text format.
pub(crate) fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

async fn scrape(State(registry): State<Arc<Registry>>) -> Response {
    match render(&registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            error!(error = %err, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Reads the broker's counters when scraped.
#[derive(Debug)]
struct BrokerCollector {
    ctx: Arc<BrokerContext>,
    runtime: Arc<Runtime>,
}

/// Labels of one sample.
type Labels = Vec<(&'static str, String)>;

/// Writes one family of samples of one type.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    let mut samples: Vec<(Labels, M)> = samples.into_iter().collect();
    if let [(labels, _)] = samples.as_slice()
        && labels.is_empty()
    {
        let (_, value) = samples.remove(0);
        return value.encode(metric);
    }
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes a counter; `name` without the `_total` the encoder adds.
fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        name,
        help,
        MetricType::Counter,
        samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v))),
    )
}

/// Writes a gauge.
fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, i64)>,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        name,
        help,
        MetricType::Gauge,
        samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v))),
    )
}

fn one<T>(value: T) -> [(Labels, T); 1] {
    [(Vec::new(), value)]
}

fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl Collector for BrokerCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let ctx = &self.ctx;
        let s = &ctx.stats;
        let get = Stats::get;
        gauge(
            &mut e,
            "midge_uptime_seconds",
            "Seconds since the broker started.",
            one(int(ctx.started.elapsed().as_secs())),
        )?;

        let listeners = self.runtime.listeners();
        let per_listener = |f: &dyn Fn(&crate::admin::ListenerInfo) -> u64| {
            listeners
                .iter()
                .map(|l| (vec![("listener", l.name.to_string())], f(l)))
                .collect::<Vec<_>>()
        };
        gauge(
            &mut e,
            "midge_listener_connections",
            "Connections open now, transport handshakes included.",
            per_listener(&|l| l.stats.current() as u64)
                .into_iter()
                .map(|(l, v)| (l, int(v))),
        )?;
        counter(
            &mut e,
            "midge_listener_connections_accepted",
            "Connections admitted.",
            per_listener(&|l| l.stats.accepted()),
        )?;
        counter(
            &mut e,
            "midge_listener_connections_refused",
            "Connections closed at once because the listener was at max-connections.",
            per_listener(&|l| l.stats.refused()),
        )?;
        counter(
            &mut e,
            "midge_listener_accept_errors",
            "Failed accepts (mostly out of file descriptors), each retried after a back-off.",
            per_listener(&|l| l.stats.accept_errors()),
        )?;

        gauge(
            &mut e,
            "midge_clients_connected",
            "MQTT clients connected now.",
            one(int(get(&s.clients_connected))),
        )?;
        counter(
            &mut e,
            "midge_client_connects",
            "Successful CONNECTs.",
            one(get(&s.clients_total)),
        )?;
        counter(
            &mut e,
            "midge_client_connects_refused",
            "CONNECTs refused with a non-zero CONNACK.",
            one(get(&s.connects_refused)),
        )?;
        counter(
            &mut e,
            "midge_protocol_errors",
            "Connections closed for a malformed or protocol-violating packet.",
            one(get(&s.protocol_errors)),
        )?;
        let t = &s.by_type;
        let by_type = |types: &[PacketType], counters: &[AtomicU64; 16]| {
            types
                .iter()
                .map(|&ty| {
                    (
                        vec![("type", ty.name().to_ascii_lowercase())],
                        get(&counters[ty as usize]),
                    )
                })
                .collect::<Vec<_>>()
        };
        counter(
            &mut e,
            "midge_packets_received",
            "MQTT packets received, by type.",
            by_type(&RECEIVED_TYPES, &t.packets_received),
        )?;
        counter(
            &mut e,
            "midge_packets_sent",
            "MQTT packets sent, by type.",
            by_type(&SENT_TYPES, &t.packets_sent),
        )?;
        counter(
            &mut e,
            "midge_packet_bytes_received",
            "Bytes of the MQTT packets received, fixed header included, by type.",
            by_type(&RECEIVED_TYPES, &t.bytes_received),
        )?;
        counter(
            &mut e,
            "midge_packet_bytes_sent",
            "Bytes of the MQTT packets sent, fixed header included, by type.",
            by_type(&SENT_TYPES, &t.bytes_sent),
        )?;
        counter(
            &mut e,
            "midge_bytes_received",
            "Bytes read from clients.",
            one(get(&s.bytes_received)),
        )?;
        counter(
            &mut e,
            "midge_bytes_sent",
            "Bytes written to clients.",
            one(get(&s.bytes_sent)),
        )?;
        counter(
            &mut e,
            "midge_messages_received",
            "PUBLISH packets received from clients.",
            one(get(&s.publish_received)),
        )?;
        counter(
            &mut e,
            "midge_messages_delivered",
            "PUBLISH packets sent to clients.",
            one(get(&s.publish_sent)),
        )?;
        counter(
            &mut e,
            "midge_messages_dropped",
            "Messages not queued for a subscriber, by reason.",
            [
                (
                    vec![("reason", "queue_full".to_owned())],
                    get(&s.dropped_queue_full),
                ),
                (
                    vec![("reason", "memory_budget".to_owned())],
                    get(&s.dropped_memory_budget),
                ),
                (
                    vec![("reason", "offline_qos0".to_owned())],
                    get(&s.dropped_offline_qos0),
                ),
                (
                    vec![("reason", "expired".to_owned())],
                    get(&s.dropped_expired),
                ),
                (
                    vec![("reason", "too_large".to_owned())],
                    get(&s.dropped_too_large),
                ),
            ],
        )?;
        counter(
            &mut e,
            "midge_slow_consumers",
            "Subscribers disconnected because their queue did not drain in slow-consumer-timeout.",
            one(get(&s.slow_consumers)),
        )?;
        counter(
            &mut e,
            "midge_publisher_waits",
            "Times a publisher waited for a full subscriber queue (flow control).",
            one(get(&s.publisher_waits)),
        )?;
        counter(
            &mut e,
            "midge_publisher_wait_milliseconds",
            "Time publishers spent waiting for full subscriber queues.",
            one(get(&s.publisher_wait_micros) / 1000),
        )?;
        gauge(
            &mut e,
            "midge_queued_bytes",
            "Bytes of messages queued in sessions (bounded by queued-bytes-budget).",
            one(int(ctx.sessions.budget().used())),
        )?;
        gauge(
            &mut e,
            "midge_retained_messages",
            "Retained messages stored.",
            one(int(ctx.router.retained().len())),
        )?;
        gauge(
            &mut e,
            "midge_subscriptions",
            "Subscriptions of all sessions.",
            one(int(ctx.router.subscription_count())),
        )?;
        gauge(
            &mut e,
            "midge_sessions",
            "Sessions stored, online and offline.",
            one(int(ctx.sessions.len())),
        )?;
        gauge(
            &mut e,
            "midge_event_watchers",
            "Admin API WatchEvents calls open.",
            one(int(ctx.plugins.watch().watchers())),
        )?;

        self.encode_plugins(&mut e)
    }
}

impl BrokerCollector {
    fn encode_plugins(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let plugins = self.ctx.plugins.plugins();
        if plugins.is_empty() {
            return Ok(());
        }
        let views = self.runtime.observe_plugins(&self.ctx);
        let alias = |i: usize| vec![("plugin", plugins[i].alias().to_string())];
        let get = Stats::get;
        let per_plugin = |f: &dyn Fn(usize) -> u64| {
            (0..plugins.len())
                .map(|i| (alias(i), f(i)))
                .collect::<Vec<_>>()
        };
        let labelled = |label: &'static str, values: &[(&str, &dyn Fn(usize) -> u64)]| {
            (0..plugins.len())
                .flat_map(|i| {
                    values.iter().map(move |(value, f)| {
                        let mut labels = alias(i);
                        labels.push((label, (*value).to_owned()));
                        (labels, f(i))
                    })
                })
                .collect::<Vec<_>>()
        };
        let stats = |i: usize| plugins[i].stats();
        let pipelines: Vec<_> = plugins.iter().map(|p| p.pipeline().stats()).collect();

        let states = [
            ("connected", PluginState::Connected),
            ("reconnecting", PluginState::Reconnecting),
            ("breaker_open", PluginState::BreakerOpen),
        ];
        gauge(
            e,
            "midge_plugin_state",
            "1 for the plugin's state now (connected, reconnecting, breaker_open), 0 for the others.",
            (0..plugins.len()).flat_map(|i| {
                let now = views.get(i).map(|v| v.state);
                states.iter().map(move |(name, state)| {
                    let mut labels = alias(i);
                    labels.push(("state", (*name).to_owned()));
                    (labels, i64::from(now == Some(*state)))
                })
            }),
        )?;
        counter(
            e,
            "midge_plugin_calls",
            "Decision calls sent to the plugin; cache hits and calls an open breaker answered not included.",
            per_plugin(&|i| get(&stats(i).calls)),
        )?;
        counter(
            e,
            "midge_plugin_answers",
            "Answers received, by verdict.",
            labelled(
                "answer",
                &[
                    ("allow", &|i| get(&stats(i).allows)),
                    ("deny", &|i| get(&stats(i).denies)),
                    ("ignore", &|i| get(&stats(i).ignores)),
                ],
            ),
        )?;
        counter(
            e,
            "midge_plugin_call_failures",
            "Failed decision calls, by failure class; each took a fallback.",
            labelled(
                "failure",
                &[
                    ("timeout", &|i| get(&stats(i).timeouts)),
                    ("error", &|i| get(&stats(i).errors)),
                    ("unavailable", &|i| get(&stats(i).unavailable)),
                ],
            ),
        )?;
        counter(
            e,
            "midge_plugin_fallbacks",
            "Fallbacks taken.",
            per_plugin(&|i| get(&stats(i).fallbacks)),
        )?;
        counter(
            e,
            "midge_plugin_cache_hits",
            "Decisions answered from the cache.",
            per_plugin(&|i| get(&stats(i).cache_hits)),
        )?;
        counter(
            e,
            "midge_plugin_breaker_opened",
            "Times the circuit breaker opened.",
            per_plugin(&|i| get(&stats(i).breaker_opened)),
        )?;

        let mut histogram = e.encode_descriptor(
            "midge_plugin_call_duration_seconds",
            "Latency of answered decision calls.",
            None,
            MetricType::Histogram,
        )?;
        for i in 0..plugins.len() {
            let snapshot = stats(i).latency.snapshot();
            histogram
                .encode_family(&alias(i))?
                .encode_histogram::<NoLabelSet>(
                    snapshot.sum_us as f64 / 1e6,
                    snapshot.count,
                    &snapshot.cumulative_seconds(),
                    None,
                )?;
        }

        counter(
            e,
            "midge_plugin_events_enqueued",
            "Events queued for the plugin.",
            per_plugin(&|i| pipelines[i].enqueued),
        )?;
        counter(
            e,
            "midge_plugin_events_sent",
            "Events sent on the plugin's stream, replays included.",
            per_plugin(&|i| pipelines[i].sent),
        )?;
        counter(
            e,
            "midge_plugin_events_acked",
            "Events the plugin acknowledged.",
            per_plugin(&|i| pipelines[i].acked),
        )?;
        counter(
            e,
            "midge_plugin_events_dropped",
            "Events dropped by the overflow policy.",
            per_plugin(&|i| pipelines[i].dropped),
        )?;
        gauge(
            e,
            "midge_plugin_event_queue_depth",
            "Events waiting in the plugin's queue now.",
            (0..plugins.len()).map(|i| (alias(i), int(pipelines[i].queue_depth))),
        )?;
        gauge(
            e,
            "midge_plugin_events_unacked",
            "Events sent and not acknowledged yet.",
            (0..plugins.len()).map(|i| (alias(i), int(pipelines[i].unacked))),
        )?;
        counter(
            e,
            "midge_plugin_reconnects",
            "Failed connection attempts and broken event streams.",
            per_plugin(&|i| pipelines[i].reconnects),
        )
    }
}

#[cfg(test)]
mod tests;

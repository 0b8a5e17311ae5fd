//! One configured plugin: its lazily connected gRPC channel, the unary calls with deadline,
//! fallback and circuit breaker, the `Describe` handshake after every (re)connect, and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use midge_proto::plugin::v1 as pb;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracing::{debug, info, warn};

use super::PluginError;
use super::breaker::{Breaker, BreakerState};
use super::decision::{PluginVote, vote_from_pb};
use super::events::EventPipeline;
use super::sanitize;
use crate::config::{Fallback, PluginConfig};

mod describe;

use describe::Refusal;
pub(crate) use describe::{AUTHENTICATOR_SERVICE, TOPIC_FILTER_SERVICE};

/// How a call failed, which selects the fallback (the table is in `plugin.proto` and
/// `docs/plugins.md`, "Failures").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// `on-timeout`: no answer within the plugin's `timeout`, or the status
    /// `DEADLINE_EXCEEDED` or `CANCELLED` (the plugin gave up on the deadline).
    Timeout,
    /// `on-error`: any other gRPC error status, or an answer that is not a valid verdict.
    Error,
    /// `on-unavailable`: the status `UNAVAILABLE` (no connection: refused, reset, not yet
    /// connected), or the circuit breaker is open (no call is made).
    Unavailable,
}

impl FailureClass {
    /// The class of a call that ended with the gRPC status `code` (never `OK`: a call that
    /// returned `OK` answered).
    pub(crate) fn of_status(code: Code) -> FailureClass {
        match code {
            Code::DeadlineExceeded | Code::Cancelled => FailureClass::Timeout,
            Code::Unavailable => FailureClass::Unavailable,
            _ => FailureClass::Error,
        }
    }
}

/// Counters of one plugin, for logs, `$SYS`-style reporting and the admin API.
#[derive(Debug, Default)]
pub(crate) struct PluginStats {
    /// Decision calls sent to the plugin (not those an open breaker answered: they count as
    /// `unavailable`).
    pub(crate) calls: AtomicU64,
    /// ALLOW answers.
    pub(crate) allows: AtomicU64,
    /// DENY answers.
    pub(crate) denies: AtomicU64,
    /// IGNORE answers.
    pub(crate) ignores: AtomicU64,
    /// Calls that timed out.
    pub(crate) timeouts: AtomicU64,
    /// Calls answered with an error status.
    pub(crate) errors: AtomicU64,
    /// Calls that found the plugin unavailable (not connected or breaker open).
    pub(crate) unavailable: AtomicU64,
    /// Fallbacks taken (one per failed call).
    pub(crate) fallbacks: AtomicU64,
    /// Decisions served from the cache.
    pub(crate) cache_hits: AtomicU64,
    /// Sum of call latencies in microseconds (with `calls` gives the mean).
    pub(crate) latency_us_total: AtomicU64,
    /// Times the breaker opened.
    pub(crate) breaker_opened: AtomicU64,
    /// Latency of the calls that got an answer (for the admin API's percentiles and the
    /// `midge_plugin_call_duration_seconds` histogram).
    pub(crate) latency: crate::latency::LatencyHistogram,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A plugin answer: the vote and how long it may be cached (`None` for fallbacks, never cached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The vote counted in the chain.
    pub(crate) vote: PluginVote,
    /// Cache lifetime the plugin granted; `None` for fallbacks and uncacheable answers.
    pub(crate) cache_for: Option<Duration>,
    /// Session grants that came with an authentication ALLOW.
    pub(crate) grants: Option<pb::SessionGrants>,
    /// MQTT 5 enhanced authentication: the plugin answered CONTINUE (its vote is then
    /// `Ignore` until the exchange ends). Never cached.
    pub(crate) continues: bool,
    /// Authentication Data for the client: the AUTH packet (CONTINUE) or the CONNACK (ALLOW).
    pub(crate) auth_data: Vec<u8>,
    /// The CONNACK reason code a DENY asks for (0: the default, 0x87).
    pub(crate) reason_code: u32,
}

/// One configured plugin.
#[derive(Debug)]
pub(crate) struct Plugin {
    index: u16,
    alias: Arc<str>,
    config: PluginConfig,
    channel: Channel,
    breaker: Breaker,
    stats: PluginStats,
    describe: Mutex<Option<pb::DescribeResponse>>,
    described: AtomicBool,
    /// `DescribeResponse.packet_bytes`: packet events carry raw bytes.
    packet_bytes: AtomicBool,
    described_notify: Notify,
    /// The last failed decision call, for the admin API's `ListPlugins.last_error`.
    last_error: Mutex<Option<String>>,
    /// Poked when a call saw the connection fail, so the supervisor describes again.
    reconnected: Notify,
    pipeline: Arc<EventPipeline>,
    /// The chains the config puts this plugin in.
    roles: Roles,
    /// Why the plugin cannot be asked for decisions although it is reachable: its `Describe`
    /// answered an error (e.g. it refused its config), or it does not implement a service its
    /// chains need. While set, its decision calls take a fallback without being made.
    refusal: Mutex<Option<Refusal>>,
}

/// The chains the config uses a plugin in, which name the services it must implement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Roles {
    /// Listed in `auth.plugins`: must implement `midge.plugin.v1.Authenticator`.
    pub(crate) authenticator: bool,
    /// Listed in `topic-check.plugins`: must implement `midge.plugin.v1.TopicFilter`.
    pub(crate) topic_filter: bool,
}

impl Plugin {
    /// Builds the plugin's lazy channel. Nothing connects until the first call.
    pub(crate) fn new(
        index: u16,
        alias: &str,
        config: PluginConfig,
        pipeline: Arc<EventPipeline>,
        roles: Roles,
    ) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Endpoint {
            alias: alias.to_string(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(config.timeout.max(Duration::from_millis(500)))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if let Some(tls) = &config.tls {
            endpoint = endpoint
                .tls_config(super::tls::client_config(tls).map_err(bad)?)
                .map_err(|e| bad(e.to_string()))?;
        }
        // With `events` in the config the interest is known before the plugin is reached, so
        // events (the start events included) queue for it while it is still down.
        if let Some(kinds) = super::configured_kinds(&config) {
            pipeline.set_interest(
                kinds,
                config.topics.clone().unwrap_or_default(),
                config.payload.unwrap_or(true),
            );
        }
        Ok(Plugin {
            index,
            alias: Arc::from(alias),
            breaker: Breaker::new(config.breaker.failures, config.breaker.cool_down),
            config,
            channel: endpoint.connect_lazy(),
            stats: PluginStats::default(),
            describe: Mutex::new(None),
            described: AtomicBool::new(false),
            packet_bytes: AtomicBool::new(false),
            described_notify: Notify::new(),
            last_error: Mutex::new(None),
            reconnected: Notify::new(),
            pipeline,
            roles,
            refusal: Mutex::new(None),
        })
    }

    /// Position in the `plugins` section (cache keys use it).
    pub(crate) fn index(&self) -> u16 {
        self.index
    }

    /// The last decision call that failed (timeout, error, unavailable), as a short text.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Records `error` as the plugin's last error (shown by the admin API).
    pub(crate) fn record_error(&self, error: String) {
        *self.last_error.lock() = Some(error);
    }

    /// The alias it is registered under.
    pub(crate) fn alias(&self) -> &Arc<str> {
        &self.alias
    }

    /// Its configuration.
    pub(crate) fn config(&self) -> &PluginConfig {
        &self.config
    }

    /// Its counters.
    pub(crate) fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// Its event pipeline.
    pub(crate) fn pipeline(&self) -> &Arc<EventPipeline> {
        &self.pipeline
    }

    /// Its circuit breaker state.
    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The gRPC channel (for the event stream).
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The last `Describe` answer.
    pub(crate) fn description(&self) -> Option<pb::DescribeResponse> {
        self.describe.lock().clone()
    }

    /// Whether the plugin asked for raw bytes in packet events.
    pub(crate) fn wants_packet_bytes(&self) -> bool {
        self.packet_bytes.load(Ordering::Relaxed)
    }

    /// Whether `Describe` has succeeded at least once.
    pub(crate) fn is_described(&self) -> bool {
        self.described.load(Ordering::Acquire)
    }

    /// Waits until `Describe` has succeeded once.
    pub(crate) async fn wait_described(&self) {
        loop {
            let notified = self.described_notify.notified();
            if self.is_described() {
                return;
            }
            notified.await;
        }
    }

    /// Waits until a call noticed that the connection failed.
    pub(crate) async fn connection_lost(&self) {
        self.reconnected.notified().await;
    }

    /// `Authenticator.Authenticate` under the deadline, breaker and fallback.
    pub(crate) async fn authenticate(&self, request: pb::AuthenticateRequest) -> Answer {
        let timeout = self.config.timeout;
        let channel = self.channel.clone();
        let mut grants = None;
        let mut extra = (false, Vec::new(), 0);
        // CONTINUE is an answer only where an exchange can take place: a CONNECT with an
        // Authentication Method.
        let enhanced = !request.auth_method.is_empty();
        if let Some((class, why)) = self.refused(AUTHENTICATOR_SERVICE) {
            return self.fail("authenticate", class, Some(&why));
        }
        let result = self
            .call(async move {
                let mut request = tonic::Request::new(request);
                request.set_timeout(timeout);
                pb::authenticator_client::AuthenticatorClient::new(channel)
                    .authenticate(request)
                    .await
                    .map(|r| r.into_inner())
            })
            .await
            .and_then(|r| {
                // Authentication Data is an MQTT binary field: one too long for it cannot be
                // passed on, so the answer is invalid (cutting it would corrupt it).
                if r.auth_data.len() > sanitize::MAX_FIELD {
                    debug!(alias = %self.alias, len = r.auth_data.len(), "authentication data too long for MQTT");
                    return Err(FailureClass::Error);
                }
                if enhanced && r.verdict == pb::Verdict::Continue as i32 {
                    extra = (true, r.auth_data, 0);
                    return Ok((PluginVote::Ignore, 0));
                }
                let reason = sanitize::client_text(&r.reason);
                let vote = vote_from_pb(r.verdict, &reason).ok_or(FailureClass::Error)?;
                if vote == PluginVote::Allow {
                    grants = r.grants;
                }
                extra = (false, r.auth_data, r.reason_code);
                Ok((vote, r.cache_ttl_ms))
            });
        let mut answer = self.answer("authenticate", result);
        answer.grants = grants;
        (answer.continues, answer.auth_data, answer.reason_code) = extra;
        if answer.continues {
            answer.cache_for = None;
        }
        answer
    }

    /// `TopicFilter.CheckTopic` under the deadline, breaker and fallback.
    pub(crate) async fn check_topic(&self, request: pb::CheckTopicRequest) -> Answer {
        if let Some((class, why)) = self.refused(TOPIC_FILTER_SERVICE) {
            return self.fail("check_topic", class, Some(&why));
        }
        let timeout = self.config.timeout;
        let channel = self.channel.clone();
        let result = self
            .call(async move {
                let mut request = tonic::Request::new(request);
                request.set_timeout(timeout);
                pb::topic_filter_client::TopicFilterClient::new(channel)
                    .check_topic(request)
                    .await
                    .map(|r| r.into_inner())
            })
            .await
            .and_then(|r| {
                vote_from_pb(r.verdict, &sanitize::client_text(&r.reason))
                    .map(|vote| (vote, r.cache_ttl_ms))
                    .ok_or(FailureClass::Error)
            });
        self.answer("check_topic", result)
    }

    /// Runs one unary call: breaker first, then the hard deadline (`tokio::time::timeout`, which
    /// is what triggers `on-timeout`; the same deadline travels as `grpc-timeout`).
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, FailureClass> {
        // An open breaker answers without a call: counted as unavailable, not as a call.
        if !self.breaker.try_acquire() {
            return Err(FailureClass::Unavailable);
        }
        bump(&self.stats.calls);
        let started = tokio::time::Instant::now();
        let outcome = tokio::time::timeout(self.config.timeout, call).await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats
            .latency_us_total
            .fetch_add(micros, Ordering::Relaxed);
        let failure = match outcome {
            Ok(Ok(value)) => {
                self.stats.latency.record(started.elapsed());
                if self.breaker.on_success() {
                    info!(alias = %self.alias, "plugin answered again: circuit closed");
                }
                return Ok(value);
            }
            Err(_) => FailureClass::Timeout,
            Ok(Err(status)) => {
                let class = FailureClass::of_status(status.code());
                match class {
                    FailureClass::Unavailable => self.reconnected.notify_one(),
                    FailureClass::Error => {
                        debug!(alias = %self.alias, %status, "plugin error status");
                    }
                    FailureClass::Timeout => {}
                }
                class
            }
        };
        if self.breaker.on_failure() {
            bump(&self.stats.breaker_opened);
            warn!(alias = %self.alias, cool_down = ?self.config.breaker.cool_down, "plugin failing: circuit opened");
        }
        Err(failure)
    }

    /// Turns a call result into the vote the chain counts, counting and logging fallbacks.
    fn answer(
        &self,
        what: &'static str,
        result: Result<(PluginVote, i64), FailureClass>,
    ) -> Answer {
        match result {
            Ok((vote, ttl_ms)) => {
                bump(match vote {
                    PluginVote::Allow => &self.stats.allows,
                    PluginVote::Deny(_) => &self.stats.denies,
                    _ => &self.stats.ignores,
                });
                let cache_for = u64::try_from(ttl_ms)
                    .ok()
                    .filter(|&ms| ms > 0)
                    .map(Duration::from_millis);
                Answer {
                    vote,
                    cache_for,
                    grants: None,
                    continues: false,
                    auth_data: Vec::new(),
                    reason_code: 0,
                }
            }
            Err(class) => self.fail(what, class, None),
        }
    }

    /// The answer of a failed call of kind `what`: counts it, logs it (with `why`, when the
    /// call was not even made), records it as the last error and returns the fallback vote of
    /// its class.
    fn fail(&self, what: &'static str, class: FailureClass, why: Option<&str>) -> Answer {
        bump(match class {
            FailureClass::Timeout => &self.stats.timeouts,
            FailureClass::Error => &self.stats.errors,
            FailureClass::Unavailable => &self.stats.unavailable,
        });
        bump(&self.stats.fallbacks);
        let fallback = match class {
            FailureClass::Timeout => self.config.fallback.on_timeout,
            FailureClass::Error => self.config.fallback.on_error,
            FailureClass::Unavailable => self.config.fallback.on_unavailable,
        };
        let failure = match class {
            FailureClass::Timeout => "timed out",
            FailureClass::Error => "error or invalid answer",
            FailureClass::Unavailable => "unavailable",
        };
        let why = why.unwrap_or(failure);
        warn!(alias = %self.alias, call = what, failure = ?class, ?fallback, why, "plugin call failed: fallback taken");
        let vote = match fallback {
            Fallback::Allow => PluginVote::Allow,
            Fallback::Deny => {
                PluginVote::Deny(format!("plugin `{}` {class:?} (fallback deny)", self.alias))
            }
            Fallback::Ignore => PluginVote::Absent,
        };
        self.record_error(format!("{what}: {why} ({fallback:?} fallback taken)"));
        Answer {
            vote,
            cache_for: None,
            grants: None,
            continues: false,
            auth_data: Vec::new(),
            reason_code: 0,
        }
    }
}

#[cfg(test)]
mod tests;

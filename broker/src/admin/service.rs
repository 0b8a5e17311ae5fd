//! The `midge.admin.v1.BrokerAdmin` methods, over the broker's shared state.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use midge_proto::admin::v1 as admin_pb;
use midge_proto::admin::v1::broker_admin_server::BrokerAdmin;
use midge_proto::plugin::v1 as pb;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::info;

use super::events::{self, EventFilter, EventStream};
use super::paging::{KEY_SEPARATOR, PageRequest};
use super::{Runtime, plugin_event_kinds};
use crate::backpressure;
use crate::codec::QoS;
use crate::context::BrokerContext;
use crate::dispatch;
use crate::message::Message;
use crate::message::Origin;
use crate::plugin::emit;
use crate::session::SessionInfo;
use crate::stats::Stats;
use crate::topic;

/// How long `DisconnectClient` with `discard_session` waits for the connection to let go of the
/// session before discarding it.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// `BrokerAdmin` over one broker.
#[derive(Debug)]
pub(super) struct AdminService {
    ctx: Arc<BrokerContext>,
    runtime: Arc<Runtime>,
    /// Cancelled when the broker has stopped: ends `WatchEvents` streams.
    stop: CancellationToken,
}

impl AdminService {
    pub(super) fn new(
        ctx: Arc<BrokerContext>,
        runtime: Arc<Runtime>,
        stop: CancellationToken,
    ) -> Self {
        Self { ctx, runtime, stop }
    }
}

fn timestamp(time: SystemTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(time))
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A client as the admin API shows it; subscriptions only when `with_subscriptions`.
fn client(info: SessionInfo, with_subscriptions: bool) -> admin_pb::Client {
    let connection = info.connection.as_ref();
    let mut subscriptions: Vec<admin_pb::Subscription> = if with_subscriptions {
        info.subscriptions
            .iter()
            .map(|(filter, qos)| subscription(&info.client_id, filter, *qos))
            .collect()
    } else {
        Vec::new()
    };
    subscriptions.sort_by(|a, b| a.topic_filter.cmp(&b.topic_filter));
    admin_pb::Client {
        client_id: info.client_id.to_string(),
        username: info.username.as_ref().map(|u| u.to_string()),
        connected: info.connected,
        remote_addr: connection
            .filter(|_| info.connected)
            .map(|c| c.remote_addr.to_string())
            .unwrap_or_default(),
        listener: if info.connected {
            info.listener.to_string()
        } else {
            String::new()
        },
        protocol_version: connection.map_or(pb::ProtocolVersion::Unspecified, |c| {
            emit::protocol_version(c.protocol)
        }) as i32,
        connected_since: connection.and_then(|c| timestamp(c.since)),
        keep_alive_secs: connection.map_or(0, |c| u32::from(c.keep_alive)),
        clean_start: info.clean,
        subscriptions,
        inflight: saturate(info.inflight),
        queued: saturate(info.queued),
    }
}

fn subscription(client_id: &str, filter: &str, qos: QoS) -> admin_pb::Subscription {
    admin_pb::Subscription {
        client_id: client_id.to_owned(),
        topic_filter: filter.to_owned(),
        qos: qos as u32,
        no_local: false,
        retain_as_published: false,
        retain_handling: 0,
    }
}

/// A topic name argument: not empty, no wildcards.
fn topic_name(topic: &str) -> Result<(), Status> {
    if topic::is_valid_topic_name(topic) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "`{topic}` is not a valid topic name: it must not be empty or contain `+` or `#`"
        )))
    }
}

/// An optional topic filter argument: empty, or a valid filter.
fn optional_filter(filter: &str) -> Result<Option<&str>, Status> {
    match filter {
        "" => Ok(None),
        f if topic::is_valid_topic_filter(f) => Ok(Some(f)),
        f => Err(Status::invalid_argument(format!(
            "`{f}` is not a valid topic filter: `#` may only be the whole last level and `+` \
             only a whole level"
        ))),
    }
}

fn not_found_client(client_id: &str) -> Status {
    Status::not_found(format!("no session for client id `{client_id}`"))
}

#[tonic::async_trait]
impl BrokerAdmin for AdminService {
    async fn get_broker_info(
        &self,
        _request: Request<admin_pb::GetBrokerInfoRequest>,
    ) -> Result<Response<admin_pb::BrokerInfo>, Status> {
        let ctx = &self.ctx;
        let s = &ctx.stats;
        let connected = Stats::get(&s.clients_connected);
        let listeners = self
            .runtime
            .listeners()
            .into_iter()
            .map(|l| admin_pb::Listener {
                name: l.name.to_string(),
                kind: l.kind.as_str().to_owned(),
                bind: l.addr.to_string(),
                connections: saturate(l.stats.current()),
                max_connections: saturate(l.max_connections),
            })
            .collect();
        let counters = admin_pb::BrokerCounters {
            clients_connected: connected,
            sessions_offline: (ctx.sessions.len() as u64).saturating_sub(connected),
            connections_total: Stats::get(&s.clients_total),
            subscriptions: ctx.router.subscription_count() as u64,
            retained_messages: ctx.router.retained().len() as u64,
            messages_received: Stats::get(&s.publish_received),
            messages_sent: Stats::get(&s.publish_sent),
            bytes_received: Stats::get(&s.bytes_received),
            bytes_sent: Stats::get(&s.bytes_sent),
            messages_dropped: s.dropped_total(),
        };
        Ok(Response::new(admin_pb::BrokerInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: timestamp(self.runtime.started_at()),
            uptime_secs: ctx.started.elapsed().as_secs(),
            listeners,
            counters: Some(counters),
        }))
    }

    async fn list_clients(
        &self,
        request: Request<admin_pb::ListClientsRequest>,
    ) -> Result<Response<admin_pb::ListClientsResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::new(request.page_size, &request.page_token)?;
        let mut infos: Vec<SessionInfo> = self
            .ctx
            .sessions
            .all()
            .iter()
            .map(|session| session.info())
            .filter(|info| info.connected || request.include_offline)
            .collect();
        infos.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        let (infos, next_page_token) = page.page(infos, |info| info.client_id.to_string());
        Ok(Response::new(admin_pb::ListClientsResponse {
            clients: infos.into_iter().map(|info| client(info, false)).collect(),
            next_page_token,
        }))
    }

    async fn get_client(
        &self,
        request: Request<admin_pb::GetClientRequest>,
    ) -> Result<Response<admin_pb::Client>, Status> {
        let client_id = request.into_inner().client_id;
        let session = self
            .ctx
            .sessions
            .get(&client_id)
            .ok_or_else(|| not_found_client(&client_id))?;
        Ok(Response::new(client(session.info(), true)))
    }

    async fn disconnect_client(
        &self,
        request: Request<admin_pb::DisconnectClientRequest>,
    ) -> Result<Response<admin_pb::DisconnectClientResponse>, Status> {
        let request = request.into_inner();
        let client_id = request.client_id.as_str();
        let session = self
            .ctx
            .sessions
            .get(client_id)
            .ok_or_else(|| not_found_client(client_id))?;
        match session.kick(&request.reason) {
            Some(owner) => {
                info!(%client_id, reason = %request.reason, discard = request.discard_session,
                    "admin API disconnects a client");
                if request.discard_session {
                    let _ = tokio::time::timeout(RELEASE_WAIT, owner.released()).await;
                }
            }
            None if request.discard_session => {}
            None => {
                return Err(Status::not_found(format!(
                    "client `{client_id}` is not connected (set discard_session to drop its \
                     stored session)"
                )));
            }
        }
        if request.discard_session {
            if let Some(discarded) = self.ctx.sessions.remove_offline(client_id) {
                info!(%client_id, "admin API discards a session");
                self.ctx.router.remove_session(&discarded);
            }
        }
        Ok(Response::new(admin_pb::DisconnectClientResponse {}))
    }

    async fn list_subscriptions(
        &self,
        request: Request<admin_pb::ListSubscriptionsRequest>,
    ) -> Result<Response<admin_pb::ListSubscriptionsResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::new(request.page_size, &request.page_token)?;
        let filter = optional_filter(&request.topic_filter)?;
        let sessions = match request.client_id.as_str() {
            "" => self.ctx.sessions.all(),
            id => self.ctx.sessions.get(id).into_iter().collect(),
        };
        let mut subscriptions: Vec<admin_pb::Subscription> = sessions
            .iter()
            .flat_map(|session| {
                let info = session.info();
                info.subscriptions
                    .iter()
                    // The subscription's filter read as a plain topic name.
                    .filter(|(f, _)| filter.is_none_or(|arg| topic::matches(arg, f)))
                    .map(|(f, qos)| subscription(&info.client_id, f, *qos))
                    .collect::<Vec<_>>()
            })
            .collect();
        let key = |s: &admin_pb::Subscription| {
            format!("{}{KEY_SEPARATOR}{}", s.client_id, s.topic_filter)
        };
        subscriptions.sort_by_cached_key(key);
        let (subscriptions, next_page_token) = page.page(subscriptions, key);
        Ok(Response::new(admin_pb::ListSubscriptionsResponse {
            subscriptions,
            next_page_token,
        }))
    }

    async fn list_retained(
        &self,
        request: Request<admin_pb::ListRetainedRequest>,
    ) -> Result<Response<admin_pb::ListRetainedResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::new(request.page_size, &request.page_token)?;
        let mut messages = Vec::new();
        match optional_filter(&request.topic_filter)? {
            None => self.ctx.router.retained().all(&mut messages),
            Some(filter) => self
                .ctx
                .router
                .retained()
                .matching_entries(filter, &mut messages),
        }
        messages.sort_by(|a, b| a.message.topic.cmp(&b.message.topic));
        let (messages, next_page_token) = page.page(messages, |r| r.message.topic.to_string());
        Ok(Response::new(admin_pb::ListRetainedResponse {
            messages: messages
                .iter()
                .map(|m| retained(m, !request.omit_payload))
                .collect(),
            next_page_token,
        }))
    }

    async fn get_retained(
        &self,
        request: Request<admin_pb::GetRetainedRequest>,
    ) -> Result<Response<admin_pb::RetainedMessage>, Status> {
        let topic = request.into_inner().topic;
        topic_name(&topic)?;
        let message = self
            .ctx
            .router
            .retained()
            .get(&topic)
            .ok_or_else(|| Status::not_found(format!("no retained message on `{topic}`")))?;
        Ok(Response::new(retained(&message, true)))
    }

    async fn delete_retained(
        &self,
        request: Request<admin_pb::DeleteRetainedRequest>,
    ) -> Result<Response<admin_pb::DeleteRetainedResponse>, Status> {
        let topic = request.into_inner().topic;
        topic_name(&topic)?;
        let deleted = self.ctx.router.retained().clear(&topic);
        if deleted {
            info!(%topic, "admin API deletes a retained message");
            let cleared = Message::new(topic.as_str().into(), Bytes::new(), QoS::AtMostOnce, true);
            self.ctx.plugins.emit_message(
                pb::EventKind::RetainedCleared,
                Origin::default(),
                &cleared,
            );
        }
        Ok(Response::new(admin_pb::DeleteRetainedResponse { deleted }))
    }

    async fn publish(
        &self,
        request: Request<admin_pb::PublishRequest>,
    ) -> Result<Response<admin_pb::PublishResponse>, Status> {
        let request = request.into_inner();
        topic_name(&request.topic)?;
        let qos = u8::try_from(request.qos)
            .ok()
            .and_then(|q| QoS::try_from(q).ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("qos must be 0, 1 or 2, not {}", request.qos))
            })?;
        let (properties, expires_at) = emit::from_pb_properties(request.properties.as_ref());
        let mut message = Message::new(
            request.topic.into(),
            Bytes::from(request.payload),
            qos,
            request.retain,
        );
        message.properties = properties;
        message.expires_at = expires_at;
        info!(topic = %message.topic, qos = qos as u8, retain = message.retain, "admin API publishes a message");
        self.ctx
            .plugins
            .emit_message(pb::EventKind::MessageBroadcast, Origin::default(), &message);
        let delivered = dispatch::dispatch(&self.ctx, Origin::default(), &message).await;
        let receivers = delivered.receivers;
        // Held like a client's publish while the queues it filled drain.
        if !delivered.backlog.is_empty() {
            backpressure::wait_for_room(&self.ctx, None, delivered.backlog).await;
        }
        Ok(Response::new(admin_pb::PublishResponse {
            receivers: saturate(receivers),
        }))
    }

    async fn list_plugins(
        &self,
        _request: Request<admin_pb::ListPluginsRequest>,
    ) -> Result<Response<admin_pb::ListPluginsResponse>, Status> {
        let views = self.runtime.observe_plugins(&self.ctx);
        let plugins = self
            .ctx
            .plugins
            .plugins()
            .iter()
            .zip(views)
            .map(|(plugin, view)| {
                let stats = plugin.stats();
                let get = Stats::get;
                let pipeline = plugin.pipeline().stats();
                let description = plugin.description().unwrap_or_default();
                admin_pb::Plugin {
                    alias: plugin.alias().to_string(),
                    endpoint: plugin.config().endpoint.clone(),
                    state: view.state.to_pb() as i32,
                    state_since: timestamp(view.since),
                    name: description.name,
                    version: description.version,
                    events: plugin_event_kinds(plugin)
                        .into_iter()
                        .map(|k| k as i32)
                        .collect(),
                    last_error: plugin.last_error().unwrap_or_default(),
                    counters: Some(admin_pb::PluginCounters {
                        calls: get(&stats.calls),
                        allows: get(&stats.allows),
                        denies: get(&stats.denies),
                        ignores: get(&stats.ignores),
                        timeouts: get(&stats.timeouts),
                        errors: get(&stats.errors),
                        fallbacks: get(&stats.fallbacks),
                        cache_hits: get(&stats.cache_hits),
                        events_sent: pipeline.sent,
                        events_acked: pipeline.acked,
                        events_dropped: pipeline.dropped,
                        queue_depth: pipeline.queue_depth as u64,
                        reconnects: pipeline.reconnects,
                    }),
                    latency: Some(admin_pb::Latency {
                        p50_ms: view.recent_latency.quantile_ms(0.5),
                        p90_ms: view.recent_latency.quantile_ms(0.9),
                        p99_ms: view.recent_latency.quantile_ms(0.99),
                    }),
                }
            })
            .collect();
        Ok(Response::new(admin_pb::ListPluginsResponse { plugins }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<admin_pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let filter = EventFilter::new(request.get_ref())?;
        let watcher = self.ctx.plugins.watch().watch();
        info!(
            watchers = self.ctx.plugins.watch().watchers(),
            "admin API: event watcher attached"
        );
        Ok(Response::new(events::stream(
            watcher,
            filter,
            self.stop.clone(),
        )))
    }
}

/// A retained message as the admin API shows it.
fn retained(retained: &crate::retained::Retained, payload: bool) -> admin_pb::RetainedMessage {
    admin_pb::RetainedMessage {
        message: Some(emit::message(&retained.message, payload)),
        client_id: retained.publisher.to_string(),
        stored_at: Some(prost_types::Timestamp::from(retained.stored_at)),
    }
}

//! # Midge
//!
//! An MQTT broker whose plugins run out of process, as gRPC services.
//!
//! # Layout
//!
//! Bottom to top; a module uses only modules above it in this list (checked by
//! `tests/module_graph.rs`, which also keeps protobuf inside `plugin` and `admin`). Only
//! [`codec`], [`config`], [`logging`], [`Broker`] and its errors are public.
//!
//! - [`codec`]: MQTT 3.1, 3.1.1 and 5.0 packets to and from bytes (no I/O).
//! - `topic`: topic names and filters: validation and matching.
//! - `hash`: the fast hasher of the message-path maps.
//! - `latency`: latency histograms (plugin calls), read by the admin API and the metrics.
//! - [`config`]: the YAML configuration, its loader and validation (`file:line:column`).
//! - [`logging`]: the human log format, with control characters escaped.
//! - `message`: an application message inside the broker, and who published it.
//! - `outbound`: encoding messages for one subscriber (its version, limits, topic aliases).
//! - `retained`: the retained message store behind a trait.
//! - `plugin`: the plugin manager, the only module that speaks the plugin contract: decisions
//!   (authentication, topic checks) and events, domain types in and out.
//! - `stats`: broker-wide counters, and the rate-limited log of dropped messages.
//! - `session`: per-client-id state that outlives connections; the session registry; the flow
//!   control of its queues (bounds, the broker-wide byte budget).
//! - `router`: the subscription tree and the fan-out of published messages.
//! - `context`: the state every connection shares, and the broker's shutdown token and tasks.
//! - `dispatch`: one accepted message: retained store, events, checked delivery.
//! - `backpressure`: a publisher waits for the full subscriber queues its message went to.
//! - `control`: applying the control messages plugins send.
//! - `sys_topics`: the `$SYS` publisher.
//! - `listener`: TCP / TLS / WebSocket accept loops that hand transports to connections.
//! - `connection`: one task per client: CONNECT, packets, keep-alive, will, goodbye.
//! - `admin`: the gRPC admin API (`midge.admin.v1.BrokerAdmin`, health, reflection).
//! - `metrics`: the Prometheus `/metrics` endpoint.
//! - `broker`: ties it together: [`Broker::new`], [`Broker::run`] and the shutdown tree.

mod admin;
mod backpressure;
mod broker;
pub mod codec;
pub mod config;
mod connection;
mod context;
mod control;
mod dispatch;
mod hash;
mod latency;
mod listener;
pub mod logging;
mod message;
mod metrics;
mod outbound;
mod plugin;
mod retained;
mod router;
mod session;
mod stats;
mod sys_topics;
mod topic;

pub use admin::AdminError;
pub use broker::{Broker, BrokerError};
pub use listener::ListenerError;
pub use metrics::MetricsError;
pub use plugin::PluginError;

/// The broker's version string: `$SYS/broker/version`, and what plugins are told in `Describe`.
pub const VERSION: &str = concat!("midge ", env!("CARGO_PKG_VERSION"));
pub use config::Config;

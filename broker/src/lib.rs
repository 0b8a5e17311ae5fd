//! # Midge
//!
//! An MQTT broker whose plugins run out of process, as gRPC services.
//!
//! # Layout
//!
//! - [`codec`]: pure MQTT packet encoding and decoding (no I/O), one module per protocol version.
//! - [`config`]: the YAML configuration model, its loader and validation.
//! - [`listener`]: TCP / TLS / WebSocket accept loops that hand transports to connections.
//! - [`connection`]: one task per client: CONNECT, packet handling, keepalive, will.
//! - [`session`]: per-client-id state that outlives connections; the session registry.
//! - [`router`]: the subscription tree and fan-out of published messages.
//! - [`retained`]: the retained message store behind a trait.
//! - [`sys_topics`]: the `$SYS` publisher.
//! - [`admin`]: the gRPC admin API (`midge.admin.v1.BrokerAdmin`, health, reflection).
//! - [`logging`]: the human log format's field formatter, which escapes control characters.
//! - [`metrics`]: the Prometheus `/metrics` endpoint and the latency histograms behind it.
//! - [`broker`]: ties it together: [`Broker::new`] and [`Broker::run`].

pub mod admin;
pub mod broker;
pub mod codec;
pub mod config;
pub mod connection;
pub mod context;
pub mod control;
pub mod dispatch;
mod hash;
pub mod latency;
pub mod listener;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod outbound;
pub mod plugin;
pub mod retained;
pub mod router;
pub mod session;
pub mod stats;
pub mod sys_topics;
pub mod topic;

pub use broker::{Broker, BrokerError};

/// The broker's version string: `$SYS/broker/version`, and what plugins are told in `Describe`.
pub const VERSION: &str = concat!("midge ", env!("CARGO_PKG_VERSION"));
pub use config::Config;

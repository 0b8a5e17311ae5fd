//! `midge-plugin`: write a [Midge](https://example.invalid/midge) broker plugin as a trait impl.
//!
//! A Midge plugin is a gRPC server that the broker calls. Implement the trait for what your
//! plugin does, register it on a [`Server`], and serve:
//!
//! | trait | gRPC service | broker config |
//! | --- | --- | --- |
//! | [`Authenticator`] | `midge.plugin.v1.Authenticator` | `auth.plugins` |
//! | [`TopicChecker`] | `midge.plugin.v1.TopicFilter` | `topic-check.plugins` |
//! | [`EventHandler`] | `midge.plugin.v1.EventSink` | `plugins.<alias>` (events) |
//!
//! The server always adds `midge.plugin.v1.Plugin` (`Describe`, derived from what you
//! registered), `grpc.health.v1.Health` and server reflection, and shuts down gracefully.
//!
//! # Quick start
//!
//! A complete plugin that lets only user `alice` connect:
//!
//! ```no_run
//! use midge_plugin::{AuthRequest, Authenticator, Decision, Server, Status};
//!
//! struct OnlyAlice;
//!
//! impl Authenticator for OnlyAlice {
//!     async fn authenticate(&self, req: AuthRequest) -> Result<Decision, Status> {
//!         match req.username.as_deref() {
//!             Some("alice") => Ok(Decision::allow()),
//!             _ => Ok(Decision::deny("only alice")),
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), midge_plugin::ServeError> {
//!     let addr = "127.0.0.1:50051".parse().expect("valid address");
//!     let ctrl_c = async { tokio::signal::ctrl_c().await.expect("signal handler") };
//!     Server::new("only-alice", "1.0.0").authenticator(OnlyAlice).serve(addr, ctrl_c).await
//! }
//! ```
//!
//! (the same code is `examples/only_alice.rs`: `cargo run -p midge-plugin --example only_alice`),
//! and in the broker's config:
//!
//! ```yaml
//! plugins:
//!   only-alice:
//!     endpoint: http://127.0.0.1:50051
//! auth:
//!   plugins: [only-alice]
//! ```
//!
//! # Config
//!
//! The YAML under `plugins.<alias>.config` reaches the plugin in every `Describe`. Each trait
//! has an `on_configure(&self, &PluginConfig)` hook, and [`PluginConfig::parse`] deserializes
//! the section into your own serde type; event handlers can also call [`Context::config`].
//!
//! # Layout
//!
//! * [`verdict`](Verdict): [`Verdict`], [`Decision`], [`Grants`]: what decisions return.
//! * [`Authenticator`], [`AuthRequest`], [`AuthStep`]: the authentication service.
//! * [`TopicChecker`], [`TopicRequest`], [`Action`]: the topic-check service.
//! * [`EventHandler`], [`EventInterest`], [`Context`], [`Publish`]: the event stream.
//! * [`PluginConfig`], [`ConfigError`]: the plugin's config section.
//! * [`Server`], [`ServeError`]: serving it all.
//! * [`pb`]: the generated `midge.plugin.v1` types, for everything the domain types leave out.

mod authenticator;
mod config;
mod context;
mod convert;
mod describe;
mod event_handler;
mod event_stream;
mod server;
mod service;
mod topic_checker;
mod verdict;

pub use authenticator::{
    AuthRequest, AuthStep, Authenticator, EnhancedAuth, Password, ProtocolVersion,
};
pub use config::{ConfigError, PluginConfig};
pub use context::{Context, ControlError, Publish};
pub use convert::{InvalidAction, InvalidVerdict};
pub use event_handler::{EventHandler, EventInterest};
pub use server::{DEFAULT_SHUTDOWN_GRACE, ServeError, Server};
pub use topic_checker::{Action, TopicChecker, TopicRequest};
pub use verdict::{Decision, Grants, Verdict};

/// `tonic::Status`, the error type of every plugin method.
pub use tonic::Status;

/// The generated types of `midge.plugin.v1` (from the `midge-proto` crate), with
/// `FILE_DESCRIPTOR_SET` for reflection.
pub mod pb {
    pub use midge_proto::FILE_DESCRIPTOR_SET;
    pub use midge_proto::plugin::v1::*;
}

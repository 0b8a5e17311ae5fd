//! Shared plumbing of Midge's example plugins, aMQTT's built-ins as standalone gRPC services:
//!
//! | binary | aMQTT plugin | serves |
//! | --- | --- | --- |
//! | `auth-password-file` | `FileAuthPlugin` | `Authenticator` |
//! | `topic-acl` | `TopicAccessControlListPlugin` | `TopicFilter` |
//! | `topic-taboo` | `TopicTabooPlugin` | `TopicFilter` |
//! | `event-logger` | `EventLoggerPlugin` | `EventSink` |
//! | `packet-logger` | `PacketLoggerPlugin` | `EventSink` (packet kinds) |
//!
//! Each binary is a [`midge_plugin::Server`] plus what every plugin process needs and nothing in
//! it is specific to one plugin: the common flags ([`ServeArgs`]: `--listen`, `--health-check`,
//! `--log-format`), logging to stderr ([`init_tracing`]), serving until SIGTERM or SIGINT
//! ([`serve`]), the `grpc.health.v1` probe ([`health_check`]), durations with units
//! ([`parse_duration`]), plugin configs from the broker or a YAML file ([`ConfigSlot`]), and events
//! as JSON or text lines ([`EventSink`]). A plugin of your own needs none of it: see
//! `sdk-rust/examples/only_alice.rs` for the 20-line version.

mod cli;
mod config_slot;
mod event_line;

pub use cli::{
    LogFormat, ServeArgs, health_check, init_tracing, parse_duration, serve, shutdown_signal,
};
pub use config_slot::{ConfigSlot, config_from_file};
pub use event_line::{EventSink, event_json, event_text, kind_name};

//! The Midge plugin contract and its generated Rust.
//!
//! The `.proto` files under `proto/midge/` are the source of truth (their comments are the
//! documentation for every language); this crate compiles them with `protox` (no system `protoc`)
//! and exposes:
//!
//! * [`plugin::v1`]: package `midge.plugin.v1`, what plugins implement (`Plugin`, `EventSink`,
//!   `Authenticator`, `TopicFilter`), with clients for the broker and servers for plugins;
//! * [`admin::v1`]: package `midge.admin.v1`, the broker's `BrokerAdmin` service;
//! * [`FILE_DESCRIPTOR_SET`]: both packages (and their imports) as an encoded
//!   `google.protobuf.FileDescriptorSet`, for gRPC server reflection;
//! * `json` (feature `json`): `google.protobuf.Struct` ↔ `serde_json::Value`, for the
//!   per-plugin config that `Plugin.Describe` carries;
//! * `reflection` (feature `reflection`): the server reflection every Midge gRPC server serves
//!   (the broker's admin API and every plugin built with the SDK);
//! * `EventKind` helpers: [`plugin::v1::Event::kind`], `EventKind::ALL_BUT_PACKETS`, ...
//!
//! Write plugins with the `midge-plugin` SDK rather than against these types directly.

mod generated {
    #![allow(missing_docs, unreachable_pub, missing_debug_implementations)]
    #![allow(clippy::all, clippy::pedantic)]

    pub mod midge {
        pub mod plugin {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/midge.plugin.v1.rs"));
            }
        }
        pub mod admin {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/midge.admin.v1.rs"));
            }
        }
    }

    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/midge_descriptor.bin"));
}

#[cfg(feature = "json")]
pub mod json;
mod kind;
#[cfg(feature = "reflection")]
pub mod reflection;

/// Generated types of the plugin contract.
pub mod plugin {
    /// Package `midge.plugin.v1`: the services a plugin implements and their messages.
    pub mod v1 {
        pub use crate::generated::midge::plugin::v1::*;
    }
}

/// Generated types of the broker's admin API.
pub mod admin {
    /// Package `midge.admin.v1`: the `BrokerAdmin` service and its messages.
    pub mod v1 {
        pub use crate::generated::midge::admin::v1::*;
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of `midge.plugin.v1` and `midge.admin.v1`,
/// with the well-known types they import. Register it with `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = generated::FILE_DESCRIPTOR_SET;

/// Fully-qualified gRPC service names, as routing, health checks and reflection spell them.
pub mod service_names {
    use crate::generated::midge::{admin::v1 as admin, plugin::v1 as plugin};

    /// `midge.plugin.v1.Plugin` (Describe).
    pub const PLUGIN: &str = plugin::plugin_server::SERVICE_NAME;
    /// `midge.plugin.v1.EventSink` (Stream).
    pub const EVENT_SINK: &str = plugin::event_sink_server::SERVICE_NAME;
    /// `midge.plugin.v1.Authenticator` (Authenticate).
    pub const AUTHENTICATOR: &str = plugin::authenticator_server::SERVICE_NAME;
    /// `midge.plugin.v1.TopicFilter` (CheckTopic).
    pub const TOPIC_FILTER: &str = plugin::topic_filter_server::SERVICE_NAME;
    /// `midge.admin.v1.BrokerAdmin`.
    pub const BROKER_ADMIN: &str = admin::broker_admin_server::SERVICE_NAME;
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_types::FileDescriptorSet;

    use super::*;

    fn services() -> Vec<String> {
        let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
        fds.file
            .iter()
            .flat_map(|f| {
                let package = f.package().to_owned();
                f.service
                    .iter()
                    .map(move |s| format!("{package}.{}", s.name()))
            })
            .collect()
    }

    #[test]
    fn descriptor_set_lists_every_service() {
        let services = services();
        for name in [
            service_names::PLUGIN,
            service_names::EVENT_SINK,
            service_names::AUTHENTICATOR,
            service_names::TOPIC_FILTER,
            service_names::BROKER_ADMIN,
        ] {
            assert!(
                services.iter().any(|s| s == name),
                "{name} missing from {services:?}"
            );
        }
    }

    #[test]
    fn descriptor_set_carries_imports_and_comments() {
        let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
        let names: Vec<_> = fds.file.iter().map(|f| f.name()).collect();
        for import in [
            "google/protobuf/struct.proto",
            "google/protobuf/timestamp.proto",
        ] {
            assert!(names.contains(&import), "{import} missing from {names:?}");
        }
        let auth = fds
            .file
            .iter()
            .find(|f| f.name() == "midge/plugin/v1/auth.proto")
            .expect("auth.proto");
        assert!(
            auth.source_code_info.is_some(),
            "comments are kept for reflection"
        );
    }
}

//! The plugin's own config section (aMQTT's per-plugin config), typed with serde.
//!
//! The broker sends the YAML under `plugins.<alias>.config` as a `google.protobuf.Struct` in
//! every `Describe`. [`PluginConfig::parse`] turns it into any `T: DeserializeOwned` through
//! `serde_json::Value` (whole numbers arrive as integers, so `u32` fields work).

use std::sync::{Arc, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use tonic::Status;

/// One `Describe`'s worth of configuration: the plugin's config section plus who sent it.
///
/// ```
/// use midge_plugin::PluginConfig;
///
/// #[derive(serde::Deserialize)]
/// #[serde(rename_all = "kebab-case")]
/// struct Config {
///     password_file: String,
///     #[serde(default)]
///     max_attempts: u32,
/// }
///
/// let cfg = PluginConfig::from_json(serde_json::json!({
///     "password-file": "/etc/midge/passwd",
///     "max-attempts": 3,
/// }))?;
/// let parsed: Config = cfg.parse()?;
/// assert_eq!(parsed.max_attempts, 3);
/// # Ok::<(), midge_plugin::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginConfig {
    alias: String,
    broker_version: String,
    section: prost_types::Struct,
}

impl PluginConfig {
    /// Builds one from the parts of a `DescribeRequest`.
    pub fn new(
        alias: impl Into<String>,
        broker_version: impl Into<String>,
        section: prost_types::Struct,
    ) -> Self {
        PluginConfig {
            alias: alias.into(),
            broker_version: broker_version.into(),
            section,
        }
    }

    /// Builds one from a JSON object (`null` = empty), for tests and tools. Alias and broker
    /// version are empty.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotAMap`] when `value` is neither an object nor `null`.
    pub fn from_json(value: Json) -> Result<Self, ConfigError> {
        let section = midge_proto::json::json_to_struct(&value).ok_or(ConfigError::NotAMap)?;
        Ok(PluginConfig {
            section,
            ..PluginConfig::default()
        })
    }

    /// The alias the broker registered this plugin under (empty before the first `Describe`).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The broker's version (empty before the first `Describe`).
    pub fn broker_version(&self) -> &str {
        &self.broker_version
    }

    /// The raw section, as the broker sent it.
    pub fn section(&self) -> &prost_types::Struct {
        &self.section
    }

    /// True when the broker sent no (or an empty) config section.
    pub fn is_empty(&self) -> bool {
        self.section.fields.is_empty()
    }

    /// The section as a JSON object.
    pub fn to_json(&self) -> Json {
        midge_proto::json::struct_to_json(&self.section)
    }

    /// Deserializes the section into `T`. An absent section is an empty map, so a `T` whose
    /// fields all have `#[serde(default)]` parses from nothing.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] with serde's reason (missing field, wrong type, unknown field
    /// under `deny_unknown_fields`, ...). It converts into an `INVALID_ARGUMENT` status with `?`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_json::from_value(self.to_json()).map_err(|e| ConfigError::Invalid {
            alias: self.alias.clone(),
            reason: e.to_string(),
        })
    }
}

/// A config section that does not fit the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The section did not deserialize into the plugin's config type.
    #[error("invalid config for plugin alias `{alias}`: {reason}")]
    Invalid {
        /// The alias the broker used (may be empty).
        alias: String,
        /// What serde said.
        reason: String,
    },
    /// The section is a list or a scalar, not a map.
    #[error("a plugin config section must be a map")]
    NotAMap,
}

impl From<ConfigError> for Status {
    fn from(e: ConfigError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// The latest accepted config, shared by `Describe` (which writes it) and every event
/// [`crate::Context`] (which reads it). A server registered under several aliases keeps only the
/// last one's config: run one plugin process per alias when their configs differ.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigStore(Arc<RwLock<PluginConfig>>);

impl ConfigStore {
    /// The latest config (the default, empty one before the first `Describe`).
    pub(crate) fn get(&self) -> PluginConfig {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replace the config after every hook accepted it.
    pub(crate) fn set(&self, config: PluginConfig) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = config;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Acl {
        acl: std::collections::BTreeMap<String, Vec<String>>,
        #[serde(default)]
        limit: u32,
    }

    #[test]
    fn parses_nested_config() {
        let cfg = PluginConfig::from_json(serde_json::json!({
            "acl": {"alice": ["a/#"]}, "limit": 10
        }))
        .expect("object");
        let acl: Acl = cfg.parse().expect("valid");
        assert_eq!(acl.limit, 10);
        assert_eq!(acl.acl["alice"], vec!["a/#".to_owned()]);
    }

    #[test]
    fn errors_name_the_alias_and_map_to_invalid_argument() {
        let cfg = PluginConfig::new("acl", "0.1.0", prost_types::Struct::default());
        let err = cfg.parse::<Acl>().expect_err("acl is missing");
        assert!(err.to_string().contains("`acl`"), "{err}");
        assert!(err.to_string().contains("missing field"), "{err}");
        assert_eq!(Status::from(err).code(), tonic::Code::InvalidArgument);
        assert_eq!(
            PluginConfig::from_json(serde_json::json!([1])),
            Err(ConfigError::NotAMap)
        );
    }

    #[test]
    fn store_starts_empty_and_keeps_the_latest() {
        let store = ConfigStore::default();
        assert!(store.get().is_empty());
        store.set(PluginConfig::new("a", "1", prost_types::Struct::default()));
        assert_eq!(store.get().alias(), "a");
    }
}

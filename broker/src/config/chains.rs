//! The `auth` and `topic-check` sections, with the rules that keep them from failing open or
//! silently (checked at the section, with its line and column).

use serde::Deserialize;
use serde::de::Deserializer;

use super::aliases::{auth_has_plugins, plugin_aliases};
use super::check::checked_map;
use super::{AuthConfig, TopicCheckConfig};

/// `topic-check` as written, before the checks between its fields.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct RawTopicCheck {
    enable: bool,
    #[serde(deserialize_with = "plugin_aliases")]
    plugins: Vec<String>,
}

impl Default for RawTopicCheck {
    fn default() -> Self {
        let TopicCheckConfig { enable, plugins } = TopicCheckConfig::default();
        Self { enable, plugins }
    }
}

impl<'de> Deserialize<'de> for TopicCheckConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(
            deserializer,
            "the topic-check section",
            |raw: RawTopicCheck| {
                let config = TopicCheckConfig {
                    enable: raw.enable,
                    plugins: raw.plugins,
                };
                check_topic_check(&config, auth_has_plugins())?;
                Ok(config)
            },
        )
    }
}

/// The rules of `topic-check` that keep it from failing open or silently: plugins listed
/// while `enable` is false would never be asked (refused rather than guessed at), and checks
/// enabled with no plugin to ask are refused unless `auth` lists plugins, whose session grants
/// are then the only source of topic permissions (everything they do not grant is denied).
/// `auth_has_plugins` is `None` when not known yet (the whole-config check runs it again).
pub(super) fn check_topic_check(
    config: &TopicCheckConfig,
    auth_has_plugins: Option<bool>,
) -> Result<(), String> {
    if !config.enable && !config.plugins.is_empty() {
        return Err(
            "plugins are listed but `enable` is false, so they would never be asked; \
                    set `enable: true` to check topics, or remove the plugins"
                .into(),
        );
    }
    if config.enable && config.plugins.is_empty() && auth_has_plugins == Some(false) {
        return Err(
            "`enable: true` with no plugins, and no auth plugins that could grant \
                    topics, so every topic would be denied; list topic-check plugins or set \
                    `enable: false`"
                .into(),
        );
    }
    Ok(())
}

/// `auth` as written, before the check between its fields.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct RawAuth {
    allow_anonymous: Option<bool>,
    #[serde(deserialize_with = "plugin_aliases")]
    plugins: Vec<String>,
}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked_map(deserializer, "the auth section", |raw: RawAuth| {
            if raw.allow_anonymous.is_none() && raw.plugins.is_empty() {
                return Err("neither `allow-anonymous` nor plugins, so every client \
                            would be refused; set `allow-anonymous: true` (or `false` to let in \
                            only clients with a username) or list auth plugins"
                    .into());
            }
            Ok(AuthConfig {
                allow_anonymous: raw.allow_anonymous,
                plugins: raw.plugins,
            })
        })
    }
}

//! `topic-taboo`: aMQTT's `TopicTabooPlugin` as a Midge plugin service.
//!
//! Denies publishing to, subscribing to and receiving from the taboo topics (default
//! `prohibited`, `top-secret`, `data/classified`; exact string match, no wildcards) to everyone
//! but the bypass users (default `admin`), and allows everything else. See README.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use midge_examples::{ConfigSlot, ServeArgs, init_tracing, parse_duration, serve};
use midge_plugin::{Decision, PluginConfig, Server, Status, TopicChecker, TopicRequest};
use serde::{Deserialize, Deserializer};
use tracing::error;

/// The port `--listen` defaults to.
const DEFAULT_PORT: u16 = 50063;

#[derive(Debug, Parser)]
#[command(name = "topic-taboo", version, about)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    /// A YAML file with the plugin's config keys (taboo, bypass-users, cache-ttl), used while
    /// the broker sends no config section for the plugin.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The plugin's config section. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct TabooConfig {
    /// Topic names and filters nobody but the bypass users may use, compared as strings.
    taboo: Vec<String>,
    /// User names that are always allowed.
    bypass_users: Vec<String>,
    /// How long the broker may reuse an answer; `0s` disables caching.
    #[serde(deserialize_with = "duration")]
    cache_ttl: Duration,
}

impl Default for TabooConfig {
    /// aMQTT's hard-coded list and its `admin` exception.
    fn default() -> Self {
        TabooConfig {
            taboo: ["prohibited", "top-secret", "data/classified"]
                .map(String::from)
                .into(),
            bypass_users: vec!["admin".to_owned()],
            cache_ttl: Duration::from_secs(60),
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

impl TabooConfig {
    /// aMQTT's rule, for every action: bypass users may do anything; others may not touch a
    /// taboo topic.
    fn allows(&self, username: Option<&str>, topic: &str) -> bool {
        username.is_some_and(|u| self.bypass_users.iter().any(|b| b == u))
            || !self.taboo.iter().any(|t| t == topic)
    }
}

/// The topic checker.
#[derive(Debug)]
struct Taboo {
    config: ConfigSlot<TabooConfig>,
}

impl TopicChecker for Taboo {
    async fn check_topic(&self, req: TopicRequest) -> Result<Decision, Status> {
        let config = self.config.get();
        let decision = if config.allows(req.username.as_deref(), &req.topic) {
            Decision::allow()
        } else {
            Decision::deny(format!("{:?} is a taboo topic", req.topic))
        };
        Ok(if config.cache_ttl.is_zero() {
            decision
        } else {
            decision.cache_for(config.cache_ttl)
        })
    }

    async fn on_configure(&self, config: &PluginConfig) -> Result<(), Status> {
        Ok(self.config.configure(config)?)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = cli.serve.health_check_mode().await {
        return code;
    }
    init_tracing(cli.serve.log_format);
    let config = match ConfigSlot::new(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let server =
        Server::new("topic-taboo", env!("CARGO_PKG_VERSION")).topic_checker(Taboo { config });
    serve(server, cli.serve.listen_or(DEFAULT_PORT)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqtt_defaults() {
        let cfg = TabooConfig::default();
        for topic in ["prohibited", "top-secret", "data/classified"] {
            assert!(!cfg.allows(Some("bob"), topic), "{topic}");
            assert!(!cfg.allows(None, topic), "{topic}");
            assert!(cfg.allows(Some("admin"), topic), "{topic}");
        }
        // Exact match only: no wildcards, no prefixes.
        for topic in [
            "data/#",
            "data/+",
            "#",
            "top-secret/x",
            "prohibited/",
            "Top-Secret",
        ] {
            assert!(cfg.allows(Some("bob"), topic), "{topic}");
        }
        assert!(cfg.allows(Some("bob"), "data/public"));
        assert_eq!(cfg.cache_ttl, Duration::from_secs(60));
    }

    #[test]
    fn configured_lists() {
        let cfg: TabooConfig =
            serde_yaml::from_str("taboo: [secret]\nbypass-users: [root, ops]\ncache-ttl: 0s")
                .expect("valid");
        assert!(!cfg.allows(Some("admin"), "secret"));
        assert!(cfg.allows(Some("ops"), "secret"));
        assert!(cfg.allows(Some("bob"), "top-secret"));
        assert!(cfg.cache_ttl.is_zero());
        let only_taboo: TabooConfig = serde_yaml::from_str("taboo: [x]").expect("valid");
        assert_eq!(only_taboo.bypass_users, ["admin"]);
        assert!(serde_yaml::from_str::<TabooConfig>("tabu: [x]").is_err());
    }
}

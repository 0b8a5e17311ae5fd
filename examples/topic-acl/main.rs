//! `topic-acl`: aMQTT's `TopicAccessControlListPlugin` as a Midge plugin service.
//!
//! Answers `CheckTopic` from per-user pattern lists: `acl` (subscribe), `publish-acl` and
//! `receive-acl`, matched with aMQTT's `topic_ac`, each answer cacheable for `cache-ttl`.
//! See README.md.

mod acl;

use std::path::PathBuf;
use std::process::ExitCode;

use acl::{AclConfig, Answer};
use clap::Parser;
use midge_examples::{ConfigSlot, ServeArgs, init_tracing, serve};
use midge_plugin::{Decision, PluginConfig, Server, Status, TopicChecker, TopicRequest};
use tracing::{debug, error};

/// The port `--listen` defaults to.
const DEFAULT_PORT: u16 = 50062;

#[derive(Debug, Parser)]
#[command(name = "topic-acl", version, about)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    /// A YAML file with the plugin's config keys (acl, publish-acl, receive-acl, cache-ttl),
    /// used while the broker sends no config section for the plugin.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The topic checker.
#[derive(Debug)]
struct TopicAcl {
    config: ConfigSlot<AclConfig>,
}

impl TopicChecker for TopicAcl {
    async fn check_topic(&self, req: TopicRequest) -> Result<Decision, Status> {
        let config = self.config.get();
        let answer = config.check(req.username.as_deref(), &req.topic, req.action);
        debug!(client = %req.client_id, topic = %req.topic, action = ?req.action, ?answer);
        let decision = match answer {
            Answer::Allow => Decision::allow(),
            Answer::Deny(reason) => Decision::deny(reason),
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
        Server::new("topic-acl", env!("CARGO_PKG_VERSION")).topic_checker(TopicAcl { config });
    serve(server, cli.serve.listen_or(DEFAULT_PORT)).await
}

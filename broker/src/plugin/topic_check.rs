//! The topic-check chain: session grants first, then cached verdicts, then every topic-check
//! plugin asked concurrently, the votes combined by [`super::decision::combine_topic`].

use std::sync::Arc;

use bytestring::ByteString;
use futures_util::future::join_all;
use midge_proto::plugin::v1 as pb;
use smallvec::SmallVec;
use tracing::debug;

use super::cache::TopicCache;
use super::decision::{Action, PluginVote, combine_topic};
use super::{Plugin, PluginManager, bump};

/// What a topic check is about.
#[derive(Debug, Clone)]
pub(crate) struct TopicQuery<'a> {
    /// Client id of the client acting (the subscriber for RECEIVE).
    pub(crate) client_id: &'a ByteString,
    /// Its user name.
    pub(crate) username: Option<&'a ByteString>,
    /// Topic name (PUBLISH, RECEIVE) or topic filter (SUBSCRIBE).
    pub(crate) topic: &'a ByteString,
    /// The action.
    pub(crate) action: Action,
    /// QoS of the publication or the requested QoS of the subscription.
    pub(crate) qos: u8,
    /// Retain flag of the publication.
    pub(crate) retain: bool,
    /// Listener the client is connected to.
    pub(crate) listener: &'a str,
}

impl PluginManager {
    /// Whether topic checks are on (`topic-check.enable`; with no plugins only session grants
    /// can deny). When off, every check allows and callers may skip building queries.
    pub(crate) fn topic_check_enabled(&self) -> bool {
        self.topic_check
    }

    /// The chain's answer for `query` if `cache` alone decides it (checks off, a cached DENY,
    /// or every plugin's verdict cached); `None` when a plugin must be asked.
    pub(crate) fn cached_topic_verdict(
        &self,
        cache: &TopicCache,
        query: &TopicQuery<'_>,
    ) -> Option<bool> {
        self.cached_verdict(cache, query.action, query.topic)
    }

    /// [`cached_topic_verdict`](Self::cached_topic_verdict) by action and topic alone: what the
    /// cache and grants are keyed by, so no query needs building on the hot path.
    pub(crate) fn cached_verdict(
        &self,
        cache: &TopicCache,
        action: Action,
        topic: &ByteString,
    ) -> Option<bool> {
        if !self.topic_check {
            return Some(true);
        }
        cache.view(topic, |view| {
            if let Some(granted) = view.granted(action, topic) {
                return Some(granted);
            }
            // `combine_topic` folded as the votes are read, without copying them out.
            let mut allowed = false;
            for plugin in &self.topic_chain {
                match view.vote(plugin.index(), action)? {
                    PluginVote::Deny(_) => {
                        bump(&plugin.stats().cache_hits);
                        return Some(false);
                    }
                    PluginVote::Allow => allowed = true,
                    PluginVote::Ignore | PluginVote::Absent => {}
                }
            }
            for plugin in &self.topic_chain {
                bump(&plugin.stats().cache_hits);
            }
            Some(allowed)
        })
    }

    /// Runs the topic-check chain for `query`, using and filling `cache` (the acting session's).
    /// A cached DENY decides at once without asking the other plugins.
    pub(crate) async fn check_topic(&self, cache: &TopicCache, query: &TopicQuery<'_>) -> bool {
        if !self.topic_check {
            return true;
        }
        if let Some(granted) = cache.granted(query.action, query.topic) {
            return granted;
        }
        let mut votes: SmallVec<[PluginVote; 4]> = SmallVec::new();
        let mut missing: SmallVec<[&Arc<Plugin>; 4]> = SmallVec::new();
        for plugin in &self.topic_chain {
            match cache.get(plugin.index(), query.action, query.topic) {
                Some(PluginVote::Deny(_)) => {
                    bump(&plugin.stats().cache_hits);
                    return false;
                }
                Some(vote) => {
                    bump(&plugin.stats().cache_hits);
                    votes.push(vote);
                }
                None => missing.push(plugin),
            }
        }
        if !missing.is_empty() {
            let request = pb::CheckTopicRequest {
                client_id: query.client_id.to_string(),
                username: query.username.map(|u| u.to_string()),
                topic: query.topic.to_string(),
                action: query.action.to_pb() as i32,
                qos: u32::from(query.qos),
                retain: query.retain,
                listener: query.listener.to_string(),
            };
            // Boxed: the calls' futures are large and only needed on a cache miss, so they stay
            // out of every connection task's own future.
            let answers = Box::pin(join_all(
                missing.iter().map(|p| p.check_topic(request.clone())),
            ))
            .await;
            for (plugin, answer) in missing.iter().zip(answers) {
                if let Some(ttl) = answer.cache_for {
                    cache.put(
                        plugin.index(),
                        query.action,
                        query.topic.clone(),
                        answer.vote.clone(),
                        ttl,
                    );
                }
                votes.push(answer.vote);
            }
        }
        let allowed = combine_topic(votes);
        if !allowed {
            debug!(action = ?query.action, topic = %query.topic, "topic check denied");
        }
        allowed
    }
}

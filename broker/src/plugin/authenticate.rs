//! The authentication chain: `allow-anonymous` and every auth plugin asked concurrently, the
//! votes combined by [`super::decision::combine_auth`], and the MQTT 5 enhanced-authentication
//! exchange a plugin may lead.

use std::sync::Arc;

use futures_util::future::join_all;

use super::decision::{PluginVote, combine_auth};
use super::grants::Grants;
use super::{Answer, AuthQuery, PluginManager, anonymous, bump};

impl PluginManager {
    /// Runs the authentication chain: `allow-anonymous` plus every authenticator plugin, all
    /// asked concurrently, combined by [`combine_auth`]. With an MQTT 5 Authentication Method a
    /// plugin may answer CONTINUE: the first such plugin (in chain order) leads an exchange
    /// that [`continue_auth`](Self::continue_auth) carries on.
    pub(crate) async fn authenticate(&self, query: &AuthQuery) -> AuthOutcome {
        let request = &query.0;
        let anonymous = anonymous::vote(self.allow_anonymous, request.username.as_deref());
        // Enhanced authentication is a conversation: its answers are never cached.
        let cacheable = request.auth_method.is_empty();
        let asks = self.auth_chain.iter().map(|plugin| async move {
            let key = self.auth_cache.key(plugin.index(), request);
            if cacheable && let Some((vote, grants)) = self.auth_cache.get(&key) {
                bump(&plugin.stats().cache_hits);
                return Answer {
                    vote,
                    cache_for: None,
                    grants,
                    continues: false,
                    auth_data: Vec::new(),
                    reason_code: 0,
                };
            }
            let answer = plugin.authenticate(request.clone()).await;
            if let (Some(ttl), true) = (answer.cache_for, cacheable) {
                self.auth_cache
                    .put(key, answer.vote.clone(), answer.grants.clone(), ttl);
            }
            answer
        });
        let mut answers = Box::pin(join_all(asks)).await;
        if let Some(leader) = answers.iter().position(|a| a.continues) {
            let auth_data = std::mem::take(&mut answers[leader].auth_data);
            return AuthOutcome::Continue(PendingAuth {
                leader,
                anonymous,
                others: answers,
                auth_data,
            });
        }
        finish_auth(anonymous, answers)
    }

    /// The next step of an enhanced authentication exchange: asks the leading plugin alone
    /// with the client's AUTH data (`request.step` and `request.auth_data` set by the caller),
    /// then combines its final answer with the other plugins' first answers.
    pub(crate) async fn continue_auth(
        &self,
        mut pending: PendingAuth,
        query: &AuthQuery,
    ) -> AuthOutcome {
        let request = &query.0;
        let Some(plugin) = self.auth_chain.get(pending.leader) else {
            return AuthOutcome::Refused {
                reason: "authentication plugin gone".into(),
                reason_code: 0,
            };
        };
        let answer = plugin.authenticate(request.clone()).await;
        if answer.continues {
            pending.auth_data = answer.auth_data;
            return AuthOutcome::Continue(pending);
        }
        let mut answers = pending.others;
        answers[pending.leader] = answer;
        finish_auth(pending.anonymous, answers)
    }
}

/// What the authentication chain decided about a CONNECT (or an enhanced-auth step).
#[derive(Debug)]
pub(crate) enum AuthOutcome {
    /// Accept the client, with the session grants of the allowing plugins and the
    /// Authentication Data to put in CONNACK (enhanced authentication).
    Allowed {
        /// Merged session grants; `None` when no plugin granted any.
        grants: Option<Arc<Grants>>,
        /// Authentication Data for the CONNACK; empty for none.
        auth_data: Vec<u8>,
    },
    /// Refuse the client.
    Refused {
        /// Why (logged; the MQTT 5 reason string).
        reason: String,
        /// The MQTT 5 CONNACK reason code a denying plugin asked for; 0 for the default.
        reason_code: u32,
    },
    /// Enhanced authentication goes on: send [`PendingAuth::auth_data`] to the client in an
    /// AUTH packet (0x18) and pass its answer to [`PluginManager::continue_auth`].
    Continue(PendingAuth),
}

/// An enhanced authentication exchange in progress.
#[derive(Debug)]
pub(crate) struct PendingAuth {
    /// Index in the auth chain of the plugin leading the exchange.
    leader: usize,
    /// The anonymous voter's vote.
    anonymous: PluginVote,
    /// Every plugin's first answer (the leader's is replaced by its final one).
    others: Vec<Answer>,
    /// Authentication Data for the client's next AUTH packet.
    pub(crate) auth_data: Vec<u8>,
}

/// Combines the anonymous vote and the plugins' answers into the outcome.
fn finish_auth(anonymous: PluginVote, answers: Vec<Answer>) -> AuthOutcome {
    let reason_code = answers
        .iter()
        .find(|a| matches!(a.vote, PluginVote::Deny(_)))
        .map_or(0, |a| a.reason_code);
    let mut grants = Grants::default();
    let mut auth_data = Vec::new();
    for answer in &answers {
        if let Some(g) = &answer.grants {
            grants.merge(g);
        }
        if answer.vote == PluginVote::Allow && auth_data.is_empty() {
            auth_data.clone_from(&answer.auth_data);
        }
    }
    let votes = answers.into_iter().map(|a| a.vote);
    match combine_auth(std::iter::once(anonymous).chain(votes)) {
        Ok(()) => AuthOutcome::Allowed {
            grants: (!grants.is_empty()).then(|| Arc::new(grants)),
            auth_data,
        },
        Err(reason) => AuthOutcome::Refused {
            reason,
            reason_code,
        },
    }
}

//! The `allow-anonymous` voter of the authentication chain (aMQTT's `AnonymousAuthPlugin`):
//! `true` allows everyone, `false` allows clients with a username and denies the rest, absent
//! does not vote. The chain rule itself is [`crate::plugin::decision::combine_auth`].

use crate::config::AuthConfig;
use crate::plugin::decision::PluginVote;

/// The `allow-anonymous` voter.
pub fn anonymous_vote(config: &AuthConfig, username: Option<&str>) -> PluginVote {
    match (config.allow_anonymous, username) {
        (None, _) => PluginVote::Absent,
        (Some(true), _) | (Some(false), Some(_)) => PluginVote::Allow,
        (Some(false), None) => PluginVote::Deny("anonymous clients are not allowed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(allow: Option<bool>) -> AuthConfig {
        AuthConfig {
            allow_anonymous: allow,
            plugins: Vec::new(),
        }
    }

    #[test]
    fn anonymous_voter() {
        assert_eq!(anonymous_vote(&auth(Some(true)), None), PluginVote::Allow);
        assert_eq!(
            anonymous_vote(&auth(Some(true)), Some("u")),
            PluginVote::Allow
        );
        assert_eq!(
            anonymous_vote(&auth(Some(false)), Some("u")),
            PluginVote::Allow
        );
        assert!(matches!(
            anonymous_vote(&auth(Some(false)), None),
            PluginVote::Deny(_)
        ));
        assert_eq!(anonymous_vote(&auth(None), None), PluginVote::Absent);
    }
}

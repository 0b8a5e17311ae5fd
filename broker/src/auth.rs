//! The `allow-anonymous` voter of the authentication chain (aMQTT's `AnonymousAuthPlugin`):
//! `true` allows everyone, `false` allows clients with a username and denies the rest, absent
//! does not vote. The chain rule itself is [`crate::plugin::decision::combine_auth`].

use crate::plugin::decision::PluginVote;

/// The `allow-anonymous` voter, given that setting and the client's user name.
pub fn anonymous_vote(allow_anonymous: Option<bool>, username: Option<&str>) -> PluginVote {
    match (allow_anonymous, username) {
        (None, _) => PluginVote::Absent,
        (Some(true), _) | (Some(false), Some(_)) => PluginVote::Allow,
        (Some(false), None) => PluginVote::Deny("anonymous clients are not allowed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_voter() {
        assert_eq!(anonymous_vote(Some(true), None), PluginVote::Allow);
        assert_eq!(anonymous_vote(Some(true), Some("u")), PluginVote::Allow);
        assert_eq!(anonymous_vote(Some(false), Some("u")), PluginVote::Allow);
        assert!(matches!(
            anonymous_vote(Some(false), None),
            PluginVote::Deny(_)
        ));
        assert_eq!(anonymous_vote(None, None), PluginVote::Absent);
    }
}

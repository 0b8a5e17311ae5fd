//! The `allow-anonymous` voter of the authentication chain (aMQTT's `AnonymousAuthPlugin`):
//! `true` allows everyone, `false` allows clients with a non-empty username and denies the rest
//! (an empty username counts as none, as in aMQTT), absent does not vote. The chain rule itself is [`super::decision::combine_auth`].

use super::decision::PluginVote;

/// The `allow-anonymous` voter, given that setting and the client's user name.
pub(crate) fn vote(allow_anonymous: Option<bool>, username: Option<&str>) -> PluginVote {
    let named = username.is_some_and(|name| !name.is_empty());
    match (allow_anonymous, named) {
        (None, _) => PluginVote::Absent,
        (Some(true), _) | (Some(false), true) => PluginVote::Allow,
        (Some(false), false) => PluginVote::Deny("anonymous clients are not allowed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_voter() {
        assert_eq!(vote(Some(true), None), PluginVote::Allow);
        assert_eq!(vote(Some(true), Some("u")), PluginVote::Allow);
        assert_eq!(vote(Some(false), Some("u")), PluginVote::Allow);
        assert!(matches!(vote(Some(false), None), PluginVote::Deny(_)));
        assert!(
            matches!(vote(Some(false), Some("")), PluginVote::Deny(_)),
            "an empty username is no username"
        );
        assert_eq!(vote(Some(true), Some("")), PluginVote::Allow);
        assert_eq!(vote(None, None), PluginVote::Absent);
    }
}

//! The decision rules: how the votes of a chain of plugins combine, for authentication and for
//! topic checks. Pure functions, tested case by case; the docs and the `.proto` comments state the
//! same rules.
//!
//! | chain                        | authentication           | topic check               |
//! |------------------------------|--------------------------|---------------------------|
//! | any `DENY`                   | deny                     | deny                      |
//! | ≥ 1 `ALLOW`, no `DENY`       | allow                    | allow                     |
//! | only `IGNORE` votes          | deny (no vote)           | deny (aMQTT: None denies) |
//! | no voter (or all `Absent`)   | deny (no vote)           | deny (no vote)            |
//!
//! `Absent` is what a plugin counts as when its failure fallback is `ignore`: as if it were not
//! in the chain. `allow-anonymous` is one more voter in the authentication chain. Both chains
//! fail closed: a check in which nobody voted ALLOW denies, so a dead ACL plugin whose fallback
//! is `ignore` closes every topic instead of opening them (a healthy plugin beside it still
//! decides alone).

use midge_proto::plugin::v1 as pb;

/// What a topic is being checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// A client publishes to a topic name.
    Publish,
    /// A client subscribes to a topic filter.
    Subscribe,
    /// A subscriber is about to receive a message on a topic name.
    Receive,
}

impl Action {
    /// The wire value.
    pub(crate) fn to_pb(self) -> pb::Action {
        match self {
            Action::Publish => pb::Action::Publish,
            Action::Subscribe => pb::Action::Subscribe,
            Action::Receive => pb::Action::Receive,
        }
    }
}

/// One voter's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PluginVote {
    /// `ALLOW`.
    Allow,
    /// `DENY`, with the reason for the log.
    Deny(String),
    /// `IGNORE`: an explicit abstention.
    Ignore,
    /// Not in the chain for this decision (a failure whose fallback is `ignore`).
    Absent,
}

/// Combines authentication votes. `Ok(())` allows; `Err(reason)` refuses.
pub(crate) fn combine_auth(votes: impl IntoIterator<Item = PluginVote>) -> Result<(), String> {
    let mut allowed = false;
    for vote in votes {
        match vote {
            PluginVote::Deny(reason) => return Err(reason),
            PluginVote::Allow => allowed = true,
            PluginVote::Ignore | PluginVote::Absent => {}
        }
    }
    if allowed {
        Ok(())
    } else {
        Err("no authenticator allowed the client".into())
    }
}

/// Combines topic-check votes of an enabled chain. Returns whether the action is allowed: no
/// DENY and at least one ALLOW (an empty chain, all IGNORE or all `Absent` deny).
pub(crate) fn combine_topic(votes: impl IntoIterator<Item = PluginVote>) -> bool {
    let mut allowed = false;
    for vote in votes {
        match vote {
            PluginVote::Deny(_) => return false,
            PluginVote::Allow => allowed = true,
            PluginVote::Ignore | PluginVote::Absent => {}
        }
    }
    allowed
}

/// Reads a plugin's wire verdict. `CONTINUE` and unknown values are not valid answers to a
/// single-step call and are reported as `None` (handled like an error).
pub(crate) fn vote_from_pb(verdict: i32, reason: &str) -> Option<PluginVote> {
    match pb::Verdict::try_from(verdict).ok()? {
        pb::Verdict::Allow => Some(PluginVote::Allow),
        pb::Verdict::Deny => Some(PluginVote::Deny(if reason.is_empty() {
            "denied by plugin".into()
        } else {
            reason.to_string()
        })),
        pb::Verdict::Ignore => Some(PluginVote::Ignore),
        pb::Verdict::Unspecified | pb::Verdict::Continue => None,
    }
}

#[cfg(test)]
mod tests {
    use super::PluginVote::*;
    use super::*;

    fn deny() -> PluginVote {
        Deny("no".into())
    }

    #[test]
    fn auth_table() {
        let cases: [(Vec<PluginVote>, bool); 9] = [
            (vec![], false),
            (vec![Allow], true),
            (vec![Ignore], false),
            (vec![Absent], false),
            (vec![Allow, Ignore], true),
            (vec![Allow, Absent], true),
            (vec![Allow, deny()], false),
            (vec![Ignore, deny()], false),
            (vec![Allow, Allow], true),
        ];
        for (votes, expected) in cases {
            assert_eq!(combine_auth(votes.clone()).is_ok(), expected, "{votes:?}");
        }
    }

    #[test]
    fn topic_table() {
        let cases: [(Vec<PluginVote>, bool); 11] = [
            (vec![], false),
            (vec![Allow], true),
            (vec![Ignore], false),
            (vec![Ignore, Ignore], false),
            (vec![Allow, Ignore], true),
            (vec![Absent], false),
            (vec![Absent, Absent], false),
            (vec![Absent, Allow], true),
            (vec![Absent, Ignore], false),
            (vec![Allow, deny()], false),
            (vec![Absent, deny()], false),
        ];
        for (votes, expected) in cases {
            assert_eq!(combine_topic(votes.clone()), expected, "{votes:?}");
        }
    }

    #[test]
    fn wire_verdicts() {
        assert_eq!(vote_from_pb(pb::Verdict::Allow as i32, ""), Some(Allow));
        assert_eq!(
            vote_from_pb(pb::Verdict::Deny as i32, "x"),
            Some(Deny("x".into()))
        );
        assert_eq!(vote_from_pb(pb::Verdict::Ignore as i32, ""), Some(Ignore));
        assert_eq!(vote_from_pb(pb::Verdict::Continue as i32, ""), None);
        assert_eq!(vote_from_pb(0, ""), None);
        assert_eq!(vote_from_pb(99, ""), None);
    }
}

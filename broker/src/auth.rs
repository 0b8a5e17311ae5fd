//! The authentication decision: aMQTT's voting rule over every authenticator.
//!
//! Each voter says [`Vote::Allow`], [`Vote::Deny`] or [`Vote::Abstain`]. Any deny denies; otherwise
//! at least one allow allows; no vote at all denies. `allow-anonymous` is one voter: `true` allows
//! everyone, `false` allows clients with a username and denies the rest, absent abstains.

use crate::config::AuthConfig;

/// One authenticator's opinion on a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// Let the client in.
    Allow,
    /// Refuse the client, with a reason for the log.
    Deny(String),
    /// No opinion.
    Abstain,
}

/// The `allow-anonymous` voter.
pub fn anonymous_vote(config: &AuthConfig, username: Option<&str>) -> Vote {
    match (config.allow_anonymous, username) {
        (None, _) => Vote::Abstain,
        (Some(true), _) | (Some(false), Some(_)) => Vote::Allow,
        (Some(false), None) => Vote::Deny("anonymous clients are not allowed".into()),
    }
}

/// Combines votes: any deny denies, else at least one allow allows, else deny.
/// Returns `Ok(())` to allow or `Err(reason)` to refuse.
pub fn decide(votes: impl IntoIterator<Item = Vote>) -> Result<(), String> {
    let mut allowed = false;
    for vote in votes {
        match vote {
            Vote::Deny(reason) => return Err(reason),
            Vote::Allow => allowed = true,
            Vote::Abstain => {}
        }
    }
    if allowed {
        Ok(())
    } else {
        Err("no authenticator allowed the client".into())
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
    fn decision_table() {
        use Vote::*;
        let deny = || Deny("x".into());
        assert!(decide([Allow]).is_ok());
        assert!(decide([Allow, Abstain]).is_ok());
        assert!(decide([Allow, deny()]).is_err());
        assert!(decide([Abstain]).is_err());
        assert!(decide([]).is_err());
    }

    #[test]
    fn anonymous_voter() {
        assert_eq!(anonymous_vote(&auth(Some(true)), None), Vote::Allow);
        assert_eq!(anonymous_vote(&auth(Some(false)), Some("u")), Vote::Allow);
        assert!(matches!(
            anonymous_vote(&auth(Some(false)), None),
            Vote::Deny(_)
        ));
        assert_eq!(anonymous_vote(&auth(None), None), Vote::Abstain);
    }
}

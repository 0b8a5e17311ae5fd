//! aMQTT's `TopicAccessControlListPlugin` rules: per-user pattern lists for subscribe (`acl`),
//! publish (`publish-acl`) and receive (`receive-acl`), matched with aMQTT's `topic_ac`.

use std::collections::BTreeMap;
use std::time::Duration;

use midge_examples::parse_duration;
use midge_plugin::Action;
use serde::{Deserialize, Deserializer};

/// Per-user pattern lists: user name (`anonymous` for clients without one) → allowed patterns.
pub(crate) type UserPatterns = BTreeMap<String, Vec<String>>;

/// The plugin's config section. Unknown keys are refused (aMQTT's configs are strict).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct AclConfig {
    /// SUBSCRIBE: allowed topic filters per user. Absent or empty: every subscription is denied
    /// (aMQTT's config-style default `acl: {}`). `subscribe-acl` is accepted as a synonym.
    #[serde(default, alias = "subscribe-acl")]
    pub(crate) acl: UserPatterns,
    /// PUBLISH: allowed topics per user. Absent or empty: every publish is allowed (aMQTT keeps
    /// hbmqtt's behaviour). aMQTT's `publish_acl` spelling is accepted too.
    #[serde(default, alias = "publish_acl")]
    pub(crate) publish_acl: UserPatterns,
    /// RECEIVE: allowed topics per user. Absent: every delivery is allowed (as in aMQTT, which
    /// never reads it); present, even empty, it is enforced like the others.
    #[serde(default, alias = "receive_acl")]
    pub(crate) receive_acl: Option<UserPatterns>,
    /// How long the broker may reuse an answer. Default `60s`; `0s` disables caching.
    #[serde(default = "default_cache_ttl", deserialize_with = "duration")]
    pub(crate) cache_ttl: Duration,
}

impl Default for AclConfig {
    fn default() -> Self {
        AclConfig {
            acl: UserPatterns::new(),
            publish_acl: UserPatterns::new(),
            receive_acl: None,
            cache_ttl: default_cache_ttl(),
        }
    }
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(60)
}

fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// aMQTT's `topic_ac(requested, allowed)`, level by level: `+` in the pattern matches any one
/// level (a `#` or `+` in the request included), `#` matches the rest, anything else must be
/// equal; the request must have every level the pattern has before a `#` (so `a` does not
/// match `a/#`) and no more than the pattern when it has no `#`.
pub(crate) fn topic_ac(requested: &str, allowed: &str) -> bool {
    let mut req = requested.split('/');
    let mut pat = allowed.split('/');
    loop {
        match (req.next(), pat.next()) {
            (None, None) => return true,
            (Some(_), Some("#")) => return true,
            (Some(r), Some(p)) if p == "+" || p == r => {}
            _ => return false,
        }
    }
}

/// A verdict with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Allowed.
    Allow,
    /// Denied, and why.
    Deny(String),
}

impl AclConfig {
    /// aMQTT's decision for `username` (None → `anonymous`) doing `action` on `topic`.
    pub(crate) fn check(&self, username: Option<&str>, topic: &str, action: Action) -> Answer {
        let user = username.unwrap_or("anonymous");
        let (list, name) = match action {
            Action::Publish if self.publish_acl.is_empty() => return Answer::Allow,
            Action::Publish => (&self.publish_acl, "publish-acl"),
            Action::Subscribe => (&self.acl, "acl"),
            Action::Receive => match &self.receive_acl {
                None => return Answer::Allow,
                Some(list) => (list, "receive-acl"),
            },
        };
        if topic.is_empty() {
            return Answer::Deny("empty topic".to_owned());
        }
        let patterns = list.get(user).map(Vec::as_slice).unwrap_or_default();
        if patterns.iter().any(|p| topic_ac(topic, p)) {
            Answer::Allow
        } else if patterns.is_empty() {
            Answer::Deny(format!("user {user:?} has no {name} entry"))
        } else {
            Answer::Deny(format!("{topic:?} matches no {name} pattern of {user:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ac_table() {
        // (requested, pattern, aMQTT's answer)
        let table = [
            ("a", "a", true),
            ("a", "b", false),
            ("a/b", "a/+", true),
            ("a/b/c", "a/+", false),
            ("a", "a/+", false),
            ("a", "a/#", false),
            ("a/b", "a/#", true),
            ("a/b/c", "a/#", true),
            ("a/#", "a/+", true),
            ("a/+", "a/+", true),
            ("a/#", "a/#", true),
            ("a/+", "a/b", false),
            ("#", "#", true),
            ("anything/at/all", "#", true),
            ("#", "+", true),
            ("a/b", "+/b", true),
            ("a/b", "+/+", true),
            ("a/b", "+", false),
            ("a/b/c", "a/+/c", true),
            ("a/x/d", "a/+/c", false),
            ("a/b", "a/b/#", false),
            ("a/b/c", "a/b/#", true),
            ("a/", "a/+", true),
            ("a/", "a/#", true),
            ("/a", "+/a", true),
            ("$SYS/x", "#", true),
            ("sensors/1/temp", "sensors/+/temp", true),
        ];
        for (req, pat, expected) in table {
            assert_eq!(topic_ac(req, pat), expected, "topic_ac({req:?}, {pat:?})");
        }
    }

    fn config(yaml: &str) -> AclConfig {
        serde_yaml::from_str(yaml).expect("valid config")
    }

    #[test]
    fn subscribe_without_acl_is_denied() {
        let cfg = AclConfig::default();
        assert!(matches!(
            cfg.check(Some("alice"), "a", Action::Subscribe),
            Answer::Deny(_)
        ));
        assert!(matches!(
            cfg.check(None, "a", Action::Subscribe),
            Answer::Deny(_)
        ));
    }

    #[test]
    fn publish_without_publish_acl_is_allowed() {
        let cfg = config("acl: {alice: [a]}");
        assert_eq!(
            cfg.check(Some("bob"), "x/y", Action::Publish),
            Answer::Allow
        );
        assert_eq!(cfg.check(None, "x", Action::Publish), Answer::Allow);
    }

    #[test]
    fn receive_only_when_configured() {
        let cfg = config("acl: {alice: [a]}");
        assert_eq!(cfg.check(Some("bob"), "x", Action::Receive), Answer::Allow);
        let cfg = config("receive-acl: {alice: ['in/#']}");
        assert_eq!(
            cfg.check(Some("alice"), "in/1", Action::Receive),
            Answer::Allow
        );
        assert!(matches!(
            cfg.check(Some("bob"), "in/1", Action::Receive),
            Answer::Deny(_)
        ));
        let cfg = config("receive-acl: {}");
        assert!(matches!(
            cfg.check(Some("alice"), "in/1", Action::Receive),
            Answer::Deny(_)
        ));
    }

    #[test]
    fn users_and_anonymous() {
        let cfg = config(
            "acl:\n  alice: ['a/#', 'b/+']\n  anonymous: [public/#]\n\
             publish-acl:\n  alice: [a/out]\n",
        );
        assert_eq!(
            cfg.check(Some("alice"), "a/x", Action::Subscribe),
            Answer::Allow
        );
        assert_eq!(
            cfg.check(Some("alice"), "b/#", Action::Subscribe),
            Answer::Allow
        );
        assert!(matches!(
            cfg.check(Some("alice"), "a", Action::Subscribe),
            Answer::Deny(_)
        ));
        assert!(matches!(
            cfg.check(Some("alice"), "#", Action::Subscribe),
            Answer::Deny(_)
        ));
        assert_eq!(
            cfg.check(None, "public/news", Action::Subscribe),
            Answer::Allow
        );
        assert!(matches!(
            cfg.check(Some("bob"), "public/news", Action::Subscribe),
            Answer::Deny(_)
        ));
        assert_eq!(
            cfg.check(Some("anonymous"), "public/x", Action::Subscribe),
            Answer::Allow
        );
        assert_eq!(
            cfg.check(Some("alice"), "a/out", Action::Publish),
            Answer::Allow
        );
        assert!(matches!(
            cfg.check(Some("alice"), "a/in", Action::Publish),
            Answer::Deny(_)
        ));
        assert!(matches!(
            cfg.check(None, "a/out", Action::Publish),
            Answer::Deny(_)
        ));
        assert!(matches!(
            cfg.check(Some("alice"), "", Action::Subscribe),
            Answer::Deny(_)
        ));
    }

    #[test]
    fn config_keys() {
        let cfg = config("publish_acl: {a: [x]}\ncache-ttl: 5s\nsubscribe-acl: {a: [y]}");
        assert_eq!(cfg.publish_acl["a"], ["x"]);
        assert_eq!(cfg.acl["a"], ["y"]);
        assert_eq!(cfg.cache_ttl, Duration::from_secs(5));
        assert_eq!(AclConfig::default().cache_ttl, Duration::from_secs(60));
        assert!(serde_yaml::from_str::<AclConfig>("acls: {}").is_err());
        assert!(serde_yaml::from_str::<AclConfig>("cache-ttl: 60").is_err());
        assert!(serde_yaml::from_str::<AclConfig>("acl: {}\nsubscribe-acl: {}").is_err());
    }
}

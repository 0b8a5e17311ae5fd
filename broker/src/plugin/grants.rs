//! Session grants: topic permissions an authenticator hands a session with its ALLOW, so the
//! broker decides PUBLISH / SUBSCRIBE / RECEIVE locally without a `CheckTopic` call (the rule is
//! in `auth.proto`, message `SessionGrants`).

use midge_proto::plugin::v1 as pb;

use super::decision::Action;
use crate::topic;

/// The merged grants of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Grants {
    publish: Vec<String>,
    subscribe: Vec<String>,
    receive: Vec<String>,
    exclusive: bool,
}

impl Grants {
    /// Adds a plugin's grants: patterns are united, `exclusive` if any plugin says so.
    pub(crate) fn merge(&mut self, grants: &pb::SessionGrants) {
        self.publish.extend(grants.publish.iter().cloned());
        self.subscribe.extend(grants.subscribe.iter().cloned());
        self.receive.extend(grants.receive.iter().cloned());
        self.exclusive |= grants.exclusive;
    }

    /// Whether no action has any pattern (nothing to enforce).
    pub(crate) fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.subscribe.is_empty() && self.receive.is_empty()
    }

    /// The local decision for `action` on `topic` (a topic name, or the filter for SUBSCRIBE):
    /// `Some(true)` when a pattern covers it, `Some(false)` when none does and the grants are
    /// exclusive, `None` (ask the plugins) otherwise or when the action has no patterns.
    pub(crate) fn decide(&self, action: Action, topic: &str) -> Option<bool> {
        let patterns = match action {
            Action::Publish => &self.publish,
            Action::Subscribe => &self.subscribe,
            Action::Receive => &self.receive,
        };
        if patterns.is_empty() {
            return None;
        }
        let covered = patterns.iter().any(|pattern| match action {
            Action::Subscribe => covers(pattern, topic),
            Action::Publish | Action::Receive => topic::matches(pattern, topic),
        });
        match (covered, self.exclusive) {
            (true, _) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        }
    }
}

/// Whether every topic matched by `filter` is also matched by `pattern` (`a/+` covers `a/b` and
/// `a/+`, not `a/#`).
fn covers(pattern: &str, filter: &str) -> bool {
    if filter.starts_with('$') != pattern.starts_with('$') && pattern.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    for pattern_level in pattern.split('/') {
        match (pattern_level, filter_levels.next()) {
            ("#", _) => return true,
            ("+", Some(level)) if level != "#" => {}
            (p, Some(f)) if p == f && f != "+" && f != "#" => {}
            _ => return false,
        }
    }
    filter_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(publish: &[&str], subscribe: &[&str], exclusive: bool) -> Grants {
        let mut g = Grants::default();
        g.merge(&pb::SessionGrants {
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            receive: Vec::new(),
            exclusive,
        });
        g
    }

    #[test]
    fn coverage_table() {
        let cases = [
            ("a/+", "a/b", true),
            ("a/+", "a/+", true),
            ("a/+", "a/#", false),
            ("a/#", "a/#", true),
            ("a/#", "a/b/+", true),
            ("#", "x/y", true),
            ("a/b", "a/+", false),
            ("a/b", "a/b", true),
            ("+/b", "$SYS/b", false),
        ];
        for (pattern, filter, expected) in cases {
            assert_eq!(
                covers(pattern, filter),
                expected,
                "{pattern} covers {filter}"
            );
        }
    }

    #[test]
    fn decisions_follow_the_contract() {
        let open = grants(&["c1/#"], &[], false);
        assert_eq!(open.decide(Action::Publish, "c1/t"), Some(true));
        assert_eq!(
            open.decide(Action::Publish, "c2/t"),
            None,
            "not exclusive: ask the plugins"
        );
        assert_eq!(
            open.decide(Action::Subscribe, "c2/t"),
            None,
            "no subscribe patterns"
        );
        let closed = grants(&["c1/#"], &["c1/+"], true);
        assert_eq!(closed.decide(Action::Publish, "c2/t"), Some(false));
        assert_eq!(closed.decide(Action::Subscribe, "c1/#"), Some(false));
        assert_eq!(closed.decide(Action::Subscribe, "c1/x"), Some(true));
        assert_eq!(
            closed.decide(Action::Receive, "c9"),
            None,
            "exclusive applies only to listed actions"
        );
    }
}

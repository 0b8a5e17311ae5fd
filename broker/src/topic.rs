//! Topic names and topic filters: validation and matching rules (MQTT §4.7).

/// Whether `topic` is a valid topic name for PUBLISH: non-empty, no wildcards ([MQTT-4.7.3-1],
/// [MQTT-3.3.2-2]), no U+0000 ([MQTT-4.7.3-2]).
pub(crate) fn is_valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// Whether `filter` is a valid topic filter for SUBSCRIBE: non-empty, `#` only as the whole last
/// level ([MQTT-4.7.1-2]), `+` only as a whole level ([MQTT-4.7.1-3]), no U+0000.
pub(crate) fn is_valid_topic_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "#" if !last => return false,
            "#" | "+" => {}
            other if other.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// Whether the topic name `topic` matches the topic filter `filter`.
///
/// Topics starting with `$` are not matched by a filter whose first level is a wildcard
/// ([MQTT-4.7.2-1]).
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        match (filter_level, topic_levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// Whether `filter` names an MQTT 5 shared subscription (`$share/...`, valid or not).
pub(crate) fn is_shared(filter: &str) -> bool {
    filter.starts_with("$share/")
}

/// Splits a shared subscription `$share/{group}/{filter}` into its group and filter, or `None`
/// if it is not a valid one: the group is non-empty without `+`, `#` or `/`, and the filter is
/// a valid topic filter ([MQTT-4.8.2-1], [MQTT-4.8.2-2]).
pub(crate) fn split_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix("$share/")?;
    let (group, inner) = rest.split_once('/')?;
    let group_ok = !group.is_empty() && !group.contains(['+', '#']);
    (group_ok && is_valid_topic_filter(inner)).then_some((group, inner))
}

/// Whether `filter` contains a wildcard (so it can match more than one topic).
pub(crate) fn has_wildcards(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_subscriptions_split_into_group_and_filter() {
        assert_eq!(split_shared("$share/g/a/+"), Some(("g", "a/+")));
        assert_eq!(split_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(split_shared("$share/g"), None);
        assert_eq!(split_shared("$share//a"), None);
        assert_eq!(split_shared("$share/g+/a"), None);
        assert_eq!(split_shared("$share/g/a#"), None);
        assert_eq!(split_shared("a/b"), None);
        assert!(is_shared("$share/x") && !is_shared("$sharex/a"));
    }

    #[test]
    fn filter_matching_table() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "/x", true),
            ("+", "/x", false),
            ("/+", "/x", true),
            ("a/+/c", "a//c", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("a/b", "a/b/", false),
            ("a/b/", "a/b/", true),
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), expected, "{filter} vs {topic}");
        }
    }

    #[test]
    fn filter_validation_table() {
        for ok in ["#", "+", "a/+/b", "a/#", "/", "+/+", "$SYS/#", "a//b"] {
            assert!(is_valid_topic_filter(ok), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "#/", "a\0b"] {
            assert!(!is_valid_topic_filter(bad), "{bad:?}");
        }
    }

    #[test]
    fn topic_name_validation() {
        assert!(is_valid_topic_name("a/b"));
        assert!(is_valid_topic_name("/"));
        assert!(!is_valid_topic_name(""));
        assert!(!is_valid_topic_name("a/+"));
        assert!(!is_valid_topic_name("a/#"));
    }
}

//! Topic name and topic filter syntax (spec §4.7), shared by every protocol version.
//!
//! These check only what the spec requires of every packet; policy (maximum levels, `$`
//! topics, ACLs) belongs to the broker. The checks work on bytes: `+`, `#` and `/` are ASCII, and
//! an ASCII byte never occurs inside a multi-byte UTF-8 sequence.

use crate::codec::error::DecodeError;
use crate::codec::primitives::ensure;

/// Checks a topic name as used in PUBLISH and in a will: at least one character
/// ([MQTT-4.7.3-1]) and no wildcard characters ([MQTT-3.3.2-2], [MQTT-4.7.1-1]).
pub fn validate_topic_name(topic: &str) -> Result<(), DecodeError> {
    ensure!(!topic.is_empty(), DecodeError::EmptyTopic);
    ensure!(
        !topic.bytes().any(|b| b == b'+' || b == b'#'),
        DecodeError::WildcardInTopicName
    );
    Ok(())
}

/// Checks a topic filter as used in SUBSCRIBE and UNSUBSCRIBE: at least one character
/// ([MQTT-4.7.3-1]), `#` only as the whole last level ([MQTT-4.7.1-2]) and `+` only as a whole
/// level ([MQTT-4.7.1-3]).
pub fn validate_topic_filter(filter: &str) -> Result<(), DecodeError> {
    ensure!(!filter.is_empty(), DecodeError::EmptyTopic);
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') {
            ensure!(
                level == "#" && levels.peek().is_none(),
                DecodeError::MisplacedMultiLevelWildcard
            );
        } else if level.contains('+') {
            ensure!(level == "+", DecodeError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        let cases: &[(&str, Result<(), DecodeError>)] = &[
            ("a", Ok(())),
            ("/", Ok(())),
            ("a//b/", Ok(())),
            ("$SYS/x", Ok(())),
            ("sport/tennis/\u{1F3BE}", Ok(())),
            ("", Err(DecodeError::EmptyTopic)),
            ("a/+", Err(DecodeError::WildcardInTopicName)),
            ("#", Err(DecodeError::WildcardInTopicName)),
            ("a#b", Err(DecodeError::WildcardInTopicName)),
        ];
        for (topic, expected) in cases {
            assert_eq!(validate_topic_name(topic), *expected, "{topic:?}");
        }
    }

    #[test]
    fn topic_filters() {
        let multi = Err(DecodeError::MisplacedMultiLevelWildcard);
        let single = Err(DecodeError::MisplacedSingleLevelWildcard);
        let cases: &[(&str, Result<(), DecodeError>)] = &[
            ("#", Ok(())),
            ("+", Ok(())),
            ("/", Ok(())),
            ("sport/#", Ok(())),
            ("sport/tennis/+", Ok(())),
            ("+/+", Ok(())),
            ("/+", Ok(())),
            ("+/tennis/#", Ok(())),
            ("sport//#", Ok(())),
            ("", Err(DecodeError::EmptyTopic)),
            ("sport/tennis#", multi.clone()),
            ("sport/tennis/#/ranking", multi.clone()),
            ("#/", multi.clone()),
            ("##", multi.clone()),
            ("+#", multi),
            ("sport+", single.clone()),
            ("sport/+tennis", single.clone()),
            ("++", single),
        ];
        for (filter, expected) in cases {
            assert_eq!(validate_topic_filter(filter), *expected, "{filter:?}");
        }
    }
}

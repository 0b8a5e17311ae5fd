//! Durations written with a unit: `250ms`, `5s`, `1m`, `2h`, or combined from largest to
//! smallest unit, as in `1m30s`.
//!
//! A bare number is refused: `timeout: 10` could mean seconds or milliseconds, and guessing
//! wrong by a factor of 1000 is worse than asking for a unit.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// The units a duration may use, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// What every "not a duration" error suggests instead.
const EXAMPLES: &str = "a number with a unit (ms, s, m, h), e.g. `250ms`, `5s` or `1m30s`";

/// Deserializes a duration such as `"250ms"`; `0s` is allowed.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(DurationVisitor { allow_zero: true })
}

/// Deserializes a duration such as `"250ms"` that must be longer than zero.
pub(super) fn deserialize_non_zero<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(DurationVisitor { allow_zero: false })
}

/// Parses `250ms`, `5s`, `1m30s`, ... into a [`Duration`]; the error is a reason for a human.
pub(super) fn parse(text: &str) -> Result<Duration, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}` has no unit: write `{text}s` or `{text}ms`"
        ));
    }
    if text.contains('.') {
        return Err(format!(
            "`{text}` has a fraction: use a smaller unit instead, e.g. `1500ms` for 1.5s"
        ));
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("`{text}` is not a duration: expected {EXAMPLES}"));
    }

    let mut millis: u64 = 0;
    // Index into UNITS of the previous unit: each unit must be smaller than the one before.
    let mut previous: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        rest = &rest[digits + unit_len..];

        if number.is_empty() {
            return Err(format!("`{text}` is not a duration: expected {EXAMPLES}"));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use ms, s, m or h"
            ));
        };
        if previous.is_some_and(|p| p >= index) {
            return Err(format!(
                "units in `{text}` must go from largest to smallest, each once, as in `1h30m`"
            ));
        }
        previous = Some(index);

        let too_large = || format!("`{text}` is too large");
        let count: u64 = number.parse().map_err(|_| too_large())?;
        millis = count
            .checked_mul(UNITS[index].1)
            .and_then(|part| millis.checked_add(part))
            .ok_or_else(too_large)?;
    }
    Ok(Duration::from_millis(millis))
}

/// Reads a duration from a string. Numbers are refused with a hint to add a unit; everything
/// is checked inside the visitor so that serde_yaml reports the value's own position.
struct DurationVisitor {
    allow_zero: bool,
}

impl DurationVisitor {
    fn no_unit<E: de::Error>(value: impl fmt::Display) -> E {
        E::custom(format_args!(
            "`{value}` has no unit: write `{value}s` or `{value}ms`"
        ))
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXAMPLES)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
        let duration = parse(value).map_err(E::custom)?;
        if !self.allow_zero && duration.is_zero() {
            return Err(E::custom("must be longer than 0s"));
        }
        Ok(duration)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Duration, E> {
        Err(Self::no_unit(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Duration, E> {
        Err(Self::no_unit(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Duration, E> {
        Err(E::custom(format_args!(
            "`{value}` is not a duration: expected {EXAMPLES}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_combinations() {
        let cases = [
            ("0s", Duration::ZERO),
            ("0ms", Duration::ZERO),
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("1m", Duration::from_secs(60)),
            ("2h", Duration::from_secs(7200)),
            ("1m30s", Duration::from_secs(90)),
            ("1h1m1s1ms", Duration::from_millis(3_661_001)),
            ("90s", Duration::from_secs(90)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_malformed_durations_with_a_reason() {
        let cases = [
            ("10", "has no unit: write `10s` or `10ms`"),
            ("1.5s", "use a smaller unit"),
            ("", "is not a duration"),
            ("5 s", "is not a duration"),
            ("-5s", "is not a duration"),
            ("s", "is not a duration"),
            ("5sec", "unknown unit `sec`"),
            ("5d", "unknown unit `d`"),
            ("30s1m", "largest to smallest"),
            ("1s1s", "largest to smallest"),
            ("99999999999999999999s", "too large"),
            ("5124095576030432h", "too large"),
        ];
        for (text, reason) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}

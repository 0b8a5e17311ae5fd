//! What a plugin answers is untrusted input, like a client's bytes: a plugin is a separate
//! program, perhaps another team's. Its strings are cleaned here, where its answers enter the
//! broker, so the rest of the broker only ever sees strings it can pass on.
//!
//! A string that may reach a client (a DENY reason in CONNACK, a `DisconnectControl` reason in
//! DISCONNECT, the properties of a published message) becomes a valid MQTT UTF-8 string
//! (§1.5.4): at most 65,535 bytes, cut on a character boundary, without U+0000 (which MQTT
//! forbids, [MQTT-1.5.4-2]) nor the code points a receiver may treat as malformed (the controls
//! U+0001..U+001F and U+007F..U+009F, and the Unicode non-characters). Tabs and line breaks
//! become spaces, every other such code point U+FFFD. What reaches the log is escaped by the
//! log format itself (see `midge::logging`).

use std::borrow::Cow;

use midge_proto::plugin::v1 as pb;

/// The longest MQTT UTF-8 string or binary field: a two-byte length prefix (§1.5.4, §1.5.6).
pub(crate) const MAX_FIELD: usize = 65_535;

/// `text` as a valid MQTT UTF-8 string for a client (see the module docs). Borrows when
/// nothing needs changing.
pub(crate) fn client_text(text: &str) -> Cow<'_, str> {
    let clean = truncate(text, MAX_FIELD);
    if !clean.chars().any(forbidden) {
        return Cow::Borrowed(clean);
    }
    let mut out = String::with_capacity(clean.len());
    for c in clean.chars() {
        out.push(match c {
            '\t' | '\n' | '\r' => ' ',
            c if forbidden(c) => char::REPLACEMENT_CHARACTER,
            c => c,
        });
    }
    // U+FFFD takes three bytes where a control took one or two: cut again.
    let len = truncate(&out, MAX_FIELD).len();
    out.truncate(len);
    Cow::Owned(out)
}

/// [`client_text`] in place, allocating only when something changes.
pub(crate) fn clean(text: &mut String) {
    match client_text(text) {
        Cow::Owned(clean) => *text = clean,
        Cow::Borrowed(clean) => {
            let len = clean.len();
            text.truncate(len);
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether MQTT forbids `c` ([MQTT-1.5.4-2]) or lets a receiver treat it as malformed (§1.5.4).
fn forbidden(c: char) -> bool {
    let code = u32::from(c);
    c.is_control() // U+0000..U+001F and U+007F..U+009F
        || (0xFDD0..=0xFDEF).contains(&code)
        || code & 0xFFFE == 0xFFFE
}

/// Cleans the strings of a control message that can reach clients: a disconnect's reason (the
/// DISCONNECT reason string) and a publish's properties. Topics are checked, not changed, by
/// the control's handler.
pub(crate) fn control(control: &mut pb::Control) {
    match &mut control.action {
        Some(pb::control::Action::Disconnect(disconnect)) => clean(&mut disconnect.reason),
        Some(pb::control::Action::Publish(publish)) => {
            if let Some(p) = publish.properties.as_mut() {
                clean(&mut p.content_type);
                clean(&mut p.response_topic);
                for user in &mut p.user_properties {
                    clean(&mut user.key);
                    clean(&mut user.value);
                }
            }
        }
        Some(pb::control::Action::Invalidate(_)) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(
            client_text("fine, é ✓"),
            Cow::Borrowed("fine, é ✓")
        ));
    }

    #[test]
    fn forbidden_code_points_are_replaced() {
        assert_eq!(
            client_text("a\0b\nc\r\td\u{7}e\u{85}f\u{FFFF}g\u{FDD0}h\u{1FFFE}"),
            "a\u{FFFD}b c  d\u{FFFD}e\u{FFFD}f\u{FFFD}g\u{FFFD}h\u{FFFD}"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        // 'é' is two bytes: 32,768 of them are 65,536 bytes, one too many.
        let long = "é".repeat(32_768);
        let cut = client_text(&long);
        assert_eq!(cut.len(), 65_534);
        assert!(cut.chars().all(|c| c == 'é'));
        // Replacements that grow the text are cut again.
        let nulls = "\0".repeat(70_000);
        let cut = client_text(&nulls);
        assert!(cut.len() <= MAX_FIELD, "{}", cut.len());
        assert!(cut.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
    }

    #[test]
    fn clean_in_place() {
        let mut text = "x".repeat(70_000);
        clean(&mut text);
        assert_eq!(text.len(), MAX_FIELD);
        let mut text = String::from("a\nb");
        clean(&mut text);
        assert_eq!(text, "a b");
    }

    #[test]
    fn control_strings_are_cleaned() {
        let mut control = pb::Control {
            action: Some(pb::control::Action::Disconnect(pb::DisconnectControl {
                client_id: "c\0".into(),
                reason: "bye\0now".into(),
            })),
        };
        super::control(&mut control);
        let Some(pb::control::Action::Disconnect(d)) = control.action else {
            panic!("still a disconnect");
        };
        assert_eq!(d.reason, "bye\u{FFFD}now");
        assert_eq!(d.client_id, "c\0", "ids are looked up, not sent");
    }
}

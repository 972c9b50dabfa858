//! What a client's free text (a key's name, an organization's, a description, a reason) may
//! not contain: control characters, and the bidirectional formatting characters that make text
//! display in another order than it is stored (a name that reads "admin key" in a console or an
//! audit export but is something else).

/// Why `text` is refused, if it is.
pub(crate) fn unsafe_text(text: &str, allow_newline: bool) -> Option<&'static str> {
    for c in text.chars() {
        if c.is_control() && !(allow_newline && c == '\n') {
            return Some("control characters are not allowed");
        }
        if is_bidi_control(c) {
            return Some("bidirectional formatting characters are not allowed");
        }
    }
    None
}

/// Whether `text` may be stored as a client's free text (newlines allowed where `multiline`).
pub fn is_free_text(text: &str, multiline: bool) -> bool {
    unsafe_text(text, multiline).is_none()
}

/// The Unicode bidirectional formatting characters: marks, embeddings, overrides, isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_refused() {
        assert_eq!(unsafe_text("Production API", false), None);
        assert_eq!(unsafe_text("clé d'équipe 🔑", false), None);
        assert!(unsafe_text("tab\there", false).is_some());
        assert!(unsafe_text("line\nbreak", false).is_some());
        assert_eq!(unsafe_text("line\nbreak", true), None);
        for bidi in ["\u{202E}yek nimda", "a\u{2066}b", "\u{200F}x"] {
            assert_eq!(
                unsafe_text(bidi, true),
                Some("bidirectional formatting characters are not allowed"),
                "{bidi:?}"
            );
        }
    }
}

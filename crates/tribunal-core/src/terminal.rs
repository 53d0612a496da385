//! Text from traces and files, made safe to print on a terminal.

use std::borrow::Cow;

/// Does printing `c` change what the terminal shows elsewhere: C0 controls (newline and tab
/// included: they break a table's rows), DEL, C1 controls, and the bidirectional marks,
/// embeddings, overrides and isolates that reorder the text around them.
fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{200e}' | '\u{200f}' | '\u{061c}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `s` with every character that could move the cursor, recolour, hide or reorder text
/// written as a visible `\u{..}` (`\u{1b}` for ESC). Everything a table or text report
/// prints that came from input (trace ids, sources, rule names, messages) goes through it.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn controls_and_bidi_overrides_are_visible() {
        assert_eq!(escape("refund-ok"), "refund-ok");
        assert_eq!(
            escape("\u{1b}[2K\rallow\u{1b}[8m"),
            "\\u{1b}[2K\\u{d}allow\\u{1b}[8m"
        );
        assert_eq!(
            escape("a\u{7f}\u{9b}b\nc\t"),
            "a\\u{7f}\\u{9b}b\\u{a}c\\u{9}"
        );
        assert_eq!(
            escape("x\u{202e}y\u{2066}z\u{2069}é"),
            "x\\u{202e}y\\u{2066}z\\u{2069}é"
        );
    }
}

//! Every piece of text in a trace, with where it sits: the one walk all detectors share.

use serde_json::Value;
use tribunal_core::{Location, Message, Pending, Trace};

/// One piece of text to scan and the location template for findings inside it.
#[derive(Debug, Clone)]
pub struct TextRef<'a> {
    pub text: &'a str,
    /// `start`/`end` are 0 here; detectors fill in the byte range of each finding.
    pub location: Location,
}

/// Calls `f` for every message content and every string inside tool-call arguments, in
/// trace order, then for the pending step.
pub fn for_each_text<'a>(
    trace: &'a Trace,
    pending: Option<&'a Pending>,
    mut f: impl FnMut(TextRef<'_>),
) {
    for m in &trace.messages {
        message_texts(m, &mut f);
    }
    if let Some(p) = pending {
        let m = p.as_message();
        message_texts(&m, &mut f);
    }
}

fn message_texts(m: &Message, f: &mut impl FnMut(TextRef<'_>)) {
    let provenance = m.provenance.label().to_owned();
    if !m.content.is_empty() {
        f(TextRef {
            text: &m.content,
            location: Location {
                id: m.id.clone(),
                field: "content".into(),
                tool_call_id: None,
                tool: None,
                provenance: provenance.clone(),
                start: 0,
                end: 0,
            },
        });
    }
    for c in &m.tool_calls {
        let loc = Location {
            id: m.id.clone(),
            field: "arguments".into(),
            tool_call_id: Some(c.id.clone()),
            tool: Some(c.name.clone()),
            provenance: provenance.clone(),
            start: 0,
            end: 0,
        };
        string_leaves(&c.arguments, &mut |s| {
            f(TextRef {
                text: s,
                location: loc.clone(),
            })
        });
    }
}

/// Every string inside a JSON value (object keys excluded). A list of two strings or more
/// and nothing else — a command and its arguments, `["rm", "-rf", "/"]` — is one text, its
/// strings joined by spaces: the program it runs reads them together.
pub fn string_leaves(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) if a.len() >= 2 && a.iter().all(Value::is_string) => {
            let words: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            f(&words.join(" "))
        }
        Value::Array(a) => a.iter().for_each(|x| string_leaves(x, f)),
        Value::Object(o) => o.values().for_each(|x| string_leaves(x, f)),
        _ => {}
    }
}

/// A short excerpt around a byte range, with secrets masked: the first four characters are
/// kept and the rest replaced by `*`.
pub fn masked_excerpt(text: &str, start: usize, end: usize) -> String {
    let matched = &text[start..end];
    let keep: String = matched.chars().take(4).collect();
    let hidden = matched.chars().count().saturating_sub(4).min(12);
    format!("{keep}{}", "*".repeat(hidden))
}

/// A short excerpt around a byte range, shown as it is (for non-secret findings).
pub fn plain_excerpt(text: &str, start: usize, end: usize) -> String {
    let mut s = start.saturating_sub(20);
    while !text.is_char_boundary(s) {
        s -= 1;
    }
    let mut e = (end + 20).min(text.len());
    while !text.is_char_boundary(e) {
        e += 1;
    }
    text[s..e].replace('\n', " ")
}

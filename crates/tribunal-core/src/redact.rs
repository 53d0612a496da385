//! Secrets kept out of what is printed or stored: the password of a URL
//! (`postgres://user:secret@host/db`) and the values of `password=`, `token=`, `api_key=`
//! and `secret=` settings in connection strings and query strings.

use std::borrow::Cow;

const KEYS: &[&str] = &[
    "password", "passwd", "pwd", "token", "api_key", "apikey", "secret",
];
const MASK: &str = "***";

/// `text` with every URL password and secret setting replaced by `***`.
pub fn secrets(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut rest_start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    // (start, end) byte ranges to mask, in order.
    let mut masks: Vec<(usize, usize)> = Vec::new();
    while i < bytes.len() {
        if bytes[i..].starts_with(b"://") {
            // userinfo runs to the first '@' before any '/', '?', '#' or whitespace.
            let start = i + 3;
            let end = bytes[start..]
                .iter()
                .position(|b| matches!(b, b'/' | b'?' | b'#' | b' ' | b'\t' | b'\n' | b'"' | b'\''))
                .map_or(bytes.len(), |p| start + p);
            if let Some(at) = bytes[start..end].iter().rposition(|b| *b == b'@') {
                let at = start + at;
                if let Some(colon) = bytes[start..at].iter().position(|b| *b == b':') {
                    let colon = start + colon;
                    if colon + 1 < at {
                        masks.push((colon + 1, at));
                    }
                }
            }
            i = start;
            continue;
        }
        if bytes[i] == b'=' {
            let key_start = bytes[..i]
                .iter()
                .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'))
                .map_or(0, |p| p + 1);
            let key = &text[key_start..i];
            if KEYS.iter().any(|k| key.eq_ignore_ascii_case(k)) {
                let start = i + 1;
                let end = bytes[start..]
                    .iter()
                    .position(|b| matches!(b, b'&' | b';' | b' ' | b'\t' | b'\n' | b'"' | b'\''))
                    .map_or(bytes.len(), |p| start + p);
                if end > start {
                    masks.push((start, end));
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    masks.sort_unstable();
    for (start, end) in masks {
        if start < rest_start {
            continue;
        }
        let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
        o.push_str(&text[rest_start..start]);
        o.push_str(MASK);
        rest_start = end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[rest_start..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::secrets;

    #[test]
    fn passwords_and_secret_settings_are_masked() {
        for (input, expected) in [
            (
                "postgres://app:s3cr%40t@db.internal:5432/test",
                "postgres://app:***@db.internal:5432/test",
            ),
            (
                "opening the store at postgres://u:p@h/db failed",
                "opening the store at postgres://u:***@h/db failed",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "https://h/x?a=1&password=hunter2&b=2",
                "https://h/x?a=1&password=***&b=2",
            ),
            (
                "host=h user=u password=hunter2 dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
            (
                "tribunal eval --db sqlite://x.db t.jsonl",
                "tribunal eval --db sqlite://x.db t.jsonl",
            ),
            ("no secrets here: a=b", "no secrets here: a=b"),
            ("ünïcode://ü:ß@h", "ünïcode://ü:***@h"),
            ("TOKEN=abc", "TOKEN=***"),
        ] {
            assert_eq!(secrets(input), expected, "{input}");
        }
    }
}

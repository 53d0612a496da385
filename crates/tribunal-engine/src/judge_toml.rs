//! Judge definitions between their stored form (a kind and settings as JSON) and the
//! `[judges.NAME]` tables of a `tribunal.toml`: writing a table, reading the declared
//! tables back, and comparing two definitions (the settings that changed, and a unified
//! diff of their tables). Settings are kept canonical (object keys sorted), so a definition
//! hashes the same whichever way it arrived.

use crate::config::{Config, ConfigError};
use serde_json::{Map, Value};
use std::fmt::Write as _;
use tribunal_judges::JudgeSpec;

/// Keys of a `[judges.NAME]` table that are not the judge's settings.
pub const RESERVED_KEYS: &[&str] = &["kind", "enabled", "optional", "on_error", "on_untrusted"];

/// Why a definition cannot be a `[judges.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JudgeTomlError {
    #[error("name: expected 1 to 128 letters, digits, _ or -, found {0:?}")]
    Name(String),
    #[error("settings: expected an object of settings, found {0}")]
    NotAnObject(&'static str),
    #[error("{path}: null cannot be written in tribunal.toml; leave the setting out")]
    Null { path: String },
    #[error("{path}: {number} does not fit a TOML number (64-bit integer or float)")]
    Number { path: String, number: String },
    #[error("{path}: `{key}` belongs to the table, not to the judge's settings")]
    Reserved { path: String, key: String },
}

/// Whether `name` can name a judge (a bare TOML key): letters, digits, `_` and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks that `name` can name a judge ([`valid_name`]): the one check of judge names, in
/// `[judges.NAME]` tables written or imported and in the server's judge API.
pub fn check_name(name: &str) -> Result<(), JudgeTomlError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(JudgeTomlError::Name(name.to_owned()))
    }
}

/// `v` with every object's keys in sorted order.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut m = Map::new();
            for k in keys {
                m.insert(k.clone(), canonical(&o[k]));
            }
            Value::Object(m)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Checks that `settings` is an object that can be written as a table (no nulls, numbers
/// TOML can hold, no reserved keys) and returns it canonical.
pub fn check_settings(settings: &Value) -> Result<Value, JudgeTomlError> {
    let Value::Object(o) = settings else {
        return Err(JudgeTomlError::NotAnObject(type_name(settings)));
    };
    for k in o.keys() {
        if RESERVED_KEYS.contains(&k.as_str()) {
            return Err(JudgeTomlError::Reserved {
                path: format!("settings.{k}"),
                key: k.clone(),
            });
        }
    }
    check_value("settings", settings)?;
    Ok(canonical(settings))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_value(path: &str, v: &Value) -> Result<(), JudgeTomlError> {
    match v {
        Value::Null => Err(JudgeTomlError::Null { path: path.into() }),
        Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_some() => {
            Err(JudgeTomlError::Number {
                path: path.into(),
                number: n.to_string(),
            })
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_value(&format!("{path}[{i}]"), x)),
        Value::Object(o) => o
            .iter()
            .try_for_each(|(k, x)| check_value(&format!("{path}.{k}"), x)),
        _ => Ok(()),
    }
}

/// The spec of a definition (settings made canonical), as the registry builds and hashes it.
pub fn spec(name: &str, kind: &str, settings: &Value) -> JudgeSpec {
    JudgeSpec {
        name: name.to_owned(),
        kind: kind.to_owned(),
        params: canonical(settings),
    }
}

/// The `[judges.NAME]` table of a definition: `kind` first, then the settings (strings with
/// line breaks as multi-line strings, one line of text per line of the table).
pub fn table_text(name: &str, kind: &str, settings: &Value) -> Result<String, JudgeTomlError> {
    check_name(name)?;
    let settings = check_settings(settings)?;
    let mut out = format!("[judges.{name}]\nkind = {}\n", basic_string(kind));
    if let Value::Object(o) = &settings {
        for (k, v) in o {
            let value = match v {
                Value::String(s) if s.contains('\n') => multiline_string(s),
                other => inline(other),
            };
            let _ = writeln!(out, "{} = {value}", key(k));
        }
    }
    Ok(out)
}

fn key(k: &str) -> String {
    if valid_name(k) {
        k.to_owned()
    } else {
        basic_string(k)
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => format!("{f:?}"),
            (None, None) => n.to_string(),
        },
        Value::String(s) => basic_string(s),
        Value::Array(a) => format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Value::Object(o) if o.is_empty() => "{}".into(),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn escape(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' if keep_newlines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn basic_string(s: &str) -> String {
    format!("\"{}\"", escape(s, false))
}

/// A multi-line basic string: the newline after the opening quotes is not part of it.
fn multiline_string(s: &str) -> String {
    format!("\"\"\"\n{}\"\"\"", escape(s, true))
}

/// The judges a configuration declares in its `[judges.*]` tables (not the defaults it
/// leaves alone), each with its kind and settings; tables with `enabled = false` are left
/// out and named in the second list. `optional` and `on_error` are not settings.
pub fn declared(cfg: &Config) -> Result<(Vec<JudgeSpec>, Vec<String>), ConfigError> {
    let mut specs = Vec::new();
    let mut disabled = Vec::new();
    for (name, table) in &cfg.judges {
        match cfg.table_spec(name, table)? {
            Some(mut s) => {
                s.params = canonical(&s.params);
                specs.push(s);
            }
            None => disabled.push(name.clone()),
        }
    }
    Ok((specs, disabled))
}

/// One difference between two definitions: `kind`, or `settings.KEY` (nested objects by
/// their keys); a side without it is null.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub path: String,
    pub from: Value,
    pub to: Value,
}

/// What changed from one definition to another, in path order.
pub fn changes(
    from_kind: &str,
    from_settings: &Value,
    to_kind: &str,
    to_settings: &Value,
) -> Vec<Change> {
    let mut out = Vec::new();
    if from_kind != to_kind {
        out.push(Change {
            path: "kind".into(),
            from: from_kind.into(),
            to: to_kind.into(),
        });
    }
    compare("settings", from_settings, to_settings, &mut out);
    out
}

fn compare(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                compare(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a == b => {}
        _ => out.push(Change {
            path: path.to_owned(),
            from: a.clone(),
            to: b.clone(),
        }),
    }
}

/// Lines compared one by one above this many pairs; beyond it the diff shows the whole
/// texts replaced.
const DIFF_CELLS: usize = 4_000_000;
const CONTEXT: usize = 3;

/// A unified diff of two texts by lines (three lines of context), empty when they are the
/// same.
pub fn unified_diff(a: &str, b: &str, from_label: &str, to_label: &str) -> String {
    if a == b {
        return String::new();
    }
    let x: Vec<&str> = a.lines().collect();
    let y: Vec<&str> = b.lines().collect();
    let ops = line_ops(&x, &y);
    let mut out = format!("--- {from_label}\n+++ {to_label}\n");
    let changed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].0 != ' ').collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut end = (changed[i] + CONTEXT + 1).min(ops.len());
        while i + 1 < changed.len() && changed[i + 1] <= end + CONTEXT {
            i += 1;
            end = (changed[i] + CONTEXT + 1).min(ops.len());
        }
        i += 1;
        let before = |n: usize, side: char| {
            ops[..n]
                .iter()
                .filter(|o| o.0 == ' ' || o.0 == side)
                .count()
        };
        let (a0, b0) = (before(start, '-'), before(start, '+'));
        let a_len = ops[start..end].iter().filter(|o| o.0 != '+').count();
        let b_len = ops[start..end].iter().filter(|o| o.0 != '-').count();
        let pos = |first: usize, len: usize| if len == 0 { first } else { first + 1 };
        let _ = writeln!(
            out,
            "@@ -{},{a_len} +{},{b_len} @@",
            pos(a0, a_len),
            pos(b0, b_len)
        );
        for (tag, line) in &ops[start..end] {
            let _ = writeln!(out, "{tag}{line}");
        }
    }
    out
}

/// The edit script from `x` to `y`: kept (' '), removed ('-') and added ('+') lines, by
/// longest common subsequence.
fn line_ops<'a>(x: &[&'a str], y: &[&'a str]) -> Vec<(char, &'a str)> {
    let (n, m) = (x.len(), y.len());
    if n.saturating_mul(m) > DIFF_CELLS {
        return x
            .iter()
            .map(|l| ('-', *l))
            .chain(y.iter().map(|l| ('+', *l)))
            .collect();
    }
    // lcs[i][j]: the longest common subsequence of x[i..] and y[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if x[i] == y[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && x[i] == y[j] {
            ops.push((' ', x[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
            ops.push(('+', y[j]));
            j += 1;
        } else {
            ops.push(('-', x[i]));
            i += 1;
        }
    }
    // Removals before additions within a run of changes, as diff tools show them.
    let mut k = 0;
    while k < ops.len() {
        if ops[k].0 == ' ' {
            k += 1;
            continue;
        }
        let end = ops[k..]
            .iter()
            .position(|o| o.0 == ' ')
            .map_or(ops.len(), |p| k + p);
        ops[k..end].sort_by_key(|o| o.0 != '-');
        k = end;
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_reads_back_as_the_same_definition() {
        let settings = json!({
            "instructions": "Line one with \"quotes\" and a \\ backslash\nline two\t\"\"\"\n",
            "output": "yes_no",
            "max_retries": 0,
            "temperature": 0.25,
            "big": 1e20,
            "guidelines": ["a", "b \"c\""],
            "prices": {"llama 3": {"input_per_million": 0.1}},
            "flag": true,
            "empty": {},
        });
        let text = table_text("my-judge_1", "llm", &settings).unwrap();
        assert!(
            text.starts_with("[judges.my-judge_1]\nkind = \"llm\"\n"),
            "{text}"
        );
        let cfg = Config::parse(&text, "t.toml").unwrap();
        let (specs, disabled) = declared(&cfg).unwrap();
        assert!(disabled.is_empty());
        assert_eq!(specs.len(), 1);
        let original = spec("my-judge_1", "llm", &settings);
        assert_eq!(specs[0], original);
        assert_eq!(specs[0].version(), original.version());
    }

    #[test]
    fn what_cannot_be_a_table_is_named() {
        let e = table_text("a", "llm", &json!({"model": null})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "settings.model: null cannot be written in tribunal.toml; leave the setting out"
        );
        let e = table_text("a", "llm", &json!({"x": [1, {"y": null}]})).unwrap_err();
        assert!(e.to_string().starts_with("settings.x[1].y:"), "{e}");
        let e = table_text("a", "llm", &json!({"kind": "pii"})).unwrap_err();
        assert!(e.to_string().starts_with("settings.kind:"), "{e}");
        let e = table_text("a", "llm", &json!({"n": u64::MAX})).unwrap_err();
        assert!(e.to_string().starts_with("settings.n:"), "{e}");
        assert!(table_text("a b", "llm", &json!({})).is_err());
        assert!(check_settings(&json!([1])).is_err());
    }

    #[test]
    fn declared_tables_skip_defaults_and_disabled_ones() {
        let cfg = Config::parse(
            "[judges.pii]\nenabled = false\n[judges.safety]\noptional = true\n[judges.x]\nkind = \"secrets\"\n",
            "t",
        )
        .unwrap();
        let (specs, disabled) = declared(&cfg).unwrap();
        assert_eq!(disabled, ["pii"]);
        let names: Vec<(&str, &str)> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.kind.as_str()))
            .collect();
        assert_eq!(names, [("safety", "safety"), ("x", "secrets")]);
        assert_eq!(specs[0].params, json!({}));
    }

    #[test]
    fn changes_and_diff() {
        let a = json!({"instructions": "a\nb\nc", "output": "yes_no", "p": {"x": 1}});
        let b = json!({"instructions": "a\nB\nc", "p": {"x": 2}, "model": "m"});
        let ch = changes("llm", &a, "llm", &b);
        let paths: Vec<&str> = ch.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "settings.instructions",
                "settings.model",
                "settings.output",
                "settings.p.x"
            ]
        );
        assert_eq!(ch[2].to, Value::Null);
        let d = unified_diff(
            &table_text("j", "llm", &a).unwrap(),
            &table_text("j", "llm", &b).unwrap(),
            "j v1",
            "j v2",
        );
        assert!(d.starts_with("--- j v1\n+++ j v2\n@@ -2,"), "{d}");
        assert!(d.contains("\n-b\n+B\n"), "{d}");
        assert!(d.contains("\n+model = \"m\"\n"), "{d}");
        assert!(d.contains("\n-output = \"yes_no\"\n"), "{d}");
        assert_eq!(unified_diff("x\n", "x\n", "a", "b"), "");
        let d = unified_diff(
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
            "1\n2\n3\n4\n5\n6\n7\n8\n9\nten\n",
            "a",
            "b",
        );
        assert_eq!(d, "--- a\n+++ b\n@@ -7,4 +7,4 @@\n 7\n 8\n 9\n-10\n+ten\n");
    }
}

//! What the per-benchmark loaders share: reading files, parsing JSON and JSON Lines with
//! positions, finding the line each array element starts on, and reading typed fields with
//! errors that name file, line and field.

use crate::error::LoadError;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Reads a whole text file.
pub fn read_text(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|e| LoadError::io(path.display().to_string(), e))
}

/// Parses one JSON document; syntax errors carry line and column.
pub fn parse_json(file: &str, text: &str) -> Result<Value, LoadError> {
    parse_at(file, text, 1)
}

fn parse_at(file: &str, text: &str, first_line: u64) -> Result<Value, LoadError> {
    serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_owned(),
            None => msg,
        };
        LoadError::Json {
            file: file.to_owned(),
            line: first_line + (e.line() as u64).saturating_sub(1),
            column: e.column() as u64,
            message: msg,
        }
    })
}

/// One item of a collection file and the line it starts on.
#[derive(Debug, Clone)]
pub struct Item {
    pub line: Option<u64>,
    pub value: Value,
}

/// A JSON Lines file (one document per non-empty line), a JSON array, or one JSON document:
/// the items with the line each starts on.
pub fn parse_collection(file: &str, text: &str) -> Result<Vec<Item>, LoadError> {
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with('[') {
        let v = parse_json(file, text)?;
        let lines = element_lines(text).top;
        return match v {
            Value::Array(items) => Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, value)| Item {
                    line: lines.get(i).copied(),
                    value,
                })
                .collect()),
            _ => Err(LoadError::invalid(file, Some(1), "expected a JSON array")),
        };
    }
    // One pretty-printed document (a single object) is one item.
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let first = text
            .lines()
            .position(|l| !l.trim().is_empty())
            .map(|i| i as u64 + 1);
        return Ok(vec![Item { line: first, value }]);
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let t = line.trim().trim_start_matches('\u{feff}');
        if t.is_empty() {
            continue;
        }
        out.push(Item {
            line: Some(line_no),
            value: parse_at(file, t, line_no)?,
        });
    }
    Ok(out)
}

/// Lines on which array elements start: those of a top-level array, and those of arrays
/// that are the value of a key of a top-level object (`by_key["simulations"]`).
#[derive(Debug, Default)]
pub struct ElementLines {
    pub top: Vec<u64>,
    pub by_key: HashMap<String, Vec<u64>>,
}

/// Scans JSON text without building values. Call it on text that parsed: on invalid text the
/// result is incomplete but the scan still terminates.
pub fn element_lines(text: &str) -> ElementLines {
    let b = text.as_bytes();
    let mut out = ElementLines::default();
    // (is_array, the top-level key this container is the value of)
    let mut stack: Vec<(bool, Option<String>)> = Vec::new();
    let mut pending_key: Option<String> = None;
    let mut expecting_key = false;
    let mut line = 1u64;
    let mut i = 0usize;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\r') {
            i += 1;
            continue;
        }
        let in_array = matches!(stack.last(), Some((true, _)));
        if in_array && !matches!(c, b',' | b']' | b'}' | b':') {
            match stack.len() {
                1 => out.top.push(line),
                2 => {
                    if let (false, _) = stack[0] {
                        if let Some(k) = &stack[1].1 {
                            out.by_key.entry(k.clone()).or_default().push(line);
                        }
                    }
                }
                _ => {}
            }
        }
        match c {
            b'{' | b'[' => {
                let key = if stack.len() == 1 && !stack[0].0 {
                    pending_key.take()
                } else {
                    None
                };
                stack.push((c == b'[', key));
                expecting_key = c == b'{';
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expecting_key = false;
                i += 1;
            }
            b',' => {
                expecting_key = matches!(stack.last(), Some((false, _)));
                i += 1;
            }
            b':' => {
                expecting_key = false;
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    } else if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(b.len());
                if expecting_key && stack.len() == 1 {
                    pending_key = serde_json::from_slice::<String>(&b[start..end]).ok();
                }
                i = end;
            }
            _ => {
                while i < b.len() && !matches!(b[i], b',' | b']' | b'}' | b'\n' | b' ' | b'\t') {
                    i += 1;
                }
            }
        }
    }
    out
}

/// The `.json` / `.jsonl` / `.ndjson` files in a directory and below it, sorted (the same
/// walk `tribunal eval` does).
pub fn json_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    tribunal_formats::reader::json_files(dir)
        .map_err(|e| LoadError::io(dir.display().to_string(), e))
}

/// Where a value sits: the file, the line its item starts on, and its JSON path.
#[derive(Debug, Clone)]
pub struct At<'a> {
    pub file: &'a str,
    pub line: Option<u64>,
    pub path: String,
}

impl<'a> At<'a> {
    pub fn new(file: &'a str, line: Option<u64>, path: impl Into<String>) -> At<'a> {
        At {
            file,
            line,
            path: path.into(),
        }
    }

    /// The path of a field below this one.
    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else if key.starts_with('[') {
            format!("{}{key}", self.path)
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn child(&self, key: &str) -> At<'a> {
        At {
            file: self.file,
            line: self.line,
            path: self.field(key),
        }
    }

    pub fn error(&self, key: &str, expected: &str, found: Option<&Value>) -> LoadError {
        let field = if key.is_empty() {
            if self.path.is_empty() {
                "(top level)".to_owned()
            } else {
                self.path.clone()
            }
        } else {
            self.field(key)
        };
        let expected = match found {
            Some(v) => format!("{expected}, found {}", describe(v)),
            None => format!("{expected} (the field is missing)"),
        };
        LoadError::Field {
            file: self.file.to_owned(),
            line: self.line,
            field,
            expected,
        }
    }

    pub fn object<'v>(&self, v: &'v Value) -> Result<&'v Map<String, Value>, LoadError> {
        v.as_object()
            .ok_or_else(|| self.error("", "an object", Some(v)))
    }

    pub fn array<'v>(&self, v: &'v Value) -> Result<&'v Vec<Value>, LoadError> {
        v.as_array()
            .ok_or_else(|| self.error("", "an array", Some(v)))
    }

    /// A required field (present and not null).
    pub fn req<'v>(&self, o: &'v Map<String, Value>, key: &str) -> Result<&'v Value, LoadError> {
        match o.get(key) {
            None | Some(Value::Null) => Err(self.error(key, "a value", None)),
            Some(v) => Ok(v),
        }
    }

    /// An optional number (`null` and missing are `None`).
    pub fn opt_f64(&self, o: &Map<String, Value>, key: &str) -> Result<Option<f64>, LoadError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(self.error(key, "a number", Some(other))),
        }
    }

    pub fn req_f64(&self, o: &Map<String, Value>, key: &str) -> Result<f64, LoadError> {
        match o.get(key) {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| self.error(key, "a number", o.get(key))),
            Some(Value::Null) | None => Err(self.error(key, "a number", None)),
            Some(other) => Err(self.error(key, "a number", Some(other))),
        }
    }

    /// An integer: a JSON integer, a float without a fraction, or a string of digits.
    pub fn req_i64(&self, o: &Map<String, Value>, key: &str) -> Result<i64, LoadError> {
        let v = o.get(key);
        let bad = || self.error(key, "an integer", v.filter(|v| !v.is_null()));
        match v {
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    Ok(i)
                } else {
                    match n.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                        _ => Err(bad()),
                    }
                }
            }
            Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    pub fn opt_i64(&self, o: &Map<String, Value>, key: &str) -> Result<Option<i64>, LoadError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.req_i64(o, key).map(Some),
        }
    }

    pub fn opt_str<'v>(
        &self,
        o: &'v Map<String, Value>,
        key: &str,
    ) -> Result<Option<&'v str>, LoadError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(key, "a string", Some(other))),
        }
    }

    /// An id: a string, or a number written as text.
    pub fn req_id(&self, o: &Map<String, Value>, key: &str) -> Result<String, LoadError> {
        match o.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            None | Some(Value::Null) => Err(self.error(key, "a string or an integer id", None)),
            Some(other) => Err(self.error(key, "a string or an integer id", Some(other))),
        }
    }
}

/// A short description of a JSON value for error messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Text of a message `content`: a string, or the text parts of a list joined by newlines.
pub fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("text").and_then(Value::as_str),
                    _ => None,
                })
                .collect();
            Some(texts.join("\n"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_element_lines() {
        let text = "[\n {\"a\": [1,\n 2]},\n \"x, ]\",\n 3\n]";
        assert_eq!(element_lines(text).top, vec![2, 4, 5]);
        let text = "{\"info\": {\"simulations\": [9]},\n \"simulations\": [\n  {\"id\": 1},\n  {\"id\": \"a\\\"b\"}\n ],\n \"tasks\": [{}]}";
        let l = element_lines(text);
        assert_eq!(l.by_key["simulations"], vec![3, 4]);
        assert_eq!(l.by_key["tasks"], vec![6]);
    }

    #[test]
    fn collections_are_jsonl_or_arrays() {
        let items = parse_collection("f", "{\"a\":1}\n\n{\"a\":2}\n").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].line, Some(3));
        let err = parse_collection("f", "{\"a\":1}\n{\"a\":\n").unwrap_err();
        assert_eq!(err.line(), Some(2));
        let items = parse_collection("f", "[\n{\"a\":1},\n{\"a\":2}]").unwrap();
        assert_eq!(items[1].line, Some(3));
    }
}

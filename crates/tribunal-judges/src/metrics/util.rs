//! Helpers the code metrics share: the trace's output with the message it came from, JSON
//! comparison that treats `1` and `1.0` alike, a key-sorted canonical form of a value,
//! numbers that sources write as strings, and JSON Schema compilation and error text.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt::Write as _;
use tribunal_core::{trace::value_text, Role, ToolCall, Trace};

/// The trace's output as text (the same rule as [`Trace::output_text`]) and the id of the
/// message it came from, when it came from one.
pub(crate) fn output(trace: &Trace) -> Option<(Cow<'_, str>, Option<&str>)> {
    match &trace.outputs {
        Some(Value::String(s)) => Some((Cow::Borrowed(s.as_str()), None)),
        Some(Value::Null) | None => trace
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant && !m.content.is_empty())
            .map(|m| (Cow::Borrowed(m.content.as_str()), Some(m.id.as_str()))),
        Some(other) => Some((Cow::Owned(value_text(other)), None)),
    }
}

/// Evidence ids for an output that came from a message.
pub(crate) fn output_evidence(id: Option<&str>) -> Vec<String> {
    id.map(|id| vec![id.to_owned()]).unwrap_or_default()
}

/// One entry of the trace's expectations, ignoring `null`.
pub(crate) fn expectation<'a>(trace: &'a Trace, key: &str) -> Option<&'a Value> {
    trace
        .expectations
        .as_ref()?
        .get(key)
        .filter(|v| !v.is_null())
}

/// Deep equality where numbers compare by value (`1 == 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Tool-call arguments as an object: `null` (no arguments) reads as `{}`.
pub(crate) fn arguments_object(args: &Value) -> Option<Cow<'_, Map<String, Value>>> {
    match args {
        Value::Object(o) => Some(Cow::Borrowed(o)),
        Value::Null => Some(Cow::Owned(Map::new())),
        _ => None,
    }
}

/// Whether `actual` contains `expected` (see [`arguments_mismatch`]), without building
/// the explanation.
pub(crate) fn arguments_contain(expected: &Value, actual: &Value) -> bool {
    match expected {
        Value::Object(exp) => match actual {
            Value::Object(act) => exp
                .iter()
                .all(|(k, v)| act.get(k).is_some_and(|a| json_eq(v, a))),
            Value::Null => exp.is_empty(),
            _ => false,
        },
        _ => json_eq(expected, actual),
    }
}

/// The first way `actual` fails to contain `expected`: every key of an expected object must
/// be in the actual arguments with a deeply equal value; other expected values must equal
/// the actual value. `None` when `expected` is contained.
pub(crate) fn arguments_mismatch(expected: &Value, actual: &Value) -> Option<String> {
    let Value::Object(exp) = expected else {
        return (!json_eq(expected, actual)).then(|| {
            format!(
                "arguments expected {}, got {}",
                short(&expected.to_string()),
                short(&actual.to_string())
            )
        });
    };
    let Some(act) = arguments_object(actual) else {
        return Some(format!(
            "arguments are not an object: {}",
            short(&actual.to_string())
        ));
    };
    for (k, v) in exp {
        match act.get(k) {
            None => {
                return Some(format!(
                    "argument `{k}` missing (expected {})",
                    short(&v.to_string())
                ))
            }
            Some(a) if !json_eq(v, a) => {
                return Some(format!(
                    "argument `{k}` expected {}, got {}",
                    short(&v.to_string()),
                    short(&a.to_string())
                ))
            }
            Some(_) => {}
        }
    }
    None
}

/// A key-sorted, whitespace-free JSON text of `v`: equal for values that differ only in key
/// order (whatever order the map keeps).
pub(crate) fn canonical(v: &Value) -> String {
    let mut out = String::with_capacity(64);
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            if !keys.is_sorted() {
                keys.sort();
            }
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_canonical(&o[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Number(n) => match n.as_f64() {
            // Integral floats print like integers, so `1.0` and `1` are the same call.
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                let _ = write!(out, "{}", f as i64);
            }
            _ => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => out.push_str(itoa::Buffer::new().format(i)),
                (_, Some(u)) => out.push_str(itoa::Buffer::new().format(u)),
                _ => {
                    let _ = write!(out, "{n}");
                }
            },
        },
        Value::String(s) => write_json_string(s, out),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// `s` as a JSON string literal.
fn write_json_string(s: &str, out: &mut String) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Escaping a string cannot fail.
        let _ = write!(out, "{}", Value::String(s.to_owned()));
    }
}

/// A number, or a string holding one (MLflow writes 64-bit integers as strings).
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// A non-negative integer count, or a string holding one.
pub(crate) fn count(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

/// The id that points at a tool call: its own id, else the message that made it.
pub(crate) fn call_id(message_id: &str, call: &ToolCall) -> String {
    if call.id.is_empty() {
        message_id.to_owned()
    } else {
        call.id.clone()
    }
}

/// `text` cut to at most 120 characters, with `…` when cut.
pub(crate) fn short(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        None => text.to_owned(),
        Some((i, _)) => format!("{}…", &text[..i]),
    }
}

/// Compiles a JSON Schema; the error says why it is not a valid schema.
pub(crate) fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(format!(
            "a JSON Schema must be an object or a boolean, got {}",
            short(&schema.to_string())
        ));
    }
    jsonschema::validator_for(schema).map_err(|e| short(&e.to_string()))
}

/// The first `limit` validation errors of `instance`, each as `pointer: message`, and how
/// many there were in all. Empty when the instance is valid. With `mask`, the instance's
/// values are replaced by `value` in the messages (for text that must be safe to log).
pub(crate) fn schema_errors(
    validator: &jsonschema::Validator,
    instance: &Value,
    limit: usize,
    mask: bool,
) -> (Vec<String>, usize) {
    if validator.is_valid(instance) {
        return (Vec::new(), 0);
    }
    let mut shown = Vec::new();
    let mut total = 0;
    for e in validator.iter_errors(instance) {
        if shown.len() < limit {
            let pointer = e.instance_path().as_str();
            let pointer = if pointer.is_empty() {
                "(root)"
            } else {
                pointer
            };
            let message = if mask {
                e.masked().to_string()
            } else {
                e.to_string()
            };
            shown.push(format!("{pointer}: {}", short(&message)));
        }
        total += 1;
    }
    if total == 0 {
        // `is_valid` said no but no error was collected: still report something true.
        shown.push("(root): does not match the schema".to_owned());
        total = 1;
    }
    (shown, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn canonical_sorts_keys_and_integral_floats() {
        assert_eq!(
            canonical(&json!({"b": 1.0, "a": [true, null, "x"]})),
            r#"{"a":[true,null,"x"],"b":1}"#
        );
        // Strings and keys that need escaping are written as JSON writes them.
        let v = json!({"q\"k": "line\nbreak \\ \u{1}", "é": "ü"});
        let text = canonical(&v);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        assert_eq!(text, serde_json::to_string(&v).unwrap());
        let v = json!({"i": -5, "u": u64::MAX, "f": 1.5, "z": 0});
        assert_eq!(canonical(&v), serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn mismatch_names_the_key() {
        let m = arguments_mismatch(&json!({"to": "a"}), &json!({"to": "b", "cc": "c"})).unwrap();
        assert!(m.contains("`to`") && m.contains("\"b\""), "{m}");
        assert!(arguments_mismatch(&json!({"to": "a"}), &json!({"to": "a", "x": 1})).is_none());
        assert!(arguments_mismatch(&json!({}), &Value::Null).is_none());
        for (e, a) in [
            (json!({"to": "a"}), json!({"to": "b"})),
            (json!({"to": "a"}), json!({"to": "a", "x": 1})),
            (json!({"n": 1}), json!({"n": 1.0})),
            (json!({}), Value::Null),
            (json!({"a": 1}), Value::Null),
            (json!("raw"), json!("raw")),
            (json!({"a": 1}), json!("raw")),
        ] {
            assert_eq!(
                arguments_contain(&e, &a),
                arguments_mismatch(&e, &a).is_none(),
                "{e} in {a}"
            );
        }
    }

    #[test]
    fn short_cuts_on_char_boundaries() {
        let s = "é".repeat(200);
        assert_eq!(short(&s).chars().count(), 121);
    }
}

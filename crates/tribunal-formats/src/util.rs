//! Small helpers shared by the importers.

use crate::error::ImportError;
use serde_json::{Map, Value};

/// Text of a message `content`: a string, or a list of parts whose texts are joined with
/// newlines (see [`part_text`]); any other value is read as its JSON text.
pub fn content_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match p {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(o) => part_text(o, &mut out),
                    Value::Null => {}
                    Value::Array(_) => out.push(content_text(p)),
                    other => out.push(other.to_string()),
                }
            }
            out.join("\n")
        }
        other => other.to_string(),
    }
}

/// Whether a content block is a tool call or a tool's result rather than text: Anthropic's
/// `tool_use` and `tool_result` (and their server and MCP kinds), Bedrock Converse's
/// `toolUse` and `toolResult`, Gemini's `functionCall` and `functionResponse`, LangChain's
/// `tool_call`, the AI SDK's `tool-call` and `tool-result`, the Responses API's `…_call`
/// items and their `…_call_output`. Read as text, a call would go unjudged and a tool's
/// result would pass for the words of whoever sent the message.
pub fn call_or_result_block(b: &Value) -> bool {
    b.as_object().is_some_and(call_or_result_object)
}

/// [`call_or_result_block`] of a block's object.
pub fn call_or_result_object(o: &Map<String, Value>) -> bool {
    const KEYS: [&str; 4] = ["toolUse", "toolResult", "functionCall", "functionResponse"];
    if KEYS.iter().any(|k| o.contains_key(*k)) {
        return true;
    }
    let kind = o.get("type").and_then(Value::as_str).unwrap_or_default();
    crate::anthropic::is_tool_use(kind)
        || kind == "tool_result"
        || kind.ends_with("_tool_result")
        || kind.ends_with("_call")
        || kind.ends_with("_call_output")
        || matches!(kind, "tool_call" | "tool-call" | "tool-result")
}

/// A content block that is a tool call in another provider's shape, as an object the call
/// readers read (`{id, name, input | args}`): Bedrock Converse's `{toolUse: {toolUseId,
/// name, input}}`, Gemini's `{functionCall: {id?, name, args}}`, LangChain's `{type:
/// "tool_call", id, name, args}` and the AI SDK's `{type: "tool-call", toolCallId, toolName,
/// input | args}`; `None` for any other block.
pub fn foreign_call(b: &Value) -> Option<Value> {
    let o = b.as_object()?;
    let renamed = |inner: &Map<String, Value>, names: &[(&str, &str)]| {
        let mut call = Map::new();
        for (k, v) in inner {
            let k = names
                .iter()
                .find(|(from, _)| from == k)
                .map_or(k.as_str(), |(_, to)| to);
            call.insert(k.to_owned(), v.clone());
        }
        Value::Object(call)
    };
    if let Some(Value::Object(u)) = o.get("toolUse") {
        return Some(renamed(u, &[("toolUseId", "id")]));
    }
    if let Some(Value::Object(f)) = o.get("functionCall") {
        return Some(renamed(f, &[]));
    }
    match o.get("type").and_then(Value::as_str) {
        Some("tool_call") => {
            let mut call = o.clone();
            call.remove("type");
            Some(Value::Object(call))
        }
        Some("tool-call") => {
            let mut call = o.clone();
            call.remove("type");
            Some(renamed(
                &call,
                &[("toolCallId", "id"), ("toolName", "name")],
            ))
        }
        _ => None,
    }
}

/// Content parts that carry no text a judge reads: media and the model's own reasoning.
const NO_TEXT_PARTS: &[&str] = &[
    "image",
    "image_url",
    "input_image",
    "audio",
    "input_audio",
    "video",
    "video_url",
    "file",
    "input_file",
    "thinking",
    "redacted_thinking",
    "reasoning",
];

/// Adds the text of one content part (or block) to `out`: its `text` (or the `text.value`
/// the Assistants API writes), a `refusal`, its nested `content` (a string or parts, as in
/// tool results and search results), a text document's `source.data`. Media, reasoning and
/// tool calls carry none. Any other part is read as its JSON text: a part of a kind this reader
/// does not know may still hold what a model reads (an injection, a secret), so it is
/// judged rather than dropped.
pub fn part_text(o: &Map<String, Value>, out: &mut Vec<String>) {
    match o.get("text") {
        Some(Value::String(t)) => return out.push(t.clone()),
        Some(Value::Object(t)) if t.get("value").is_some_and(Value::is_string) => {
            return out.push(t["value"].as_str().unwrap_or_default().to_owned())
        }
        _ => {}
    }
    if let Some(Value::String(r)) = o.get("refusal") {
        return out.push(r.clone());
    }
    let kind = o.get("type").and_then(Value::as_str).unwrap_or_default();
    // A call is read as a call by the readers of calls, not as text.
    if NO_TEXT_PARTS.contains(&kind)
        || crate::anthropic::is_tool_use(kind)
        || (kind.is_empty() && NO_TEXT_PARTS.iter().any(|k| o.contains_key(*k)))
    {
        return;
    }
    let mut found = false;
    if let Some(c) = o.get("content").filter(|c| c.is_string() || c.is_array()) {
        out.push(content_text(c));
        found = true;
    }
    if let Some(source) = o.get("source").and_then(Value::as_object) {
        match (
            source.get("type").and_then(Value::as_str),
            source.get("data"),
        ) {
            (Some("text"), Some(Value::String(data))) => {
                out.push(data.clone());
                found = true;
            }
            (Some("content"), _) => {
                if let Some(c) = source.get("content") {
                    out.push(content_text(c));
                    found = true;
                }
            }
            // Base64 media (a PDF, an image) and URLs: no text here.
            _ => found = true,
        }
    }
    if found {
        // A search result's title and a document's title and context come with it.
        for key in ["title", "context"] {
            if let Some(Value::String(t)) = o.get(key) {
                out.push(t.clone());
            }
        }
        return;
    }
    out.push(Value::Object(o.clone()).to_string());
}

/// Tool-call arguments: a JSON string is parsed; a string that is not JSON stays a string.
///
/// Control characters written raw inside the JSON's strings (strict JSON wants them escaped)
/// are read as if escaped: Python's `json.loads(strict=False)`, LangChain's default for tool
/// calls, and other lenient readers take them, so the tool gets the arguments and the judges
/// must see them too, not a string.
///
/// Arguments whose JSON names a key twice are an error (field `arguments`): tools' readers
/// differ on which value counts ([`tribunal_core::json`]).
pub fn parse_arguments(v: &Value) -> Result<Value, ImportError> {
    match v {
        Value::String(s) => {
            let trimmed = s.trim();
            if trimmed.is_empty() {
                return Ok(Value::Object(Map::new()));
            }
            let twice = |e: serde_json::Error| {
                ImportError::new(
                    "arguments",
                    format!("JSON that names each key once; {e} of the arguments"),
                )
            };
            match tribunal_core::json::from_str(trimmed) {
                Ok(v) => Ok(v),
                Err(e) if tribunal_core::json::is_duplicate(&e) => Err(twice(e)),
                Err(_) => {
                    let lenient = match with_controls_escaped(trimmed).map_err(twice)? {
                        Some(v) => Some(v),
                        None => leniently(s.trim_start()).map_err(twice)?,
                    };
                    Ok(lenient.unwrap_or_else(|| Value::String(s.clone())))
                }
            }
        }
        Value::Null => Ok(Value::Object(Map::new())),
        other => Ok(other.clone()),
    }
}

/// [`parse_arguments`] for readers that take what they are given (spans): arguments whose
/// JSON names a key twice stay their text, where the judges still read every value.
pub fn arguments_or_text(v: &Value) -> Value {
    parse_arguments(v).unwrap_or_else(|_| v.clone())
}

/// `text` read again after a lenient reader's repair: `None` when it still does not read, an
/// error when it names a key twice.
fn reread(text: &str) -> Result<Option<Value>, serde_json::Error> {
    match tribunal_core::json::from_str(text) {
        Ok(v) => Ok(Some(v)),
        Err(e) if tribunal_core::json::is_duplicate(&e) => Err(e),
        Err(_) => Ok(None),
    }
}

/// The number a double cannot hold (`Infinity`, `1e309`) is read as: the largest double,
/// of its sign, so that every limit sees it above (or below) itself.
const HUGE: &str = "1.7976931348623157e308";

/// An object or array as lenient readers read a model's arguments, `None` when even they
/// cannot: Python's `json` module takes `NaN`, `Infinity` and `-Infinity` and makes numbers
/// too large for a double infinite, and the partial-JSON readers of agent frameworks close
/// what a cut-off text left open (a string, arrays, objects; a dangling `,` is dropped and a
/// key without its value gets `null`). Infinite numbers are read as [`HUGE`] of their sign;
/// `NaN`, which no number stands for, as the string `"NaN"`.
fn leniently(text: &str) -> Result<Option<Value>, serde_json::Error> {
    if !text.starts_with(['{', '[']) {
        return Ok(None);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut open: Vec<u8> = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            if c < 0x20 {
                out.push_str(&format!("\\u{c:04x}"));
            } else {
                let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&text[i..i + ch_len]);
                i += ch_len;
                continue;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'{' | b'[' => open.push(c),
            b'}' | b']' => {
                open.pop();
            }
            _ => {}
        }
        let word_len = b[i..]
            .iter()
            .take_while(|x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'+' | b'-'))
            .count();
        if word_len > 0 && (c.is_ascii_alphanumeric() || c == b'-') {
            let word = &text[i..i + word_len];
            match word {
                "NaN" => out.push_str("\"NaN\""),
                "Infinity" => out.push_str(HUGE),
                "-Infinity" => {
                    out.push('-');
                    out.push_str(HUGE);
                }
                _ => match word.parse::<f64>() {
                    Ok(x) if x.is_infinite() => {
                        if x < 0.0 {
                            out.push('-');
                        }
                        out.push_str(HUGE);
                    }
                    _ => out.push_str(word),
                },
            }
            i += word_len;
            continue;
        }
        out.push(c as char);
        i += 1;
    }
    // What a cut-off text left open.
    if in_string {
        if escaped {
            out.pop();
        }
        out.push('"');
    }
    let dangling = out.trim_end();
    let dangling_len = dangling.len();
    out.truncate(dangling_len);
    if out.ends_with(',') {
        out.pop();
    } else if out.ends_with(':') {
        out.push_str("null");
    }
    for o in open.iter().rev() {
        out.push(if *o == b'{' { '}' } else { ']' });
    }
    reread(&out)
}

/// `text` read as JSON with the control characters inside its strings escaped; `None` when
/// it has none or still does not read.
fn with_controls_escaped(text: &str) -> Result<Option<Value>, serde_json::Error> {
    if !text.bytes().any(|b| b < 0x20) {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for ch in text.chars() {
        if in_string && !escaped && (ch as u32) < 0x20 {
            out.push_str(&format!("\\u{:04x}", ch as u32));
            continue;
        }
        out.push(ch);
        if escaped {
            escaped = false;
        } else if in_string && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            in_string = !in_string;
        }
    }
    reread(&out)
}

pub fn as_object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ImportError> {
    v.as_object()
        .ok_or_else(|| ImportError::new(field, format!("an object, found {}", kind_of(v))))
}

pub fn as_array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>, ImportError> {
    v.as_array()
        .ok_or_else(|| ImportError::new(field, format!("an array, found {}", kind_of(v))))
}

pub fn opt_str<'a>(o: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ImportError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ImportError::new(
            key,
            format!("a string, found {}", kind_of(other)),
        )),
    }
}

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An id for a trace that has none: stable for the same file and line.
pub fn fallback_id(file: &str, line: u64) -> String {
    let name = std::path::Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(file);
    format!("{name}:{line}")
}

/// A non-negative integer read exactly: a JSON integer or a decimal string. Integers never go
/// through `f64` (nanosecond timestamps are above 2^53); a JSON float is truncated, as its
/// precision is already gone. `null` and `""` are `None`.
pub fn u64_value(v: &Value, field: &str) -> Result<Option<u64>, ImportError> {
    let expected = || {
        ImportError::new(
            field,
            format!(
                "a non-negative integer or a decimal string, found {}",
                describe(v)
            ),
        )
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if n.is_i64() {
                Err(expected())
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                        Ok(Some(f as u64))
                    }
                    _ => Err(expected()),
                }
            }
        }
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse::<u64>().map(Some).map_err(|_| expected())
            }
        }
        _ => Err(expected()),
    }
}

/// `kind_of`, plus the value itself when it is a short scalar.
pub fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("{b}"),
        other => kind_of(other).to_owned(),
    }
}

/// A JSON-encoded string decoded; text that is not JSON stays a string.
pub fn decode_json_str(s: &str) -> Value {
    tribunal_core::json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

/// An attribute value that may be JSON-encoded (MLflow double-encodes every attribute).
pub fn decode_attr(v: &Value) -> Value {
    match v {
        Value::String(s) => decode_json_str(s),
        other => other.clone(),
    }
}

/// An id of `bytes` bytes as lowercase hex. Hex (with or without `0x`) is kept; base64 of
/// exactly `bytes` bytes is converted. `None` when the text is neither.
pub fn hex_id(s: &str, bytes: usize) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let s = s.trim();
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if hex.len() == bytes * 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(hex.to_ascii_lowercase());
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(raw) = engine.decode(s) {
            if raw.len() == bytes {
                return Some(raw.iter().map(|b| format!("{b:02x}")).collect());
            }
        }
    }
    None
}

/// The tools of the calls made so far, by call id, for the tool results that answer them:
/// the calls of the messages being imported (recorded as they come), then those of `held`,
/// the messages of the trace imported before (searched from the last, only when a result
/// asks). A call id given twice names its last call.
pub(crate) struct CallNames<'a> {
    held: &'a [tribunal_core::Message],
    new: std::collections::HashMap<String, String>,
}

impl<'a> CallNames<'a> {
    /// Calls made before the messages being imported: those of `held`.
    pub(crate) fn after(held: &'a [tribunal_core::Message]) -> CallNames<'a> {
        CallNames {
            held,
            new: std::collections::HashMap::new(),
        }
    }

    pub(crate) fn insert(&mut self, call: &tribunal_core::ToolCall) {
        self.new.insert(call.id.clone(), call.name.clone());
    }

    pub(crate) fn get(&self, id: &str) -> Option<&str> {
        match self.new.get(id) {
            Some(name) => Some(name),
            None => self
                .held
                .iter()
                .rev()
                .flat_map(|m| m.tool_calls.iter().rev())
                .find(|c| c.id == id)
                .map(|c| c.name.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn big_integers_stay_exact() {
        let big = 1_717_000_000_123_456_789u64;
        assert_eq!(u64_value(&json!(big), "t").unwrap(), Some(big));
        assert_eq!(u64_value(&json!(big.to_string()), "t").unwrap(), Some(big));
        let e = u64_value(&json!(-1), "t").unwrap_err();
        assert_eq!(e.field, "t");
        assert!(u64_value(&json!("soon"), "t").is_err());
    }

    #[test]
    fn ids_become_lowercase_hex() {
        assert_eq!(
            hex_id("AAECAwQFBgc=", 8).as_deref(),
            Some("0001020304050607")
        );
        assert_eq!(
            hex_id("0x00AB0203040506ff", 8).as_deref(),
            Some("00ab0203040506ff")
        );
        assert_eq!(hex_id("nope", 8), None);
    }

    #[test]
    fn arguments_with_raw_control_characters_are_read_as_lenient_readers_read_them() {
        // What Python's json.loads(s, strict=False) answers for each.
        let read = |s: &str| parse_arguments(&Value::String(s.to_owned())).unwrap();
        assert_eq!(
            read("{\"amount\": 900, \"note\": \"a\tb\nc\"}"),
            serde_json::json!({"amount": 900, "note": "a\tb\nc"})
        );
        // An escaped quote does not end the string; raw characters between strings are
        // JSON's own white space.
        assert_eq!(
            read("{\"q\": \"say \\\"hi\\\"\u{1}\",\n\t\"n\": 1}"),
            serde_json::json!({"q": "say \"hi\"\u{1}", "n": 1})
        );
        // Still not JSON: kept as the string it is.
        for s in ["{\"a\": \\\t}", "rm -rf /\t"] {
            assert_eq!(read(s), Value::String(s.to_owned()), "{s:?}");
        }
    }

    #[test]
    fn arguments_that_name_a_key_twice_are_an_error() {
        let read = |s: &str| parse_arguments(&Value::String(s.to_owned()));
        for s in [
            r#"{"to": "alice@acme.com", "body": "hi", "to": "eve@evil.io"}"#,
            r#"{"account": {"iban": "DE1", "iban": "DE2"}}"#,
            // Also when only a lenient reader reads the rest: a raw tab, a cut-off text.
            "{\"to\": \"a\tb\", \"to\": 1}",
            r#"{"to": 1, "to": 2, "note": "cut off"#,
        ] {
            let e = read(s).unwrap_err();
            assert_eq!(e.field, "arguments", "{s}");
            assert!(e.expected.contains("is named twice"), "{s}: {e}");
        }
        assert_eq!(
            read(r#"{"to": 1, "To": 2}"#).unwrap(),
            serde_json::json!({"to": 1, "To": 2})
        );
        // Readers of spans keep such arguments as their text.
        let text = Value::String(r#"{"to": 1, "to": 2}"#.into());
        assert_eq!(arguments_or_text(&text), text);
    }

    #[test]
    fn arguments_only_lenient_readers_read_are_read_as_they_read_them() {
        let read = |s: &str| parse_arguments(&Value::String(s.to_owned())).unwrap();
        let huge = f64::MAX;
        // Python's json.loads: NaN, Infinity, and numbers too large for a double.
        assert_eq!(
            read("{\"amount\": 1e309, \"fee\": -1E400, \"n\": 2}"),
            serde_json::json!({"amount": huge, "fee": -huge, "n": 2})
        );
        assert_eq!(
            read("{\"amount\": Infinity, \"min\": -Infinity, \"x\": NaN, \"s\": \"NaN Infinity 1e999\"}"),
            serde_json::json!({"amount": huge, "min": -huge, "x": "NaN", "s": "NaN Infinity 1e999"})
        );
        // Cut off: what was left open is closed, as partial-JSON readers do.
        for (cut, whole) in [
            ("{\"amount\": 900", serde_json::json!({"amount": 900})),
            (
                "{\"path\": \"../../etc/passwd",
                serde_json::json!({"path": "../../etc/passwd"}),
            ),
            ("{\"a\": \"b\t", serde_json::json!({"a": "b\t"})),
            (
                "{\"to\": [\"x@evil.example\", ",
                serde_json::json!({"to": ["x@evil.example"]}),
            ),
            (
                "{\"to\": {\"addr\": \"é\", \"k\":",
                serde_json::json!({"to": {"addr": "é", "k": null}}),
            ),
            ("[1, 2", serde_json::json!([1, 2])),
            ("{\"q\": \"a\\", serde_json::json!({"q": "a"})),
        ] {
            assert_eq!(read(cut), whole, "{cut:?}");
        }
        // Nothing reads these: kept as the strings they are.
        for s in [
            "{\"a\" 1}",
            "{\"a\": nope}",
            "[1, 2]]",
            "Infinity and beyond",
        ] {
            assert_eq!(read(s), Value::String(s.to_owned()), "{s:?}");
        }
    }
}

//! MLflow trace JSON (schema v3, and legacy v2).
//!
//! v3 (`Trace.to_json()`): `{info:{trace_id, trace_metadata, tags, assessments, state, ...},
//! data:{spans:[{span_id, parent_span_id, start_time_unix_nano, status{code}, attributes}]}}`,
//! span ids in base64 (older exports) or hex. v2: `info.request_id`, `info.request_metadata`,
//! spans with `context{trace_id, span_id}`, `parent_id`, `start_time`/`end_time` and
//! `status_code`. Span attribute values are JSON-encoded strings and are decoded here; a value
//! that is not JSON stays a string. Timestamps are read as exact integers.

use crate::error::ImportError;
use crate::openai::import_tool_defs;
use crate::spans::{conversation_with_io, root_span};
use crate::util::{
    as_array, as_object, decode_attr, decode_json_str, hex_id, kind_of, opt_str, u64_value,
};
use serde_json::{Map, Value};
use tribunal_core::trace::value_text;
use tribunal_core::{Assessment, Span, SpanKind, SpanStatus, TokenUsage, ToolDef, Trace};

/// Span attributes that become span fields (every other attribute is kept).
const SPAN_TYPE: &str = "mlflow.spanType";
const SPAN_INPUTS: &str = "mlflow.spanInputs";
const SPAN_OUTPUTS: &str = "mlflow.spanOutputs";
const TOKEN_USAGE: &str = "mlflow.chat.tokenUsage";
const MODEL: &str = "mlflow.llm.model";
const COST: &str = "mlflow.llm.cost";
const TOOLS: &str = "mlflow.chat.tools";

/// Span events are kept in the span's attributes under this key.
pub const EVENTS_ATTR: &str = "otel.events";

/// Info fields that map onto the trace; every other info field is kept as metadata.
const INFO_FIELDS: &[&str] = &[
    "trace_id",
    "request_id",
    "trace_metadata",
    "request_metadata",
    "tags",
    "assessments",
];

/// Imports one MLflow trace: `{info, data:{spans}}`, or a bare `{spans}`.
pub fn import_trace(v: &Value, fallback_id: &str) -> Result<Trace, ImportError> {
    let o = as_object(v, "")?;
    let info = match o.get("info").filter(|i| !i.is_null()) {
        Some(i) => Some(as_object(i, "info")?),
        None => None,
    };
    let data = match o.get("data").filter(|d| !d.is_null()) {
        Some(d) => Some(as_object(d, "data")?),
        None => None,
    };
    let (spans, spans_field) = match data {
        Some(d) => (d.get("spans"), "data.spans"),
        None => (o.get("spans"), "spans"),
    };
    let spans: &[Value] = match spans.filter(|s| !s.is_null()) {
        Some(s) => as_array(s, spans_field)?,
        None => &[],
    };

    let mut trace = Trace {
        id: fallback_id.to_owned(),
        ..Trace::default()
    };
    for (i, s) in spans.iter().enumerate() {
        let span = import_span(s, &mut trace.tools)
            .map_err(|e| e.within(&format!("{spans_field}[{i}]")))?;
        trace.spans.push(span);
    }
    if let Some(info) = info {
        import_info(info, &mut trace).map_err(|e| e.within("info"))?;
    }
    // v2 keeps the request and response beside the spans, JSON-encoded.
    if let Some(d) = data {
        if trace.inputs.is_none() {
            trace.inputs = d.get("request").filter(|v| !v.is_null()).map(decode_attr);
        }
        if trace.outputs.is_none() {
            trace.outputs = d.get("response").filter(|v| !v.is_null()).map(decode_attr);
        }
    }
    if let Some(root) = root_span(&trace.spans) {
        if trace.inputs.is_none() {
            trace.inputs = root.inputs.clone();
        }
        if trace.outputs.is_none() {
            trace.outputs = root.outputs.clone();
        }
    }
    trace.messages =
        conversation_with_io(&trace.spans, trace.inputs.as_ref(), trace.outputs.as_ref());
    Ok(trace)
}

fn import_info(info: &Map<String, Value>, trace: &mut Trace) -> Result<(), ImportError> {
    for key in ["trace_id", "request_id"] {
        if let Some(id) = opt_str(info, key)? {
            trace.id = id.to_owned();
            break;
        }
    }
    for key in ["trace_metadata", "request_metadata"] {
        let Some(meta) = info.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        for (k, v) in as_object(meta, key)? {
            match k.as_str() {
                "mlflow.traceInputs" => trace.inputs = Some(decode_attr(v)),
                "mlflow.traceOutputs" => trace.outputs = Some(decode_attr(v)),
                _ => {
                    trace.metadata.insert(k.clone(), v.clone());
                }
            }
        }
    }
    match info.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(tags)) => {
            for (k, v) in tags {
                trace.tags.insert(k.clone(), value_text(v));
            }
        }
        // The REST API's `[{key, value}]` form.
        Some(Value::Array(tags)) => {
            for (i, t) in tags.iter().enumerate() {
                let at = format!("tags[{i}]");
                let t = as_object(t, &at)?;
                let key = opt_str(t, "key")
                    .map_err(|e| e.within(&at))?
                    .ok_or_else(|| ImportError::new(format!("{at}.key"), "the tag's key"))?;
                let value = t.get("value").map(value_text).unwrap_or_default();
                trace.tags.insert(key.to_owned(), value);
            }
        }
        Some(other) => {
            return Err(ImportError::new(
                "tags",
                format!("an object of strings, found {}", kind_of(other)),
            ))
        }
    }
    if let Some(list) = info.get("assessments").filter(|v| !v.is_null()) {
        let mut expectations = Map::new();
        for (i, a) in as_array(list, "assessments")?.iter().enumerate() {
            let Some(a) =
                import_assessment(a).map_err(|e| e.within(&format!("assessments[{i}]")))?
            else {
                continue;
            };
            if a.kind == "expectation" {
                expectations.insert(a.name.clone(), a.value.clone());
            }
            trace.assessments.push(a);
        }
        if !expectations.is_empty() {
            trace.expectations = Some(Value::Object(expectations));
        }
    }
    for (k, v) in info {
        if !INFO_FIELDS.contains(&k.as_str()) {
            trace.metadata.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

/// One assessment; `None` for one marked `valid: false` (superseded by a later one).
pub fn import_assessment(v: &Value) -> Result<Option<Assessment>, ImportError> {
    let o = as_object(v, "")?;
    if o.get("valid") == Some(&Value::Bool(false)) {
        return Ok(None);
    }
    let name = match opt_str(o, "assessment_name")? {
        Some(n) => n,
        None => opt_str(o, "name")?
            .ok_or_else(|| ImportError::new("assessment_name", "the assessment's name"))?,
    };
    let (source_type, source_id) = match o.get("source").filter(|v| !v.is_null()) {
        Some(s) => {
            let s = as_object(s, "source")?;
            let t = opt_str(s, "source_type").map_err(|e| e.within("source"))?;
            let id = opt_str(s, "source_id").map_err(|e| e.within("source"))?;
            (t.unwrap_or(""), id.unwrap_or(""))
        }
        None => ("", ""),
    };
    let source_type = match source_type {
        "AI_JUDGE" => "LLM_JUDGE",
        "" => "SOURCE_TYPE_UNSPECIFIED",
        t => t,
    };
    let mut rationale = opt_str(o, "rationale")?.map(str::to_owned);
    let (kind, value) = if let Some(e) = o.get("expectation").filter(|v| !v.is_null()) {
        (
            "expectation",
            assessment_value(as_object(e, "expectation")?),
        )
    } else if let Some(f) = o.get("feedback").filter(|v| !v.is_null()) {
        let f = as_object(f, "feedback")?;
        let error = f
            .get("error")
            .or_else(|| o.get("error"))
            .filter(|v| !v.is_null());
        if rationale.is_none() {
            rationale = error.map(|e| {
                let msg = e
                    .get("error_message")
                    .map(value_text)
                    .unwrap_or_else(|| value_text(e));
                format!("error: {msg}")
            });
        }
        ("feedback", assessment_value(f))
    } else {
        return Err(ImportError::new(
            "feedback",
            "one of `feedback{value}` or `expectation{value}`",
        ));
    };
    let span_id = opt_str(o, "span_id")?
        .filter(|s| !s.is_empty())
        .map(|s| hex_id(s, 8).unwrap_or_else(|| s.to_owned()));
    Ok(Some(Assessment {
        name: name.to_owned(),
        source_type: source_type.to_owned(),
        source_id: source_id.to_owned(),
        kind: kind.to_owned(),
        value,
        rationale,
        span_id,
    }))
}

/// `{value}`, or `{serialized_value:{serialization_format, value}}` for JSON-encoded values.
fn assessment_value(o: &Map<String, Value>) -> Value {
    if let Some(v) = o.get("value") {
        return v.clone();
    }
    match o.get("serialized_value") {
        Some(Value::Object(s)) => s.get("value").map(decode_attr).unwrap_or(Value::Null),
        Some(Value::String(s)) => decode_json_str(s),
        _ => Value::Null,
    }
}

/// An optional span id field: hex (kept) or base64 (converted); other text is kept as is.
fn span_id_field(o: &Map<String, Value>, key: &str) -> Result<Option<String>, ImportError> {
    Ok(opt_str(o, key)?
        .filter(|s| !s.is_empty())
        .map(|s| hex_id(s, 8).unwrap_or_else(|| s.to_owned())))
}

fn import_span(v: &Value, tools: &mut Vec<ToolDef>) -> Result<Span, ImportError> {
    let o = as_object(v, "")?;
    let (id, parent_id) = match o.get("context").filter(|c| !c.is_null()) {
        // v2
        Some(ctx) => {
            let ctx = as_object(ctx, "context")?;
            let id = span_id_field(ctx, "span_id").map_err(|e| e.within("context"))?;
            let id = id.ok_or_else(|| ImportError::new("context.span_id", "the span's id"))?;
            (id, span_id_field(o, "parent_id")?)
        }
        None => {
            let id = span_id_field(o, "span_id")?
                .ok_or_else(|| ImportError::new("span_id", "the span's id (base64 or hex)"))?;
            (id, span_id_field(o, "parent_span_id")?)
        }
    };
    let mut span = Span {
        id,
        parent_id,
        name: opt_str(o, "name")?.unwrap_or_default().to_owned(),
        ..Span::default()
    };
    span.start_ns = timestamp(o, &["start_time_unix_nano", "start_time"])?;
    span.end_ns = timestamp(o, &["end_time_unix_nano", "end_time"])?;
    span.status = status(o)?;

    if let Some(attrs) = o.get("attributes").filter(|a| !a.is_null()) {
        for (k, raw) in as_object(attrs, "attributes")? {
            let value = decode_attr(raw);
            if !apply_attribute(&mut span, tools, k, &value) {
                span.attributes.insert(k.clone(), value);
            }
        }
    }
    if let Some(events) = o.get("events").filter(|e| !e.is_null()) {
        let events = as_array(events, "events")?;
        if !events.is_empty() {
            let mut out = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                out.push(import_event(e).map_err(|err| err.within(&format!("events[{i}]")))?);
            }
            span.attributes
                .insert(EVENTS_ATTR.to_owned(), Value::Array(out));
        }
    }
    Ok(span)
}

/// Maps one decoded `mlflow.*` attribute onto the span; `false` when it stays an attribute.
/// Shared with the OTLP importer, which sees the same attributes.
pub(crate) fn apply_attribute(
    span: &mut Span,
    tools: &mut Vec<ToolDef>,
    key: &str,
    value: &Value,
) -> bool {
    match key {
        SPAN_TYPE => match value.as_str() {
            Some(t) => {
                span.kind = SpanKind::parse(t);
                true
            }
            None => false,
        },
        SPAN_INPUTS => {
            span.inputs = Some(value.clone());
            true
        }
        SPAN_OUTPUTS => {
            span.outputs = Some(value.clone());
            true
        }
        TOKEN_USAGE => match usage_of(value) {
            Some(u) => {
                span.usage = Some(u);
                true
            }
            None => false,
        },
        MODEL => match value.as_str() {
            Some(m) => {
                span.model = Some(m.to_owned());
                true
            }
            None => false,
        },
        COST => match cost_of(value) {
            Some(c) => {
                span.cost = Some(c);
                true
            }
            None => false,
        },
        TOOLS => match import_tool_defs(value) {
            Ok(defs) => {
                for d in defs {
                    if !tools.iter().any(|t| t.name == d.name) {
                        tools.push(d);
                    }
                }
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

/// `{input_tokens, output_tokens}` (or `prompt_tokens` / `completion_tokens`).
pub(crate) fn usage_of(v: &Value) -> Option<TokenUsage> {
    let o = v.as_object()?;
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| o.get(*k).and_then(|n| u64_value(n, k).ok().flatten()))
    };
    let input = get(&["input_tokens", "prompt_tokens"]);
    let output = get(&["output_tokens", "completion_tokens"]);
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(TokenUsage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
    })
}

/// A cost in USD: a number, or an object with `total_cost` (or `total`).
pub(crate) fn cost_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(o) => o
            .get("total_cost")
            .or_else(|| o.get("total"))
            .and_then(cost_of),
        _ => None,
    }
}

/// The first of `keys` present, as exact nanoseconds; 0 means unknown.
fn timestamp(o: &Map<String, Value>, keys: &[&str]) -> Result<Option<u64>, ImportError> {
    for key in keys {
        if let Some(v) = o.get(*key) {
            return Ok(u64_value(v, key)?.filter(|t| *t != 0));
        }
    }
    Ok(None)
}

/// v3 `status{code, message}`, v2 `status_code` + `status_message`.
fn status(o: &Map<String, Value>) -> Result<SpanStatus, ImportError> {
    let (code, message) = match o.get("status").filter(|s| !s.is_null()) {
        Some(Value::Object(s)) => (
            s.get("code").or_else(|| s.get("status_code")),
            s.get("message").or_else(|| s.get("description")),
        ),
        // Some v2 exports write the code alone.
        Some(code @ Value::String(_)) => (Some(code), None),
        Some(other) => {
            return Err(ImportError::new(
                "status",
                format!("an object `{{code, message}}`, found {}", kind_of(other)),
            ))
        }
        None => (o.get("status_code"), o.get("status_message")),
    };
    Ok(SpanStatus {
        code: status_code(code).to_owned(),
        message: message
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// `ok`, `error` or `unset` from an OTel/MLflow status code (name or number).
pub(crate) fn status_code(code: Option<&Value>) -> &'static str {
    match code {
        Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
            "STATUS_CODE_OK" | "OK" | "1" => "ok",
            "STATUS_CODE_ERROR" | "ERROR" | "2" => "error",
            _ => "unset",
        },
        Some(Value::Number(n)) => match n.as_u64() {
            Some(1) => "ok",
            Some(2) => "error",
            _ => "unset",
        },
        _ => "unset",
    }
}

/// `{name, time_unix_nano|timestamp, attributes}` -> `{name, time_ns, attributes}`.
fn import_event(v: &Value) -> Result<Value, ImportError> {
    let o = as_object(v, "")?;
    let mut out = Map::new();
    out.insert(
        "name".into(),
        Value::String(opt_str(o, "name")?.unwrap_or_default().to_owned()),
    );
    if let Some(t) = timestamp(o, &["time_unix_nano", "timestamp"])? {
        out.insert("time_ns".into(), Value::from(t));
    }
    if let Some(attrs) = o.get("attributes").filter(|a| !a.is_null()) {
        out.insert(
            "attributes".into(),
            Value::Object(as_object(attrs, "attributes")?.clone()),
        );
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attributes_are_decoded_and_mapped() {
        let s = json!({
            "span_id": "AAECAwQFBgc=", "parent_span_id": null, "name": "chat",
            "start_time_unix_nano": 1717000000123456789u64, "end_time_unix_nano": "1717000000223456789",
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            "attributes": {
                "mlflow.spanType": "\"CHAT_MODEL\"",
                "mlflow.chat.tokenUsage": "{\"input_tokens\": 5, \"output_tokens\": 7, \"total_tokens\": 12}",
                "mlflow.llm.cost": "{\"total_cost\": 0.25}",
                "mlflow.spanFunctionName": "\"predict\"",
                "raw": "not json"
            }
        });
        let mut tools = Vec::new();
        let span = import_span(&s, &mut tools).unwrap();
        assert_eq!(span.id, "0001020304050607");
        assert_eq!(span.kind, SpanKind::Llm);
        assert_eq!(span.start_ns, Some(1717000000123456789));
        assert_eq!(span.end_ns, Some(1717000000223456789));
        assert!(span.status.is_error());
        assert_eq!(span.usage.unwrap().total(), 12);
        assert_eq!(span.cost, Some(0.25));
        assert_eq!(span.attributes["mlflow.spanFunctionName"], json!("predict"));
        assert_eq!(span.attributes["raw"], json!("not json"));
        assert!(!span.attributes.contains_key("mlflow.spanType"));
    }

    #[test]
    fn bad_timestamp_names_the_field() {
        let t = json!({"info": {"trace_id": "tr-1"}, "data": {"spans": [
            {"span_id": "AAECAwQFBgc=", "name": "a", "start_time_unix_nano": "yesterday"}]}});
        let e = import_trace(&t, "f:1").unwrap_err();
        assert_eq!(e.field, "data.spans[0].start_time_unix_nano");
        assert!(e.expected.contains("yesterday"), "{e}");
    }
}

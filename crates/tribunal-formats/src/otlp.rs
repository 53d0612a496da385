//! OTLP/JSON `ExportTraceServiceRequest` with GenAI, OpenInference and `mlflow.*` attributes.
//!
//! `resourceSpans[].{resource.attributes, scopeSpans[].{scope, spans[]}}` with lowerCamelCase
//! fields (snake_case accepted too), hex ids, 64-bit integers as strings or numbers and
//! `AnyValue` attribute values. Spans are grouped by `traceId`, one trace per id in
//! first-seen order. Each span's inputs and outputs come from the first of:
//! 1. MLflow: `mlflow.spanInputs` / `mlflow.spanOutputs` (JSON-encoded, like every
//!    `mlflow.*` attribute here);
//! 2. GenAI: `gen_ai.input.messages` (+ `gen_ai.system_instructions`) /
//!    `gen_ai.output.messages`;
//! 3. OpenInference: flattened `llm.input_messages.{i}.message.*` /
//!    `llm.output_messages.{i}.message.*` (`retrieval.documents.{i}.document.*` for the
//!    outputs of retrievers);
//! 4. GenAI tool spans: `gen_ai.tool.call.arguments` / `gen_ai.tool.call.result`;
//! 5. OpenInference `input.value` / `output.value`;
//! 6. older emitters: flattened `gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.*`, then span
//!    events (`gen_ai.{system,user,assistant,tool}.message`, `gen_ai.choice`,
//!    `gen_ai.content.prompt` / `gen_ai.content.completion`).
//!
//! Kind comes from `gen_ai.operation.name`, `openinference.span.kind` (then Traceloop's
//! `traceloop.span.kind` / `llm.request.type`), else `mlflow.spanType`. Trace inputs and
//! outputs are the root span's; resource attributes go to `metadata.resource`.
//!
//! Attributes that became inputs or outputs are removed from the span; every other attribute
//! is kept, and the remaining events are kept under [`crate::mlflow::EVENTS_ATTR`].
//! `tool.parameters` is the OpenInference tool's parameter *schema*: it becomes a tool
//! definition, not call arguments.

use crate::error::ImportError;
use crate::mlflow::{apply_attribute, cost_of, status_code, EVENTS_ATTR};
use crate::openai::import_tool_defs;
use crate::spans::{conversation_with_io, root_span};
use crate::util::{
    as_array, as_object, decode_attr, decode_json_str, describe, hex_id, kind_of, u64_value,
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use tribunal_core::{Span, SpanKind, SpanStatus, TokenUsage, ToolDef, Trace};

/// Imports every trace in an OTLP/JSON export request.
pub fn import_request(v: &Value) -> Result<Vec<Trace>, ImportError> {
    let o = as_object(v, "")?;
    let (_, rs) = field(o, &["resourceSpans", "resource_spans"])
        .ok_or_else(|| ImportError::new("resourceSpans", "a list of resource spans"))?;
    let mut traces: Vec<Trace> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (i, r) in as_array(rs, "resourceSpans")?.iter().enumerate() {
        import_resource_spans(r, &mut traces, &mut by_id)
            .map_err(|e| e.within(&format!("resourceSpans[{i}]")))?;
    }
    for t in &mut traces {
        if let Some(root) = root_span(&t.spans) {
            t.inputs = root.inputs.clone();
            t.outputs = root.outputs.clone();
        }
        t.messages = conversation_with_io(&t.spans, t.inputs.as_ref(), t.outputs.as_ref());
    }
    Ok(traces)
}

/// The first of `names` present (lowerCamelCase first, then the proto field name).
fn field<'a>(
    o: &'a Map<String, Value>,
    names: &[&'static str],
) -> Option<(&'static str, &'a Value)> {
    names
        .iter()
        .find_map(|n| o.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
}

fn import_resource_spans(
    r: &Value,
    traces: &mut Vec<Trace>,
    by_id: &mut HashMap<String, usize>,
) -> Result<(), ImportError> {
    let r = as_object(r, "")?;
    let resource = match r.get("resource").filter(|v| !v.is_null()) {
        Some(res) => {
            let res = as_object(res, "resource")?;
            match res.get("attributes") {
                Some(a) => key_values(a).map_err(|e| e.within("resource.attributes"))?,
                None => Map::new(),
            }
        }
        None => Map::new(),
    };
    let scopes = match field(
        r,
        &["scopeSpans", "scope_spans", "instrumentationLibrarySpans"],
    ) {
        Some((name, s)) => as_array(s, name)?.as_slice(),
        None => &[],
    };
    for (j, ss) in scopes.iter().enumerate() {
        let at = format!("scopeSpans[{j}]");
        let ss = as_object(ss, &at)?;
        let scope = match field(ss, &["scope", "instrumentationLibrary"]) {
            Some((_, Value::Object(s))) => Some(s),
            Some((name, other)) => {
                return Err(ImportError::new(
                    format!("{at}.{name}"),
                    format!("an object `{{name, version}}`, found {}", kind_of(other)),
                ))
            }
            None => None,
        };
        let spans = match ss.get("spans").filter(|v| !v.is_null()) {
            Some(s) => as_array(s, &format!("{at}.spans"))?.as_slice(),
            None => &[],
        };
        for (k, s) in spans.iter().enumerate() {
            let (trace_id, span, tools) =
                import_span(s, scope).map_err(|e| e.within(&format!("{at}.spans[{k}]")))?;
            let idx = *by_id.entry(trace_id.clone()).or_insert_with(|| {
                traces.push(Trace {
                    id: trace_id,
                    ..Trace::default()
                });
                traces.len() - 1
            });
            let Some(trace) = traces.get_mut(idx) else {
                continue;
            };
            if !resource.is_empty() {
                let entry = trace
                    .metadata
                    .entry("resource")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    for (k, v) in &resource {
                        m.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
            for t in tools {
                if !trace.tools.iter().any(|d| d.name == t.name) {
                    trace.tools.push(t);
                }
            }
            trace.spans.push(span);
        }
    }
    Ok(())
}

/// A trace or span id: 2×`bytes` hex characters (base64 tolerated).
fn id_field(
    o: &Map<String, Value>,
    names: &[&'static str],
    bytes: usize,
    required: bool,
) -> Result<Option<String>, ImportError> {
    let what = if bytes == 16 { "trace" } else { "span" };
    let expected = |found: &Value| {
        format!(
            "a {what} id: {} hex characters, found {}",
            bytes * 2,
            describe(found)
        )
    };
    match field(o, names) {
        None => {
            if required {
                Err(ImportError::new(
                    names[0],
                    format!("a {what} id: {} hex characters", bytes * 2),
                ))
            } else {
                Ok(None)
            }
        }
        Some((_, Value::String(s))) if s.is_empty() && !required => Ok(None),
        Some((name, v @ Value::String(s))) => hex_id(s, bytes)
            .map(Some)
            .ok_or_else(|| ImportError::new(name, expected(v))),
        Some((name, other)) => Err(ImportError::new(name, expected(other))),
    }
}

/// One span: its trace id, the span, and the tool definitions it declares.
fn import_span(
    v: &Value,
    scope: Option<&Map<String, Value>>,
) -> Result<(String, Span, Vec<ToolDef>), ImportError> {
    let o = as_object(v, "")?;
    let trace_id = id_field(o, &["traceId", "trace_id"], 16, true)?.unwrap_or_default();
    let id = id_field(o, &["spanId", "span_id"], 8, true)?.unwrap_or_default();
    let parent_id = id_field(o, &["parentSpanId", "parent_span_id"], 8, false)?;
    let name = match field(o, &["name"]) {
        Some((_, Value::String(s))) => s.clone(),
        Some((_, other)) => {
            return Err(ImportError::new(
                "name",
                format!("a string, found {}", kind_of(other)),
            ))
        }
        None => String::new(),
    };
    let mut span = Span {
        id,
        parent_id,
        name,
        ..Span::default()
    };
    span.start_ns = nanos(o, &["startTimeUnixNano", "start_time_unix_nano"])?;
    span.end_ns = nanos(o, &["endTimeUnixNano", "end_time_unix_nano"])?;
    span.status = match field(o, &["status"]) {
        Some((_, Value::Object(s))) => SpanStatus {
            code: status_code(s.get("code")).to_owned(),
            message: s
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        Some((_, other)) => {
            return Err(ImportError::new(
                "status",
                format!("an object `{{code, message}}`, found {}", kind_of(other)),
            ))
        }
        None => SpanStatus {
            code: "unset".into(),
            message: String::new(),
        },
    };
    let mut attrs = match field(o, &["attributes"]) {
        Some((_, a)) => key_values(a).map_err(|e| e.within("attributes"))?,
        None => Map::new(),
    };
    let events = match field(o, &["events"]) {
        Some((_, e)) => {
            let list = as_array(e, "events")?;
            let mut out = Vec::with_capacity(list.len());
            for (i, e) in list.iter().enumerate() {
                out.push(import_event(e).map_err(|err| err.within(&format!("events[{i}]")))?);
            }
            out
        }
        None => Vec::new(),
    };
    if let Some(k) = field(o, &["kind"]).and_then(|(_, k)| otel_kind(k)) {
        attrs.insert("otel.span_kind".into(), Value::String(k.into()));
    }
    if let Some(scope) = scope {
        for (key, attr) in [
            ("name", "otel.scope.name"),
            ("version", "otel.scope.version"),
        ] {
            if let Some(Value::String(s)) = scope.get(key).filter(|s| s.as_str() != Some("")) {
                attrs.insert(attr.into(), Value::String(s.clone()));
            }
        }
    }
    let tools = interpret(&mut span, attrs, events);
    Ok((trace_id, span, tools))
}

fn nanos(o: &Map<String, Value>, names: &[&'static str]) -> Result<Option<u64>, ImportError> {
    match field(o, names) {
        Some((name, v)) => Ok(u64_value(v, name)?.filter(|t| *t != 0)),
        None => Ok(None),
    }
}

/// The OTel span kind as a name (`CLIENT`, `SERVER`, ...); `None` when unspecified.
fn otel_kind(v: &Value) -> Option<&'static str> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => match s.trim_start_matches("SPAN_KIND_") {
            "INTERNAL" => 1,
            "SERVER" => 2,
            "CLIENT" => 3,
            "PRODUCER" => 4,
            "CONSUMER" => 5,
            _ => return None,
        },
        _ => return None,
    };
    Some(match n {
        1 => "INTERNAL",
        2 => "SERVER",
        3 => "CLIENT",
        4 => "PRODUCER",
        5 => "CONSUMER",
        _ => return None,
    })
}

/// `[{key, value: AnyValue}]` as an object.
fn key_values(v: &Value) -> Result<Map<String, Value>, ImportError> {
    let mut out = Map::new();
    if v.is_null() {
        return Ok(out);
    }
    for (i, kv) in as_array(v, "")?.iter().enumerate() {
        let at = format!("[{i}]");
        let kv = as_object(kv, &at)?;
        let key = match kv.get("key") {
            Some(Value::String(k)) => k,
            _ => {
                return Err(ImportError::new(
                    format!("{at}.key"),
                    "the attribute's name (a string)",
                ))
            }
        };
        let value = match kv.get("value") {
            Some(val) => any_value(val).map_err(|e| e.within(&format!("{at}.value")))?,
            None => Value::Null,
        };
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// Decodes an OTLP `AnyValue`. Plain JSON scalars (from lax emitters) are taken as they are.
fn any_value(v: &Value) -> Result<Value, ImportError> {
    let o = match v {
        Value::Object(o) => o,
        Value::Array(_) => {
            return Err(ImportError::new(
                "",
                "an AnyValue object (stringValue, intValue, doubleValue, boolValue, arrayValue, kvlistValue, bytesValue)",
            ))
        }
        scalar => return Ok(scalar.clone()),
    };
    if o.is_empty() {
        return Ok(Value::Null);
    }
    if let Some((name, s)) = field(o, &["stringValue", "string_value"]) {
        return match s {
            Value::String(_) => Ok(s.clone()),
            other => Err(ImportError::new(
                name,
                format!("a string, found {}", kind_of(other)),
            )),
        };
    }
    if let Some((name, b)) = field(o, &["boolValue", "bool_value"]) {
        return match b {
            Value::Bool(_) => Ok(b.clone()),
            Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            other => Err(ImportError::new(
                name,
                format!("a boolean, found {}", describe(other)),
            )),
        };
    }
    if let Some((name, n)) = field(o, &["intValue", "int_value"]) {
        let bad = || {
            ImportError::new(
                name,
                format!("a 64-bit integer (string or number), found {}", describe(n)),
            )
        };
        return match n {
            Value::Number(x) if x.is_i64() || x.is_u64() => Ok(n.clone()),
            Value::String(s) => {
                let s = s.trim();
                if let Ok(i) = s.parse::<i64>() {
                    Ok(Value::from(i))
                } else {
                    s.parse::<u64>().map(Value::from).map_err(|_| bad())
                }
            }
            _ => Err(bad()),
        };
    }
    if let Some((name, d)) = field(o, &["doubleValue", "double_value"]) {
        return match d {
            Value::Number(_) => Ok(d.clone()),
            // Proto JSON writes non-finite doubles as strings; those stay strings.
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Value::from(f)),
                Ok(_) => Ok(d.clone()),
                Err(_) => Err(ImportError::new(
                    name,
                    format!("a number, found {}", describe(d)),
                )),
            },
            other => Err(ImportError::new(
                name,
                format!("a number, found {}", describe(other)),
            )),
        };
    }
    if let Some((name, a)) = field(o, &["arrayValue", "array_value"]) {
        let a = as_object(a, name)?;
        let mut out = Vec::new();
        if let Some(values) = a.get("values").filter(|v| !v.is_null()) {
            for (i, item) in as_array(values, &format!("{name}.values"))?
                .iter()
                .enumerate()
            {
                out.push(any_value(item).map_err(|e| e.within(&format!("{name}.values[{i}]")))?);
            }
        }
        return Ok(Value::Array(out));
    }
    if let Some((name, kv)) = field(o, &["kvlistValue", "kvlist_value"]) {
        let kv = as_object(kv, name)?;
        return match kv.get("values") {
            Some(values) => Ok(Value::Object(
                key_values(values).map_err(|e| e.within(&format!("{name}.values")))?,
            )),
            None => Ok(Value::Object(Map::new())),
        };
    }
    if let Some((_, b)) = field(o, &["bytesValue", "bytes_value"]) {
        // Kept as its base64 text.
        return Ok(b.clone());
    }
    Err(ImportError::new(
        "",
        "an AnyValue (stringValue, intValue, doubleValue, boolValue, arrayValue, kvlistValue or bytesValue)",
    ))
}

/// A span event with decoded attributes: `{name, time_ns?, attributes}`.
fn import_event(v: &Value) -> Result<Value, ImportError> {
    let o = as_object(v, "")?;
    let mut out = Map::new();
    let name = match o.get("name") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => {
            return Err(ImportError::new(
                "name",
                format!("a string, found {}", kind_of(other)),
            ))
        }
    };
    out.insert("name".into(), Value::String(name));
    if let Some(t) = nanos(o, &["timeUnixNano", "time_unix_nano"])? {
        out.insert("time_ns".into(), Value::from(t));
    }
    let attrs = match o.get("attributes") {
        Some(a) => key_values(a).map_err(|e| e.within("attributes"))?,
        None => Map::new(),
    };
    out.insert("attributes".into(), Value::Object(attrs));
    Ok(Value::Object(out))
}

fn str_attr<'a>(attrs: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    attrs
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn u64_attr(attrs: &Map<String, Value>, keys: &[&str]) -> Option<u64> {
    keys.iter()
        .find_map(|k| attrs.get(*k).and_then(|v| u64_value(v, k).ok().flatten()))
}

/// Fills the span's kind, payload, model, usage and cost from its attributes and events;
/// returns the tool definitions it declares.
fn interpret(span: &mut Span, mut attrs: Map<String, Value>, events: Vec<Value>) -> Vec<ToolDef> {
    let mut tools = Vec::new();
    // The latest GenAI conventions may carry a call's messages on one event (sent as a log
    // record): they count as the span's own attributes.
    let mut events = events;
    events.retain(|e| {
        if e.get("name").and_then(Value::as_str) != Some(DETAILS_EVENT) {
            return true;
        }
        if let Some(Value::Object(a)) = e.get("attributes") {
            for (k, v) in a {
                if k.starts_with("gen_ai.") && !attrs.contains_key(k) {
                    attrs.insert(k.clone(), v.clone());
                }
            }
        }
        false
    });
    // MLflow attributes are JSON-encoded here too.
    let mlflow_keys: Vec<String> = attrs
        .keys()
        .filter(|k| k.starts_with("mlflow."))
        .cloned()
        .collect();
    for k in mlflow_keys {
        let Some(raw) = attrs.remove(&k) else {
            continue;
        };
        let value = decode_attr(&raw);
        if !apply_attribute(span, &mut tools, &k, &value) {
            attrs.insert(k, value);
        }
    }
    let mlflow_kind = span.kind;

    span.kind = [
        "gen_ai.operation.name",
        "openinference.span.kind",
        "traceloop.span.kind",
        "llm.request.type",
    ]
    .iter()
    .filter_map(|k| str_attr(&attrs, k))
    .map(|s| match s {
        "completion" => SpanKind::Llm,
        other => SpanKind::parse(other),
    })
    .find(|k| *k != SpanKind::Unknown)
    .unwrap_or(mlflow_kind);
    if span.kind == SpanKind::Unknown {
        if str_attr(&attrs, "gen_ai.tool.name").is_some() {
            span.kind = SpanKind::Tool;
        } else if [
            "gen_ai.request.model",
            "gen_ai.response.model",
            "llm.model_name",
        ]
        .iter()
        .any(|k| attrs.contains_key(*k))
        {
            span.kind = SpanKind::Llm;
        }
    }

    // Inputs.
    if span.inputs.is_none() {
        if let Some(msgs) = attrs.remove("gen_ai.input.messages") {
            let mut list = match decode_attr(&msgs) {
                Value::Array(l) => l,
                other => vec![other],
            };
            if let Some(instr) = attrs.remove("gen_ai.system_instructions") {
                let parts = match decode_attr(&instr) {
                    Value::String(s) => {
                        Value::Array(vec![serde_json::json!({"type": "text", "content": s})])
                    }
                    other => other,
                };
                list.insert(0, serde_json::json!({"role": "system", "parts": parts}));
            }
            span.inputs = Some(Value::Array(list));
        }
    }
    if span.inputs.is_none() {
        span.inputs = take_flattened(&mut attrs, "llm.input_messages.").map(Value::Array);
    }
    if span.inputs.is_none() {
        span.inputs = attrs
            .remove("gen_ai.tool.call.arguments")
            .map(|v| decode_attr(&v));
    }
    if span.inputs.is_none() {
        span.inputs = take_value(&mut attrs, "input");
    }
    if span.inputs.is_none() {
        span.inputs = take_flattened(&mut attrs, "gen_ai.prompt.").map(Value::Array);
    }
    // Outputs.
    if span.outputs.is_none() && span.kind == SpanKind::Retriever {
        span.outputs = take_flattened(&mut attrs, "retrieval.documents.").map(Value::Array);
    }
    if span.outputs.is_none() {
        span.outputs = attrs
            .remove("gen_ai.output.messages")
            .map(|v| decode_attr(&v));
    }
    if span.outputs.is_none() {
        span.outputs = take_flattened(&mut attrs, "llm.output_messages.").map(Value::Array);
    }
    if span.outputs.is_none() {
        span.outputs = attrs
            .remove("gen_ai.tool.call.result")
            .map(|v| decode_attr(&v));
    }
    if span.outputs.is_none() {
        span.outputs = take_value(&mut attrs, "output");
    }
    if span.outputs.is_none() {
        span.outputs = take_flattened(&mut attrs, "gen_ai.completion.").map(Value::Array);
    }
    // Events: prompts and completions of older emitters; the rest are kept.
    let mut ev_inputs = Vec::new();
    let mut ev_outputs = Vec::new();
    let mut kept = Vec::new();
    for e in events {
        match event_messages(&e) {
            Some((false, mut msgs)) => ev_inputs.append(&mut msgs),
            Some((true, mut msgs)) => ev_outputs.append(&mut msgs),
            None => kept.push(e),
        }
    }
    if span.inputs.is_none() && !ev_inputs.is_empty() {
        span.inputs = Some(Value::Array(ev_inputs));
    }
    if span.outputs.is_none() && !ev_outputs.is_empty() {
        span.outputs = Some(Value::Array(ev_outputs));
    }
    if !kept.is_empty() {
        attrs.insert(EVENTS_ATTR.into(), Value::Array(kept));
    }

    // Model, usage, cost.
    if span.model.is_none() {
        span.model = [
            "gen_ai.response.model",
            "gen_ai.request.model",
            "llm.model_name",
        ]
        .iter()
        .find_map(|k| str_attr(&attrs, k))
        .map(str::to_owned);
    }
    if span.usage.is_none() {
        let input = u64_attr(
            &attrs,
            &[
                "gen_ai.usage.input_tokens",
                "gen_ai.usage.prompt_tokens",
                "llm.token_count.prompt",
            ],
        );
        let output = u64_attr(
            &attrs,
            &[
                "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens",
                "llm.token_count.completion",
            ],
        );
        if input.is_some() || output.is_some() {
            span.usage = Some(TokenUsage {
                input_tokens: input.unwrap_or(0),
                output_tokens: output.unwrap_or(0),
            });
        }
    }
    if span.cost.is_none() {
        span.cost = ["llm.cost.total", "gen_ai.usage.cost"]
            .iter()
            .find_map(|k| attrs.get(*k).and_then(cost_of));
    }

    // Tool definitions.
    let mut defs: Vec<Value> = Vec::new();
    if let Some(d) = attrs.get("gen_ai.tool.definitions") {
        match decode_attr(d) {
            Value::Array(l) => defs.extend(l),
            other => defs.push(other),
        }
    }
    if let Some(list) = flattened(&attrs, "llm.tools.") {
        for t in list {
            let schema = t.get("json_schema").map(decode_attr).unwrap_or(t);
            defs.push(schema);
        }
    }
    for d in defs {
        if let Ok(found) = import_tool_defs(&Value::Array(vec![d])) {
            tools.extend(found);
        }
    }
    if span.kind == SpanKind::Tool {
        if let (Some(name), Some(params)) =
            (str_attr(&attrs, "tool.name"), attrs.get("tool.parameters"))
        {
            tools.push(ToolDef {
                name: name.to_owned(),
                description: str_attr(&attrs, "tool.description")
                    .unwrap_or_default()
                    .to_owned(),
                parameters: decode_attr(params),
                annotations: Default::default(),
            });
        }
    }
    span.attributes = attrs;
    tools
}

/// OpenInference `input.value` / `output.value`: JSON when its mime type says so, or when the
/// text is a JSON object or list; otherwise the text.
fn take_value(attrs: &mut Map<String, Value>, which: &str) -> Option<Value> {
    let raw = attrs.remove(&format!("{which}.value"))?;
    let mime = str_attr(attrs, &format!("{which}.mime_type")).unwrap_or("");
    Some(match raw {
        Value::String(s) => {
            let t = s.trim_start();
            if mime.contains("json") || t.starts_with('{') || t.starts_with('[') {
                decode_json_str(&s)
            } else {
                Value::String(s)
            }
        }
        other => other,
    })
}

/// Deepest path rebuilt from a flattened attribute key.
const MAX_FLAT_DEPTH: usize = 16;

/// Removes the flattened list under `prefix` and returns it (see [`flattened`]).
fn take_flattened(attrs: &mut Map<String, Value>, prefix: &str) -> Option<Vec<Value>> {
    let list = flattened(attrs, prefix)?;
    attrs.retain(|k, _| !k.starts_with(prefix));
    Some(list)
}

/// Rebuilds a list flattened into attributes: `{prefix}{i}.a.b = v` becomes element `i` with
/// `{a:{b:v}}`. Numeric path segments become list positions; the OpenInference wrappers
/// `message`, `tool_call`, `message_content`, `tool` and `document` are unwrapped.
fn flattened(attrs: &Map<String, Value>, prefix: &str) -> Option<Vec<Value>> {
    let mut items: BTreeMap<u64, Map<String, Value>> = BTreeMap::new();
    for (k, v) in attrs {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        let mut segs = rest.split('.');
        let Some(Ok(i)) = segs.next().map(str::parse::<u64>) else {
            continue;
        };
        let mut path: Vec<&str> = segs.collect();
        if path.is_empty() {
            continue;
        }
        // Bounded nesting: a hostile key with thousands of dots stays one deep key.
        if path.len() > MAX_FLAT_DEPTH {
            let tail = path.split_off(MAX_FLAT_DEPTH - 1);
            insert_path(
                items.entry(i).or_default(),
                &[&path[..], &[tail.join(".").as_str()]].concat(),
                v.clone(),
            );
            continue;
        }
        insert_path(items.entry(i).or_default(), &path, v.clone());
    }
    if items.is_empty() {
        return None;
    }
    Some(
        items
            .into_values()
            .map(|m| normalize(Value::Object(m)))
            .collect(),
    )
}

fn insert_path(obj: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        obj.insert((*first).to_owned(), value);
        return;
    }
    let entry = obj
        .entry((*first).to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(inner) = entry {
        insert_path(inner, rest, value);
    }
}

/// Objects whose keys are all numbers become lists; single-key wrappers are unwrapped.
fn normalize(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            if !m.is_empty() && m.keys().all(|k| k.parse::<u64>().is_ok()) {
                let mut entries: Vec<(u64, Value)> = m
                    .into_iter()
                    .filter_map(|(k, v)| k.parse().ok().map(|i| (i, normalize(v))))
                    .collect();
                entries.sort_by_key(|(i, _)| *i);
                return Value::Array(entries.into_iter().map(|(_, v)| v).collect());
            }
            if m.len() == 1 {
                if let Some((k, _)) = m.iter().next() {
                    if matches!(
                        k.as_str(),
                        "message" | "tool_call" | "message_content" | "tool" | "document"
                    ) {
                        if let Some(inner) = m.into_iter().next().map(|(_, v)| v) {
                            return normalize(inner);
                        }
                        return Value::Null;
                    }
                }
            }
            Value::Object(m.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}

/// Chat messages carried by a GenAI event: `Some((is_output, messages))`, or `None` for an
/// event that is not a prompt or completion.
fn event_messages(e: &Value) -> Option<(bool, Vec<Value>)> {
    let name = e.get("name").and_then(Value::as_str)?;
    let empty = Map::new();
    let attrs = e
        .get("attributes")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let (role, output) = match name {
        "gen_ai.system.message" => ("system", false),
        "gen_ai.user.message" => ("user", false),
        "gen_ai.assistant.message" => ("assistant", false),
        "gen_ai.tool.message" => ("tool", false),
        "gen_ai.choice" => ("assistant", true),
        "gen_ai.content.prompt" | "gen_ai.content.completion" => {
            let output = name.ends_with("completion");
            let key = if output {
                "gen_ai.completion"
            } else {
                "gen_ai.prompt"
            };
            let body = attrs.get(key).map(decode_attr).unwrap_or(Value::Null);
            let msgs = match body {
                Value::Array(l) => l,
                Value::Null => Vec::new(),
                other => vec![other],
            };
            return Some((output, msgs));
        }
        _ => return None,
    };
    // The event body: a `body` attribute, a JSON `gen_ai.event.content`, or the attributes.
    let body = attrs
        .get("body")
        .or_else(|| attrs.get("gen_ai.event.content"))
        .map(decode_attr)
        .unwrap_or_else(|| Value::Object(attrs.clone()));
    let body = match body {
        Value::Object(b) => b,
        Value::String(s) => {
            let mut m = Map::new();
            m.insert("content".into(), Value::String(s));
            m
        }
        _ => Map::new(),
    };
    // A choice wraps its message.
    let src = match body.get("message") {
        Some(Value::Object(m)) => m.clone(),
        _ => body.clone(),
    };
    let mut msg = Map::new();
    let role = src.get("role").and_then(Value::as_str).unwrap_or(role);
    msg.insert("role".into(), Value::String(role.to_owned()));
    let content = src.get("content").map(decode_attr).unwrap_or(Value::Null);
    msg.insert("content".into(), content);
    if let Some(calls) = src.get("tool_calls").map(decode_attr) {
        msg.insert("tool_calls".into(), calls);
    }
    if role == "tool" {
        if let Some(id) = src.get("id").or_else(|| src.get("tool_call_id")) {
            msg.insert("tool_call_id".into(), id.clone());
        }
    }
    Some((output, vec![Value::Object(msg)]))
}

/// The GenAI event that carries a whole model call's messages as attributes.
pub const DETAILS_EVENT: &str = "gen_ai.client.inference.operation.details";

/// A GenAI event received as an OpenTelemetry log record, for the span it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Lower-case hex trace id.
    pub trace_id: String,
    /// Lower-case hex span id.
    pub span_id: String,
    /// The event in OTLP/JSON span-event form: `{name, timeUnixNano?, attributes}`, the
    /// record's body as the `body` attribute.
    pub event: Value,
}

/// The GenAI events (`gen_ai.*`, named by the record's `eventName` or its `event.name`
/// attribute) of an OTLP/JSON `ExportLogsServiceRequest` that name their trace and span,
/// as span events; the number of other records is returned beside them. A record that is
/// not an object, or ids that are not hex, are errors naming where they are.
pub fn split_logs(v: &Value) -> Result<(Vec<LogEvent>, usize), ImportError> {
    let o = as_object(v, "")?;
    let resource_logs = match field(o, &["resourceLogs", "resource_logs"]) {
        Some((_, r)) => as_array(r, "resourceLogs")?,
        None => {
            return Err(ImportError::new(
                "resourceLogs",
                "an OTLP logs request: an object with `resourceLogs`",
            ))
        }
    };
    let mut out = Vec::new();
    let mut other = 0;
    for (i, rl) in resource_logs.iter().enumerate() {
        let at = format!("resourceLogs[{i}]");
        let rl = as_object(rl, &at)?;
        let scopes = match field(rl, &["scopeLogs", "scope_logs"]) {
            Some((_, s)) => as_array(s, &format!("{at}.scopeLogs"))?,
            None => continue,
        };
        for (j, sl) in scopes.iter().enumerate() {
            let at = format!("{at}.scopeLogs[{j}]");
            let sl = as_object(sl, &at)?;
            let records = match field(sl, &["logRecords", "log_records"]) {
                Some((_, r)) => as_array(r, &format!("{at}.logRecords"))?,
                None => continue,
            };
            for (k, r) in records.iter().enumerate() {
                let at = format!("{at}.logRecords[{k}]");
                let r = as_object(r, &at)?;
                match log_event(r).map_err(|e| e.within(&at))? {
                    Some(e) => out.push(e),
                    None => other += 1,
                }
            }
        }
    }
    Ok((out, other))
}

fn log_event(r: &Map<String, Value>) -> Result<Option<LogEvent>, ImportError> {
    let attrs: Vec<Value> = match field(r, &["attributes"]) {
        Some((_, Value::Array(a))) => a.clone(),
        Some((_, Value::Null)) | None => Vec::new(),
        Some((_, other)) => {
            return Err(ImportError::new(
                "attributes",
                format!("a list of key-value pairs, found {}", kind_of(other)),
            ))
        }
    };
    let attr_name = attrs.iter().find_map(|kv| {
        (kv.get("key").and_then(Value::as_str) == Some("event.name"))
            .then(|| kv.get("value")?.get("stringValue")?.as_str())
            .flatten()
            .map(str::to_owned)
    });
    let name = field(r, &["eventName", "event_name"])
        .and_then(|(_, n)| n.as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or(attr_name);
    let Some(name) = name.filter(|n| n.starts_with("gen_ai.")) else {
        return Ok(None);
    };
    // An all-zero id is W3C trace context's "none": such an event names no span.
    let named = |id: Option<String>| id.filter(|h| h.bytes().any(|b| b != b'0'));
    let (Some(trace_id), Some(span_id)) = (
        named(id_field(r, &["traceId", "trace_id"], 16, false)?),
        named(id_field(r, &["spanId", "span_id"], 8, false)?),
    ) else {
        return Ok(None);
    };
    let mut attributes: Vec<Value> = attrs
        .into_iter()
        .filter(|kv| kv.get("key").and_then(Value::as_str) != Some("event.name"))
        .collect();
    if let Some((_, body)) = field(r, &["body"]).filter(|(_, b)| !b.is_null()) {
        attributes.push(serde_json::json!({"key": "body", "value": body}));
    }
    let mut event = Map::new();
    event.insert("name".into(), Value::String(name));
    if let Some((_, t)) = field(r, &["timeUnixNano", "time_unix_nano"])
        .or_else(|| field(r, &["observedTimeUnixNano", "observed_time_unix_nano"]))
    {
        event.insert("timeUnixNano".into(), t.clone());
    }
    event.insert("attributes".into(), Value::Array(attributes));
    Ok(Some(LogEvent {
        trace_id,
        span_id,
        event: Value::Object(event),
    }))
}

/// Adds received log events to the stored span bodies (`{resource, scope, span}`) whose
/// span they name, after the span's own events, in the order given.
pub fn attach_events<'a>(bodies: &mut [Value], events: impl IntoIterator<Item = &'a LogEvent>) {
    for e in events {
        let Some(span) = bodies.iter_mut().find_map(|b| {
            let span = b.get_mut("span")?;
            let id = span
                .get("spanId")
                .or_else(|| span.get("span_id"))?
                .as_str()?;
            (id.eq_ignore_ascii_case(&e.span_id)).then_some(span)
        }) else {
            continue;
        };
        let Some(obj) = span.as_object_mut() else {
            continue;
        };
        match obj
            .entry("events")
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(list) => list.push(e.event.clone()),
            other => *other = Value::Array(vec![e.event.clone()]),
        }
    }
}

/// One span of an export request with its resource and scope, as a receiver keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanPart {
    /// Lower-case hex trace id.
    pub trace_id: String,
    /// Lower-case hex span id.
    pub span_id: String,
    /// `{"resource": .., "scope": .., "span": ..}`
    pub body: Value,
}

/// Splits an OTLP/JSON export request into its spans, each with its resource and scope, so
/// the spans of one trace can arrive in several requests and be put together later with
/// [`assemble`]. Ids are normalized to lower-case hex.
pub fn split_request(v: &Value) -> Result<Vec<SpanPart>, ImportError> {
    let o = as_object(v, "")?;
    let (rs_name, rs) = field(o, &["resourceSpans", "resource_spans"])
        .ok_or_else(|| ImportError::new("resourceSpans", "a list of resource spans"))?;
    let mut out = Vec::new();
    for (i, r) in as_array(rs, rs_name)?.iter().enumerate() {
        let at = format!("{rs_name}[{i}]");
        let ro = as_object(r, &at)?;
        let resource = ro.get("resource").cloned().unwrap_or(Value::Null);
        let Some((ss_name, ss)) = field(ro, &["scopeSpans", "scope_spans"]) else {
            continue;
        };
        for (j, s) in as_array(ss, &format!("{at}.{ss_name}"))?.iter().enumerate() {
            let at = format!("{at}.{ss_name}[{j}]");
            let so = as_object(s, &at)?;
            let scope = so.get("scope").cloned().unwrap_or(Value::Null);
            let Some((_, spans)) = field(so, &["spans"]) else {
                continue;
            };
            for (k, span) in as_array(spans, &format!("{at}.spans"))?.iter().enumerate() {
                let at = format!("{at}.spans[{k}]");
                let sp = as_object(span, &at)?;
                let id = |names: &[&'static str], bytes: usize| -> Result<String, ImportError> {
                    let (n, v) = field(sp, names).ok_or_else(|| {
                        ImportError::new(format!("{at}.{}", names[0]), "a hex id")
                    })?;
                    // All zeros is the invalid id of W3C trace context: no trace is named by
                    // it, and whoever sent it first would own it.
                    v.as_str()
                        .and_then(|s| hex_id(s, bytes))
                        .filter(|h| h.bytes().any(|b| b != b'0'))
                        .ok_or_else(|| {
                            ImportError::new(
                                format!("{at}.{n}"),
                                format!(
                                    "a {}-character hex id, not all zeros, found {}",
                                    bytes * 2,
                                    describe(v)
                                ),
                            )
                        })
                };
                let trace_id = id(&["traceId", "trace_id"], 16)?;
                let span_id = id(&["spanId", "span_id"], 8)?;
                out.push(SpanPart {
                    trace_id,
                    span_id,
                    body: serde_json::json!({"resource": resource, "scope": scope, "span": span}),
                });
            }
        }
    }
    Ok(out)
}

/// An export request holding the given span bodies (as made by [`split_request`]).
pub fn assemble<'a>(bodies: impl IntoIterator<Item = &'a Value>) -> Value {
    let resource_spans: Vec<Value> = bodies
        .into_iter()
        .map(|b| {
            serde_json::json!({
                "resource": b.get("resource").cloned().unwrap_or(Value::Null),
                "scopeSpans": [{
                    "scope": b.get("scope").cloned().unwrap_or(Value::Null),
                    "spans": [b.get("span").cloned().unwrap_or(Value::Null)],
                }],
            })
        })
        .collect();
    serde_json::json!({ "resourceSpans": resource_spans })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_values_decode() {
        let kv = json!([
            {"key": "s", "value": {"stringValue": "x"}},
            {"key": "i", "value": {"intValue": "9007199254740993"}},
            {"key": "d", "value": {"doubleValue": 0.5}},
            {"key": "b", "value": {"boolValue": true}},
            {"key": "a", "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "two"}]}}},
            {"key": "m", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}},
            {"key": "e", "value": {}}
        ]);
        let m = key_values(&kv).unwrap();
        assert_eq!(m["s"], json!("x"));
        assert_eq!(m["i"].as_i64(), Some(9007199254740993));
        assert_eq!(m["d"], json!(0.5));
        assert_eq!(m["a"], json!([1, "two"]));
        assert_eq!(m["m"], json!({"k": "v"}));
        assert_eq!(m["e"], Value::Null);
        let e = key_values(&json!([{"key": "i", "value": {"intValue": "ten"}}])).unwrap_err();
        assert_eq!(e.field, "[0].value.intValue");
    }

    /// The all-zero ids of W3C trace context name nothing: a span sent with one is refused.
    #[test]
    fn spans_with_all_zero_ids_are_refused() {
        let req = |trace: &str, span: &str| {
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [
                {"traceId": trace, "spanId": span, "name": "s"}]}]}]})
        };
        let (t, sp) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
        assert_eq!(split_request(&req(t, sp)).unwrap().len(), 1);
        for (trace, span, field) in [
            (&"0".repeat(32)[..], sp, "traceId"),
            (t, &"0".repeat(16)[..], "spanId"),
        ] {
            let e = split_request(&req(trace, span)).unwrap_err();
            assert_eq!(
                e.field,
                format!("resourceSpans[0].scopeSpans[0].spans[0].{field}"),
                "{e}"
            );
            assert!(e.to_string().contains("not all zeros"), "{e}");
        }
    }

    #[test]
    fn flattened_openinference_messages() {
        let mut attrs = Map::new();
        for (k, v) in [
            ("llm.output_messages.0.message.role", json!("assistant")),
            (
                "llm.output_messages.0.message.tool_calls.0.tool_call.id",
                json!("c1"),
            ),
            (
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name",
                json!("f"),
            ),
            (
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
                json!("{\"a\":1}"),
            ),
            ("llm.output_messages.1.message.content", json!("second")),
        ] {
            attrs.insert(k.into(), v);
        }
        let list = take_flattened(&mut attrs, "llm.output_messages.").unwrap();
        assert_eq!(
            list[0],
            json!({"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{\"a\":1}"}}]})
        );
        assert_eq!(list[1], json!({"content": "second"}));
        assert!(attrs.is_empty());
    }

    #[test]
    fn deep_flattened_keys_stay_bounded() {
        let mut attrs = Map::new();
        let key = format!("llm.input_messages.0.message.{}", "a.".repeat(50_000));
        attrs.insert(key, json!("x"));
        let list = flattened(&attrs, "llm.input_messages.").unwrap();
        let mut depth = 0;
        let mut cur = &list[0];
        while let Some((_, v)) = cur.as_object().and_then(|o| o.iter().next()) {
            depth += 1;
            cur = v;
        }
        assert!(depth <= MAX_FLAT_DEPTH, "{depth}");
    }
}

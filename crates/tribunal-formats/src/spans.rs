//! The conversation view of a span tree: messages and tool calls in order, with provenance.
//!
//! Shared by the span-based importers (MLflow, OTLP). Spans are walked in start-time order:
//! - an LLM span contributes the input messages not seen before (ids `{span}.in{k}`), then
//!   its reply (id = span id) with the tool calls it made;
//! - a TOOL span answers the earliest matching call still open; when no assistant message
//!   holds that call, an assistant message with the call is synthesized first
//!   (id `{span}.call`). The result is a tool message (id = span id) with tool provenance;
//! - a RETRIEVER span becomes a message with retrieval provenance holding the documents.
//!
//! LLM spans nested in an LLM span, and tool or retriever spans nested in a tool span, repeat
//! what their ancestor already says and are skipped. Without any LLM span, the trace inputs
//! become the user turn and its outputs the assistant reply. Span payloads are free-form, so
//! this never fails: shapes it does not know become text.

use crate::util::{arguments_or_text, content_text};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use tribunal_core::trace::value_text;
use tribunal_core::{Message, Provenance, Role, Span, SpanKind, ToolCall};

/// Attributes that carry the id of the tool call a tool span executes.
const TOOL_CALL_ID_ATTRS: &[&str] = &["gen_ai.tool.call.id", "tool_call.id", "tool.call_id"];
/// Attributes that carry the name of the tool a tool span executes.
const TOOL_NAME_ATTRS: &[&str] = &["gen_ai.tool.name", "tool.name"];

/// The conversation of a span tree, using the root span's inputs and outputs when the trace
/// has no LLM span.
pub fn conversation_from_spans(spans: &[Span]) -> Vec<Message> {
    let root = root_span(spans);
    conversation_with_io(
        spans,
        root.and_then(|s| s.inputs.as_ref()),
        root.and_then(|s| s.outputs.as_ref()),
    )
}

/// The conversation of a span tree; `inputs` and `outputs` are the trace's own, used when the
/// trace has no LLM span.
pub fn conversation_with_io(
    spans: &[Span],
    inputs: Option<&Value>,
    outputs: Option<&Value>,
) -> Vec<Message> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut order: Vec<&Span> = spans.iter().collect();
    // Stable: spans without a start time, and ties, keep their source order.
    order.sort_by_key(|s| s.start_ns.unwrap_or(0));

    let has_llm = spans.iter().any(|s| s.kind == SpanKind::Llm);
    let root = root_span(spans);
    let mut conv = Conversation::default();
    if !has_llm {
        if let Some(v) = inputs.filter(|v| !v.is_null()) {
            conv.trace_inputs(v, root.map(|s| s.id.as_str()));
        }
    }
    for span in order {
        match span.kind {
            SpanKind::Llm if !has_ancestor(span, &by_id, &[SpanKind::Llm]) => conv.llm(span),
            SpanKind::Tool if !has_ancestor(span, &by_id, &[SpanKind::Tool]) => conv.tool(span),
            SpanKind::Retriever if !has_ancestor(span, &by_id, &[SpanKind::Tool]) => {
                conv.retriever(span)
            }
            _ => {}
        }
    }
    if !has_llm {
        if let Some(v) = outputs.filter(|v| !v.is_null()) {
            conv.trace_outputs(v, root.map(|s| s.id.as_str()));
        }
    }
    conv.out
}

/// The first span without a parent in the list.
pub fn root_span(spans: &[Span]) -> Option<&Span> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    spans
        .iter()
        .find(|s| s.parent_id.as_deref().is_none_or(|p| !ids.contains(p)))
}

/// Whether a span of one of `kinds` is above `span`, so that what `span` holds is part of
/// that span's step rather than a step of the conversation. A span on a parent cycle (its
/// own parent, or a chain of parents leading back to it, as a malformed or hostile file may
/// hold) has nothing above it: it is read as a step, never hidden under itself.
fn has_ancestor(span: &Span, by_id: &HashMap<&str, &Span>, kinds: &[SpanKind]) -> bool {
    let mut chain: Vec<&Span> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::from([span.id.as_str()]);
    let mut cur = span.parent_id.as_deref();
    while let Some(p) = cur {
        if p == span.id {
            return false;
        }
        if !seen.insert(p) {
            // A cycle above the span, not through it: the spans before it are above it.
            break;
        }
        let Some(parent) = by_id.get(p) else {
            break;
        };
        chain.push(parent);
        cur = parent.parent_id.as_deref();
    }
    chain.iter().any(|parent| kinds.contains(&parent.kind))
}

/// A chat message recognised in a span payload, before it gets an id.
#[derive(Debug, Clone, PartialEq)]
struct Parsed {
    role: Role,
    content: String,
    calls: Vec<(Option<String>, String, Value)>,
    tool_call_id: Option<String>,
    name: Option<String>,
}

impl Parsed {
    fn new(role: Role, content: String) -> Parsed {
        Parsed {
            role,
            content,
            calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.content.is_empty() && self.calls.is_empty()
    }

    /// Identity used to recognise a message repeated in a later call's inputs.
    fn key(&self) -> (Role, String) {
        let mut k = self.content.clone();
        for (_, name, args) in &self.calls {
            k.push('\u{1f}');
            k.push_str(name);
            k.push('\u{1f}');
            k.push_str(&args.to_string());
        }
        if self.role == Role::Tool {
            k.push('\u{1f}');
            k.push_str(self.tool_call_id.as_deref().unwrap_or(""));
        }
        (self.role, k)
    }
}

#[derive(Default)]
struct Conversation {
    out: Vec<Message>,
    /// How many messages with each key were emitted.
    seen: HashMap<(Role, String), usize>,
    /// Calls already answered by a tool result.
    answered: HashSet<String>,
    /// Call id -> tool name, for every call made so far.
    call_names: HashMap<String, String>,
    /// Call id -> index of a tool message from a span that recorded no output; a later
    /// call's inputs may carry the result, which then fills it in.
    empty_results: HashMap<String, usize>,
}

impl Conversation {
    fn llm(&mut self, span: &Span) {
        if let Some(inputs) = span.inputs.as_ref() {
            let parsed = messages_of(inputs, Role::User);
            self.history(&parsed, &span.id, "in");
        }
        if let Some(outputs) = span.outputs.as_ref() {
            let mut parsed: Vec<Parsed> = messages_of(outputs, Role::Assistant);
            match parsed.iter().rposition(|m| m.role == Role::Assistant) {
                Some(last) => {
                    let reply = parsed.remove(last);
                    parsed.truncate(last);
                    self.history(&parsed, &span.id, "out");
                    self.push_reply(reply, span.id.clone(), Some(&span.id));
                }
                None => self.history(&parsed, &span.id, "out"),
            }
        }
    }

    /// Messages a span repeats from the conversation so far: only the new ones are added.
    fn history(&mut self, parsed: &[Parsed], span_id: &str, tag: &str) {
        let mut local: HashMap<(Role, String), usize> = HashMap::new();
        for (k, m) in parsed.iter().enumerate() {
            let key = m.key();
            let occurrence = local.entry(key.clone()).or_insert(0);
            let before = *occurrence;
            *occurrence += 1;
            if before < self.seen.get(&key).copied().unwrap_or(0) {
                continue;
            }
            let known_call = m.calls.iter().any(|(id, _, _)| {
                id.as_ref()
                    .is_some_and(|id| self.call_names.contains_key(id))
            });
            if let Some(idx) = m
                .tool_call_id
                .as_ref()
                .and_then(|id| self.empty_results.remove(id))
            {
                if let Some(msg) = self.out.get_mut(idx) {
                    msg.content = m.content.clone();
                }
                continue;
            }
            let answered = m
                .tool_call_id
                .as_ref()
                .is_some_and(|id| self.answered.contains(id));
            if known_call || answered || (m.role == Role::Assistant && m.is_empty()) {
                continue;
            }
            self.push_reply(m.clone(), format!("{span_id}.{tag}{k}"), Some(span_id));
        }
    }

    /// Adds a message, giving ids to its calls and recording what it answers.
    fn push_reply(&mut self, m: Parsed, id: String, span_id: Option<&str>) {
        *self.seen.entry(m.key()).or_insert(0) += 1;
        let mut msg = Message::new(id.clone(), m.role, m.content);
        msg.span_id = span_id.map(str::to_owned);
        msg.name = m.name;
        for (j, (call_id, name, arguments)) in m.calls.into_iter().enumerate() {
            let call_id = call_id.unwrap_or_else(|| format!("{id}.call{j}"));
            self.call_names.insert(call_id.clone(), name.clone());
            msg.tool_calls.push(ToolCall {
                id: call_id,
                name,
                arguments,
                span_id: None,
            });
        }
        if m.role == Role::Tool {
            let tool = msg
                .name
                .clone()
                .or_else(|| {
                    m.tool_call_id
                        .as_ref()
                        .and_then(|c| self.call_names.get(c).cloned())
                })
                .unwrap_or_default();
            if msg.name.is_none() && !tool.is_empty() {
                msg.name = Some(tool.clone());
            }
            msg.provenance = Provenance::Tool { name: tool };
            if let Some(c) = &m.tool_call_id {
                self.answered.insert(c.clone());
            }
            msg.tool_call_id = m.tool_call_id;
        }
        self.out.push(msg);
    }

    fn tool(&mut self, span: &Span) {
        let name = TOOL_NAME_ATTRS
            .iter()
            .find_map(|k| span.attributes.get(*k).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .unwrap_or(span.name.as_str())
            .to_owned();
        let arguments = arguments_or_text(span.inputs.as_ref().unwrap_or(&Value::Null));
        let explicit_id = TOOL_CALL_ID_ATTRS
            .iter()
            .find_map(|k| span.attributes.get(*k).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let call_id = match self.claim_call(&span.id, &name, explicit_id.as_deref(), &arguments) {
            Some(id) => id,
            None => {
                let id = explicit_id.unwrap_or_else(|| span.id.clone());
                let mut call_msg =
                    Message::new(format!("{}.call", span.id), Role::Assistant, String::new());
                call_msg.span_id = Some(span.id.clone());
                call_msg.tool_calls.push(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments,
                    span_id: Some(span.id.clone()),
                });
                self.call_names.insert(id.clone(), name.clone());
                self.out.push(call_msg);
                id
            }
        };
        let content = match span.outputs.as_ref() {
            Some(v) if !v.is_null() => result_text(v),
            _ if span.status.is_error() => span.status.message.clone(),
            _ => {
                self.empty_results.insert(call_id.clone(), self.out.len());
                String::new()
            }
        };
        self.answered.insert(call_id.clone());
        let mut msg = Message::new(span.id.clone(), Role::Tool, content);
        msg.provenance = Provenance::Tool { name: name.clone() };
        msg.name = Some(name);
        msg.tool_call_id = Some(call_id);
        msg.span_id = Some(span.id.clone());
        let mut as_parsed = Parsed::new(Role::Tool, msg.content.clone());
        as_parsed.tool_call_id = msg.tool_call_id.clone();
        *self.seen.entry(as_parsed.key()).or_insert(0) += 1;
        self.out.push(msg);
    }

    /// Finds the open call a tool span executes: by explicit call id, else by tool name
    /// (preferring equal arguments). Marks the call with the span that ran it.
    fn claim_call(
        &mut self,
        span_id: &str,
        name: &str,
        explicit_id: Option<&str>,
        arguments: &Value,
    ) -> Option<String> {
        let answered = &self.answered;
        let mut open = self.out.iter_mut().flat_map(|m| m.tool_calls.iter_mut());
        let mut by_name: Option<&mut ToolCall> = None;
        let mut found: Option<&mut ToolCall> = None;
        for call in open.by_ref() {
            if answered.contains(&call.id) {
                continue;
            }
            match explicit_id {
                Some(id) if call.id == id => {
                    found = Some(call);
                    break;
                }
                Some(_) => {}
                None if call.name == name => {
                    if &call.arguments == arguments {
                        found = Some(call);
                        break;
                    }
                    if by_name.is_none() {
                        by_name = Some(call);
                    }
                }
                None => {}
            }
        }
        let call = found.or(by_name)?;
        if call.span_id.is_none() {
            call.span_id = Some(span_id.to_owned());
        }
        Some(call.id.clone())
    }

    fn retriever(&mut self, span: &Span) {
        let content = span
            .outputs
            .as_ref()
            .map(documents_text)
            .unwrap_or_default();
        let arguments = arguments_or_text(span.inputs.as_ref().unwrap_or(&Value::Null));
        let call_id = self.claim_call(&span.id, &span.name, None, &arguments);
        if let Some(id) = &call_id {
            self.answered.insert(id.clone());
        }
        let mut msg = Message::new(span.id.clone(), Role::Tool, content);
        msg.provenance = Provenance::Retrieval {
            name: Some(span.name.clone()),
        };
        msg.name = Some(span.name.clone());
        msg.tool_call_id = call_id;
        msg.span_id = Some(span.id.clone());
        self.out.push(msg);
    }

    fn trace_inputs(&mut self, v: &Value, root: Option<&str>) {
        let parsed = if is_chat(v) {
            messages_of(v, Role::User)
        } else {
            vec![Parsed::new(Role::User, io_text(v))]
        };
        for (k, m) in parsed.into_iter().enumerate() {
            let id = match root {
                Some(r) => format!("{r}.in{k}"),
                None if k == 0 => "inputs".to_owned(),
                None => format!("inputs.{k}"),
            };
            self.push_reply(m, id, root);
        }
    }

    fn trace_outputs(&mut self, v: &Value, root: Option<&str>) {
        let reply = if is_chat(v) {
            messages_of(v, Role::Assistant)
                .into_iter()
                .rfind(|m| m.role == Role::Assistant)
        } else {
            None
        }
        .unwrap_or_else(|| Parsed::new(Role::Assistant, io_text(v)));
        self.push_reply(reply, root.unwrap_or("outputs").to_owned(), root);
    }
}

/// Does this payload carry chat messages (rather than arbitrary function arguments)?
fn is_chat(v: &Value) -> bool {
    match v {
        Value::Object(o) => {
            o.get("messages").is_some_and(Value::is_array)
                || o.get("choices").is_some_and(Value::is_array)
                || o.contains_key("role")
        }
        Value::Array(items) => items
            .first()
            .is_some_and(|f| f.get("role").is_some() || f.get("parts").is_some() || f.is_array()),
        _ => false,
    }
}

/// Text of a trace's inputs or outputs: a string as is, a one-field object's string value,
/// anything else as JSON.
fn io_text(v: &Value) -> String {
    match v {
        Value::Object(o) if o.len() == 1 => match o.values().next() {
            Some(Value::String(s)) => s.clone(),
            _ => value_text(v),
        },
        other => value_text(other),
    }
}

/// Text of a tool's result.
fn result_text(v: &Value) -> String {
    match v {
        // A list of content parts (MCP results, Anthropic blocks).
        Value::Array(parts)
            if !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p.get("type").and_then(Value::as_str) == Some("text")) =>
        {
            content_text(v)
        }
        Value::Object(o) => match o.get("content") {
            // A tool message object (LangChain `ToolMessage`, OpenAI tool message).
            Some(c) if o.contains_key("type") || o.contains_key("role") => content_text(c),
            _ => value_text(v),
        },
        other => value_text(other),
    }
}

/// Text of retrieved documents: their `page_content` / `content` / `text`, one per line.
fn documents_text(v: &Value) -> String {
    match v {
        Value::Array(docs) => docs
            .iter()
            .map(documents_text)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(o) => {
            for key in ["page_content", "content", "text"] {
                if let Some(Value::String(s)) = o.get(key) {
                    return s.clone();
                }
            }
            match o.get("documents") {
                Some(docs) => documents_text(docs),
                None => value_text(v),
            }
        }
        other => value_text(other),
    }
}

fn role_of(s: &str) -> Option<Role> {
    Some(match s.to_ascii_lowercase().as_str() {
        "system" | "developer" => Role::System,
        "user" | "human" => Role::User,
        "assistant" | "ai" | "model" | "bot" => Role::Assistant,
        "tool" | "function" | "ipython" => Role::Tool,
        _ => return None,
    })
}

/// Every chat message found in a span payload, in order. `default_role` is used for bare text.
fn messages_of(v: &Value, default_role: Role) -> Vec<Parsed> {
    let mut out = Vec::new();
    collect(v, default_role, &mut out, 0);
    out
}

fn collect(v: &Value, default_role: Role, out: &mut Vec<Parsed>, depth: usize) {
    if depth > 8 {
        out.push(Parsed::new(default_role, value_text(v)));
        return;
    }
    match v {
        Value::Null => {}
        Value::String(s) => out.push(Parsed::new(default_role, s.clone())),
        Value::Array(items) => {
            // LangChain batches: a list of message lists; the first one is the call.
            if let Some(first @ Value::Array(_)) = items.first() {
                collect(first, default_role, out, depth + 1);
                return;
            }
            for item in items {
                collect(item, default_role, out, depth + 1);
            }
        }
        Value::Object(o) => collect_object(v, o, default_role, out, depth),
        other => out.push(Parsed::new(default_role, value_text(other))),
    }
}

fn collect_object(
    v: &Value,
    o: &Map<String, Value>,
    default_role: Role,
    out: &mut Vec<Parsed>,
    depth: usize,
) {
    // Requests: `{system?, messages:[...]}` (OpenAI, Anthropic), `{input:[items]}` (Responses).
    if let Some(Value::Array(msgs)) = o.get("messages") {
        if let Some(system) = o.get("system").filter(|s| !s.is_null()) {
            out.push(Parsed::new(Role::System, content_text(system)));
        }
        if let Some(Value::String(instr)) = o.get("instructions") {
            out.push(Parsed::new(Role::System, instr.clone()));
        }
        for m in msgs {
            collect(m, default_role, out, depth + 1);
        }
        return;
    }
    // Responses: `{choices:[{message}]}`, `{generations:[[{message|text}]]}`,
    // `{candidates:[{content}]}`: the first alternative is the one the agent used.
    for key in ["choices", "generations", "candidates"] {
        if let Some(Value::Array(alts)) = o.get(key) {
            let mut first = alts.first();
            while let Some(Value::Array(inner)) = first {
                first = inner.first();
            }
            if let Some(Value::Object(alt)) = first {
                let inner = alt
                    .get("message")
                    .or_else(|| alt.get("content").filter(|c| c.is_object()))
                    .unwrap_or(first.unwrap_or(&Value::Null));
                collect(inner, default_role, out, depth + 1);
            }
            return;
        }
    }
    // OpenAI Responses API item lists.
    for key in ["input", "output"] {
        if let Some(Value::Array(items)) = o.get(key) {
            if let Some(Value::String(instr)) = o.get("instructions") {
                out.push(Parsed::new(Role::System, instr.clone()));
            }
            for item in items {
                collect(item, default_role, out, depth + 1);
            }
            return;
        }
    }
    if let Some(inner @ Value::Object(message)) = o.get("message") {
        collect_object(inner, message, default_role, out, depth + 1);
        return;
    }
    match o.get("type").and_then(Value::as_str) {
        Some("function_call") => {
            let mut m = Parsed::new(Role::Assistant, String::new());
            m.calls.push(call_of(o));
            out.push(m);
            return;
        }
        Some("function_call_output") => {
            let mut m = Parsed::new(
                Role::Tool,
                o.get("output").map(result_text).unwrap_or_default(),
            );
            m.tool_call_id = str_field(o, &["call_id", "id"]);
            out.push(m);
            return;
        }
        Some("reasoning") => return,
        _ => {}
    }
    let role_word = o
        .get("role")
        .and_then(Value::as_str)
        .or_else(|| o.get("type").and_then(Value::as_str));
    let role = role_word.and_then(role_of);
    let message_like = role.is_some()
        || o.contains_key("parts")
        || o.contains_key("content")
        || o.contains_key("tool_calls")
        || matches!(o.get("text"), Some(Value::String(_)));
    if message_like {
        parse_message(o, role.unwrap_or(default_role), out);
        return;
    }
    for key in ["prompt", "prompts", "query", "question", "input", "output"] {
        if let Some(p @ (Value::String(_) | Value::Array(_))) = o.get(key) {
            collect(p, default_role, out, depth + 1);
            return;
        }
    }
    out.push(Parsed::new(default_role, io_text(v)));
}

/// One message object in any of the known shapes; tool results it holds come first, as
/// separate tool messages.
fn parse_message(o: &Map<String, Value>, role: Role, out: &mut Vec<Parsed>) {
    let mut msg = Parsed::new(role, String::new());
    msg.name = str_field(o, &["name"]);
    msg.tool_call_id = str_field(o, &["tool_call_id"]);
    let mut texts: Vec<String> = Vec::new();
    let mut results: Vec<Parsed> = Vec::new();
    let parts = o
        .get("parts")
        .or_else(|| o.get("content").filter(|c| !c.is_null()))
        .or_else(|| o.get("contents"));
    match parts {
        Some(Value::Array(parts)) => {
            for p in parts {
                part(p, &mut texts, &mut msg.calls, &mut results);
            }
        }
        Some(Value::String(s)) => texts.push(s.clone()),
        Some(Value::Null) | None => {
            if let Some(Value::String(s)) = o.get("text") {
                texts.push(s.clone());
            }
        }
        Some(other) => texts.push(value_text(other)),
    }
    if let Some(Value::Array(calls)) = o.get("tool_calls") {
        for c in calls {
            if let Value::Object(c) = c {
                msg.calls.push(call_of(c));
            }
        }
    }
    if let Some(Value::Object(fc)) = o.get("function_call") {
        msg.calls.push(call_of(fc));
    }
    msg.content = texts.join("\n");
    if role == Role::Tool && results.len() == 1 && msg.content.is_empty() {
        // A tool message whose only part is its result (GenAI `tool_call_response`).
        let mut r = results.remove(0);
        r.name = msg.name.take().or(r.name);
        out.push(r);
        return;
    }
    let had_results = !results.is_empty();
    out.append(&mut results);
    if !had_results || !msg.is_empty() || msg.role != Role::User {
        out.push(msg);
    }
}

/// One content part: text, a tool call, or a tool result.
fn part(
    p: &Value,
    texts: &mut Vec<String>,
    calls: &mut Vec<(Option<String>, String, Value)>,
    results: &mut Vec<Parsed>,
) {
    let o = match p {
        Value::String(s) => {
            texts.push(s.clone());
            return;
        }
        Value::Object(o) => o,
        _ => return,
    };
    match o.get("type").and_then(Value::as_str).unwrap_or("") {
        "tool_use" | "tool_call" | "function_call" | "server_tool_use" => {
            calls.push(call_of(o));
        }
        "tool_result" | "tool_call_response" | "function_call_output" => {
            let body = o
                .get("content")
                .or_else(|| o.get("response"))
                .or_else(|| o.get("result"))
                .or_else(|| o.get("output"))
                .unwrap_or(&Value::Null);
            let text = match body {
                Value::Array(_) => content_text(body),
                other => result_text(other),
            };
            let mut r = Parsed::new(Role::Tool, text);
            r.tool_call_id = str_field(o, &["tool_use_id", "id", "call_id", "tool_call_id"]);
            results.push(r);
        }
        _ => {
            let text = o
                .get("text")
                .and_then(Value::as_str)
                .or_else(|| o.get("content").and_then(Value::as_str));
            if let Some(t) = text {
                texts.push(t.to_owned());
            }
        }
    }
}

/// A tool call in OpenAI (`function{name, arguments}`), flat, Anthropic (`input`), GenAI or
/// LangChain (`args`) form.
fn call_of(o: &Map<String, Value>) -> (Option<String>, String, Value) {
    let f = match o.get("function") {
        Some(Value::Object(f)) => f,
        _ => o,
    };
    let id = str_field(o, &["id", "call_id", "tool_call_id"]);
    let name = str_field(f, &["name"]).unwrap_or_default();
    let args = ["arguments", "args", "input"]
        .iter()
        .find_map(|k| f.get(*k))
        .unwrap_or(&Value::Null);
    (id, name, arguments_or_text(args))
}

fn str_field(o: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match o.get(*k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span(id: &str, parent: Option<&str>, kind: SpanKind, start: u64) -> Span {
        Span {
            id: id.into(),
            parent_id: parent.map(str::to_owned),
            kind,
            name: id.into(),
            start_ns: Some(start),
            ..Span::default()
        }
    }

    #[test]
    fn llm_then_tool_then_llm() {
        let mut a = span("a", None, SpanKind::Agent, 1);
        a.inputs = Some(json!({"question": "weather in Paris?"}));
        let mut l1 = span("l1", Some("a"), SpanKind::Llm, 2);
        l1.inputs = Some(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather in Paris?"}]}));
        l1.outputs = Some(
            json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}]}),
        );
        let mut t = span("t", Some("a"), SpanKind::Tool, 3);
        t.name = "get_weather".into();
        t.inputs = Some(json!({"city": "Paris"}));
        t.outputs = Some(json!("sunny"));
        let mut l2 = span("l2", Some("a"), SpanKind::Llm, 4);
        l2.inputs = Some(json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]));
        l2.outputs = Some(json!("It is sunny."));
        // Given out of order: the conversation follows start times.
        let msgs = conversation_from_spans(&[a, l2, t, l1]);
        let ids: Vec<&str> = msgs.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["l1.in0", "l1.in1", "l1", "t", "l2"]);
        assert_eq!(msgs[2].tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(msgs[2].tool_calls[0].span_id.as_deref(), Some("t"));
        assert_eq!(msgs[3].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(
            msgs[3].provenance,
            Provenance::Tool {
                name: "get_weather".into()
            }
        );
        assert_eq!(msgs[4].content, "It is sunny.");
        assert!(msgs.iter().all(|m| m.span_id.is_some()));
    }

    /// A span that is its own parent, or on a cycle of parents, is read as a step: before,
    /// it found itself above itself and what it held (a tool call) was left out.
    #[test]
    fn spans_on_a_parent_cycle_are_read() {
        let tool = |id: &str, parent: &str| {
            let mut t = span(id, Some(parent), SpanKind::Tool, 3);
            t.inputs = Some(json!({"command": "rm -rf /"}));
            t.outputs = Some(json!("done"));
            t
        };
        let mut l = span("l", None, SpanKind::Llm, 1);
        l.inputs = Some(json!([{"role": "user", "content": "free up disk space"}]));
        l.outputs = Some(json!("on it"));
        let calls = |spans: &[Span]| -> Vec<String> {
            conversation_from_spans(spans)
                .iter()
                .flat_map(|m| m.tool_calls.iter().map(|c| c.arguments.to_string()))
                .collect()
        };
        // Its own parent.
        assert_eq!(calls(&[l.clone(), tool("t", "t")]).len(), 1);
        // Two tool spans each the other's parent: both read.
        assert_eq!(calls(&[l.clone(), tool("t", "u"), tool("u", "t")]).len(), 2);
        // The model's span and the tool's, each the other's parent.
        let mut l2 = l.clone();
        l2.parent_id = Some("t".into());
        let both = conversation_from_spans(&[l2, tool("t", "l")]);
        assert!(both.iter().any(|m| m.content == "free up disk space"));
        assert!(both.iter().any(|m| !m.tool_calls.is_empty()));
        // Below a cycle it is not on, a tool span is still part of the tool above it.
        assert_eq!(
            calls(&[l.clone(), tool("t", "u"), tool("u", "t"), tool("v", "t")]).len(),
            2
        );
        // A span that shares its parent's id is not its own ancestor either.
        assert_eq!(calls(&[l, tool("t", "l"), tool("t", "t")]).len(), 2);
    }

    #[test]
    fn tool_without_a_call_gets_one() {
        let root = span("r", None, SpanKind::Agent, 1);
        let mut t = span("t", Some("r"), SpanKind::Tool, 2);
        t.inputs = Some(json!({"q": 1}));
        t.outputs = Some(json!({"rows": 3}));
        let mut d = span("d", Some("r"), SpanKind::Retriever, 3);
        d.outputs = Some(json!([{"page_content": "doc one"}, {"page_content": "doc two"}]));
        let msgs = conversation_with_io(&[root, t, d], Some(&json!("hi")), Some(&json!("bye")));
        let ids: Vec<&str> = msgs.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["r.in0", "t.call", "t", "d", "r"]);
        assert_eq!(msgs[1].tool_calls[0].id, "t");
        assert_eq!(msgs[1].tool_calls[0].arguments, json!({"q": 1}));
        assert_eq!(msgs[2].content, "{\"rows\":3}");
        assert_eq!(msgs[3].content, "doc one\ndoc two");
        assert!(matches!(msgs[3].provenance, Provenance::Retrieval { .. }));
        assert_eq!(msgs[4].role, Role::Assistant);
    }

    #[test]
    fn repeated_user_turns_are_not_merged() {
        let mut l1 = span("l1", None, SpanKind::Llm, 1);
        l1.inputs = Some(json!([{"role": "user", "content": "yes"}]));
        l1.outputs = Some(json!("Sure?"));
        let mut l2 = span("l2", None, SpanKind::Llm, 2);
        l2.inputs = Some(json!([
            {"role": "user", "content": "yes"},
            {"role": "assistant", "content": "Sure?"},
            {"role": "user", "content": "yes"}]));
        l2.outputs = Some(json!("Done."));
        let msgs = conversation_from_spans(&[l1, l2]);
        let ids: Vec<&str> = msgs.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["l1.in0", "l1", "l2.in2", "l2"]);
    }

    #[test]
    fn genai_parts_and_anthropic_blocks() {
        let mut l = span("l", None, SpanKind::Llm, 1);
        l.inputs = Some(json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]));
        l.outputs = Some(json!([{"role": "assistant", "parts": [
            {"type": "text", "content": "calling"},
            {"type": "tool_call", "id": "x", "name": "f", "arguments": {"a": 1}}]}]));
        let mut l2 = span("l2", None, SpanKind::Llm, 2);
        l2.inputs = Some(json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "x", "content": [{"type": "text", "text": "42"}]}]}]}));
        l2.outputs =
            Some(json!({"role": "assistant", "content": [{"type": "text", "text": "42 it is"}]}));
        let msgs = conversation_from_spans(&[l, l2]);
        assert_eq!(msgs[0].content, "hi");
        assert_eq!(msgs[1].content, "calling");
        assert_eq!(msgs[1].tool_calls[0].arguments, json!({"a": 1}));
        assert_eq!(msgs[2].id, "l2.in0");
        assert_eq!(msgs[2].provenance, Provenance::Tool { name: "f".into() });
        assert_eq!(msgs[2].content, "42");
        assert_eq!(msgs[3].content, "42 it is");
    }

    #[test]
    fn nested_llm_spans_are_not_repeated() {
        let mut outer = span("o", None, SpanKind::Llm, 1);
        outer.outputs = Some(json!("hello"));
        let mut inner = span("i", Some("o"), SpanKind::Llm, 2);
        inner.outputs = Some(json!("hello"));
        let msgs = conversation_from_spans(&[outer, inner]);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].id, "o");
    }
}

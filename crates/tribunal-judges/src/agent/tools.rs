//! The read-only tools an agent judge investigates a trace with. Pure: a [`TraceTools`] is
//! built once per trace and answers calls with compact JSON text; the loop quotes every
//! answer as untrusted data before the model sees it.
//!
//! The trace is seen as steps: its spans when it has any, else its messages (each a step
//! whose kind is its role). Ids a tool returns are the ids the final answer may cite: span
//! ids, message ids and tool-call ids.

use crate::metrics::trajectory::{call_outcomes, CallOutcome};
use regex::RegexBuilder;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use tribunal_core::trace::value_text;
use tribunal_core::{Message, Provenance, Span, SpanKind, Trace};
use tribunal_llm::ToolSpec;

/// The tools, by name.
pub const TOOL_NAMES: &[&str] = &[
    "get_trace_info",
    "list_spans",
    "get_span",
    "search_trace",
    "get_tool_calls",
    "timing_report",
];

const PAGE: usize = 20;
const MAX_PAGE: usize = 100;
const SPAN_CHARS: usize = 4_000;
const MAX_SPAN_CHARS: usize = 20_000;
const EXCERPT: usize = 300;
/// Matches scanned at most per search, so a pattern like `.` cannot make a huge answer.
const MAX_MATCHES: usize = 2_000;

/// One step of the trace.
enum Step<'a> {
    Span(&'a Span),
    Message(&'a Message),
}

/// Read-only views of one trace.
pub struct TraceTools<'a> {
    trace: &'a Trace,
    steps: Vec<Step<'a>>,
    spans: HashMap<&'a str, &'a Span>,
    children: HashMap<&'a str, Vec<&'a str>>,
    ids: HashSet<&'a str>,
    calls: Vec<CallOutcome<'a>>,
    agents: Vec<String>,
}

/// A tool call the model made, answered or refused.
pub type ToolResult = Result<String, String>;

impl<'a> TraceTools<'a> {
    pub fn new(trace: &'a Trace) -> TraceTools<'a> {
        let mut spans_sorted: Vec<&Span> = trace.spans.iter().collect();
        spans_sorted.sort_by_key(|s| s.start_ns.unwrap_or(0));
        let steps = if spans_sorted.is_empty() {
            trace.messages.iter().map(Step::Message).collect()
        } else {
            spans_sorted.into_iter().map(Step::Span).collect()
        };
        let spans: HashMap<&str, &Span> = trace.spans.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for s in &trace.spans {
            if let Some(p) = s.parent_id.as_deref() {
                children.entry(p).or_default().push(s.id.as_str());
            }
        }
        let mut ids: HashSet<&str> = HashSet::new();
        ids.extend(trace.spans.iter().map(|s| s.id.as_str()));
        ids.extend(trace.messages.iter().map(|m| m.id.as_str()));
        ids.extend(
            trace
                .tool_calls()
                .filter(|(_, c)| !c.id.is_empty())
                .map(|(_, c)| c.id.as_str()),
        );
        let mut tools = TraceTools {
            trace,
            steps,
            spans,
            children,
            ids,
            calls: call_outcomes(trace),
            agents: Vec::new(),
        };
        tools.agents = tools.agent_names();
        tools
    }

    /// The tool definitions offered to the model.
    pub fn specs() -> Vec<ToolSpec> {
        let page = |extra: Value| {
            let mut props = json!({
                "offset": {"type": "integer", "minimum": 0, "description": "Index of the first item (default 0)."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "description": "Items per page (default 20)."},
            });
            if let (Value::Object(p), Value::Object(e)) = (&mut props, extra) {
                p.extend(e);
            }
            json!({"type": "object", "properties": props, "additionalProperties": false})
        };
        vec![
            ToolSpec::new(
                "get_trace_info",
                "Overview of the trace: id, number of steps, span kinds, tool calls per tool, failed steps, agents, duration, token usage, and excerpts of its inputs and outputs.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            ToolSpec::new(
                "list_spans",
                "List the trace's steps in time order (spans; for traces without spans, messages, whose kind is their role). Filter by kind (agent, llm, tool, retriever, chain, ...; or user, assistant, tool, system for messages), by a case-insensitive substring of the name, or by status (ok, error). Paginated.",
                page(json!({
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "status": {"type": "string"},
                })),
            ),
            ToolSpec::new(
                "get_span",
                "The full content of one span, message or tool call by id: inputs, outputs, attributes, status, children. Long content is paginated by characters: pass the returned next_offset to read on.",
                json!({"type": "object", "properties": {
                    "id": {"type": "string"},
                    "offset": {"type": "integer", "minimum": 0, "description": "Character offset (default 0)."},
                    "max_chars": {"type": "integer", "minimum": 100, "maximum": MAX_SPAN_CHARS, "description": "Characters to return (default 4000)."},
                }, "required": ["id"], "additionalProperties": false}),
            ),
            ToolSpec::new(
                "search_trace",
                "Search every step's text (inputs, outputs, attributes, status messages, message content, tool arguments) with a regular expression (case-insensitive unless case_sensitive is true). Returns the id, field and surrounding text of each match. Paginated.",
                page(json!({
                    "pattern": {"type": "string"},
                    "context": {"type": "integer", "minimum": 0, "maximum": 500, "description": "Characters of context on each side (default 80)."},
                    "case_sensitive": {"type": "boolean"},
                })),
            ),
            ToolSpec::new(
                "get_tool_calls",
                "The agent's tool calls in order: id, tool, arguments, the agent that made it, an excerpt of the result and whether it failed. Filter by tool name. Paginated.",
                page(json!({"name": {"type": "string"}})),
            ),
            ToolSpec::new(
                "timing_report",
                "Where the time went: total duration, time per span kind and per tool, and the slowest spans.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
        ]
    }

    /// Whether `id` names a span, message or tool call of the trace.
    pub fn has_id(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Agent names the trace mentions: agent spans, other-agent messages and message authors.
    pub fn agents(&self) -> &[String] {
        &self.agents
    }

    /// Some valid ids, for telling a model what ids look like.
    pub fn sample_ids(&self, n: usize) -> Vec<&str> {
        self.steps.iter().take(n).map(|s| self.step_id(s)).collect()
    }

    /// Runs tool `name` with `arguments` (a JSON object).
    pub fn call(&self, name: &str, arguments: &Value) -> ToolResult {
        match name {
            "get_trace_info" => {
                let _: NoArgs = args(arguments)?;
                Ok(self.trace_info().to_string())
            }
            "list_spans" => self.list_spans(args(arguments)?),
            "get_span" => self.get_span(args(arguments)?),
            "search_trace" => self.search(args(arguments)?),
            "get_tool_calls" => self.tool_calls(args(arguments)?),
            "timing_report" => {
                let _: NoArgs = args(arguments)?;
                Ok(self.timing().to_string())
            }
            other => Err(format!(
                "unknown tool {other:?}; the tools are {}",
                TOOL_NAMES.join(", ")
            )),
        }
    }

    fn step_id(&self, step: &Step<'a>) -> &'a str {
        match step {
            Step::Span(s) => s.id.as_str(),
            Step::Message(m) => m.id.as_str(),
        }
    }

    /// The agent a span runs in: the nearest agent span at or above it.
    fn span_agent(&self, span: &Span) -> Option<&'a str> {
        let mut current = self.spans.get(span.id.as_str()).copied();
        let mut hops = 0;
        while let Some(s) = current {
            if s.kind == SpanKind::Agent {
                return Some(s.name.as_str());
            }
            hops += 1;
            if hops > self.spans.len() {
                return None;
            }
            current = s
                .parent_id
                .as_deref()
                .and_then(|p| self.spans.get(p).copied());
        }
        None
    }

    fn message_agent(m: &Message) -> Option<&str> {
        match &m.provenance {
            Provenance::Agent { name } => Some(name.as_str()),
            Provenance::Assistant => m.name.as_deref(),
            _ => None,
        }
    }

    /// The agent behind a message: its span's agent, else its author.
    fn agent_of_message(&self, m: &'a Message) -> Option<&'a str> {
        m.span_id
            .as_deref()
            .or(Some(m.id.as_str()))
            .and_then(|id| self.spans.get(id))
            .and_then(|s| self.span_agent(s))
            .or_else(|| Self::message_agent(m))
    }

    fn agent_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut add = |n: &str| {
            if !n.is_empty() && !names.iter().any(|x| x == n) {
                names.push(n.to_owned());
            }
        };
        for s in self
            .trace
            .spans
            .iter()
            .filter(|s| s.kind == SpanKind::Agent)
        {
            add(&s.name);
        }
        for m in &self.trace.messages {
            if let Some(n) = Self::message_agent(m) {
                add(n);
            }
        }
        names
    }

    fn step_summary(&self, step: &Step<'a>) -> Value {
        match step {
            Step::Span(s) => {
                let mut v = json!({
                    "id": s.id, "kind": kind_name(s.kind), "name": s.name, "status": status(s),
                });
                if let Some(p) = &s.parent_id {
                    v["parent_id"] = json!(p);
                }
                if let Some(d) = s.duration_ms() {
                    v["duration_ms"] = json!(round(d));
                }
                if let Some(a) = self.span_agent(s) {
                    v["agent"] = json!(a);
                }
                v
            }
            Step::Message(m) => {
                let mut v = json!({
                    "id": m.id, "kind": role_name(m), "source": m.provenance.label(),
                    "excerpt": excerpt(&m.content, 160),
                });
                if let Some(n) = &m.name {
                    v["name"] = json!(n);
                }
                if !m.tool_calls.is_empty() {
                    v["tool_calls"] =
                        json!(m.tool_calls.iter().map(|c| &c.name).collect::<Vec<_>>());
                }
                if self.message_failed(m) {
                    v["status"] = json!("error");
                }
                if let Some(a) = self.agent_of_message(m) {
                    v["agent"] = json!(a);
                }
                v
            }
        }
    }

    fn message_failed(&self, m: &Message) -> bool {
        self.calls
            .iter()
            .any(|c| c.failed && c.result.is_some_and(|r| std::ptr::eq(r, m)))
    }

    fn step_kind(&self, step: &Step<'a>) -> &'static str {
        match step {
            Step::Span(s) => kind_name(s.kind),
            Step::Message(m) => role_name(m),
        }
    }

    fn step_failed(&self, step: &Step<'a>) -> bool {
        match step {
            Step::Span(s) => s.status.is_error(),
            Step::Message(m) => self.message_failed(m),
        }
    }

    fn trace_info(&self) -> Value {
        let trace = self.trace;
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &self.steps {
            *kinds.entry(self.step_kind(s)).or_default() += 1;
        }
        let mut per_tool: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &self.calls {
            *per_tool.entry(c.name).or_default() += 1;
        }
        let failed: Vec<&str> = self
            .steps
            .iter()
            .filter(|s| self.step_failed(s))
            .map(|s| self.step_id(s))
            .collect();
        let roots: Vec<&str> = trace
            .spans
            .iter()
            .filter(|s| {
                s.parent_id
                    .as_deref()
                    .is_none_or(|p| !self.spans.contains_key(p))
            })
            .map(|s| s.id.as_str())
            .take(10)
            .collect();
        let mut v = json!({
            "trace_id": trace.id,
            "steps_are": if trace.spans.is_empty() { "messages" } else { "spans" },
            "steps": self.steps.len(),
            "kinds": kinds,
            "messages": trace.messages.len(),
            "tool_calls": self.calls.len(),
            "calls_per_tool": per_tool,
            "failed_steps": failed.len(),
            "failed_step_ids": failed.iter().take(20).collect::<Vec<_>>(),
            "failed_tool_calls": self.calls.iter().filter(|c| c.failed).count(),
            "agents": self.agents,
        });
        if !roots.is_empty() {
            v["root_span_ids"] = json!(roots);
        }
        if let Some(d) = trace.duration_ms() {
            v["duration_ms"] = json!(round(d));
        }
        if let Some(u) = trace.token_usage() {
            v["usage"] = json!({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens});
        }
        let inputs = trace.inputs.as_ref().map(value_text).or_else(|| {
            trace
                .messages
                .iter()
                .find(|m| m.role == tribunal_core::Role::User)
                .map(|m| m.content.clone())
        });
        if let Some(i) = inputs {
            v["inputs_excerpt"] = json!(excerpt(&i, 500));
        }
        if let Some(o) = trace.output_text() {
            v["outputs_excerpt"] = json!(excerpt(&o, 500));
        }
        if let Some(e) = &trace.expectations {
            v["expectations"] = json!(excerpt(&value_text(e), 1_000));
        }
        v
    }

    fn list_spans(&self, a: ListArgs) -> ToolResult {
        let (offset, limit) = page(a.offset, a.limit)?;
        let name = a.name.map(|n| n.to_lowercase());
        let kind = a.kind.map(|k| k.to_lowercase());
        let status_filter = a.status.map(|s| s.to_lowercase());
        let matching: Vec<&Step<'a>> = self
            .steps
            .iter()
            .filter(|s| kind.as_deref().is_none_or(|k| self.step_kind(s) == k))
            .filter(|s| {
                name.as_deref().is_none_or(|n| match s {
                    Step::Span(sp) => sp.name.to_lowercase().contains(n),
                    Step::Message(m) => m
                        .name
                        .as_deref()
                        .unwrap_or(m.provenance.label())
                        .to_lowercase()
                        .contains(n),
                })
            })
            .filter(|s| {
                status_filter.as_deref().is_none_or(|f| {
                    let failed = self.step_failed(s);
                    match f {
                        "error" => failed,
                        "ok" => !failed,
                        _ => match s {
                            Step::Span(sp) => sp.status.code.eq_ignore_ascii_case(f),
                            Step::Message(_) => false,
                        },
                    }
                })
            })
            .collect();
        let items: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|s| self.step_summary(s))
            .collect();
        Ok(paged(matching.len(), offset, items).to_string())
    }

    fn get_span(&self, a: SpanArgs) -> ToolResult {
        let max = a.max_chars.unwrap_or(SPAN_CHARS).clamp(100, MAX_SPAN_CHARS);
        let offset = a.offset.unwrap_or(0);
        let doc = self.document(&a.id).ok_or_else(|| {
            format!(
                "no span, message or tool call has id {:?}; ids look like {:?} (see list_spans)",
                a.id,
                self.sample_ids(3)
            )
        })?;
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        let total = text.chars().count();
        if offset > total {
            return Err(format!(
                "offset {offset} is past the end of {:?} ({total} characters)",
                a.id
            ));
        }
        let content: String = text.chars().skip(offset).take(max).collect();
        let end = offset + content.chars().count();
        let mut v = json!({"id": a.id, "total_chars": total, "offset": offset, "content": content});
        if end < total {
            v["next_offset"] = json!(end);
        }
        Ok(v.to_string())
    }

    /// The whole record behind an id.
    fn document(&self, id: &str) -> Option<Value> {
        if let Some(s) = self.spans.get(id) {
            let mut v = serde_json::to_value(s).ok()?;
            v["kind"] = json!(kind_name(s.kind));
            v["status"] = json!(status(s));
            if let Some(d) = s.duration_ms() {
                v["duration_ms"] = json!(round(d));
            }
            if let Some(a) = self.span_agent(s) {
                v["agent"] = json!(a);
            }
            if let Some(c) = self.children.get(id) {
                v["children"] = json!(c);
            }
            return Some(v);
        }
        if let Some(m) = self.trace.messages.iter().find(|m| m.id == id) {
            let mut v = serde_json::to_value(m).ok()?;
            if let Some(a) = self.agent_of_message(m) {
                v["agent"] = json!(a);
            }
            return Some(v);
        }
        let c = self.calls.iter().find(|c| c.id == id)?;
        Some(self.call_json(c, usize::MAX))
    }

    fn call_json(&self, c: &CallOutcome<'a>, max: usize) -> Value {
        let made_by = self.trace.messages.iter().find(|m| m.id == c.message_id);
        let mut v = json!({
            "id": c.id, "tool": c.name,
            "arguments": excerpt(&c.arguments.to_string(), max),
            "failed": c.failed,
        });
        if let Some(m) = made_by {
            v["message_id"] = json!(m.id);
            if let Some(a) = self.agent_of_message(m) {
                v["agent"] = json!(a);
            }
        }
        match c.result {
            Some(r) => {
                v["result_id"] = json!(r.id);
                v["result"] = json!(excerpt(&r.content, max));
            }
            None => v["result"] = Value::Null,
        }
        v
    }

    fn search(&self, a: SearchArgs) -> ToolResult {
        let (offset, limit) = page(a.offset, a.limit)?;
        if a.pattern.is_empty() {
            return Err(
                "pattern: an empty pattern matches everything; search for something".into(),
            );
        }
        let re = RegexBuilder::new(&a.pattern)
            .case_insensitive(!a.case_sensitive.unwrap_or(false))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                format!(
                    "pattern {:?} is not a valid regular expression: {e}",
                    a.pattern
                )
            })?;
        let context = a.context.unwrap_or(80).min(500);
        let mut total = 0usize;
        let mut items = Vec::new();
        'fields: for (id, field, text) in self.texts() {
            for m in re.find_iter(&text) {
                if m.start() == m.end() {
                    continue;
                }
                if total >= offset && items.len() < limit {
                    items.push(json!({
                        "id": id, "field": field, "at": m.start(),
                        "text": window(&text, m.start(), m.end(), context),
                    }));
                }
                total += 1;
                if total >= MAX_MATCHES {
                    break 'fields;
                }
            }
        }
        let mut v = paged(total, offset, items);
        if total >= MAX_MATCHES {
            v["note"] = json!(format!(
                "stopped counting at {MAX_MATCHES} matches; narrow the pattern"
            ));
        }
        Ok(v.to_string())
    }

    /// Every searchable text: (id, field, text).
    fn texts(&self) -> Vec<(&'a str, &'static str, String)> {
        let mut out = Vec::new();
        if self.trace.spans.is_empty() {
            for m in &self.trace.messages {
                out.push((m.id.as_str(), "content", m.content.clone()));
                for c in &m.tool_calls {
                    let id = if c.id.is_empty() {
                        m.id.as_str()
                    } else {
                        c.id.as_str()
                    };
                    out.push((id, "arguments", c.arguments.to_string()));
                }
            }
            return out;
        }
        for step in &self.steps {
            let Step::Span(s) = step else { continue };
            out.push((s.id.as_str(), "name", s.name.clone()));
            if let Some(v) = &s.inputs {
                out.push((s.id.as_str(), "inputs", value_text(v)));
            }
            if let Some(v) = &s.outputs {
                out.push((s.id.as_str(), "outputs", value_text(v)));
            }
            if !s.attributes.is_empty() {
                out.push((
                    s.id.as_str(),
                    "attributes",
                    Value::Object(s.attributes.clone()).to_string(),
                ));
            }
            if !s.status.message.is_empty() {
                out.push((s.id.as_str(), "status", s.status.message.clone()));
            }
        }
        out
    }

    fn tool_calls(&self, a: CallArgs) -> ToolResult {
        let (offset, limit) = page(a.offset, a.limit)?;
        let matching: Vec<&CallOutcome<'a>> = self
            .calls
            .iter()
            .filter(|c| a.name.as_deref().is_none_or(|n| c.name == n))
            .collect();
        let items: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|c| self.call_json(c, EXCERPT))
            .collect();
        Ok(paged(matching.len(), offset, items).to_string())
    }

    fn timing(&self) -> Value {
        let timed: Vec<(&Span, f64)> = self
            .trace
            .spans
            .iter()
            .filter_map(|s| s.duration_ms().map(|d| (s, d)))
            .collect();
        if timed.is_empty() {
            return json!({"duration_ms": null, "note": "the trace has no span timings"});
        }
        let mut by_kind: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        let mut by_tool: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
        for (s, d) in &timed {
            let k = by_kind.entry(kind_name(s.kind)).or_default();
            k.0 += 1;
            k.1 += d;
            if s.kind == SpanKind::Tool {
                let t = by_tool.entry(s.name.as_str()).or_default();
                t.0 += 1;
                t.1 += d;
                t.2 = t.2.max(*d);
            }
        }
        let mut slowest = timed.clone();
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        let kinds: Map<String, Value> = by_kind
            .into_iter()
            .map(|(k, (n, t))| (k.to_owned(), json!({"spans": n, "total_ms": round(t)})))
            .collect();
        let tools: Map<String, Value> = by_tool
            .into_iter()
            .map(|(k, (n, t, m))| {
                (
                    k.to_owned(),
                    json!({"calls": n, "total_ms": round(t), "max_ms": round(m)}),
                )
            })
            .collect();
        json!({
            "duration_ms": self.trace.duration_ms().map(round),
            "timed_spans": timed.len(),
            "by_kind": kinds,
            "by_tool": tools,
            "slowest": slowest.iter().take(10).map(|(s, d)| json!({
                "id": s.id, "kind": kind_name(s.kind), "name": s.name, "duration_ms": round(*d),
            })).collect::<Vec<_>>(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    kind: Option<String>,
    name: Option<String>,
    status: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpanArgs {
    id: String,
    offset: Option<usize>,
    max_chars: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    pattern: String,
    context: Option<usize>,
    case_sensitive: Option<bool>,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallArgs {
    name: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Reads a tool's arguments; the error says what was wrong in the model's terms.
fn args<T: for<'de> Deserialize<'de>>(v: &Value) -> Result<T, String> {
    let object = match v {
        Value::Null => Value::Object(Map::new()),
        Value::Object(_) => v.clone(),
        Value::String(raw) => {
            return Err(format!(
                "the arguments are not valid JSON: {}",
                excerpt(raw, 200)
            ))
        }
        other => return Err(format!("the arguments must be a JSON object, got {other}")),
    };
    serde_json::from_value(object).map_err(|e| format!("invalid arguments: {e}"))
}

fn page(offset: Option<usize>, limit: Option<usize>) -> Result<(usize, usize), String> {
    let limit = limit.unwrap_or(PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        ));
    }
    Ok((offset.unwrap_or(0), limit))
}

fn paged(total: usize, offset: usize, items: Vec<Value>) -> Value {
    let end = offset + items.len();
    let mut v = json!({"total": total, "offset": offset, "items": items});
    if end < total {
        v["next_offset"] = json!(end);
    }
    v
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Agent => "agent",
        SpanKind::Llm => "llm",
        SpanKind::Tool => "tool",
        SpanKind::Retriever => "retriever",
        SpanKind::Chain => "chain",
        SpanKind::Embedding => "embedding",
        SpanKind::Reranker => "reranker",
        SpanKind::Guardrail => "guardrail",
        SpanKind::Evaluator => "evaluator",
        SpanKind::Parser => "parser",
        SpanKind::Memory => "memory",
        SpanKind::Message => "message",
        SpanKind::Unknown => "unknown",
    }
}

fn role_name(m: &Message) -> &'static str {
    match m.role {
        tribunal_core::Role::System => "system",
        tribunal_core::Role::User => "user",
        tribunal_core::Role::Assistant => "assistant",
        tribunal_core::Role::Tool => "tool",
    }
}

fn status(s: &Span) -> &str {
    if s.status.code.is_empty() {
        "unset"
    } else {
        s.status.code.as_str()
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// At most `max` characters of `text`, saying how much was left out.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((i, _)) => format!(
            "{}… [{} more characters]",
            &text[..i],
            text[i..].chars().count()
        ),
    }
}

/// `context` characters either side of bytes `start..end` of `text`.
fn window(text: &str, start: usize, end: usize, context: usize) -> String {
    let before: usize = text[..start]
        .chars()
        .rev()
        .take(context)
        .map(char::len_utf8)
        .sum();
    let after: usize = text[end..].chars().take(context).map(char::len_utf8).sum();
    let (from, to) = (start - before, end + after);
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    out.push_str(&text[from..start]);
    out.push_str(&excerpt(&text[start..end], 500));
    out.push_str(&text[end..to]);
    if to < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tribunal_core::{Role, SpanStatus, ToolCall};

    fn span(
        id: &str,
        parent: Option<&str>,
        kind: SpanKind,
        name: &str,
        start: u64,
        end: u64,
    ) -> Span {
        Span {
            id: id.into(),
            parent_id: parent.map(Into::into),
            kind,
            name: name.into(),
            start_ns: Some(start * 1_000_000),
            end_ns: Some(end * 1_000_000),
            status: SpanStatus::ok(),
            ..Span::default()
        }
    }

    fn trace() -> Trace {
        let mut failing = span("s3", Some("s1"), SpanKind::Tool, "search", 30, 90);
        failing.status = SpanStatus {
            code: "error".into(),
            message: "rate limited".into(),
        };
        failing.outputs = Some(json!("Error: rate limited é"));
        let mut call = Message::new("s2", Role::Assistant, "");
        call.tool_calls.push(ToolCall {
            id: "c1".into(),
            name: "search".into(),
            arguments: json!({"q": "paris"}),
            span_id: Some("s3".into()),
        });
        call.span_id = Some("s2".into());
        let mut result = Message::new("s3", Role::Tool, "Error: rate limited");
        result.tool_call_id = Some("c1".into());
        result.span_id = Some("s3".into());
        Trace {
            id: "t".into(),
            spans: vec![
                span("s0", None, SpanKind::Agent, "planner", 0, 100),
                span("s1", Some("s0"), SpanKind::Agent, "researcher", 10, 95),
                span("s2", Some("s1"), SpanKind::Llm, "chat", 10, 30),
                failing,
            ],
            messages: vec![Message::new("m0", Role::User, "Find Paris"), call, result],
            ..Trace::default()
        }
    }

    #[test]
    fn steps_are_listed_filtered_and_paginated() {
        let t = trace();
        let tools = TraceTools::new(&t);
        let v: Value =
            serde_json::from_str(&tools.call("list_spans", &json!({"limit": 2})).unwrap()).unwrap();
        assert_eq!(v["total"], 4);
        assert_eq!(v["next_offset"], 2);
        assert_eq!(v["items"][0]["id"], "s0");
        let v: Value =
            serde_json::from_str(&tools.call("list_spans", &json!({"kind": "tool"})).unwrap())
                .unwrap();
        assert_eq!(v["total"], 1);
        assert_eq!(v["items"][0]["agent"], "researcher");
        let v: Value = serde_json::from_str(
            &tools
                .call("list_spans", &json!({"status": "error"}))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(v["items"][0]["id"], "s3");
        assert!(tools.call("list_spans", &json!({"limit": 0})).is_err());
        assert!(tools
            .call("list_spans", &json!({"bogus": 1}))
            .unwrap_err()
            .contains("bogus"));
    }

    #[test]
    fn spans_are_read_in_pages() {
        let t = trace();
        let tools = TraceTools::new(&t);
        let first: Value = serde_json::from_str(
            &tools
                .call("get_span", &json!({"id": "s3", "max_chars": 100}))
                .unwrap(),
        )
        .unwrap();
        let next = first["next_offset"].as_u64().unwrap();
        assert_eq!(next, 100);
        let mut whole = first["content"].as_str().unwrap().to_owned();
        let mut offset = next;
        loop {
            let page: Value = serde_json::from_str(
                &tools
                    .call(
                        "get_span",
                        &json!({"id": "s3", "offset": offset, "max_chars": 100}),
                    )
                    .unwrap(),
            )
            .unwrap();
            whole.push_str(page["content"].as_str().unwrap());
            match page["next_offset"].as_u64() {
                Some(n) => offset = n,
                None => break,
            }
        }
        let doc: Value = serde_json::from_str(&whole).unwrap();
        assert_eq!(doc["agent"], "researcher");
        assert_eq!(doc["status"], "error");
        let err = tools.call("get_span", &json!({"id": "nope"})).unwrap_err();
        assert!(err.contains("nope") && err.contains("s0"), "{err}");
        assert!(tools
            .call("get_span", &json!({"id": "c1"}))
            .unwrap()
            .contains("search"));
    }

    #[test]
    fn search_finds_text_with_context() {
        let t = trace();
        let tools = TraceTools::new(&t);
        let v: Value = serde_json::from_str(
            &tools
                .call(
                    "search_trace",
                    &json!({"pattern": "RATE\\s+limited", "context": 3}),
                )
                .unwrap(),
        )
        .unwrap();
        assert_eq!(v["total"], 2, "{v}");
        assert_eq!(v["items"][0]["id"], "s3");
        assert_eq!(v["items"][0]["field"], "outputs");
        assert_eq!(v["items"][0]["text"], "…r: rate limited é");
        let err = tools
            .call("search_trace", &json!({"pattern": "("}))
            .unwrap_err();
        assert!(err.contains("not a valid regular expression"), "{err}");
    }

    #[test]
    fn calls_info_and_timing() {
        let t = trace();
        let tools = TraceTools::new(&t);
        let calls: Value =
            serde_json::from_str(&tools.call("get_tool_calls", &Value::Null).unwrap()).unwrap();
        assert_eq!(calls["items"][0]["failed"], true);
        assert_eq!(calls["items"][0]["result_id"], "s3");
        let info: Value =
            serde_json::from_str(&tools.call("get_trace_info", &json!({})).unwrap()).unwrap();
        assert_eq!(info["agents"], json!(["planner", "researcher"]));
        assert_eq!(info["failed_step_ids"], json!(["s3"]));
        assert_eq!(info["duration_ms"], 100.0);
        let timing: Value =
            serde_json::from_str(&tools.call("timing_report", &json!({})).unwrap()).unwrap();
        assert_eq!(timing["slowest"][0]["id"], "s0");
        assert_eq!(timing["by_tool"]["search"]["calls"], 1);
        assert!(tools
            .call("timing_report", &json!("{not json"))
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(tools
            .call("drop_table", &json!({}))
            .unwrap_err()
            .contains("get_span"));
        assert!(tools.has_id("c1") && tools.has_id("m0") && !tools.has_id("s9"));
    }
}

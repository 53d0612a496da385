//! The document policies see as `input`: the trace reduced to what gates reason about, the
//! pending step, every judge's scores and findings, and the call's context. It is built
//! directly as a regorus value (no JSON text in between); fields that would be null or empty
//! are left out.
//!
//! ```text
//! input.trace.messages[i]   {id, index, role, source, name?, trusted, content, tool_call_id?,
//!                            images?: [{url, host}]}   (their tool calls are in input.trace.tool_calls)
//! input.trace.mentions[d]   [{id, index, source, trusted}]: messages that mention URL host or email d
//! input.trace.calls_per_tool[name]  calls in the trace and the pending step
//! input.trace.tool_calls[i] {id, name, arguments, message_id, index, sensitive, destructive, hosts?, emails?,
//!                            arguments_text? (every argument string, one per line; sensitive calls only)}
//! input.trace.spans[i]      {id, parent_id?, kind, name, status, duration_ms?, model?}
//! input.trace.usage         {input_tokens, output_tokens, total_tokens}        (absent when unknown)
//! input.pending             {kind, content, tool_calls, images?}                (absent when none)
//!                           pending tool calls have message_id "pending" and index = number of messages
//! input.scores[name]        {value, error?, evidence}
//! input.findings[i]         {detector, kind, score, id, field, tool_call_id?, tool?, source, trusted}
//! input.context             {agent?, user?, environment?, ...}
//! ```
//! `hosts`, `emails`, `images` and `mentions` come from the URL hosts, email addresses and
//! markdown images found in the text (lower-cased), extracted once so that flow rules are
//! lookups; `sensitive` and `destructive` come from the tool classes in the policy data.

use crate::facts::{Links, ToolClasses};
use regorus::Value as R;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tribunal_core::{Feedback, Message, Pending, Provenance, ToolCall, Trace};

/// Who is asking: the agent, its user, the environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An object under construction.
struct Obj(BTreeMap<R, R>);

impl Obj {
    fn new() -> Obj {
        Obj(BTreeMap::new())
    }
    fn set(&mut self, k: &str, v: R) -> &mut Obj {
        self.0.insert(R::from(k), v);
        self
    }
    fn opt(&mut self, k: &str, v: Option<R>) -> &mut Obj {
        if let Some(v) = v {
            self.0.insert(R::from(k), v);
        }
        self
    }
    fn done(&mut self) -> R {
        R::from(std::mem::take(&mut self.0))
    }
}

fn s(v: &str) -> R {
    R::from(v)
}

fn strings(v: &[String]) -> Option<R> {
    (!v.is_empty()).then(|| R::from(v.iter().map(|x| s(x)).collect::<Vec<_>>()))
}

fn images(v: &[(String, String)]) -> Option<R> {
    (!v.is_empty()).then(|| {
        R::from(
            v.iter()
                .map(|(url, host)| Obj::new().set("url", s(url)).set("host", s(host)).done())
                .collect::<Vec<_>>(),
        )
    })
}

/// A JSON value as a regorus value, without an intermediate copy.
fn json(v: &Value) -> R {
    match v {
        Value::Null => R::Null,
        Value::Bool(b) => R::from(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => R::from(u),
            (_, Some(i), _) => R::from(i),
            (_, _, Some(f)) => R::from(f),
            _ => R::Null,
        },
        Value::String(x) => s(x),
        Value::Array(a) => R::from(a.iter().map(json).collect::<Vec<_>>()),
        Value::Object(o) => R::from(
            o.iter()
                .map(|(k, v)| (s(k), json(v)))
                .collect::<BTreeMap<R, R>>(),
        ),
    }
}

fn call_value(c: &ToolCall, message_id: &str, index: usize, classes: &ToolClasses) -> R {
    let mut links = Links::default();
    crate::strings_of(&c.arguments, &mut |t| links.scan(t));
    let sensitive = classes.is_sensitive(&c.name);
    // Every string of a sensitive call's arguments, one per line, for leak checks.
    let text = sensitive.then(|| {
        let mut text = String::new();
        crate::strings_of(&c.arguments, &mut |t| {
            text.push_str(t);
            text.push('\n');
        });
        s(&text)
    });
    Obj::new()
        .opt("arguments_text", text)
        .set("id", s(&c.id))
        .set("name", s(&c.name))
        .set("sensitive", R::from(sensitive))
        .set("destructive", R::from(classes.is_destructive(&c.name)))
        .set("arguments", json(&c.arguments))
        .set("message_id", s(message_id))
        .set("index", R::from(index))
        .opt("hosts", strings(&links.hosts))
        .opt("emails", strings(&links.emails))
        .done()
}

fn message_value(m: &Message, index: usize, mentions: &mut BTreeMap<String, Vec<R>>) -> R {
    let name = match &m.provenance {
        Provenance::Tool { name } | Provenance::Agent { name } => Some(name.as_str()),
        Provenance::Retrieval { name } => name.as_deref(),
        _ => m.name.as_deref(),
    };
    let mut links = Links::default();
    links.scan(&m.content);
    for d in links.hosts.iter().chain(&links.emails) {
        mentions.entry(d.clone()).or_default().push(
            Obj::new()
                .set("id", s(&m.id))
                .set("index", R::from(index))
                .set("source", s(m.provenance.label()))
                .set("trusted", R::from(!m.provenance.is_untrusted()))
                .done(),
        );
    }
    let mut o = Obj::new();
    o.set("id", s(&m.id))
        .set("index", R::from(index))
        .set("role", s(role(m)))
        .set("source", s(m.provenance.label()))
        .set("trusted", R::from(!m.provenance.is_untrusted()))
        .set("content", s(&m.content))
        .opt("name", name.filter(|n| !n.is_empty()).map(s))
        .opt("tool_call_id", m.tool_call_id.as_deref().map(s))
        .opt("images", images(&links.images));
    o.done()
}

fn role(m: &Message) -> &'static str {
    match m.role {
        tribunal_core::Role::System => "system",
        tribunal_core::Role::User => "user",
        tribunal_core::Role::Assistant => "assistant",
        tribunal_core::Role::Tool => "tool",
    }
}

/// Builds the policy input. Pure: the same arguments give the same document.
pub fn policy_input(
    trace: &Trace,
    pending: Option<&Pending>,
    feedback: &[Feedback],
    context: &Context,
    classes: &ToolClasses,
) -> R {
    let mut messages = Vec::with_capacity(trace.messages.len());
    let mut tool_calls = Vec::new();
    let mut mentions: BTreeMap<String, Vec<R>> = BTreeMap::new();
    let mut per_tool: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, m) in trace.messages.iter().enumerate() {
        messages.push(message_value(m, index, &mut mentions));
        for c in &m.tool_calls {
            tool_calls.push(call_value(c, &m.id, index, classes));
            *per_tool.entry(c.name.as_str()).or_default() += 1;
        }
    }
    for c in pending.iter().flat_map(|p| &p.tool_calls) {
        *per_tool.entry(c.name.as_str()).or_default() += 1;
    }
    let mut t = Obj::new();
    t.set("id", s(&trace.id))
        .set("messages", R::from(messages))
        .set("tool_calls", R::from(tool_calls))
        .set(
            "mentions",
            R::from(
                mentions
                    .into_iter()
                    .map(|(k, v)| (s(&k), R::from(v)))
                    .collect::<BTreeMap<R, R>>(),
            ),
        )
        .set(
            "calls_per_tool",
            R::from(
                per_tool
                    .into_iter()
                    .map(|(k, v)| (s(k), R::from(v)))
                    .collect::<BTreeMap<R, R>>(),
            ),
        );
    if !trace.spans.is_empty() {
        let spans = trace
            .spans
            .iter()
            .map(|sp| {
                Obj::new()
                    .set("id", s(&sp.id))
                    .opt("parent_id", sp.parent_id.as_deref().map(s))
                    .set(
                        "kind",
                        json(&serde_json::to_value(sp.kind).unwrap_or(Value::Null)),
                    )
                    .set("name", s(&sp.name))
                    .set("status", s(&sp.status.code))
                    .opt("duration_ms", sp.duration_ms().map(R::from))
                    .opt("model", sp.model.as_deref().map(s))
                    .done()
            })
            .collect::<Vec<_>>();
        t.set("spans", R::from(spans));
    }
    if let Some(u) = trace.token_usage() {
        t.set(
            "usage",
            Obj::new()
                .set("input_tokens", R::from(u.input_tokens))
                .set("output_tokens", R::from(u.output_tokens))
                .set("total_tokens", R::from(u.total()))
                .done(),
        );
    }
    if !trace.tags.is_empty() {
        t.set(
            "tags",
            json(&serde_json::to_value(&trace.tags).unwrap_or(Value::Null)),
        );
    }
    if !trace.metadata.is_empty() {
        t.set("metadata", json(&Value::Object(trace.metadata.clone())));
    }

    let mut root = Obj::new();
    root.set("trace", t.done());
    if let Some(p) = pending {
        let n = trace.messages.len();
        let mut links = Links::default();
        links.scan(&p.content);
        root.set(
            "pending",
            Obj::new()
                .set("kind", s(&p.kind))
                .set("content", s(&p.content))
                .set(
                    "tool_calls",
                    R::from(
                        p.tool_calls
                            .iter()
                            .map(|c| call_value(c, Pending::ID, n, classes))
                            .collect::<Vec<_>>(),
                    ),
                )
                .opt("images", images(&links.images))
                .done(),
        );
    }
    let mut scores = Obj::new();
    let mut findings = Vec::new();
    for f in feedback {
        scores.set(
            &f.name,
            Obj::new()
                .set("value", json(&f.value))
                .opt("error", f.error.as_deref().map(s))
                .set(
                    "evidence",
                    strings(&f.evidence).unwrap_or_else(|| R::from(Vec::<R>::new())),
                )
                .done(),
        );
        for x in &f.findings {
            let untrusted = matches!(
                x.location.provenance.as_str(),
                "tool" | "retrieval" | "agent"
            );
            findings.push(
                Obj::new()
                    .set("detector", s(&f.name))
                    .set("kind", s(&x.kind))
                    .set("score", R::from(x.score))
                    .set("id", s(&x.location.id))
                    .set("field", s(&x.location.field))
                    .opt("tool_call_id", x.location.tool_call_id.as_deref().map(s))
                    .opt("tool", x.location.tool.as_deref().map(s))
                    .set("source", s(&x.location.provenance))
                    .set("trusted", R::from(!untrusted))
                    .done(),
            );
        }
    }
    root.set("scores", scores.done());
    root.set("findings", R::from(findings));
    let mut ctx = Obj::new();
    ctx.opt("agent", context.agent.as_deref().map(s))
        .opt("user", context.user.as_deref().map(s))
        .opt("environment", context.environment.as_deref().map(s));
    for (k, v) in &context.extra {
        ctx.set(k, json(v));
    }
    root.set("context", ctx.done());
    root.done()
}

/// The same input as JSON (for display and debugging).
pub fn policy_input_json(
    trace: &Trace,
    pending: Option<&Pending>,
    feedback: &[Feedback],
    context: &Context,
    classes: &ToolClasses,
) -> Value {
    serde_json::to_value(policy_input(trace, pending, feedback, context, classes))
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_keep_their_kind() {
        let v: Value = serde_json::json!({"a": 1, "b": -2, "c": 1.5, "d": [true, null, "x"]});
        let r = json(&v);
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }
}

//! The document policies see as `input`: the trace reduced to what gates reason about, the
//! pending step, every judge's scores and findings, and the call's context.
//!
//! ```text
//! input.trace.messages[i]   {id, index, role, source, name, trusted, content, tool_calls, tool_call_id}
//! input.trace.tool_calls[i] {id, name, arguments, message_id, index}   (index = message index)
//! input.trace.spans[i]      {id, parent_id, kind, name, status, duration_ms, model}
//! input.trace.usage         {input_tokens, output_tokens, total_tokens} | null
//! input.pending             {kind, content, tool_calls: [{id, name, arguments}]} | null
//! input.scores[name]        {value, error, evidence}
//! input.findings[i]         {detector, kind, score, id, field, tool_call_id, tool, source, trusted}
//! input.context             {agent, user, environment, ...}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tribunal_core::{Feedback, Pending, Trace};

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

/// Builds the policy input. Pure: the same arguments give the same document.
pub fn policy_input(
    trace: &Trace,
    pending: Option<&Pending>,
    feedback: &[Feedback],
    context: &Context,
) -> Value {
    let mut messages = Vec::with_capacity(trace.messages.len());
    let mut tool_calls = Vec::new();
    for (index, m) in trace.messages.iter().enumerate() {
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
            .collect();
        for c in &m.tool_calls {
            tool_calls.push(json!({
                "id": c.id, "name": c.name, "arguments": c.arguments,
                "message_id": m.id, "index": index,
            }));
        }
        let name = match &m.provenance {
            tribunal_core::Provenance::Tool { name } | tribunal_core::Provenance::Agent { name } => {
                Value::String(name.clone())
            }
            tribunal_core::Provenance::Retrieval { name } => {
                name.clone().map(Value::String).unwrap_or(Value::Null)
            }
            _ => m.name.clone().map(Value::String).unwrap_or(Value::Null),
        };
        messages.push(json!({
            "id": m.id,
            "index": index,
            "role": m.role,
            "source": m.provenance.label(),
            "name": name,
            "trusted": !m.provenance.is_untrusted(),
            "content": m.content,
            "tool_calls": calls,
            "tool_call_id": m.tool_call_id,
        }));
    }
    let spans: Vec<Value> = trace
        .spans
        .iter()
        .map(|s| {
            json!({
                "id": s.id, "parent_id": s.parent_id, "kind": s.kind, "name": s.name,
                "status": s.status.code, "duration_ms": s.duration_ms(), "model": s.model,
            })
        })
        .collect();
    let usage = trace.token_usage().map(|u| {
        json!({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "total_tokens": u.total()})
    });
    let pending = pending.map(|p| {
        json!({
            "kind": p.kind,
            "content": p.content,
            "tool_calls": p.tool_calls.iter()
                .map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
                .collect::<Vec<_>>(),
        })
    });
    let mut scores = Map::new();
    let mut findings = Vec::new();
    for f in feedback {
        scores.insert(
            f.name.clone(),
            json!({"value": f.value, "error": f.error, "evidence": f.evidence}),
        );
        for x in &f.findings {
            findings.push(json!({
                "detector": f.name,
                "kind": x.kind,
                "score": x.score,
                "id": x.location.id,
                "field": x.location.field,
                "tool_call_id": x.location.tool_call_id,
                "tool": x.location.tool,
                "source": x.location.provenance,
                "trusted": !matches!(x.location.provenance.as_str(), "tool" | "retrieval" | "agent"),
            }));
        }
    }
    json!({
        "trace": {
            "id": trace.id,
            "messages": messages,
            "tool_calls": tool_calls,
            "spans": spans,
            "usage": usage,
            "tags": trace.tags,
            "metadata": trace.metadata,
        },
        "pending": pending,
        "scores": scores,
        "findings": findings,
        "context": context,
    })
}

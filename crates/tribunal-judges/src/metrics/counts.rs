//! `step_count`: how big a trace is — messages, tool calls, LLM calls, spans, failed tool
//! spans and calls per tool, as one object.

use crate::{error::JudgeConfigError, registry, Judge, JudgeInput};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use tribunal_core::{Feedback, Role, SpanKind};

/// `step_count` has no settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {}

pub fn build(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let Settings {} = registry::params(name, params)?;
    Ok(Box::new(Counts {
        name: name.to_owned(),
    }))
}

struct Counts {
    name: String,
}

impl Judge for Counts {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let trace = input.trace;
        let mut per_tool: BTreeMap<&str, u64> = BTreeMap::new();
        let mut tool_calls = 0u64;
        for (_, call) in trace.tool_calls() {
            *per_tool.entry(call.name.as_str()).or_default() += 1;
            tool_calls += 1;
        }
        // Span-only sources (no conversation view): count the tool spans instead.
        if tool_calls == 0 {
            for s in trace.spans.iter().filter(|s| s.kind == SpanKind::Tool) {
                *per_tool.entry(s.name.as_str()).or_default() += 1;
                tool_calls += 1;
            }
        }
        let llm_spans = trace
            .spans
            .iter()
            .filter(|s| s.kind == SpanKind::Llm)
            .count();
        let llm_calls = if llm_spans > 0 {
            llm_spans
        } else {
            trace
                .messages
                .iter()
                .filter(|m| m.role == Role::Assistant)
                .count()
        };
        let error_spans: Vec<String> = trace
            .spans
            .iter()
            .filter(|s| s.kind == SpanKind::Tool && s.status.is_error())
            .map(|s| s.id.clone())
            .collect();
        let steps = trace.messages.len();

        // Written into one string: this judge runs on every trace.
        let mut rationale = String::with_capacity(96);
        let _ = write!(rationale, "{steps} messages, {tool_calls} tool calls");
        for (i, (n, c)) in per_tool.iter().enumerate() {
            rationale.push_str(if i == 0 { " (" } else { ", " });
            let _ = write!(rationale, "{n} ×{c}");
        }
        if !per_tool.is_empty() {
            rationale.push(')');
        }
        let _ = write!(
            rationale,
            ", {llm_calls} LLM calls, {} spans, {} failed tool spans",
            trace.spans.len(),
            error_spans.len(),
        );
        let per_tool: Map<String, Value> = per_tool
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        let value = json!({
            "steps": steps,
            "tool_calls": tool_calls,
            "llm_calls": llm_calls,
            "spans": trace.spans.len(),
            "tool_errors": error_spans.len(),
            "per_tool": per_tool,
        });
        vec![Feedback::code(&self.name, &self.name, value)
            .with_rationale(rationale)
            .with_evidence(error_spans)]
    }
}

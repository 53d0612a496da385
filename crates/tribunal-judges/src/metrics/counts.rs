//! `step_count`: how big a trace is — messages, tool calls, LLM calls, spans, failed tool
//! spans and calls per tool, as one object.

use crate::{
    error::JudgeConfigError, registry, state_bytes, take_state, GrowState, Judge, JudgeInput,
};
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
        let mut tally = Tally::default();
        tally.add(&trace.messages);
        // Span-only sources (no conversation view): count the tool spans instead.
        if tally.tool_calls == 0 {
            for s in trace.spans.iter().filter(|s| s.kind == SpanKind::Tool) {
                *tally.per_tool.entry(s.name.clone()).or_default() += 1;
                tally.tool_calls += 1;
            }
        }
        self.render(input, &tally)
    }

    fn judge_grown(&self, input: &JudgeInput<'_>, state: &mut GrowState) -> Vec<Feedback> {
        // Spans are counted whole; a conversation only grows.
        if !input.trace.spans.is_empty() {
            *state = None;
            return self.judge(input);
        }
        let messages = &input.trace.messages;
        let mut tally = take_state::<Tally>(state, messages.len(), |t| t.messages);
        tally.add(&messages[tally.messages..]);
        let out = self.render(input, &tally);
        *state = Some(tally);
        out
    }

    fn state_bytes(&self, state: &GrowState) -> usize {
        state_bytes::<Tally>(state)
    }
}

impl tribunal_core::Heap for Tally {
    fn heap(&self) -> usize {
        self.per_tool.heap()
    }
}

/// The counts of some messages: what `step_count` keeps of a growing trace.
#[derive(Default)]
struct Tally {
    messages: usize,
    per_tool: BTreeMap<String, u64>,
    tool_calls: u64,
    assistant: usize,
}

impl Tally {
    fn add(&mut self, messages: &[tribunal_core::Message]) {
        for m in messages {
            for c in &m.tool_calls {
                match self.per_tool.get_mut(c.name.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        self.per_tool.insert(c.name.clone(), 1);
                    }
                }
                self.tool_calls += 1;
            }
            if m.role == Role::Assistant {
                self.assistant += 1;
            }
        }
        self.messages += messages.len();
    }
}

impl Counts {
    fn render(&self, input: &JudgeInput<'_>, tally: &Tally) -> Vec<Feedback> {
        let trace = input.trace;
        let (per_tool, tool_calls) = (&tally.per_tool, tally.tool_calls);
        let llm_spans = trace
            .spans
            .iter()
            .filter(|s| s.kind == SpanKind::Llm)
            .count();
        let llm_calls = if llm_spans > 0 {
            llm_spans
        } else {
            tally.assistant
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
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
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

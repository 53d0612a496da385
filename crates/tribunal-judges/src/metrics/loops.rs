//! `repeated_calls`: loop detection. Counts identical tool calls (same tool, same
//! arguments up to key order) over the trace and its pending step; the value is the highest
//! repeat count, and the rationale also gives the longest run of consecutive calls to one
//! tool.

use crate::{
    error::JudgeConfigError, registry, state_bytes, take_state, GrowState, Judge, JudgeInput,
};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use tribunal_core::{Feedback, Message, Pending, ToolCall};

use super::util;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// Tools whose calls are not counted (polling, `wait`, ...).
    ignore_tools: Vec<String>,
}

pub fn build(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: Settings = registry::params(name, params)?;
    Ok(Box::new(Loops {
        name: name.to_owned(),
        ignore: settings.ignore_tools.into_iter().collect(),
    }))
}

struct Loops {
    name: String,
    ignore: HashSet<String>,
}

impl Judge for Loops {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let canonical: Vec<String> = self
            .counted(&input.trace.messages)
            .map(|(_, c)| util::canonical(&c.arguments))
            .collect();
        self.decide(input, &canonical)
    }

    fn judge_grown(&self, input: &JudgeInput<'_>, state: &mut GrowState) -> Vec<Feedback> {
        let messages = &input.trace.messages;
        let mut grown = take_state::<Grown>(state, messages.len(), |g| g.messages);
        let new: Vec<String> = self
            .counted(&messages[grown.messages..])
            .map(|(_, c)| util::canonical(&c.arguments))
            .collect();
        grown.canonical.extend(new);
        grown.messages = messages.len();
        let out = self.decide(input, &grown.canonical);
        *state = Some(grown);
        out
    }

    fn state_bytes(&self, state: &GrowState) -> usize {
        state_bytes::<Grown>(state)
    }
}

impl tribunal_core::Heap for Grown {
    fn heap(&self) -> usize {
        self.canonical.heap()
    }
}

/// What `repeated_calls` keeps of a growing trace: the canonical arguments of the counted
/// calls of its first `messages` messages.
#[derive(Default)]
struct Grown {
    messages: usize,
    canonical: Vec<String>,
}

impl Loops {
    /// The calls of `messages` that are counted, with the id of their message.
    fn counted<'a>(
        &'a self,
        messages: &'a [Message],
    ) -> impl Iterator<Item = (&'a str, &'a ToolCall)> + 'a {
        messages
            .iter()
            .flat_map(|m| m.tool_calls.iter().map(move |c| (m.id.as_str(), c)))
            .filter(|(_, c)| !self.ignore.contains(&c.name))
    }

    /// The feedback, given the canonical arguments of the trace's counted calls in order.
    fn decide(&self, input: &JudgeInput<'_>, canonical: &[String]) -> Vec<Feedback> {
        // (tool, canonical arguments, message id, call), in call order.
        let held = self
            .counted(&input.trace.messages)
            .zip(canonical)
            .map(|((mid, c), k)| (c.name.as_str(), Cow::Borrowed(k.as_str()), mid, c));
        let pending = input
            .pending
            .into_iter()
            .flat_map(|p| p.tool_calls.iter().map(|c| (Pending::ID, c)))
            .filter(|(_, c)| !self.ignore.contains(&c.name))
            .map(|(mid, c)| {
                let k = util::canonical(&c.arguments);
                (c.name.as_str(), Cow::Owned(k), mid, c)
            });
        let calls: Vec<(&str, Cow<'_, str>, &str, &ToolCall)> = held.chain(pending).collect();
        if calls.is_empty() {
            return vec![Feedback::code(&self.name, &self.name, 0).with_rationale("no tool calls")];
        }

        // Identical calls side by side (sorted by tool and arguments, then call order): each
        // run of equal keys is one group, its first element the call made first.
        let key = |i: usize| (calls[i].0, calls[i].1.as_ref());
        let mut order: Vec<usize> = (0..calls.len()).collect();
        order.sort_by(|&a, &b| key(a).cmp(&key(b)).then(a.cmp(&b)));
        let groups: Vec<&[usize]> = order.chunk_by(|&a, &b| key(a) == key(b)).collect();
        // The most repeated call; ties go to the one made first.
        let (worst_key, worst) = groups
            .iter()
            .max_by(|a, b| a.len().cmp(&b.len()).then(b[0].cmp(&a[0])))
            .map(|g| (key(g[0]), g.len()))
            .unwrap_or((("", ""), 0));
        let mut repeated: Vec<usize> = groups
            .iter()
            .filter(|g| g.len() > 1)
            .flat_map(|g| g.iter().copied())
            .collect();
        repeated.sort_unstable();
        let evidence: Vec<String> = repeated
            .iter()
            .map(|&i| util::call_id(calls[i].2, calls[i].3))
            .collect();

        let (run_tool, run) = longest_run(calls.iter().map(|c| c.0));
        let mut rationale = if worst > 1 {
            format!(
                "{}({}) was called {worst} times with identical arguments",
                worst_key.0,
                util::short(worst_key.1)
            )
        } else {
            format!("no tool call was repeated among {} calls", calls.len())
        };
        rationale.push_str(&format!(
            "; longest run of consecutive calls to the same tool: {run} × {run_tool}"
        ));
        vec![Feedback::code(&self.name, &self.name, worst)
            .with_rationale(rationale)
            .with_evidence(evidence)]
    }
}

/// The tool with the longest run of consecutive calls, and its length (first on ties).
fn longest_run<'a>(tools: impl Iterator<Item = &'a str>) -> (&'a str, usize) {
    let mut best = ("", 0);
    let mut current = ("", 0);
    for t in tools {
        current = if current.0 == t && current.1 > 0 {
            (t, current.1 + 1)
        } else {
            (t, 1)
        };
        if current.1 > best.1 {
            best = current;
        }
    }
    best
}

//! Trajectory metrics: how the agent got to its answer, measured in code.
//!
//! - `tool_call_precision` and `tool_call_recall`: the calls made against the reference
//!   trajectory in `expectations.expected_tool_calls`, matched as `tool_call_correctness`
//!   matches them (same parsing, same argument containment) in one of three modes:
//!   `in_order` (the longest common subsequence), `any_order` (a maximum matching) or `subset`
//!   (a maximum matching, and calls to tools the reference never names are allowed extras
//!   that do not count against precision);
//! - `redundant_calls`: calls identical (tool and arguments up to key order, as
//!   `repeated_calls` compares them) to an earlier call that succeeded;
//! - `unrecovered_errors`: failed tool calls and failed spans with no later success of the
//!   same tool or step;
//! - `steps_to_completion`: agent turns up to and including the final answer.

use super::tool_calls::{max_matching, parse_expected, Expected, Mode};
use super::util;
use crate::{error::JudgeConfigError, registry, Judge, JudgeInput};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use tribunal_core::{Feedback, Message, Provenance, Role, Span, Trace};

// ---------------------------------------------------------------------------------------
// tool_call_precision, tool_call_recall

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MatchSettings {
    mode: Mode,
    /// Expected arguments must be contained in the actual ones; when false only tool names
    /// are compared.
    compare_arguments: bool,
}

impl Default for MatchSettings {
    fn default() -> Self {
        MatchSettings {
            mode: Mode::InOrder,
            compare_arguments: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Precision,
    Recall,
}

pub fn build_precision(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    build_match(name, params, Measure::Precision)
}

pub fn build_recall(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    build_match(name, params, Measure::Recall)
}

fn build_match(
    name: &str,
    params: &Value,
    measure: Measure,
) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: MatchSettings = registry::params(name, params)?;
    if settings.mode == Mode::Exact {
        return Err(JudgeConfigError::invalid(
            name,
            "mode: expected in_order, any_order or subset (exact is tool_call_correctness's)",
        ));
    }
    Ok(Box::new(TrajectoryMatch {
        name: name.to_owned(),
        settings,
        measure,
    }))
}

struct TrajectoryMatch {
    name: String,
    settings: MatchSettings,
    measure: Measure,
}

/// The outcome of matching the calls made against the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryScore {
    /// Calls matched to a reference call.
    pub matched: usize,
    /// Reference calls.
    pub expected: usize,
    /// Calls that count for precision (all calls; in `subset` mode only calls to tools the
    /// reference names).
    pub relevant: usize,
    /// Ids of the matched calls, in call order.
    pub matched_ids: Vec<String>,
    /// Ids of the relevant calls left unmatched, in call order.
    pub unmatched_ids: Vec<String>,
}

impl TrajectoryScore {
    /// Matched / relevant; 1 when nothing was called and nothing expected, 0 when nothing
    /// was called but something was expected.
    pub fn precision(&self) -> f64 {
        match (self.relevant, self.expected) {
            (0, 0) => 1.0,
            (0, _) => 0.0,
            (r, _) => self.matched as f64 / r as f64,
        }
    }

    /// Matched / expected; 1 when nothing was expected.
    pub fn recall(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.matched as f64 / self.expected as f64
        }
    }
}

/// Matches the trace's tool calls against `expected`.
fn score(trace: &Trace, expected: &[Expected], mode: Mode, compare: bool) -> TrajectoryScore {
    let calls: Vec<(String, &str, &Value)> = trace
        .tool_calls()
        .map(|(m, c)| (util::call_id(&m.id, c), c.name.as_str(), &c.arguments))
        .collect();
    let fits = |j: usize, k: usize| expected[j].fits(calls[k].1, calls[k].2, compare);
    let mut matched = vec![false; calls.len()];
    match mode {
        Mode::InOrder | Mode::Exact => {
            for k in longest_common_subsequence(expected.len(), calls.len(), fits) {
                matched[k] = true;
            }
        }
        Mode::AnyOrder | Mode::Subset => {
            let options: Vec<Vec<usize>> = (0..expected.len())
                .map(|j| (0..calls.len()).filter(|&k| fits(j, k)).collect())
                .collect();
            for (k, owner) in max_matching(&options, calls.len()).iter().enumerate() {
                matched[k] = owner.is_some();
            }
        }
    }
    let named: HashSet<&str> = expected.iter().map(|e| e.name.as_str()).collect();
    let relevant = |k: usize| mode != Mode::Subset || named.contains(calls[k].1);
    let mut out = TrajectoryScore {
        matched: 0,
        expected: expected.len(),
        relevant: 0,
        matched_ids: Vec::new(),
        unmatched_ids: Vec::new(),
    };
    for (k, call) in calls.iter().enumerate() {
        if matched[k] {
            out.matched += 1;
            out.relevant += 1;
            out.matched_ids.push(call.0.clone());
        } else if relevant(k) {
            out.relevant += 1;
            out.unmatched_ids.push(call.0.clone());
        }
    }
    out
}

/// The positions in the second sequence of a longest common subsequence of two sequences of
/// lengths `n` (expected) and `m` (actual), where `fits(j, k)` says they agree.
fn longest_common_subsequence(
    n: usize,
    m: usize,
    fits: impl Fn(usize, usize) -> bool,
) -> Vec<usize> {
    // lengths[j][k]: the LCS of expected[j..] and actual[k..].
    let width = m + 1;
    let mut lengths = vec![0u32; (n + 1) * width];
    for j in (0..n).rev() {
        for k in (0..m).rev() {
            lengths[j * width + k] = if fits(j, k) {
                lengths[(j + 1) * width + k + 1] + 1
            } else {
                lengths[(j + 1) * width + k].max(lengths[j * width + k + 1])
            };
        }
    }
    let (mut j, mut k, mut picked) = (0, 0, Vec::new());
    while j < n && k < m {
        if fits(j, k) && lengths[j * width + k] == lengths[(j + 1) * width + k + 1] + 1 {
            picked.push(k);
            j += 1;
            k += 1;
        } else if lengths[(j + 1) * width + k] >= lengths[j * width + k + 1] {
            j += 1;
        } else {
            k += 1;
        }
    }
    picked
}

/// Beyond this many cells the in-order comparison is refused rather than run for long.
const MAX_LCS_CELLS: usize = 16_000_000;

impl Judge for TrajectoryMatch {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let trace = input.trace;
        let Some(raw) = util::expectation(trace, "expected_tool_calls") else {
            return Vec::new();
        };
        let expected = match parse_expected(raw) {
            Ok(e) => e,
            Err(e) => return vec![Feedback::error(&self.name, &self.name, e)],
        };
        let calls = trace.tool_calls().count();
        if self.settings.mode == Mode::InOrder
            && (expected.len() + 1).saturating_mul(calls + 1) > MAX_LCS_CELLS
        {
            return vec![Feedback::error(
                &self.name,
                &self.name,
                format!(
                    "{calls} calls against {} expected are too many to compare in order; use mode any_order",
                    expected.len()
                ),
            )];
        }
        let s = score(
            trace,
            &expected,
            self.settings.mode,
            self.settings.compare_arguments,
        );
        let mode = self.settings.mode.as_str();
        let (value, rationale, evidence) = match self.measure {
            Measure::Precision => (
                s.precision(),
                format!(
                    "{} of {} {}calls match the reference of {} calls (mode {mode})",
                    s.matched,
                    s.relevant,
                    if self.settings.mode == Mode::Subset {
                        "relevant "
                    } else {
                        ""
                    },
                    s.expected
                ),
                s.unmatched_ids,
            ),
            Measure::Recall => (
                s.recall(),
                format!(
                    "{} of {} reference calls were made ({calls} calls in all; mode {mode})",
                    s.matched, s.expected
                ),
                s.matched_ids,
            ),
        };
        vec![Feedback::code(&self.name, &self.name, value)
            .with_rationale(rationale)
            .with_evidence(evidence)]
    }
}

// ---------------------------------------------------------------------------------------
// Call results

/// Whether a tool result says the call failed: its span has error status, or its content is
/// an error (a JSON object with a non-empty `error`, `is_error: true` or an error `status`,
/// or text starting with `error`, `exception`, `traceback` or `failed`).
pub(crate) fn result_failed(message: &Message, spans: &HashMap<&str, &Span>) -> bool {
    let span = message
        .span_id
        .as_deref()
        .or(Some(message.id.as_str()))
        .and_then(|id| spans.get(id));
    if span.is_some_and(|s| s.status.is_error()) {
        return true;
    }
    text_is_error(&message.content)
}

fn text_is_error(text: &str) -> bool {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(trimmed) {
            let error = o.get("error").is_some_and(|e| match e {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                _ => true,
            });
            let flagged = o.get("is_error") == Some(&Value::Bool(true));
            let status = o
                .get("status")
                .and_then(Value::as_str)
                .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "error" | "failed"));
            return error || flagged || status;
        }
    }
    let head: String = trimmed.chars().take(12).collect::<String>().to_lowercase();
    ["error", "exception", "traceback", "failed"]
        .iter()
        .any(|w| head.starts_with(w))
}

/// One tool call with its result.
pub(crate) struct CallOutcome<'a> {
    pub id: String,
    /// The message that made the call.
    pub message_id: &'a str,
    pub name: &'a str,
    pub arguments: &'a Value,
    /// The tool message answering the call, if any.
    pub result: Option<&'a Message>,
    pub failed: bool,
}

/// Every tool call in order, paired with its result message.
pub(crate) fn call_outcomes(trace: &Trace) -> Vec<CallOutcome<'_>> {
    let spans: HashMap<&str, &Span> = trace.spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut results: HashMap<&str, &Message> = HashMap::new();
    for m in &trace.messages {
        if let (Some(id), true) = (m.tool_call_id.as_deref(), is_tool_result(m)) {
            results.entry(id).or_insert(m);
        }
    }
    trace
        .tool_calls()
        .map(|(m, c)| {
            let result = (!c.id.is_empty())
                .then(|| results.get(c.id.as_str()).copied())
                .flatten();
            let span_failed = c
                .span_id
                .as_deref()
                .and_then(|id| spans.get(id))
                .is_some_and(|s| s.status.is_error() && s.kind == tribunal_core::SpanKind::Tool);
            CallOutcome {
                id: util::call_id(&m.id, c),
                message_id: m.id.as_str(),
                name: &c.name,
                arguments: &c.arguments,
                result,
                failed: span_failed || result.is_some_and(|r| result_failed(r, &spans)),
            }
        })
        .collect()
}

fn is_tool_result(m: &Message) -> bool {
    m.role == Role::Tool || matches!(m.provenance, Provenance::Tool { .. })
}

// ---------------------------------------------------------------------------------------
// redundant_calls

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RedundantSettings {
    /// Tools whose repeats are expected (polling, `wait`, ...).
    ignore_tools: Vec<String>,
}

pub fn build_redundant(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: RedundantSettings = registry::params(name, params)?;
    Ok(Box::new(Redundant {
        name: name.to_owned(),
        ignore: settings.ignore_tools.into_iter().collect(),
    }))
}

struct Redundant {
    name: String,
    ignore: HashSet<String>,
}

impl Judge for Redundant {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let calls = call_outcomes(input.trace);
        // (tool, canonical arguments) -> the first successful call.
        let mut done: HashMap<(&str, String), String> = HashMap::new();
        let mut redundant = Vec::new();
        let mut examples = Vec::new();
        let mut counted = 0;
        for c in calls.iter().filter(|c| !self.ignore.contains(c.name)) {
            counted += 1;
            let key = (c.name, util::canonical(c.arguments));
            if let Some(first) = done.get(&key) {
                if examples.len() < 5 {
                    examples.push(format!(
                        "{} {}({}) repeats {first}",
                        c.id,
                        c.name,
                        util::short(&key.1)
                    ));
                }
                redundant.push(c.id.clone());
            } else if !c.failed {
                done.insert(key, c.id.clone());
            }
        }
        let rationale = if redundant.is_empty() {
            format!("no call repeats an earlier successful call ({counted} calls)")
        } else {
            format!(
                "{} of {counted} calls repeat an earlier successful call with the same arguments: {}",
                redundant.len(),
                examples.join("; ")
            )
        };
        vec![Feedback::code(&self.name, &self.name, redundant.len())
            .with_rationale(rationale)
            .with_evidence(redundant)]
    }
}

// ---------------------------------------------------------------------------------------
// unrecovered_errors

pub fn build_unrecovered(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let _: Empty = registry::params(name, params)?;
    Ok(Box::new(Unrecovered {
        name: name.to_owned(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

struct Unrecovered {
    name: String,
}

impl Judge for Unrecovered {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let trace = input.trace;
        let calls = call_outcomes(trace);
        let mut errors = 0;
        let mut unrecovered: Vec<String> = Vec::new();
        for (i, c) in calls.iter().enumerate().filter(|(_, c)| c.failed) {
            errors += 1;
            let recovered = calls[i + 1..]
                .iter()
                .any(|later| later.name == c.name && !later.failed);
            if !recovered {
                unrecovered.push(c.id.clone());
            }
        }
        // Spans that are tool calls or their results were counted above.
        let mut covered: HashSet<&str> = HashSet::new();
        for c in &calls {
            if let Some(r) = c.result {
                covered.insert(r.id.as_str());
                covered.extend(r.span_id.as_deref());
            }
        }
        for (_, c) in trace.tool_calls() {
            covered.extend(c.span_id.as_deref());
        }
        // Other failed spans: a later span of the same kind and name that succeeded is the
        // recovery.
        let mut ordered: Vec<&Span> = trace.spans.iter().collect();
        ordered.sort_by_key(|s| s.start_ns.unwrap_or(0));
        for (i, s) in ordered.iter().enumerate() {
            if !s.status.is_error() || covered.contains(s.id.as_str()) {
                continue;
            }
            // An ancestor fails when its child does; count the deepest failure only.
            let failed_child = ordered
                .iter()
                .any(|c| c.parent_id.as_deref() == Some(s.id.as_str()) && c.status.is_error());
            if failed_child {
                continue;
            }
            errors += 1;
            let recovered = ordered[i + 1..]
                .iter()
                .any(|l| l.kind == s.kind && l.name == s.name && !l.status.is_error());
            if !recovered {
                unrecovered.push(s.id.clone());
            }
        }
        let rationale = match (errors, unrecovered.len()) {
            (0, _) => "no failed tool call or step".to_owned(),
            (e, 0) => format!("{e} failed calls or steps, each followed by a success of the same tool or step"),
            (e, u) => format!(
                "{u} of {e} failed calls or steps were never followed by a success of the same tool or step: {}",
                unrecovered.join(", ")
            ),
        };
        vec![Feedback::code(&self.name, &self.name, unrecovered.len())
            .with_rationale(rationale)
            .with_evidence(unrecovered)]
    }
}

// ---------------------------------------------------------------------------------------
// steps_to_completion

pub fn build_steps(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let _: Empty = registry::params(name, params)?;
    Ok(Box::new(Steps {
        name: name.to_owned(),
    }))
}

struct Steps {
    name: String,
}

impl Judge for Steps {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let trace = input.trace;
        let turns: Vec<&Message> = trace
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .collect();
        if turns.is_empty() {
            return Vec::new();
        }
        // The final answer: the last assistant turn with text and no calls, after which no
        // tool ran.
        let last_answer = trace.messages.iter().rposition(|m| {
            m.role == Role::Assistant && !m.content.trim().is_empty() && m.tool_calls.is_empty()
        });
        let completed = last_answer.filter(|&i| {
            !trace.messages[i + 1..]
                .iter()
                .any(|m| m.role == Role::Tool || !m.tool_calls.is_empty())
        });
        let Some(end) = completed else {
            return vec![Feedback::error(
                &self.name,
                &self.name,
                format!(
                    "the run ended without a final answer after {} agent steps",
                    turns.len()
                ),
            )
            .with_evidence(turns.last().map(|m| vec![m.id.clone()]).unwrap_or_default())];
        };
        // Steps to the first final answer, if the agent answered, kept going, and answered
        // again: the first answer that no tool call follows is the completion.
        let steps = trace.messages[..=end]
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .count();
        let calls = trace.messages[..=end]
            .iter()
            .map(|m| m.tool_calls.len())
            .sum::<usize>();
        let mut rationale = format!(
            "the final answer ({}) came at agent step {steps}, after {calls} tool calls",
            trace.messages[end].id
        );
        if let Some(expected) = util::expectation(trace, "expected_tool_calls")
            .and_then(|v| v.as_array())
            .map(Vec::len)
        {
            rationale.push_str(&format!("; the reference trajectory has {expected} calls"));
        }
        vec![Feedback::code(&self.name, &self.name, steps)
            .with_rationale(rationale)
            .with_evidence(vec![trace.messages[end].id.clone()])]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_picks_an_optimal_subsequence() {
        let a = ["s", "x", "r", "s", "r"];
        let b = ["s", "r", "r"];
        let picked = longest_common_subsequence(b.len(), a.len(), |j, k| b[j] == a[k]);
        assert_eq!(picked.len(), 3);
        assert_eq!(
            picked.iter().map(|&k| a[k]).collect::<Vec<_>>(),
            ["s", "r", "r"]
        );
        assert!(longest_common_subsequence(0, 3, |_, _| true).is_empty());
    }

    #[test]
    fn error_texts_are_recognised() {
        for (text, failed) in [
            ("Error: not found", true),
            ("  traceback (most recent call last)", true),
            (r#"{"error": "timeout"}"#, true),
            (r#"{"error": null, "rows": 3}"#, false),
            (r#"{"status": "FAILED"}"#, true),
            (r#"{"is_error": true}"#, true),
            ("3 rows; no errors", false),
            ("", false),
        ] {
            assert_eq!(text_is_error(text), failed, "{text}");
        }
    }
}

//! Tool-call metrics: `tool_call_correctness` (the calls made against
//! `expectations.expected_tool_calls`) and `tool_arguments` (each call's arguments against
//! its tool's JSON Schema).

use crate::{error::JudgeConfigError, registry, Judge, JudgeInput};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tribunal_core::{Feedback, Finding, Location, Message, ToolCall, Trace};

use super::util;

// ---------------------------------------------------------------------------------------
// tool_call_correctness

/// How the actual calls are compared with the expected ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// The same calls in the same order, nothing more.
    Exact,
    /// The expected calls appear in this order, possibly with other calls between them.
    #[default]
    InOrder,
    /// The same calls in any order, nothing more.
    AnyOrder,
    /// The expected calls appear in any order, possibly among others.
    Subset,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Exact => "exact",
            Mode::InOrder => "in_order",
            Mode::AnyOrder => "any_order",
            Mode::Subset => "subset",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CorrectnessSettings {
    mode: Mode,
    /// Expected arguments must be contained in the actual ones (each expected key deeply
    /// equal); when false only tool names are compared.
    compare_arguments: bool,
}

impl Default for CorrectnessSettings {
    fn default() -> Self {
        CorrectnessSettings {
            mode: Mode::InOrder,
            compare_arguments: true,
        }
    }
}

pub fn build_correctness(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: CorrectnessSettings = registry::params(name, params)?;
    Ok(Box::new(Correctness {
        name: name.to_owned(),
        mode: settings.mode,
        compare_arguments: settings.compare_arguments,
    }))
}

struct Correctness {
    name: String,
    mode: Mode,
    compare_arguments: bool,
}

/// One entry of `expected_tool_calls`.
#[derive(Debug)]
pub(crate) struct Expected {
    pub(crate) name: String,
    pub(crate) arguments: Option<Value>,
}

impl Expected {
    /// Whether a call to `name` with `arguments` is this expected call: same tool and, when
    /// arguments are compared, the expected arguments contained in the actual ones.
    pub(crate) fn fits(&self, name: &str, arguments: &Value, compare_arguments: bool) -> bool {
        self.name == name
            && match (&self.arguments, compare_arguments) {
                (Some(args), true) => util::arguments_contain(args, arguments),
                _ => true,
            }
    }
}

/// One call the agent made.
struct Actual<'a> {
    name: &'a str,
    arguments: &'a Value,
    /// The tool call's id (or its message's, when the call has none).
    id: String,
}

/// What a comparison found.
#[derive(Default)]
struct Outcome {
    problems: Vec<String>,
    /// Actual calls matched to an expected call.
    matched: Vec<String>,
    /// Actual calls that are unexpected or nearly match a missing call.
    at_fault: Vec<String>,
}

/// Reads `expected_tool_calls`: a list of tool names or `{name, arguments?}` objects (the
/// OpenAI `{function: {name, arguments}}` shape too; arguments may be a JSON string).
pub(crate) fn parse_expected(v: &Value) -> Result<Vec<Expected>, String> {
    let Value::Array(items) = v else {
        return Err(format!(
            "expectations.expected_tool_calls should be a list of tool names or {{name, arguments}} objects, got {}",
            util::short(&v.to_string())
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let bad = || {
                format!(
                    "expectations.expected_tool_calls[{i}] should be a tool name or an object with a \"name\", got {}",
                    util::short(&item.to_string())
                )
            };
            match item {
                Value::String(s) if !s.is_empty() => Ok(Expected {
                    name: s.clone(),
                    arguments: None,
                }),
                Value::Object(o) => {
                    let body = o.get("function").and_then(Value::as_object).unwrap_or(o);
                    let name = body.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(bad)?;
                    let arguments = match body.get("arguments").or_else(|| body.get("args")) {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))),
                        Some(other) => Some(other.clone()),
                    };
                    Ok(Expected {
                        name: name.to_owned(),
                        arguments,
                    })
                }
                _ => Err(bad()),
            }
        })
        .collect()
}

impl Correctness {
    /// Why `a` is not the expected call `e`; `None` when it is.
    fn mismatch(&self, e: &Expected, a: &Actual<'_>) -> Option<String> {
        if e.name != a.name {
            return Some(format!("it calls {} instead of {}", a.name, e.name));
        }
        match (&e.arguments, self.compare_arguments) {
            (Some(args), true) => util::arguments_mismatch(args, a.arguments),
            _ => None,
        }
    }

    /// The same test as [`Correctness::mismatch`], without building the explanation.
    fn matches(&self, e: &Expected, a: &Actual<'_>) -> bool {
        e.fits(a.name, a.arguments, self.compare_arguments)
    }

    fn describe(&self, e: &Expected) -> String {
        match (&e.arguments, self.compare_arguments) {
            (Some(args), true) => format!("{}({})", e.name, util::short(&util::canonical(args))),
            _ => e.name.clone(),
        }
    }

    /// For an expected call that was not matched: a call to the same tool among
    /// `candidates`, and why its arguments do not do.
    fn near_miss<'b>(
        &self,
        e: &Expected,
        actual: &'b [Actual<'_>],
        candidates: impl Iterator<Item = usize>,
    ) -> Option<(&'b str, String)> {
        candidates
            .map(|k| &actual[k])
            .find(|a| a.name == e.name)
            .and_then(|a| self.mismatch(e, a).map(|why| (a.id.as_str(), why)))
    }

    fn exact(&self, expected: &[Expected], actual: &[Actual<'_>]) -> Outcome {
        let mut out = Outcome::default();
        for i in 0..expected.len().max(actual.len()) {
            match (expected.get(i), actual.get(i)) {
                (Some(e), Some(a)) if self.matches(e, a) => out.matched.push(a.id.clone()),
                (Some(e), Some(a)) => {
                    let why = self.mismatch(e, a).unwrap_or_default();
                    out.problems.push(format!(
                        "call {} ({}) is not the expected {}: {why}",
                        i + 1,
                        a.id,
                        self.describe(e)
                    ));
                    out.at_fault.push(a.id.clone());
                    break;
                }
                (Some(e), None) => {
                    out.problems.push(format!(
                        "expected call {} {} is missing: only {} calls were made",
                        i + 1,
                        self.describe(e),
                        actual.len()
                    ));
                    break;
                }
                (None, Some(a)) => {
                    out.problems.push(format!(
                        "unexpected call {} to {} ({}) after the {} expected calls",
                        i + 1,
                        a.name,
                        a.id,
                        expected.len()
                    ));
                    out.at_fault.push(a.id.clone());
                    break;
                }
                (None, None) => break,
            }
        }
        out
    }

    fn in_order(&self, expected: &[Expected], actual: &[Actual<'_>]) -> Outcome {
        let mut out = Outcome::default();
        let mut next = 0;
        for (j, e) in expected.iter().enumerate() {
            // Taking the earliest match is optimal for subsequence search.
            if let Some(k) = (next..actual.len()).find(|&k| self.matches(e, &actual[k])) {
                out.matched.push(actual[k].id.clone());
                next = k + 1;
                continue;
            }
            let after = match j {
                0 => String::new(),
                _ => format!(" after {}", self.describe(&expected[j - 1])),
            };
            let mut problem = format!(
                "expected call {} {} was not made{after}",
                j + 1,
                self.describe(e)
            );
            if let Some((id, why)) = self.near_miss(e, actual, next..actual.len()) {
                problem.push_str(&format!("; {} was called ({id}) but {why}", e.name));
                out.at_fault.push(id.to_owned());
            } else if let Some(k) = (0..next).find(|&k| self.matches(e, &actual[k])) {
                problem.push_str(&format!(
                    "; it was called earlier, out of order ({})",
                    actual[k].id
                ));
                out.at_fault.push(actual[k].id.clone());
            }
            out.problems.push(problem);
            break;
        }
        out
    }

    /// Any-order comparison: a maximum matching of expected to actual calls, since one
    /// expected call (by arguments subset) may fit several actual ones.
    fn unordered(
        &self,
        expected: &[Expected],
        actual: &[Actual<'_>],
        extras_allowed: bool,
    ) -> Outcome {
        let fits: Vec<Vec<usize>> = expected
            .iter()
            .map(|e| {
                (0..actual.len())
                    .filter(|&k| self.matches(e, &actual[k]))
                    .collect()
            })
            .collect();
        let owner = max_matching(&fits, actual.len());
        let mut assigned: Vec<Option<usize>> = vec![None; expected.len()];
        for (k, o) in owner.iter().enumerate() {
            if let Some(j) = o {
                assigned[*j] = Some(k);
            }
        }
        let mut out = Outcome {
            matched: owner
                .iter()
                .enumerate()
                .filter(|(_, o)| o.is_some())
                .map(|(k, _)| actual[k].id.clone())
                .collect(),
            ..Outcome::default()
        };
        let free = || (0..actual.len()).filter(|&k| owner[k].is_none());
        for (j, e) in expected
            .iter()
            .enumerate()
            .filter(|(j, _)| assigned[*j].is_none())
        {
            let mut problem = format!("expected call {} {} was not made", j + 1, self.describe(e));
            if let Some((id, why)) = self.near_miss(e, actual, free()) {
                problem.push_str(&format!("; {} was called ({id}) but {why}", e.name));
                out.at_fault.push(id.to_owned());
            }
            out.problems.push(problem);
        }
        if !extras_allowed {
            for k in free() {
                let a = &actual[k];
                out.problems.push(format!(
                    "unexpected call {} to {} ({})",
                    k + 1,
                    a.name,
                    a.id
                ));
                out.at_fault.push(a.id.clone());
            }
        }
        out
    }
}

/// A maximum matching of expected calls to actual ones: `fits[j]` lists the actual calls
/// expected call `j` may take; the result gives each actual call its expected call, if any.
pub(crate) fn max_matching(fits: &[Vec<usize>], actual: usize) -> Vec<Option<usize>> {
    let mut owner: Vec<Option<usize>> = vec![None; actual];
    for j in 0..fits.len() {
        let mut seen = vec![false; actual];
        augment(j, fits, &mut owner, &mut seen);
    }
    owner
}

/// Kuhn's augmenting path step: tries to give expected call `j` an actual call.
fn augment(j: usize, fits: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &k in &fits[j] {
        if seen[k] {
            continue;
        }
        seen[k] = true;
        let free = match owner[k] {
            None => true,
            Some(other) => augment(other, fits, owner, seen),
        };
        if free {
            owner[k] = Some(j);
            return true;
        }
    }
    false
}

impl Judge for Correctness {
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
        let actual: Vec<Actual<'_>> = trace
            .tool_calls()
            .map(|(m, c)| Actual {
                name: &c.name,
                arguments: &c.arguments,
                id: util::call_id(&m.id, c),
            })
            .collect();
        let outcome = match self.mode {
            Mode::Exact => self.exact(&expected, &actual),
            Mode::InOrder => self.in_order(&expected, &actual),
            Mode::AnyOrder => self.unordered(&expected, &actual, false),
            Mode::Subset => self.unordered(&expected, &actual, true),
        };
        let ok = outcome.problems.is_empty();
        let what = if self.compare_arguments {
            "names and arguments"
        } else {
            "names only"
        };
        let rationale = if ok && expected.is_empty() {
            format!(
                "no tool calls were expected and {} were made (mode {})",
                actual.len(),
                self.mode.as_str()
            )
        } else if ok {
            format!(
                "all {} expected tool calls were made ({} calls in all; mode {}, {what})",
                expected.len(),
                actual.len(),
                self.mode.as_str()
            )
        } else {
            format!(
                "mode {}, {what}: {}",
                self.mode.as_str(),
                outcome.problems.join("; ")
            )
        };
        let mut evidence = if ok {
            outcome.matched
        } else {
            outcome.at_fault
        };
        dedup(&mut evidence);
        vec![Feedback::code(&self.name, &self.name, ok)
            .with_rationale(rationale)
            .with_evidence(evidence)]
    }
}

/// Removes repeated ids, keeping the first of each.
fn dedup(ids: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
}

// ---------------------------------------------------------------------------------------
// tool_arguments

/// Compiled schemas of tool definitions kept across traces (datasets repeat the same tools
/// on every record). Cleared when full: a simple bound, not an LRU.
const SCHEMA_CACHE_LIMIT: usize = 256;

/// How many invalid calls the rationale lists.
const SHOWN_INVALID: usize = 5;

type Compiled = Result<Arc<jsonschema::Validator>, String>;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ArgumentsSettings {
    /// JSON Schemas by tool name; they take precedence over the trace's tool definitions.
    schemas: BTreeMap<String, Value>,
}

pub fn build_arguments(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    Ok(Box::new(arguments_judge(name, params)?))
}

fn arguments_judge(name: &str, params: &Value) -> Result<Arguments, JudgeConfigError> {
    let settings: ArgumentsSettings = registry::params(name, params)?;
    let mut schemas = HashMap::new();
    for (tool, schema) in settings.schemas {
        let v = util::compile_schema(&schema).map_err(|e| {
            JudgeConfigError::invalid(
                name,
                format!("schemas.{tool:?} is not a valid JSON Schema: {e}"),
            )
        })?;
        schemas.insert(tool, Arc::new(v));
    }
    Ok(Arguments {
        name: name.to_owned(),
        schemas,
        cache: Mutex::new(HashMap::new()),
    })
}

struct Arguments {
    name: String,
    schemas: HashMap<String, Arc<jsonschema::Validator>>,
    /// Trace tool-definition schemas by canonical JSON text.
    cache: Mutex<HashMap<String, Compiled>>,
}

impl Arguments {
    /// The schema for `tool`: the settings first, then the trace's own definition.
    fn schema_for(&self, trace: &Trace, tool: &str) -> Option<Compiled> {
        if let Some(v) = self.schemas.get(tool) {
            return Some(Ok(v.clone()));
        }
        let def = trace
            .tools
            .iter()
            .find(|t| t.name == tool && !t.parameters.is_null())?;
        let key = util::canonical(&def.parameters);
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Some(hit.clone());
        }
        let compiled = util::compile_schema(&def.parameters).map(Arc::new);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= SCHEMA_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        Some(compiled)
    }
}

/// The first reason `call`'s arguments fail `validator`, if they do. Argument values are
/// masked: the text becomes a finding's excerpt, which must be safe to log.
fn first_error(validator: &jsonschema::Validator, call: &ToolCall) -> Option<String> {
    let empty = Value::Object(Default::default());
    let args = match &call.arguments {
        Value::Null => &empty,
        // Importers keep arguments that did not parse as the raw string.
        Value::String(raw) => {
            let why = serde_json::from_str::<Value>(raw).err().map_or_else(
                || "a JSON string, not an object".to_owned(),
                |e| e.to_string(),
            );
            return Some(format!("(root): arguments are not valid JSON: {why}"));
        }
        other => other,
    };
    util::schema_errors(validator, args, 1, true)
        .0
        .into_iter()
        .next()
}

impl Judge for Arguments {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let trace = input.trace;
        if self.schemas.is_empty() && trace.tools.iter().all(|t| t.parameters.is_null()) {
            // No schema to check any call against (the gate's usual case): nothing to say.
            return Vec::new();
        }
        let pending = input.pending.map(|p| p.as_message());
        let calls = trace.tool_calls().chain(
            pending
                .iter()
                .flat_map(|m: &Message| m.tool_calls.iter().map(move |c| (m, c))),
        );

        let mut resolved: HashMap<&str, Option<Compiled>> = HashMap::new();
        let mut checked = 0usize;
        let mut findings = Vec::new();
        let mut evidence: Vec<String> = Vec::new();
        let mut lines = Vec::new();
        for (m, call) in calls {
            let schema = resolved
                .entry(call.name.as_str())
                .or_insert_with(|| self.schema_for(trace, &call.name));
            let validator = match schema {
                None => continue,
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    return vec![Feedback::error(
                        &self.name,
                        &self.name,
                        format!(
                        "the trace's definition of tool {:?} has an invalid parameters schema: {e}",
                        call.name
                    ),
                    )]
                }
            };
            checked += 1;
            let Some(error) = first_error(validator, call) else {
                continue;
            };
            if lines.len() < SHOWN_INVALID {
                lines.push(format!("{} ({} in {}): {error}", call.name, call.id, m.id));
            }
            if !evidence.contains(&m.id) {
                evidence.push(m.id.clone());
            }
            findings.push(Finding {
                kind: "invalid_arguments".into(),
                score: 1.0,
                location: Location {
                    id: m.id.clone(),
                    field: "arguments".into(),
                    tool_call_id: Some(call.id.clone()),
                    tool: Some(call.name.clone()),
                    provenance: m.provenance.label().to_owned(),
                    start: 0,
                    end: 0,
                },
                excerpt: error,
            });
        }
        if checked == 0 {
            return Vec::new();
        }
        let rationale = if findings.is_empty() {
            format!("the arguments of all {checked} checked tool calls are valid")
        } else {
            let more = if findings.len() > lines.len() {
                format!(" (and {} more)", findings.len() - lines.len())
            } else {
                String::new()
            };
            format!(
                "{} of {checked} checked tool calls have invalid arguments: {}{more}",
                findings.len(),
                lines.join("; ")
            )
        };
        let mut fb = Feedback::code(&self.name, &self.name, findings.is_empty())
            .with_rationale(rationale)
            .with_evidence(evidence);
        fb.findings = findings;
        vec![fb]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trace(schema: Value, args: Value) -> Trace {
        serde_json::from_value(json!({
            "id": "t",
            "tools": [{"name": "f", "parameters": schema}],
            "messages": [{"id": "m0", "role": "assistant", "provenance": {"source": "assistant"},
                          "tool_calls": [{"id": "c0", "name": "f", "arguments": args}]}]
        }))
        .unwrap()
    }

    #[test]
    fn trace_schemas_are_compiled_once_across_traces() {
        let judge = arguments_judge("a", &Value::Null).unwrap();
        let schema = json!({"type": "object", "required": ["x"]});
        let mut values = Vec::new();
        for args in [json!({"x": 1}), json!({}), json!({"x": 2})] {
            let t = trace(schema.clone(), args);
            values.push(
                judge.judge(&JudgeInput {
                    trace: &t,
                    pending: None,
                })[0]
                    .value
                    .clone(),
            );
        }
        assert_eq!(values, [json!(true), json!(false), json!(true)]);
        // The same definition with its keys in another order is the same entry.
        let reordered: Value =
            serde_json::from_str(r#"{"required": ["x"], "type": "object"}"#).unwrap();
        let t = trace(reordered, json!({}));
        assert_eq!(
            judge.judge(&JudgeInput {
                trace: &t,
                pending: None
            })[0]
                .value,
            json!(false)
        );
        assert_eq!(judge.cache.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_bad_definition_in_one_trace_does_not_affect_another() {
        let judge = arguments_judge("a", &Value::Null).unwrap();
        let bad = trace(json!({"type": 5}), json!({}));
        assert!(judge.judge(&JudgeInput {
            trace: &bad,
            pending: None
        })[0]
            .error
            .is_some());
        let good = trace(json!({"type": "object"}), json!({}));
        assert_eq!(
            judge.judge(&JudgeInput {
                trace: &good,
                pending: None
            })[0]
                .value,
            json!(true)
        );
    }
}

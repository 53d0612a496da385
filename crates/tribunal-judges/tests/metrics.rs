//! Data-driven tests of the code metrics.
//!
//! Each file in `tests/data/metrics/` is a table for one judge kind:
//! `{"kind": ..., "cases": [{"name", "params"?, "trace"?, "pending"?, "expect"?, "build_error"?}]}`.
//! Traces are written compactly: message ids default to `m<index>`, provenance follows the
//! role, span names default to their ids, and `"calls": [[tool, arguments], ...]` appends one
//! assistant message `m<n>` per call with a tool call `c<n>` (n counting from 1).
//!
//! `expect` holds any of: `none` (no feedback), `value` (numbers compared to 1e-9),
//! `error` (substring of the error), `rationale` (substrings), `evidence` (exact list),
//! `findings` (list of `{kind, id, field, tool_call_id, tool, excerpt, excerpt_lacks}`
//! subsets, in order; `excerpt` is a substring or list of substrings).
//! `build_error` is a list of substrings of the configuration error.

mod common;

use serde_json::{json, Map, Value};
use std::path::Path;
use tribunal_core::{Feedback, Pending, SourceType, Trace};
use tribunal_judges::{build_judge, JudgeInput, JudgeSpec};

/// The instance name every judge under test gets: feedback must carry it, not the kind.
const INSTANCE: &str = "under_test";

#[test]
fn step_count() {
    run_table("step_count");
}

#[test]
fn latency() {
    run_table("latency");
}

#[test]
fn token_usage() {
    run_table("token_usage");
}

#[test]
fn cost() {
    run_table("cost");
}

#[test]
fn exact_match() {
    run_table("exact_match");
}

#[test]
fn contains() {
    run_table("contains");
}

#[test]
fn regex_match() {
    run_table("regex_match");
}

#[test]
fn json_schema() {
    run_table("json_schema");
}

#[test]
fn tool_call_correctness() {
    run_table("tool_call_correctness");
}

#[test]
fn tool_arguments() {
    run_table("tool_arguments");
}

#[test]
fn repeated_calls() {
    run_table("repeated_calls");
}

/// Every metric rejects a setting it does not know and names the setting.
#[test]
fn unknown_settings_are_rejected() {
    let kinds = [
        "step_count",
        "latency",
        "token_usage",
        "cost",
        "exact_match",
        "contains",
        "regex_match",
        "json_schema",
        "tool_call_correctness",
        "tool_arguments",
        "repeated_calls",
    ];
    for kind in kinds {
        let spec = JudgeSpec {
            name: INSTANCE.into(),
            kind: kind.into(),
            params: json!({"no_such_setting": 1}),
        };
        let err = match build_judge(&spec) {
            Ok(_) => panic!("{kind}: an unknown setting was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("no_such_setting") && err.contains(INSTANCE),
            "{kind}: {err}"
        );
    }
}

/// Every metric builds with no settings (the registry's defaults).
#[test]
fn every_metric_builds_without_settings() {
    for kind in [
        "step_count",
        "latency",
        "token_usage",
        "cost",
        "exact_match",
        "contains",
    ] {
        build(kind, &Value::Null).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    for kind in [
        "regex_match",
        "json_schema",
        "tool_call_correctness",
        "tool_arguments",
        "repeated_calls",
    ] {
        build(kind, &json!({})).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

fn build(kind: &str, params: &Value) -> Result<Box<dyn tribunal_judges::Judge>, String> {
    build_judge(&JudgeSpec {
        name: INSTANCE.into(),
        kind: kind.into(),
        params: params.clone(),
    })
    .map_err(|e| e.to_string())
}

fn run_table(kind: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/metrics")
        .join(format!("{kind}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(table["kind"], kind, "{}", path.display());
    let cases = table["cases"].as_array().expect("cases is a list");
    assert!(!cases.is_empty());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let name = case["name"].as_str().unwrap_or("(unnamed)");
            check(kind, case).err().map(|e| format!("  {name}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed in {}:\n{}",
        failures.len(),
        cases.len(),
        path.display(),
        failures.join("\n")
    );
}

/// Runs one case; the error says what differed.
fn check(kind: &str, case: &Value) -> Result<(), String> {
    let params = case.get("params").cloned().unwrap_or(Value::Null);
    let judge = match (build(kind, &params), case.get("build_error")) {
        (Err(e), Some(want)) => return contains_all(&e, want, "build error"),
        (Ok(_), Some(_)) => return Err("built, but a configuration error was expected".into()),
        (Err(e), None) => return Err(format!("build failed: {e}")),
        (Ok(j), None) => j,
    };
    let trace = trace(case.get("trace").cloned().unwrap_or_else(|| json!({})))?;
    let pending: Option<Pending> = match case.get("pending") {
        Some(p) => Some(serde_json::from_value(p.clone()).map_err(|e| format!("pending: {e}"))?),
        None => None,
    };
    let feedback = judge.judge(&JudgeInput {
        trace: &trace,
        pending: pending.as_ref(),
    });
    // Judged as a trace that grows one message at a time, the feedback is the same.
    common::check_grown(judge.as_ref(), &trace, pending.as_ref())?;
    let expect = case.get("expect").ok_or("no expect")?;
    if expect.get("none") == Some(&Value::Bool(true)) {
        return match feedback.as_slice() {
            [] => Ok(()),
            other => Err(format!("expected no feedback, got {}", show(other))),
        };
    }
    let [fb] = feedback.as_slice() else {
        return Err(format!("expected one feedback, got {}", show(&feedback)));
    };
    if fb.name != INSTANCE
        || fb.source.source_id != INSTANCE
        || fb.source.source_type != SourceType::Code
    {
        return Err(format!(
            "feedback not named after the instance: {}",
            show(&feedback)
        ));
    }
    let shown = || show(&feedback);
    match (expect.get("error"), &fb.error) {
        (Some(want), Some(got)) => contains_all(got, want, "error")?,
        (Some(_), None) => return Err(format!("expected an error, got {}", shown())),
        (None, Some(got)) => return Err(format!("unexpected error: {got}")),
        (None, None) => {}
    }
    if fb.error.is_some() && !fb.value.is_null() {
        return Err(format!("an error with a value: {}", shown()));
    }
    if let Some(want) = expect.get("value") {
        if !value_eq(want, &fb.value) {
            return Err(format!("value: want {want}, got {}", shown()));
        }
    }
    if let Some(want) = expect.get("rationale") {
        contains_all(fb.rationale.as_deref().unwrap_or(""), want, "rationale")?;
    }
    if let Some(want) = expect.get("evidence") {
        let got = json!(fb.evidence);
        if &got != want {
            return Err(format!("evidence: want {want}, got {got}"));
        }
    }
    if let Some(Value::Array(want)) = expect.get("findings") {
        let got: Vec<Value> = fb
            .findings
            .iter()
            .map(|f| serde_json::to_value(f).expect("findings serialize"))
            .collect();
        if got.len() != want.len() {
            return Err(format!("findings: want {}, got {}", want.len(), shown()));
        }
        for (w, g) in want.iter().zip(&got) {
            for (k, v) in w.as_object().ok_or("findings entries are objects")? {
                let actual = g.get(k).or_else(|| g["location"].get(k));
                let excerpt = || g.get("excerpt").and_then(Value::as_str).unwrap_or("");
                if k == "excerpt" {
                    contains_all(excerpt(), v, "excerpt")?;
                } else if k == "excerpt_lacks" {
                    let lacks = v.as_str().ok_or("excerpt_lacks is a string")?;
                    if excerpt().contains(lacks) {
                        return Err(format!("excerpt leaks {lacks:?}: {}", excerpt()));
                    }
                } else if actual != Some(v) {
                    return Err(format!("finding {k}: want {v}, got {g}"));
                }
            }
        }
    }
    Ok(())
}

fn show(feedback: &[Feedback]) -> String {
    serde_json::to_string(feedback).unwrap_or_default()
}

/// `want` is a string or a list of strings, each of which must be in `got`.
fn contains_all(got: &str, want: &Value, what: &str) -> Result<(), String> {
    let wants: Vec<&str> = match want {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err(format!("{what}: expectation must be a string or a list")),
    };
    match wants.iter().find(|w| !got.contains(**w)) {
        Some(w) => Err(format!("{what} lacks {w:?}: {got:?}")),
        None => Ok(()),
    }
}

/// JSON equality with numbers compared to 1e-9 (costs are sums of floats).
fn value_eq(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
            _ => false,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_eq(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => want == got,
    }
}

/// Expands a compact fixture trace into the trace model.
fn trace(mut v: Value) -> Result<Trace, String> {
    let obj = v.as_object_mut().ok_or("trace must be an object")?;
    obj.entry("id").or_insert_with(|| json!("t"));
    let mut messages = match obj.remove("messages") {
        Some(Value::Array(m)) => m,
        None => Vec::new(),
        Some(_) => return Err("trace.messages must be a list".into()),
    };
    if let Some(Value::Array(calls)) = obj.remove("calls") {
        for (i, call) in calls.iter().enumerate() {
            let n = i + 1;
            let (name, args) = match call {
                Value::Array(pair) if !pair.is_empty() => {
                    (pair[0].clone(), pair.get(1).cloned().unwrap_or(Value::Null))
                }
                other => return Err(format!("calls entries are [tool, arguments], got {other}")),
            };
            messages.push(json!({
                "id": format!("m{n}"),
                "role": "assistant",
                "tool_calls": [{"id": format!("c{n}"), "name": name, "arguments": args}],
            }));
        }
    }
    for (i, m) in messages.iter_mut().enumerate() {
        let m = m.as_object_mut().ok_or("messages are objects")?;
        m.entry("id").or_insert_with(|| json!(format!("m{i}")));
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user")
            .to_owned();
        let provenance = match role.as_str() {
            "tool" => {
                json!({"source": "tool", "name": m.get("name").cloned().unwrap_or(json!(""))})
            }
            other => json!({ "source": other }),
        };
        m.entry("provenance").or_insert(provenance);
    }
    obj.insert("messages".into(), Value::Array(messages));
    if let Some(Value::Array(spans)) = obj.get_mut("spans") {
        for s in spans {
            let s: &mut Map<String, Value> = s.as_object_mut().ok_or("spans are objects")?;
            let id = s.get("id").cloned().unwrap_or(json!("s"));
            s.entry("name").or_insert(id);
            s.entry("kind").or_insert(json!("unknown"));
        }
    }
    serde_json::from_value(v).map_err(|e| format!("trace: {e}"))
}

//! What a queue's items are and where they come from. An item is a stored trace, one span
//! of a trace, a trace of an eval run, or a pair of outputs to compare (two traces, or two
//! texts with the prompt they answer). A queue is filled from a list (given in the request,
//! or read from a file by the page or the command line), from a trace filter, from an eval
//! run, or from a judge's low-confidence results. When the queue's schema is tied to a
//! judge, each item keeps the judge's value as it was when the queue was filled, so people
//! can be measured against the judge and routed to review when they disagree with it.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tribunal_labels::items::judge_feedback;
pub use tribunal_labels::items::{judge_value, read_item, read_items, Item};
use tribunal_store::{Store, TraceFilter};

/// Where to take a queue's items from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// Stored traces that match a filter, newest first.
    Filter(FilterSpec),
    /// The traces of an eval run (by id or a unique prefix).
    Run(String),
    /// Traces where a sampled judge's confidence was below a threshold.
    LowConfidence(LowConfidence),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    pub source: Option<String>,
    pub decision: Option<String>,
    pub rule: Option<String>,
    pub text: Option<String>,
    pub since: Option<String>,
    #[serde(default = "hundred")]
    pub limit: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LowConfidence {
    pub judge: String,
    pub below: f64,
    /// Look in this eval run's results rather than the stored traces.
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default = "hundred")]
    pub limit: i64,
}

fn hundred() -> i64 {
    100
}

/// The most traces one fill looks at.
const SCAN: i64 = 10_000;

/// The confidence `judge`'s feedback in a stored result states: the share of its sampled
/// answers that agreed (`None` when it was not sampled). An answer not trusted (`value`
/// null, error naming the threshold) counts with the confidence it states.
fn confidence(result: &Value, judge: &str) -> Option<f64> {
    let f = judge_feedback(result, judge)?;
    let text = [f.get("rationale"), f.get("error")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    tribunal_judges::llm::sampled_confidence(&text)
}

/// The eval run `run` (an id or a unique prefix of one) names, for a queue of `project`
/// (`field` names where the request gave it): an empty prefix is refused, and a project
/// that may not read runs finds none.
async fn find_run(
    store: &Store,
    project: &str,
    run: &str,
    field: &str,
) -> Result<tribunal_store::RunRecord, ApiError> {
    if run.trim().is_empty() {
        return Err(ApiError::request(format!(
            "{field}: a run id or a prefix of one, found an empty string"
        )));
    }
    crate::api::run_visible_in(project, field)?;
    store.find_run(run).await.map_err(|e| match e {
        tribunal_store::StoreError::Ambiguous { .. } => ApiError::request(format!("{field}: {e}")),
        e => ApiError::not_found(format!("{field}: {e}")),
    })
}

/// Refuses items naming an eval run that `project` may not read (`items[i].run`).
pub fn check_runs(project: &str, items: &[Item]) -> Result<(), ApiError> {
    for (i, item) in items.iter().enumerate() {
        if item.run.is_some() {
            crate::api::run_visible_in(project, &format!("items[{i}].run"))?;
        }
    }
    Ok(())
}

/// The items of `items` that name something the store does not hold: a trace (stored, or
/// held by this server's gate), a span of it, an eval run or its result for the trace, or a
/// side of a pair. The queue keeps them (a trace may still arrive), and the answer lists
/// them, so a mistyped id is seen when the queue is made, not by the person given an empty
/// item: `{"traces": [item ids], "spans": [...], "runs": [...]}`, only the kinds with some.
pub async fn not_found(
    state: &crate::AppState,
    project: &str,
    items: &[Item],
) -> Result<Value, ApiError> {
    let store = &state.store;
    let (mut traces, mut spans, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut known: std::collections::HashMap<String, bool> = Default::default();
    // The span ids of each trace named with a span.
    let mut span_ids: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    // The traces each run named has a result for.
    let mut results: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    for item in items {
        // An eval run's item shows the run's trace: the run is checked for it below.
        let mut named: Vec<&str> = item
            .trace
            .iter()
            .filter(|_| item.run.is_none())
            .map(String::as_str)
            .collect();
        if let Some(p) = &item.pair {
            named.extend([&p.a, &p.b].iter().filter_map(|s| s.trace.as_deref()));
        }
        for trace in named {
            let there = match known.get(trace) {
                Some(&there) => there,
                None => {
                    let there = state.sessions.holds(project, trace)
                        || store.get_trace(project, trace).await?.is_some();
                    known.insert(trace.to_owned(), there);
                    there
                }
            };
            if !there && !traces.contains(&item.id) {
                traces.push(item.id.clone());
            }
        }
        if let (Some(trace), Some(span)) = (&item.trace, &item.span) {
            if !span_ids.contains_key(trace) {
                let ids: std::collections::HashSet<String> = store
                    .trace_spans(project, trace)
                    .await?
                    .into_iter()
                    .map(|s| s.span_id)
                    .collect();
                span_ids.insert(trace.clone(), ids);
            }
            if !span_ids[trace].contains(span) {
                spans.push(item.id.clone());
            }
        }
        if let (Some(trace), Some(run)) = (&item.trace, &item.run) {
            if !results.contains_key(run) {
                let of_run: std::collections::HashSet<String> = store
                    .run_results(run)
                    .await?
                    .into_iter()
                    .map(|r| r.trace_id)
                    .collect();
                results.insert(run.clone(), of_run);
            }
            if !results[run].contains(trace) {
                runs.push(item.id.clone());
            }
        }
    }
    let mut out = serde_json::Map::new();
    for (kind, ids) in [("traces", traces), ("spans", spans), ("runs", runs)] {
        if !ids.is_empty() {
            out.insert(kind.into(), json!(ids));
        }
    }
    Ok(Value::Object(out))
}

/// Items taken from `source` (at most `SCAN` traces are looked at).
pub async fn fill(store: &Store, project: &str, source: &Source) -> Result<Vec<Item>, ApiError> {
    let trace_item = |id: String, run: Option<String>| Item {
        id: id.clone(),
        trace: Some(id),
        span: None,
        run,
        pair: None,
        judge_value: None,
    };
    match source {
        Source::Filter(f) => {
            if !(1..=SCAN).contains(&f.limit) {
                return Err(ApiError::request(format!(
                    "from.filter.limit: 1 to {SCAN}, found {}",
                    f.limit
                )));
            }
            // A value no trace can have would fill nothing, and say only that.
            for (field, value, known) in [
                ("decision", &f.decision, &["allow", "escalate", "block"][..]),
                ("source", &f.source, &["otlp", "gate"][..]),
            ] {
                if let Some(v) = value.as_deref().filter(|v| !known.contains(v)) {
                    return Err(ApiError::request(format!(
                        "from.filter.{field}: expected {}, found {v:?}",
                        known.join(" or ")
                    )));
                }
            }
            let rows = store
                .list_traces(
                    project,
                    &TraceFilter {
                        source: f.source.clone(),
                        decision: f.decision.clone(),
                        since: f
                            .since
                            .as_deref()
                            .map(|s| {
                                crate::value::since_as(
                                    s,
                                    tribunal_store::clock::now_ms(),
                                    "from.filter.since",
                                )
                            })
                            .transpose()
                            .map_err(ApiError::request)?,
                        rule: f.rule.clone(),
                        text: f.text.clone(),
                        judge: None,
                        judge_value: None,
                        limit: f.limit,
                        offset: 0,
                    },
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| trace_item(r.trace_id, None))
                .collect())
        }
        Source::Run(run) => {
            let record = find_run(store, project, run, "from.run").await?;
            let mut seen = std::collections::HashSet::new();
            Ok(store
                .run_results(&record.id)
                .await?
                .into_iter()
                .filter(|r| seen.insert(r.trace_id.clone()))
                .map(|r| trace_item(r.trace_id, Some(record.id.clone())))
                .collect())
        }
        Source::LowConfidence(lc) => {
            if !(0.0..=1.0).contains(&lc.below) {
                return Err(ApiError::request(format!(
                    "from.low_confidence.below: a confidence in 0..1, found {}",
                    lc.below
                )));
            }
            let results: Vec<(String, Option<String>, String)> = match &lc.run {
                Some(run) => {
                    let record = find_run(store, project, run, "from.low_confidence.run").await?;
                    store
                        .run_results(&record.id)
                        .await?
                        .into_iter()
                        .map(|r| (r.trace_id, Some(record.id.clone()), r.result))
                        .collect()
                }
                None => store
                    .list_traces(
                        project,
                        &TraceFilter {
                            limit: SCAN,
                            ..TraceFilter::default()
                        },
                    )
                    .await?
                    .into_iter()
                    .filter_map(|r| Some((r.trace_id, None, r.result?)))
                    .collect(),
            };
            let mut out = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (trace, run, result) in results {
                let Ok(v) = serde_json::from_str::<Value>(&result) else {
                    continue;
                };
                if confidence(&v, &lc.judge).is_some_and(|c| c < lc.below)
                    && seen.insert(trace.clone())
                {
                    out.push(trace_item(trace, run));
                    if out.len() as i64 >= lc.limit {
                        break;
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Sets each trace item's judge value from its stored result (the eval run's, or the stored
/// trace's), unless the item already names one.
pub async fn attach_judge_values(
    store: &Store,
    project: &str,
    judge: &str,
    items: &mut [Item],
) -> Result<(), ApiError> {
    let mut runs: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        std::collections::HashMap::new();
    for item in items.iter_mut() {
        if item.judge_value.is_some() {
            continue;
        }
        let Some(trace) = &item.trace else { continue };
        let result = match &item.run {
            Some(run) => {
                crate::api::run_visible_in(project, "items.run")?;
                if !runs.contains_key(run) {
                    // The first result of a trace id the run has twice, as its item shows.
                    let mut first = std::collections::HashMap::new();
                    for r in store.run_results(run).await? {
                        first.entry(r.trace_id).or_insert(r.result);
                    }
                    runs.insert(run.clone(), first);
                }
                runs[run].get(trace).cloned()
            }
            None => store
                .get_trace(project, trace)
                .await?
                .and_then(|r| r.result),
        };
        item.judge_value = result.as_deref().and_then(|r| judge_value(r, judge));
    }
    Ok(())
}

/// What a person is shown for an item: its trace (assembled from spans or as sent to the
/// gate), its span, an eval run's result, or the two sides of a pair.
pub async fn content(store: &Store, project: &str, item: &Item) -> Result<Value, ApiError> {
    let mut out = json!({"id": item.id});
    if let Some(trace) = &item.trace {
        out["trace"] = item_trace(store, project, trace, item.run.as_deref()).await?;
    }
    if let (Some(trace), Some(span)) = (&item.trace, &item.span) {
        let spans = store.trace_spans(project, trace).await?;
        out["span"] = spans
            .iter()
            .find(|s| &s.span_id == span)
            .and_then(|s| serde_json::from_str(&s.body).ok())
            .unwrap_or(json!({"span_id": span, "missing": true}));
    }
    if let (Some(trace), Some(run)) = (&item.trace, &item.run) {
        // A project that may not read runs is shown none (a queue made before runs were
        // checked may name one).
        let result = match crate::api::run_visible_in(project, "") {
            Ok(()) => store
                .run_results(run)
                .await?
                .into_iter()
                .find(|r| &r.trace_id == trace),
            Err(_) => None,
        };
        out["run"] = match result {
            Some(r) => {
                // A result without its trace: the run did not keep it.
                if out["trace"].is_null() {
                    out["trace_missing"] = json!(
                        "the run did not keep its traces: run `tribunal eval --keep-traces` (or set `[eval] keep_traces = true`) to show people the conversations it judged"
                    );
                }
                run_shown(run, &r)
            }
            None => json!({"id": run, "missing": true}),
        };
    }
    if let Some(p) = &item.pair {
        out["pair"] = pair_content(store, project, p).await?;
    }
    Ok(out)
}

/// What a person is shown of a pair: its prompt and each side's text, or its stored trace.
async fn pair_content(
    store: &Store,
    project: &str,
    p: &tribunal_labels::items::Pair,
) -> Result<Value, ApiError> {
    let mut sides = serde_json::Map::new();
    for (name, s) in [("a", &p.a), ("b", &p.b)] {
        let v = match (&s.trace, &s.text) {
            (Some(t), _) => {
                json!({"trace_id": t, "trace": stored_trace(store, project, t).await?})
            }
            (None, Some(text)) => json!({"text": text}),
            (None, None) => Value::Null,
        };
        sides.insert(name.to_owned(), v);
    }
    Ok(json!({"prompt": p.prompt, "a": sides["a"], "b": sides["b"]}))
}

/// What a person is shown of an eval run's result for a trace: its decision, the rules that
/// fired (`result.violations`) with the reasons the decision gives, and its source line;
/// never the judges' feedback (values, rationales), so it does not sway the label.
fn run_shown(run: &str, r: &tribunal_store::ResultRecord) -> Value {
    let result = serde_json::from_str::<Value>(&r.result).unwrap_or(Value::Null);
    let part = |key: &str| result.get(key).cloned().unwrap_or(json!([]));
    json!({
        "id": run,
        "source": {"file": r.source_file, "line": r.source_line},
        "decision": r.decision,
        "result": {"violations": part("violations"), "reasons": part("reasons")},
    })
}

/// The trace a person labels for an item of `trace` (of eval run `run`, when it came from
/// one): the trace as the run judged it, never a trace the gate or OTLP stored under the
/// same id (which may be another conversation), or else the stored trace; `null` when there
/// is none.
pub async fn item_trace(
    store: &Store,
    project: &str,
    trace: &str,
    run: Option<&str>,
) -> Result<Value, ApiError> {
    let Some(run) = run else {
        return stored_trace(store, project, trace).await;
    };
    if crate::api::run_visible_in(project, "").is_err() {
        return Ok(Value::Null);
    }
    Ok(store
        .run_trace(run, trace)
        .await?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null))
}

/// A stored trace as the trace model (`null` when the store does not have it), a gate
/// trace ending with the step the gate judged (message `pending`).
pub async fn stored_trace(store: &Store, project: &str, trace: &str) -> Result<Value, ApiError> {
    let Some(row) = store.get_trace(project, trace).await? else {
        return Ok(Value::Null);
    };
    Ok(match crate::api::stored_trace(store, &row).await? {
        // A trace the gate judged ends with the step it judged: that is what people label.
        Some((mut t, pending)) => {
            t.messages.extend(pending.map(|p| p.as_message()));
            json!(t)
        }
        None => Value::Null,
    })
}

/// What a person is shown of an item's trace, as their label records it: how many
/// messages, a digest of them (see [`messages_digest`]), and the question and reply a judge
/// of the item reads (`inputs`, `outputs`; see [`inputs_outputs`]). Alignment reads the label
/// against these, whatever the trace under the same id has become since: grown, retried
/// after a blocked step, or replaced by another conversation. `None` for an item without a
/// trace (a pair) or whose trace the store does not hold.
pub async fn shown(store: &Store, project: &str, item: &Item) -> Result<Option<String>, ApiError> {
    if let Some(p) = item.pair.as_ref().filter(|p| has_trace_side(p)) {
        return Ok(pair_shown(&pair_content(store, project, p).await?));
    }
    let Some(trace) = item.trace.as_deref() else {
        return Ok(None);
    };
    let t = item_trace(store, project, trace, item.run.as_deref()).await?;
    Ok(shown_of(&t))
}

/// Whether a side of the pair is a stored trace (which may change after it is shown).
pub fn has_trace_side(p: &tribunal_labels::items::Pair) -> bool {
    p.a.trace.is_some() || p.b.trace.is_some()
}

/// The record of [`shown`] for an item whose `content` (see [`content`]) was just shown.
pub fn shown_in(item: &Item, content: &Value) -> Option<String> {
    match &item.pair {
        Some(_) => pair_shown(&content["pair"]),
        None => content.get("trace").and_then(shown_of),
    }
}

/// The record of [`shown`] for a pair as [`pair_content`] gives it: each side that is a
/// trace as [`shown_of`] records it (`{"pair": {"a": …, "b": …}}`, `null` for a side that is
/// text or not stored); `None` when neither side is a stored trace.
fn pair_shown(pair: &Value) -> Option<String> {
    let side = |name: &str| {
        shown_of(&pair[name]["trace"])
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .unwrap_or(Value::Null)
    };
    let (a, b) = (side("a"), side("b"));
    (!a.is_null() || !b.is_null()).then(|| json!({"pair": {"a": a, "b": b}}).to_string())
}

/// The question and reply a pairwise label's `shown` record kept of side `side` (`a` or
/// `b`), when that side was a stored trace.
pub fn shown_side(shown: &str, side: &str) -> Option<(Value, Value)> {
    let v: Value = serde_json::from_str(shown).ok()?;
    texts_of(v.get("pair")?.get(side)?)
}

/// The record of [`shown`] for a trace as [`item_trace`] gives it (`None` for `null`).
pub fn shown_of(t: &Value) -> Option<String> {
    if t.is_null() {
        return None;
    }
    let (inputs, outputs) = inputs_outputs(t);
    messages_digest(t).map(|(n, d)| {
        json!({"messages": n, "digest": d, "inputs": inputs, "outputs": outputs}).to_string()
    })
}

/// The question and reply a label's `shown` record kept, when it kept them.
pub fn shown_texts(shown: &str) -> Option<(Value, Value)> {
    texts_of(&serde_json::from_str(shown).ok()?)
}

/// The question and reply (`inputs`, `outputs`) a record of [`shown_of`] kept.
fn texts_of(record: &Value) -> Option<(Value, Value)> {
    let o = record.as_object()?;
    Some((o.get("inputs")?.clone(), o.get("outputs")?.clone()))
}

/// The number of messages of a trace (as [`item_trace`] gives it) and a digest of them: each
/// message's role, text and calls (name and arguments). `None` when the trace has no
/// messages list.
pub fn messages_digest(trace: &Value) -> Option<(usize, String)> {
    let messages = trace.get("messages")?.as_array()?;
    let mut text = Vec::new();
    for m in messages {
        let calls: Vec<Value> = m["tool_calls"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|c| json!([c["name"], c["arguments"]]))
                    .collect()
            })
            .unwrap_or_default();
        let one = json!([m["role"], m["content"], calls]).to_string();
        text.extend_from_slice(one.as_bytes());
        text.push(b'\n');
    }
    Some((messages.len(), crate::audit::digest(&text)))
}

/// The first user message and last reply of a trace as an item shows it (its own inputs and
/// outputs when it carries them): what a judge of the item's labels reads.
pub fn inputs_outputs(t: &Value) -> (Value, Value) {
    let messages = t["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    // A message without text (a call) is no question or answer: a judge of the reply reads
    // the last one that has some (the gate's pending reply, when it judged one).
    let of = |role: &str, last: bool| {
        let mut it = messages
            .iter()
            .filter(|m| m["role"] == role)
            .filter(|m| m["content"].as_str().is_none_or(|c| !c.is_empty()));
        let m = if last { it.next_back() } else { it.next() };
        m.map(|m| m["content"].clone()).unwrap_or(Value::Null)
    };
    let inputs = match &t["inputs"] {
        Value::Null => of("user", false),
        v => v.clone(),
    };
    let outputs = match &t["outputs"] {
        Value::Null => of("assistant", true),
        v => v.clone(),
    };
    (inputs, outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampled_judges_confidence_is_read_from_its_feedback() {
        let r = json!({"feedback": [
            {"name": "tone", "value": "ok", "rationale": "polite (confidence 0.60: 3 of 5 sampled answers agree)"},
            {"name": "other", "value": 1}
        ]});
        assert_eq!(confidence(&r, "tone"), Some(0.6));
        assert_eq!(confidence(&r, "other"), None);
        assert_eq!(confidence(&r, "missing"), None);
        assert_eq!(judge_value(&r.to_string(), "other"), Some(json!(1)));
    }
}

//! `POST /api/v1/gate`: the trace so far, the step the agent wants to take and its context
//! in; the decision, its reasons, violations, evidence and the time taken out.
//!
//! Code judges and policies run inline. Judges that call a model run in parallel on the
//! blocking pool under a latency budget (the request's `budget_ms`, else the server's);
//! a judge still running when the budget ends becomes an error feedback, policies that read
//! its score follow their fail mode, and the gate adds `tribunal.budget_exceeded` with the
//! gate's own fail mode (closed: block), so a gate call never silently allows.

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::{audit, body, escalation, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tribunal_core::{Decision, Feedback, Pending, SourceType, Trace, Verdict, Violation};
use tribunal_formats::{import_pending, import_value, InputFormat};
use tribunal_policy::Context;

/// The id given to a trace that has none, replaced by one derived from its content.
const UNNAMED: &str = "\u{0}unnamed";

/// A parsed gate request.
pub struct GateRequest {
    pub trace: Trace,
    pub pending: Option<Pending>,
    pub context: Option<Context>,
    pub budget: Option<Duration>,
    pub wait: Duration,
}

/// Reads the request document. `trace` may be in any supported format, or `"format":
/// "tribunal"` for the normalized trace model.
pub fn parse_request(v: &Value) -> Result<GateRequest, ApiError> {
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::request("the body must be a JSON object with a \"trace\""))?;
    for k in o.keys() {
        if ![
            "trace",
            "pending",
            "context",
            "budget_ms",
            "wait_ms",
            "format",
        ]
        .contains(&k.as_str())
        {
            return Err(ApiError::request(format!(
                "unknown field {k:?}; expected trace, pending, context, budget_ms, wait_ms, format"
            )));
        }
    }
    let context = match o.get("context") {
        None | Some(Value::Null) => None,
        Some(c @ Value::Object(_)) => Some(
            serde_json::from_value(c.clone())
                .map_err(|e| ApiError::request(format!("context: {e}")))?,
        ),
        Some(_) => return Err(ApiError::request("context: expected an object")),
    };
    let millis = |key: &str| -> Result<Option<Duration>, ApiError> {
        match o.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(Duration::from_millis(n)))
                .ok_or_else(|| {
                    ApiError::request(format!("{key}: expected milliseconds (a whole number ≥ 0)"))
                }),
        }
    };
    let budget = millis("budget_ms")?;
    let wait = millis("wait_ms")?.unwrap_or_default();
    let format = match o.get("format") {
        None => "auto",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::request("format: expected a string")),
    };
    let trace_value = o.get("trace").ok_or_else(|| {
        ApiError::request("trace: missing (the trace so far, any supported format)")
    })?;
    let trace = if format == "tribunal" {
        serde_json::from_value::<Trace>(trace_value.clone())
            .map_err(|e| ApiError::new("invalid_trace", format!("trace: {e}")))?
    } else {
        let f = InputFormat::parse(format).ok_or_else(|| {
            ApiError::request(format!(
                "format: expected tribunal or one of {}, found {format:?}",
                InputFormat::NAMES.join(", ")
            ))
        })?;
        let mut traces = import_value(trace_value, f, UNNAMED).map_err(|e| {
            let e = e.to_string();
            let e = e.strip_prefix(": ").unwrap_or(&e).to_owned();
            ApiError::new("invalid_trace", format!("trace: {e}"))
        })?;
        if traces.len() != 1 {
            return Err(ApiError::new(
                "invalid_trace",
                format!("trace: expected exactly one trace, found {}", traces.len()),
            ));
        }
        let mut t = traces.remove(0);
        // A trace without an id of its own is named after its content.
        if t.id == UNNAMED {
            t.id = format!(
                "gate-{}",
                &crate::audit::digest(trace_value.to_string().as_bytes())[..16]
            );
        }
        t
    };
    let pending = match o.get("pending") {
        None | Some(Value::Null) => None,
        Some(p) => Some(import_pending(p).map_err(|e| ApiError::request(format!("pending: {e}")))?),
    };
    Ok(GateRequest {
        trace,
        pending,
        context,
        budget,
        wait,
    })
}

/// The trace and pending step of a stored gate request.
pub fn stored_request(body: &str) -> Option<(Trace, Option<Pending>)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let r = parse_request(&v).ok()?;
    Some((r.trace, r.pending))
}

pub async fn handle(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Permission::Gate)?;
    body::require_json(&headers)?;
    let bytes = body::read(&headers, body, state.options.max_body_bytes).await?;
    let started = Instant::now();
    let doc = body::parse_json(&bytes, state.options.max_json_depth)?;
    let req = parse_request(&doc)?;
    let project = state.project(&caller)?;
    let rt = project.runtime();
    let budget = req
        .budget
        .or(rt.budget)
        .unwrap_or(state.options.gate.budget)
        .min(state.options.gate.max_budget);
    let context = req
        .context
        .clone()
        .or_else(|| rt.evaluator().context_for(&req.trace))
        .unwrap_or_else(|| rt.evaluator().context().clone());
    let trace = Arc::new(req.trace);
    let pending = Arc::new(req.pending);

    let (feedback, late) = judge(rt.evaluator(), &trace, &pending, budget).await;
    let (mut violations, shadow) = rt.gates(&trace, pending.as_ref().as_ref(), &feedback, &context);
    if !late.is_empty() {
        state
            .metrics
            .budget_exceeded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        violations.push(Violation {
            rule: "tribunal.budget_exceeded".into(),
            severity: state.options.gate.fail_mode.severity(),
            message: format!(
                "model judges {} did not answer within the {} ms budget; the gate's fail mode applies",
                late.join(", "),
                budget.as_millis()
            ),
            evidence: Vec::new(),
        });
    }
    let judge_errors = feedback.iter().filter(|f| f.error.is_some()).count() as u64;
    if judge_errors > 0 {
        state
            .metrics
            .judge_errors
            .fetch_add(judge_errors, std::sync::atomic::Ordering::Relaxed);
    }
    let verdict = Verdict::combine(feedback, violations);
    let shadow_verdict = shadow.map(|v| Verdict::combine(Vec::new(), v));
    let elapsed = started.elapsed();

    let evidence = evidence_of(&verdict);
    let judge_versions = judge_versions(&verdict.feedback);
    let mut entry = json!({
        "trace_id": trace.id,
        "decision": verdict.decision,
        "rules": verdict.violations.iter().map(|v| v.rule.as_str()).collect::<Vec<_>>(),
        "evidence": evidence,
        "inputs_digest": audit::digest(&bytes),
        "policy_version": rt.policy_version(),
        "config_hash": rt.config_hash,
        "judge_versions": judge_versions,
        "budget_exceeded": !late.is_empty(),
        "agent": context.agent,
        "user": context.user,
        "token": caller.token_id,
        "elapsed_us": elapsed.as_micros() as u64,
    });
    if let Some(s) = &shadow_verdict {
        entry["shadow"] = json!({
            "policy_version": rt.shadow.as_ref().map(|p| p.version()),
            "decision": s.decision,
            "rules": s.violations.iter().map(|v| v.rule.as_str()).collect::<Vec<_>>(),
        });
        if s.decision != verdict.decision {
            state
                .metrics
                .shadow_changed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let seq = state.audit.append(&caller.project, "gate", &entry).await;
    state.metrics.decision(verdict.decision);
    state.metrics.gate_latency.observe(elapsed);

    let mut out = json!({
        "decision": verdict.decision,
        "reasons": verdict.reasons,
        "violations": verdict.violations,
        "evidence": evidence,
        "feedback": verdict.feedback,
        "trace_id": trace.id,
        "decision_id": seq,
        "policy_version": rt.policy_version(),
        "judge_versions": entry["judge_versions"],
        "budget_exceeded": !late.is_empty(),
        "elapsed_us": elapsed.as_micros() as u64,
        "context": context,
    });
    if let Some(s) = &shadow_verdict {
        out["shadow"] = json!({
            "decision": s.decision,
            "reasons": s.reasons,
            "violations": s.violations,
            "enforced": false,
        });
    }
    if verdict.decision == Decision::Escalate {
        escalation::on_escalate(&state, &caller, seq, &trace, &pending, &mut out, req.wait).await?;
    }
    // Serialized once: the answer and the stored result are the same bytes.
    let answer = out.to_string();
    store_trace(&state, &caller.project, &trace.id, &bytes, &out, &answer).await;
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

/// Runs code judges inline and model judges in parallel under `budget`; returns the
/// feedback (late judges as errors) and the names of the late judges.
async fn judge(
    evaluator: &Arc<tribunal_engine::Evaluator>,
    trace: &Arc<Trace>,
    pending: &Arc<Option<Pending>>,
    budget: Duration,
) -> (Vec<Feedback>, Vec<String>) {
    let input = tribunal_judges::JudgeInput {
        trace,
        pending: pending.as_ref().as_ref(),
    };
    let mut slots: Vec<Option<Vec<Feedback>>> = Vec::new();
    let mut waiting = Vec::new();
    for (i, j) in evaluator.judges().iter().enumerate() {
        if j.max_in_flight() == 0 {
            // Agents call the gate with the conversation so far at every step: code judges
            // keep what they found per text between calls.
            slots.push(Some(run_one(j.as_ref(), &input, true)));
        } else {
            slots.push(None);
            let (ev, t, p) = (evaluator.clone(), trace.clone(), pending.clone());
            waiting.push((
                i,
                tokio::task::spawn_blocking(move || {
                    let input = tribunal_judges::JudgeInput {
                        trace: &t,
                        pending: p.as_ref().as_ref(),
                    };
                    run_one(ev.judges()[i].as_ref(), &input, false)
                }),
            ));
        }
    }
    let mut late = Vec::new();
    if !waiting.is_empty() {
        let deadline = tokio::time::Instant::now() + budget;
        for (i, handle) in waiting {
            let name = evaluator.judges()[i].name().to_owned();
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(f)) => slots[i] = Some(f),
                Ok(Err(_)) => {
                    slots[i] = Some(vec![model_error(&name, "the judge failed unexpectedly")])
                }
                Err(_) => {
                    slots[i] = Some(vec![model_error(
                        &name,
                        &format!("no answer within the {} ms budget", budget.as_millis()),
                    )]);
                    late.push(name);
                }
            }
        }
    }
    (slots.into_iter().flatten().flatten().collect(), late)
}

fn run_one(
    j: &dyn tribunal_judges::Judge,
    input: &tribunal_judges::JudgeInput,
    memo: bool,
) -> Vec<Feedback> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if memo {
            j.judge_memo(input)
        } else {
            j.judge(input)
        }
    }))
    .unwrap_or_else(|_| {
        vec![Feedback::error(
            j.name(),
            j.name(),
            "the judge failed unexpectedly on this trace",
        )]
    })
}

fn model_error(name: &str, message: &str) -> Feedback {
    let mut f = Feedback::error(name, name, message);
    f.source.source_type = SourceType::LlmJudge;
    f
}

/// Every id the violations cite, once, in order.
pub fn evidence_of(v: &Verdict) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in v.violations.iter().flat_map(|v| &v.evidence) {
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

fn judge_versions(feedback: &[Feedback]) -> Map<String, Value> {
    let mut m = BTreeMap::new();
    for f in feedback {
        if let Some(v) = &f.source.version {
            m.insert(f.source.source_id.clone(), Value::String(v.clone()));
        }
    }
    m.into_iter().collect()
}

/// Keeps the request (the trace as sent, in its own format) and the answer for listing and
/// replay, without holding up the answer unless the trace writer is a whole queue behind.
async fn store_trace(
    state: &Arc<AppState>,
    project: &str,
    trace_id: &str,
    request: &[u8],
    out: &Value,
    answer: &str,
) {
    state
        .store_gate_trace(tribunal_store::GateTraceRow {
            project: project.to_owned(),
            trace_id: trace_id.to_owned(),
            body: String::from_utf8_lossy(request).into_owned(),
            decision: out["decision"].as_str().unwrap_or("block").to_owned(),
            result: answer.to_owned(),
            at: tribunal_store::clock::now_rfc3339(),
            at_ms: tribunal_store::clock::now_ms(),
        })
        .await;
}

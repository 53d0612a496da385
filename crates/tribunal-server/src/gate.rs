//! `POST /api/v1/gate`: the trace so far, the step the agent wants to take and its context
//! in; the decision, its reasons, violations, evidence and the time taken out.
//!
//! Code judges and policies run inline. Judges that call a model run in parallel on the
//! blocking pool under a latency budget (the request's `budget_ms`, else the server's);
//! a judge still running when the budget ends becomes an error feedback, policies that read
//! its score follow their fail mode, and the gate adds `tribunal.budget_exceeded` with the
//! gate's own fail mode (closed: block), so a gate call never silently allows.

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Code};
use crate::session::Judged;
use crate::{audit, body, escalation, resend, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tribunal_core::{Decision, Feedback, Pending, SourceType, Trace, Verdict, Violation};
use tribunal_formats::{import_pending, import_value, InputFormat};
use tribunal_policy::Context;

/// The id given to a trace that has none, replaced by one derived from its content.
const UNNAMED: &str = "\u{0}unnamed";

/// A parsed gate request.
pub struct GateRequest<'a> {
    pub steps: Steps<'a>,
    pub asked: Asked,
}

/// What a request asks besides its trace.
pub struct Asked {
    pub pending: Option<Pending>,
    pub context: Option<Context>,
    pub budget: Option<Duration>,
    pub wait: Duration,
    /// Answer with every judge's feedback and version, not only the scores.
    pub explain: bool,
}

/// What a gate request says of the trace.
pub enum Steps<'a> {
    /// The whole trace so far.
    Whole(Box<Trace>),
    /// Messages that continue a trace the gate holds: `messages`, in `format`, start at
    /// message number `offset`.
    Append {
        trace_id: String,
        offset: usize,
        messages: &'a [Value],
        format: AppendFormat,
    },
}

/// What the messages of an append are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFormat {
    /// Anthropic messages when they use `tool_use` / `tool_result` blocks, else OpenAI chat
    /// messages.
    Auto,
    OpenAi,
    Anthropic,
    /// Normalized messages.
    Tribunal,
}

/// The members of a gate request. An append request is first read by [`AppendBody`], which
/// must take these same members (any it does not know sends the request to the full read).
const FIELDS: &[&str] = &[
    "trace",
    "append",
    "trace_id",
    "offset",
    "pending",
    "context",
    "budget_ms",
    "wait_ms",
    "format",
    "explain",
];

/// Reads the request document. `trace` may be in any supported format, or `"format":
/// "tribunal"` for the normalized trace model; `append` continues a held trace.
pub fn parse_request(v: &Value) -> Result<GateRequest<'_>, ApiError> {
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::request("the body must be a JSON object with a \"trace\""))?;
    let Head {
        asked,
        format,
        trace_id,
    } = parse_head(o)?;
    let steps = match (o.get("trace"), o.get("append")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::request(
                "trace, append: give one; trace is the whole trace, append continues one the gate holds",
            ))
        }
        (None, None) => {
            return Err(ApiError::request(
                "trace: missing (the trace so far, any supported format; or append with trace_id and offset)",
            ))
        }
        (Some(t), None) => Steps::Whole(Box::new(whole_trace(t, format, trace_id)?)),
        (None, Some(a)) => {
            let messages = a.as_array().ok_or_else(|| {
                ApiError::request("append: expected an array of the messages since the last call")
            })?;
            let trace_id = trace_id.ok_or_else(|| {
                ApiError::request("trace_id: missing (append continues the trace of this id)")
            })?;
            let offset = match o.get("offset") {
                Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(0) as usize,
                Some(_) => return Err(ApiError::request("offset: expected a whole number ≥ 0")),
                None => {
                    return Err(ApiError::request(
                        "offset: missing (the number of messages the gate already holds: the \"messages\" of the last answer)",
                    ))
                }
            };
            Steps::Append {
                trace_id,
                offset,
                messages,
                format: append_format(format)?,
            }
        }
    };
    Ok(GateRequest { steps, asked })
}

fn append_format(format: &str) -> Result<AppendFormat, ApiError> {
    Ok(match format {
        "auto" => AppendFormat::Auto,
        "openai" => AppendFormat::OpenAi,
        "anthropic" => AppendFormat::Anthropic,
        "tribunal" => AppendFormat::Tribunal,
        f => {
            return Err(ApiError::request(format!(
                "format: append takes OpenAI chat messages (openai), Anthropic messages (anthropic), either told apart by their content (auto) or normalized ones (tribunal), found {f:?}; send other formats whole in trace"
            )))
        }
    })
}

/// An append request read straight into its members (the messages raw, for the importers;
/// the pending step as a JSON value), without a document of the whole request in between.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendBody<'a> {
    #[serde(borrow)]
    trace_id: std::borrow::Cow<'a, str>,
    offset: usize,
    #[serde(borrow)]
    append: Vec<&'a serde_json::value::RawValue>,
    #[serde(default)]
    pending: Option<Value>,
    #[serde(default)]
    context: Option<Context>,
    #[serde(default, borrow)]
    format: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    budget_ms: Option<u64>,
    #[serde(default)]
    wait_ms: Option<u64>,
    #[serde(default)]
    explain: Option<bool>,
}

/// An append request read by [`AppendBody`].
struct Appended<'a> {
    asked: Asked,
    trace_id: String,
    offset: usize,
    messages: Vec<&'a serde_json::value::RawValue>,
    format: AppendFormat,
}

/// The messages of an append: JSON values (the full read) or raw (the short way).
#[derive(Clone, Copy)]
enum NewMessages<'a> {
    Values(&'a [Value]),
    Raw(&'a [&'a serde_json::value::RawValue]),
}

/// Reads an append request the short way; `None` when it is not a well-formed one (the full
/// read, [`parse_request`], then names what is wrong).
fn read_append(bytes: &[u8]) -> Option<Appended<'_>> {
    let b: AppendBody = serde_json::from_slice(bytes).ok()?;
    if b.trace_id.is_empty() {
        return None;
    }
    let pending = match b.pending {
        None => None,
        Some(p) => Some(import_pending(&p).ok()?),
    };
    Some(Appended {
        asked: Asked {
            pending,
            context: b.context,
            budget: b.budget_ms.map(Duration::from_millis),
            wait: Duration::from_millis(b.wait_ms.unwrap_or(0)),
            explain: b.explain.unwrap_or(false),
        },
        trace_id: b.trace_id.into_owned(),
        offset: b.offset,
        messages: b.append,
        format: append_format(b.format.as_deref().unwrap_or("auto")).ok()?,
    })
}

/// A request's members besides its trace: what it asks, the trace's format and id.
struct Head<'a> {
    asked: Asked,
    format: &'a str,
    trace_id: Option<String>,
}

fn parse_head(o: &serde_json::Map<String, Value>) -> Result<Head<'_>, ApiError> {
    for k in o.keys() {
        if !FIELDS.contains(&k.as_str()) {
            return Err(ApiError::request(format!(
                "unknown field {k:?}; expected {}",
                FIELDS.join(", ")
            )));
        }
    }
    let context = match o.get("context") {
        None | Some(Value::Null) => None,
        Some(c @ Value::Object(_)) => {
            Some(Context::deserialize(c).map_err(|e| ApiError::request(format!("context: {e}")))?)
        }
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
    let trace_id = match o.get("trace_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(ApiError::request("trace_id: expected a non-empty string")),
    };
    if o.contains_key("offset") && !o.contains_key("append") {
        return Err(ApiError::request("offset: only with append"));
    }
    let explain = match o.get("explain") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::request("explain: expected true or false")),
    };
    let pending = match o.get("pending") {
        None | Some(Value::Null) => None,
        Some(p) => Some(import_pending(p).map_err(|e| ApiError::request(format!("pending: {e}")))?),
    };
    Ok(Head {
        asked: Asked {
            pending,
            context,
            budget,
            wait,
            explain,
        },
        format,
        trace_id,
    })
}

/// The whole trace of a request, named `trace_id` when given.
fn whole_trace(
    trace_value: &Value,
    format: &str,
    trace_id: Option<String>,
) -> Result<Trace, ApiError> {
    let mut trace = if format == "tribunal" {
        serde_json::from_value::<Trace>(trace_value.clone())
            .map_err(|e| ApiError::new(Code::InvalidTrace, format!("trace: {e}")))?
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
            ApiError::new(Code::InvalidTrace, format!("trace: {e}"))
        })?;
        if traces.len() != 1 {
            return Err(ApiError::new(
                Code::InvalidTrace,
                format!("trace: expected exactly one trace, found {}", traces.len()),
            ));
        }
        traces.remove(0)
    };
    if let Some(id) = trace_id {
        trace.id = id;
    } else if trace.id == UNNAMED {
        // A trace without an id of its own is named after its content.
        trace.id = format!(
            "gate-{}",
            &crate::audit::digest(trace_value.to_string().as_bytes())[..16]
        );
    }
    Ok(trace)
}

/// The messages of an append, imported after the held ones. Raw OpenAI chat messages with
/// plain-text content are read straight into the trace model; the rest as JSON values.
fn import_append(
    held: &Trace,
    messages: NewMessages<'_>,
    format: AppendFormat,
) -> Result<Vec<tribunal_core::Message>, ApiError> {
    use tribunal_formats::{anthropic, openai};
    let parsed: Vec<Value>;
    let messages = match messages {
        NewMessages::Values(v) => v,
        NewMessages::Raw(raw) => {
            let texts: Vec<&str> = raw.iter().map(|r| r.get()).collect();
            if matches!(format, AppendFormat::Auto | AppendFormat::OpenAi) {
                // Plain-text messages never look like Anthropic's, so `auto` reads them as
                // OpenAI's too.
                if let Some(m) =
                    tribunal_formats::openai_row::messages_after(&held.messages, &texts)
                {
                    return Ok(m);
                }
            }
            parsed = texts
                .iter()
                .map(|t| serde_json::from_str(t))
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::new(Code::InvalidJson, format!("append: {e}")))?;
            &parsed
        }
    };
    let imported = match format {
        AppendFormat::Tribunal => {
            return messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    tribunal_core::Message::deserialize(m)
                        .map_err(|e| ApiError::new(Code::InvalidTrace, format!("append[{i}]: {e}")))
                })
                .collect()
        }
        AppendFormat::Anthropic => anthropic::import_messages_after(&held.messages, messages),
        AppendFormat::Auto if anthropic::looks_like(messages) => {
            anthropic::import_messages_after(&held.messages, messages)
        }
        AppendFormat::Auto | AppendFormat::OpenAi => {
            openai::import_messages_after(&held.messages, messages)
        }
    };
    imported.map_err(|e| ApiError::new(Code::InvalidTrace, e.within("append").to_string()))
}

/// The trace and pending step of a stored gate request.
pub fn stored_request(body: &str) -> Option<(Trace, Option<Pending>)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let r = parse_request(&v).ok()?;
    match r.steps {
        Steps::Whole(t) => Some((*t, r.asked.pending)),
        Steps::Append { .. } => None,
    }
}

pub async fn handle(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Permission::Gate)?;
    body::require_json(&headers)?;
    let bytes = body::read(
        &headers,
        body,
        state.options.max_body_bytes,
        state.options.body_timeout,
    )
    .await?;
    let started = Instant::now();
    body::check_depth(&bytes, state.options.max_json_depth)?;
    let project = state.project(&caller)?;
    // A whole trace repeating the one held, with messages added, is read from the new
    // messages only (resend.rs).
    let append = memchr::memmem::find(&bytes, b"\"append\"").is_some();
    let split = (!append).then(|| resend::split(&bytes)).flatten();
    let fast = split
        .as_ref()
        .and_then(|s| resent(&state, &caller.project, &bytes, s));
    let (mut asked, appended, trace, inputs_digest, kept) = match fast {
        Some((asked, taken)) => {
            state.metrics.read_new_messages.fetch_add(1, Relaxed);
            for row in taken.evicted {
                state.store_gate_trace(row).await;
            }
            (asked, false, taken.trace, taken.digest, taken.judged)
        }
        None => read_in_full(&state, &caller.project, &bytes, split.as_ref(), append).await?,
    };
    let rt = project.runtime();
    let budget = asked
        .budget
        .or(rt.budget)
        .unwrap_or(state.options.gate.budget)
        .min(state.options.gate.max_budget);
    let context = asked
        .context
        .clone()
        .or_else(|| rt.evaluator().context_for(&trace))
        .unwrap_or_else(|| rt.evaluator().context().clone());
    let pending = Arc::new(asked.pending.take());
    let wait = asked.wait;

    let mut judged = Judged::for_evaluator(kept, rt.evaluator());
    let (feedback, late) = judge(rt.evaluator(), &trace, &pending, budget, &mut judged).await;
    let (mut violations, shadow) = rt.gates(
        &mut judged.screen,
        &trace,
        pending.as_ref().as_ref(),
        &feedback,
        &context,
    );
    state.sessions.keep_judged(&caller.project, &trace, judged);
    if !late.is_empty() {
        state.metrics.budget_exceeded.fetch_add(1, Relaxed);
    }
    // A late judge is a judge that gave no usable answer: its `tribunal.judge_error` says
    // so; the budget's own violation follows the gate's fail mode unless every late judge
    // is optional.
    let judge_errors = rt.evaluator().policies().judge_errors();
    if late
        .iter()
        .any(|name| judge_errors.severity(name) != tribunal_core::Severity::Warn)
    {
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
        state.metrics.judge_errors.fetch_add(judge_errors, Relaxed);
    }
    let verdict = Verdict::combine(feedback, violations);
    let shadow_verdict = shadow.map(|v| Verdict::combine(Vec::new(), v));
    let elapsed = started.elapsed();

    let evidence = evidence_of(&verdict);
    let elapsed_us = elapsed.as_micros() as u64;
    // An escalation past the review queue's rate limit is not queued: the default applies
    // at once, and that is the decision logged and counted.
    let limited = if verdict.decision == Decision::Escalate {
        state.reviews.rate_limited(&caller.project)
    } else {
        None
    };
    let answered = limited.unwrap_or(verdict.decision);
    let entry = Entry {
        trace_id: &trace.id,
        decision: answered,
        rate_limited: limited.is_some(),
        rules: rules(&verdict.violations),
        evidence: &evidence,
        inputs_digest: &inputs_digest,
        policy_version: rt.policy_version(),
        config: rt.config_entry(),
        budget_exceeded: !late.is_empty(),
        agent: context.agent.as_deref(),
        user: context.user.as_deref(),
        token: &caller.token_id,
        elapsed_us,
        shadow: shadow_verdict.as_ref().map(|s| EntryShadow {
            policy_version: rt.shadow.as_ref().map(|p| p.version()),
            decision: s.decision,
            rules: rules(&s.violations),
        }),
    };
    if let Some(s) = &shadow_verdict {
        if s.decision != verdict.decision {
            state.metrics.shadow_changed.fetch_add(1, Relaxed);
        }
    }
    // One reading of the clock for the log entry and the stored trace.
    let (at, at_ms) = tribunal_store::clock::now_both();
    // Answered only once the entry is committed: a decision that cannot be logged is not
    // given (503 store_unavailable).
    let seq = state
        .audit
        .append_at(&caller.project, "gate", &entry, at.clone())
        .await?;
    state.metrics.decision(answered);
    state.metrics.gate_latency.observe(elapsed);

    let outcome = Outcome {
        verdict,
        evidence,
        trace_id: trace.id.clone(),
        messages: trace.messages.len(),
        decision_id: seq,
        policy_version: rt.policy_version().to_owned(),
        budget_exceeded: !late.is_empty(),
        elapsed_us,
        context,
        shadow: shadow_verdict,
    };
    let decision = outcome.verdict.decision;
    let (answer, stored, decision) = if decision == Decision::Escalate {
        let mut out = serde_json::to_value(outcome.answer(true))
            .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        match limited {
            Some(default) => escalation::not_queued(&state, &mut out, default),
            None => {
                escalation::on_escalate(&state, &caller, seq, &trace, &pending, &mut out, wait)
                    .await?
            }
        }
        let decision = out["decision"].as_str().unwrap_or("block").to_owned();
        let stored = out.to_string();
        let answer = if asked.explain {
            stored.clone()
        } else {
            if let Some(o) = out.as_object_mut() {
                o.remove("feedback");
                o.remove("judge_versions");
            }
            out.to_string()
        };
        (answer, crate::session::StoredAnswer::Text(stored), decision)
    } else {
        let answer = serde_json::to_string(&outcome.answer(asked.explain))
            .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        (
            answer,
            // Serialized when stored: once per flush, not per call.
            crate::session::StoredAnswer::Later(Box::new(outcome)),
            decision.as_str().to_owned(),
        )
    };
    // Stored with the held trace at the next flush, every few hundred milliseconds
    // (session.rs): an agent calling again meanwhile has its trace written once. A trace
    // sent whole is stored as sent; one grown by appends, whole in the normalized format.
    let unsaved = crate::session::Unsaved {
        request: (!appended).then(|| match std::str::from_utf8(&bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
        }),
        pending: appended.then(|| pending.clone()),
        decision,
        result: stored,
        at,
        at_ms,
    };
    if let Some(row) = state.sessions.unsaved(&caller.project, &trace, unsaved) {
        state.store_gate_trace(row).await;
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

/// A whole request that repeats the trace held under its id and adds messages, read from
/// its new messages only (resend.rs); `None` when it does not qualify, or anything in it
/// fails (the full read then gives the error).
fn resent(
    state: &AppState,
    project: &str,
    bytes: &[u8],
    split: &resend::Split<'_>,
) -> Option<(Asked, crate::session::Taken)> {
    let (held, generation, n) = state.sessions.resent(project, split)?;
    let asked = parse_head(&split.rest).ok()?.asked;
    if !split.named && split.list && n == 0 {
        return None;
    }
    // Plain-text chat messages straight into the trace model, else as JSON values.
    let imported = match tribunal_formats::openai_row::messages_after(
        &held.messages,
        split.messages.get(n..)?,
    ) {
        Some(m) => m,
        None => {
            let new = split.new_messages(n)?;
            if !split.named && tribunal_formats::anthropic::looks_like(&new) {
                return None;
            }
            tribunal_formats::openai::import_messages_after(&held.messages, &new).ok()?
        }
    };
    drop(held);
    let taken = state.sessions.extend_resent(
        project,
        &split.trace_id,
        generation,
        imported,
        split.sent(),
        audit::digest(bytes),
        bytes.len(),
    )?;
    Some((asked, taken))
}

/// Reads a request in full: its trace held (sent whole) or extended (appended). `append`:
/// the request has an `"append"` member somewhere.
async fn read_in_full(
    state: &AppState,
    project: &str,
    bytes: &[u8],
    split: Option<&resend::Split<'_>>,
    append: bool,
) -> Result<(Asked, bool, Arc<Trace>, String, Option<Judged>), ApiError> {
    if let Some(a) = append.then(|| read_append(bytes)).flatten() {
        let messages = NewMessages::Raw(&a.messages);
        let steps = (a.trace_id.as_str(), a.offset, messages, a.format);
        return read_appended(state, project, bytes, a.asked, steps).await;
    }
    let doc = body::parse_json_checked(bytes)?;
    let GateRequest { steps, asked } = parse_request(&doc)?;
    match steps {
        Steps::Whole(t) => {
            let t: Arc<Trace> = Arc::from(t);
            let digest = audit::digest(bytes);
            // Kept for the next request when it was read as OpenAI chat messages.
            let sent = split
                .filter(|s| {
                    s.named || tribunal_formats::detect(&doc["trace"]) == Some(InputFormat::Openai)
                })
                .map(resend::Split::sent);
            let (evicted, kept) =
                state
                    .sessions
                    .hold(project, t.clone(), digest.clone(), bytes.len(), sent);
            for row in evicted {
                state.store_gate_trace(row).await;
            }
            state.metrics.read_in_full.fetch_add(1, Relaxed);
            Ok((asked, false, t, digest, kept))
        }
        Steps::Append {
            trace_id,
            offset,
            messages,
            format,
        } => {
            let steps = (
                trace_id.as_str(),
                offset,
                NewMessages::Values(messages),
                format,
            );
            read_appended(state, project, bytes, asked, steps).await
        }
    }
}

/// Extends the held trace `trace_id` with `messages` (in `format`, from message `offset`).
async fn read_appended(
    state: &AppState,
    project: &str,
    bytes: &[u8],
    asked: Asked,
    (trace_id, offset, messages, format): (&str, usize, NewMessages<'_>, AppendFormat),
) -> Result<(Asked, bool, Arc<Trace>, String, Option<Judged>), ApiError> {
    if !state.sessions.holds(project, trace_id) {
        reload(state, project, trace_id).await?;
    }
    let taken = state
        .sessions
        .append(project, trace_id, offset, bytes, |held| {
            import_append(held, messages, format)
        })?;
    for row in taken.evicted {
        state.store_gate_trace(row).await;
    }
    state.metrics.read_appended.fetch_add(1, Relaxed);
    Ok((asked, true, taken.trace, taken.digest, taken.judged))
}

/// Reads a trace the gate no longer holds (idle, let go, or held by the server before a
/// restart) back from the store, when it was stored as a gate request.
async fn reload(state: &AppState, project: &str, trace_id: &str) -> Result<(), ApiError> {
    let row = state
        .store
        .get_trace(project, trace_id)
        .await
        .map_err(|e| ApiError::new(Code::StoreUnavailable, e.to_string()))?;
    let Some(body) = row.filter(|r| r.source == "gate").and_then(|r| r.body) else {
        return Ok(());
    };
    if let Some((mut trace, _)) = stored_request(&body) {
        trace.id = trace_id.to_owned();
        let digest = audit::digest(body.as_bytes());
        let (evicted, _) = state
            .sessions
            .hold(project, Arc::new(trace), digest, body.len(), None);
        for row in evicted {
            state.store_gate_trace(row).await;
        }
    }
    Ok(())
}

/// Runs code judges inline (from what they kept of the trace in `judged`) and model judges
/// in parallel under `budget`; returns the feedback (late judges as errors) and the names
/// of the late judges.
async fn judge(
    evaluator: &Arc<tribunal_engine::Evaluator>,
    trace: &Arc<Trace>,
    pending: &Arc<Option<Pending>>,
    budget: Duration,
    judged: &mut Judged,
) -> (Vec<Feedback>, Vec<String>) {
    let input = tribunal_judges::JudgeInput {
        trace,
        pending: pending.as_ref().as_ref(),
    };
    let mut out: Vec<Feedback> = Vec::with_capacity(evaluator.judges().len());
    // Model judges: where their feedback goes in `out`, their index, their task.
    let mut waiting = Vec::new();
    for ((i, j), state) in evaluator
        .judges()
        .iter()
        .enumerate()
        .zip(&mut judged.states)
    {
        if j.max_in_flight() == 0 {
            // Agents call the gate before every step of a growing trace: code judges keep
            // what they found in it, and per text, between calls.
            out.extend(run_one(j.as_ref(), &input, Some(state)));
        } else {
            let (ev, t, p) = (evaluator.clone(), trace.clone(), pending.clone());
            waiting.push((
                out.len(),
                i,
                tokio::task::spawn_blocking(move || {
                    let input = tribunal_judges::JudgeInput {
                        trace: &t,
                        pending: p.as_ref().as_ref(),
                    };
                    run_one(ev.judges()[i].as_ref(), &input, None)
                }),
            ));
        }
    }
    let mut late = Vec::new();
    if !waiting.is_empty() {
        let deadline = tokio::time::Instant::now() + budget;
        let mut answered = Vec::with_capacity(waiting.len());
        for (at, i, handle) in waiting {
            let name = evaluator.judges()[i].name().to_owned();
            let f = match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(f)) => f,
                Ok(Err(_)) => vec![model_error(&name, "the judge failed unexpectedly")],
                Err(_) => {
                    let message = format!("no answer within the {} ms budget", budget.as_millis());
                    late.push(name.clone());
                    vec![model_error(&name, &message)]
                }
            };
            answered.push((at, f));
        }
        // In judge order: from the last, so earlier places do not move.
        for (at, f) in answered.into_iter().rev() {
            out.splice(at..at, f);
        }
    }
    (out, late)
}

/// One judge's feedback; `grown` is what it kept of the trace, for code judges.
fn run_one(
    j: &dyn tribunal_judges::Judge,
    input: &tribunal_judges::JudgeInput,
    grown: Option<&mut tribunal_judges::GrowState>,
) -> Vec<Feedback> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match grown {
        Some(state) => j.judge_grown(input, state),
        None => j.judge(input),
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

fn judge_versions(feedback: &[Feedback]) -> BTreeMap<&str, &str> {
    let mut m = BTreeMap::new();
    for f in feedback {
        if let Some(v) = &f.source.version {
            m.insert(f.source.source_id.as_str(), v.as_str());
        }
    }
    m
}

fn rules(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|v| v.rule.as_str()).collect()
}

/// A decision-log entry of a gate decision.
#[derive(Serialize)]
struct Entry<'a> {
    trace_id: &'a str,
    /// The decision answered: for an escalation past the review queue's rate limit, the
    /// default that applied (`rate_limited`).
    decision: Decision,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    rate_limited: bool,
    rules: Vec<&'a str>,
    evidence: &'a [String],
    inputs_digest: &'a str,
    policy_version: &'a str,
    /// The `config` entry of the configuration that decided (its hash, policy and judge
    /// versions).
    config: i64,
    budget_exceeded: bool,
    agent: Option<&'a str>,
    user: Option<&'a str>,
    token: &'a str,
    elapsed_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow: Option<EntryShadow<'a>>,
}

#[derive(Serialize)]
struct EntryShadow<'a> {
    policy_version: Option<&'a str>,
    decision: Decision,
    rules: Vec<&'a str>,
}

/// The answer to a gate call (escalations add `escalation`). Every judge's score by name;
/// the feedback behind them (rationale, evidence, findings, versions) when asked for
/// (`explain`) and in the stored result.
#[derive(Serialize)]
struct Answer<'a> {
    decision: Decision,
    reasons: &'a [String],
    violations: &'a [Violation],
    evidence: &'a [String],
    scores: Scores<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feedback: Option<&'a [Feedback]>,
    trace_id: &'a str,
    messages: usize,
    decision_id: i64,
    policy_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    judge_versions: Option<BTreeMap<&'a str, &'a str>>,
    budget_exceeded: bool,
    elapsed_us: u64,
    context: &'a Context,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow: Option<AnswerShadow<'a>>,
}

/// Each feedback's value by name (`null` for a judge that failed); of feedback sharing a
/// name the last counts, as in the policies' `input.scores`.
struct Scores<'a>(&'a [Feedback]);

impl Serialize for Scores<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (i, f) in self.0.iter().enumerate() {
            if !self.0[i + 1..].iter().any(|g| g.name == f.name) {
                m.serialize_entry(&f.name, &f.value)?;
            }
        }
        m.end()
    }
}

/// What a gate call decided, owned: the answer is made from it, and the stored result when
/// its trace is written.
#[derive(Debug, Clone)]
pub struct Outcome {
    verdict: Verdict,
    evidence: Vec<String>,
    trace_id: String,
    messages: usize,
    decision_id: i64,
    policy_version: String,
    budget_exceeded: bool,
    elapsed_us: u64,
    context: Context,
    shadow: Option<Verdict>,
}

impl Outcome {
    fn answer(&self, explain: bool) -> Answer<'_> {
        let v = &self.verdict;
        Answer {
            decision: v.decision,
            reasons: &v.reasons,
            violations: &v.violations,
            evidence: &self.evidence,
            scores: Scores(&v.feedback),
            feedback: explain.then_some(&v.feedback[..]),
            trace_id: &self.trace_id,
            messages: self.messages,
            decision_id: self.decision_id,
            policy_version: &self.policy_version,
            judge_versions: explain.then(|| judge_versions(&v.feedback)),
            budget_exceeded: self.budget_exceeded,
            elapsed_us: self.elapsed_us,
            context: &self.context,
            shadow: self.shadow.as_ref().map(|s| AnswerShadow {
                decision: s.decision,
                reasons: &s.reasons,
                violations: &s.violations,
                enforced: false,
            }),
        }
    }

    /// The stored result: the answer with everything.
    pub fn stored(&self) -> String {
        serde_json::to_string(&self.answer(true)).unwrap_or_else(|e| {
            // Plain data (string-keyed maps), which always serializes.
            tracing::error!(error = %e, trace = %self.trace_id, "a gate result did not serialize");
            String::new()
        })
    }
}

#[derive(Serialize)]
struct AnswerShadow<'a> {
    decision: Decision,
    reasons: &'a [String],
    violations: &'a [Violation],
    enforced: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_read_the_short_way_as_the_full_read_reads_them_and_only_those() {
        let msg = r#"{"role": "tool", "tool_call_id": "c1", "content": "in \"transit\""}"#;
        let same = [
            format!(r#"{{"trace_id": "t1", "offset": 3, "append": [{msg}]}}"#),
            format!(
                r#"{{"append": [{msg}, {msg}], "offset": 0, "trace_id": "t\u0031", "pending": {{"name": "send_email", "arguments": {{"to": "a@b.co"}}}}, "context": {{"agent": "support", "team": "eu"}}, "format": "openai", "budget_ms": 20, "wait_ms": 5, "explain": true}}"#
            ),
r#"{"trace_id": "t1", "offset": 1, "append": [], "pending": null, "context": null, "format": "anthropic", "budget_ms": null, "explain": null}"#.to_owned(),
            format!(
                r#"{{"trace_id": "t1", "offset": 1, "append": [{msg}], "pending": "Done.", "format": "tribunal"}}"#
            ),
        ];
        for body in &same {
            let short = read_append(body.as_bytes()).unwrap_or_else(|| panic!("{body}"));
            let doc: Value = serde_json::from_str(body).unwrap();
            let full = parse_request(&doc).unwrap();
            let Steps::Append {
                trace_id,
                offset,
                messages,
                format,
            } = full.steps
            else {
                panic!("{body}")
            };
            let short_messages: Vec<Value> = short
                .messages
                .iter()
                .map(|r| serde_json::from_str(r.get()).unwrap())
                .collect();
            assert_eq!(
                (
                    short.trace_id.as_str(),
                    short.offset,
                    &short_messages[..],
                    short.format
                ),
                (trace_id.as_str(), offset, messages, format),
                "{body}"
            );
            let (a, b) = (&short.asked, &full.asked);
            assert_eq!(
                (&a.pending, &a.context, a.budget, a.wait, a.explain),
                (&b.pending, &b.context, b.budget, b.wait, b.explain),
                "{body}"
            );
        }
        // What the full read refuses, the short way does not take.
        let refused = [
            r#"{"trace_id": "t1", "offset": 1, "append": [], "extra": 1}"#,
            r#"{"trace_id": "", "offset": 1, "append": []}"#,
            r#"{"trace_id": "t1", "offset": -1, "append": []}"#,
            r#"{"trace_id": "t1", "append": []}"#,
            r#"{"trace_id": "t1", "offset": 1, "append": {}}"#,
            r#"{"trace_id": "t1", "offset": 1, "append": [], "trace": []}"#,
            r#"{"trace_id": "t1", "offset": 1, "append": [], "format": "mlflow"}"#,
            r#"{"trace_id": "t1", "offset": 1, "append": [], "pending": {"x": 1}}"#,
            r#"{"trace_id": "t1", "offset": 1, "append": [], "context": "eu"}"#,
            r#"{"trace_id": "t1", "offset": 1, "append": [], "budget_ms": 1.5}"#,
            r#"{"trace_id": "t1", "offset": 1, "append": [], "explain": "yes"}"#,
        ];
        for body in refused {
            assert!(read_append(body.as_bytes()).is_none(), "{body}");
            let doc: Value = serde_json::from_str(body).unwrap();
            assert!(parse_request(&doc).is_err(), "{body}");
        }
    }

    #[test]
    fn scores_name_each_value_once_the_last_of_a_name_counting() {
        let feedback = [
            Feedback::code("j", "a", 1),
            Feedback::code("j", "b", 2),
            Feedback::code("j", "a", 3),
        ];
        assert_eq!(
            serde_json::to_string(&Scores(&feedback)).unwrap(),
            r#"{"b":2,"a":3}"#
        );
    }
}

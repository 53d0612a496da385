//! `POST /api/v1/gate`: the trace so far, the step the agent wants to take and its context
//! in; the decision, its reasons, violations, evidence and the time taken out.
//!
//! Code judges and policies run inline. Judges that call a model run in parallel on the
//! blocking pool under a latency budget (the request's `budget_ms`, else the server's);
//! a judge still running when the budget ends becomes an error feedback, policies that read
//! its score follow their fail mode, and the gate adds `tribunal.budget_exceeded` with the
//! gate's own fail mode (closed: block), so a gate call never silently allows.
//!
//! A call may also name a trace received over OTLP (`otlp_trace_id`, or a W3C `traceparent`
//! header when the body has no trace of its own) and send only the pending step: the gate
//! puts the trace together from its stored spans and events, as the OTLP scorer does.

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Code};
use crate::metrics::GateRead;
use crate::{audit, body, escalation, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tribunal_core::json::{self, UniqueMap};
use tribunal_core::{Decision, Feedback, Pending, Trace, Verdict, Violation};
use tribunal_formats::{import_pending, import_value, Continuation, InputFormat};
use tribunal_policy::Context;

/// The id given to a trace that has none, replaced by one derived from its content.
const UNNAMED: &str = "\u{0}unnamed";

/// A parsed gate request.
pub struct GateRequest<'a> {
    pub steps: Steps<'a>,
    pub asked: Asked,
}

/// A token bound to an agent speaks for that agent alone: its requests are judged as that
/// agent's (`context.agent` filled in when left out), and one that names another agent is
/// refused, so an agent cannot leave its own allow-list by naming another or none.
fn speak_for(caller: &Caller, context: &mut Option<Context>) -> Result<(), ApiError> {
    let Some(agent) = &caller.agent else {
        return Ok(());
    };
    let context = context.get_or_insert_with(Context::default);
    match &context.agent {
        Some(named) if named != agent => Err(ApiError::new(
            Code::AgentMismatch,
            format!("context.agent: this token speaks for agent {agent:?}, not {named:?}"),
        )),
        _ => {
            context.agent = Some(agent.clone());
            Ok(())
        }
    }
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
    /// The trace, and whether it was named after its content (it had no id).
    Whole(Box<Trace>, bool),
    /// Messages that continue a trace the gate holds: `messages` (raw, one per message), in
    /// `format`, start at message number `offset`.
    Append {
        trace_id: String,
        offset: usize,
        messages: Vec<&'a RawValue>,
        format: Continuation,
    },
    /// The trace whose spans arrived over OTLP under this id (32 lowercase hex digits).
    Otlp { trace_id: String },
}

/// The members of a gate request.
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
    "otlp_trace_id",
];

/// Reads a gate request, once: its members raw, each read by what it is (the messages of an
/// append stay raw for [`tribunal_formats::continuation`]). `trace` may be in any supported
/// format, or `"format": "tribunal"` for the normalized trace model; `append` continues a
/// held trace.
pub fn read_request(bytes: &[u8]) -> Result<GateRequest<'_>, ApiError> {
    read_request_with(bytes, None)
}

/// [`read_request`] of a request that came with a W3C `traceparent` header: a body with
/// neither `trace`, `append` nor `otlp_trace_id` names the header's trace.
pub fn read_request_with<'a>(
    bytes: &'a [u8],
    traceparent: Option<&str>,
) -> Result<GateRequest<'a>, ApiError> {
    read_members(bytes, traceparent, true)
}

/// The longest trace id a client may give, in bytes.
pub const MAX_TRACE_ID_BYTES: usize = 512;

/// Checks a trace id that a client gives (the gate's `trace_id`, a trace's own id): not `.`
/// nor `..` (a browser resolves `/api/v1/traces/..` to another path), no control characters
/// (C0, DEL, C1), at most [`MAX_TRACE_ID_BYTES`] bytes. `field` names where it came from.
/// Every trace id a client names enters here.
pub fn check_trace_id(id: &str, field: &str) -> Result<(), ApiError> {
    let wrong = if id.is_empty() {
        Some("is empty".to_owned())
    } else if id == "." || id == ".." {
        Some(format!("is {id:?}, which a URL path cannot name"))
    } else if let Some(c) = id.chars().find(|c| c.is_control()) {
        Some(format!("holds the control character U+{:04X}", c as u32))
    } else if id.len() > MAX_TRACE_ID_BYTES {
        Some(format!("is {} bytes long", id.len()))
    } else {
        None
    };
    match wrong {
        None => Ok(()),
        Some(w) => Err(ApiError::request(format!(
            "{field}: expected a trace id of 1 to {MAX_TRACE_ID_BYTES} bytes without control characters, other than \".\" and \"..\"; it {w}"
        ))),
    }
}

/// Reads a request's members; with `check_ids`, the trace ids a client gives are checked
/// (a stored request is read as it was accepted).
fn read_members<'a>(
    bytes: &'a [u8],
    traceparent: Option<&str>,
    check_ids: bool,
) -> Result<GateRequest<'a>, ApiError> {
    // Each key named once, down to the last argument: readers differ on which of two values
    // counts, and the decision must be about the call the tool reads.
    let members = serde_json::from_slice::<UniqueMap<&RawValue>>(bytes)
        .map_err(|e| {
            if e.classify() == serde_json::error::Category::Data && !json::is_duplicate(&e) {
                ApiError::request("the body must be a JSON object with a \"trace\"")
            } else {
                ApiError::new(
                    Code::InvalidJson,
                    format!("line {} column {}: {e}", e.line(), e.column()),
                )
            }
        })?
        .0;
    let mut head = serde_json::Map::new();
    for (k, v) in &members {
        if !FIELDS.contains(&k.as_str()) {
            return Err(ApiError::request(format!(
                "unknown field {k:?}; expected {}",
                FIELDS.join(", ")
            )));
        }
        if k != "trace" && k != "append" {
            let value = json::from_str(v.get())
                .map_err(|e| ApiError::new(Code::InvalidJson, format!("{k}: {e}")))?;
            head.insert(k.clone(), value);
        }
    }
    if head.contains_key("offset") && !members.contains_key("append") {
        return Err(ApiError::request("offset: only with append"));
    }
    let Head {
        asked,
        format,
        trace_id,
    } = parse_head(&head)?;
    if let (true, Some(id)) = (check_ids, &trace_id) {
        check_trace_id(id, "trace_id")?;
    }
    let otlp = match head.get("otlp_trace_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(otlp_trace_id(s).ok_or_else(|| {
            ApiError::request(format!(
                "otlp_trace_id: expected 32 hexadecimal digits (an OpenTelemetry trace id, not all zeros), found {s:?}"
            ))
        })?),
        Some(_) => return Err(ApiError::request("otlp_trace_id: expected a string")),
    };
    if let Some(id) = otlp {
        if members.contains_key("trace") || members.contains_key("append") {
            return Err(ApiError::request(
                "otlp_trace_id: give it alone; the gate puts that trace together from the spans it received, so trace and append do not go with it",
            ));
        }
        if trace_id.is_some() {
            return Err(ApiError::request(
                "trace_id: not with otlp_trace_id (the trace is named by its OpenTelemetry id)",
            ));
        }
        return Ok(GateRequest {
            steps: Steps::Otlp { trace_id: id },
            asked,
        });
    }
    let steps = match (members.get("trace"), members.get("append")) {
        (None, None) if traceparent.is_some() && trace_id.is_none() => {
            let header = traceparent.unwrap_or_default();
            let id = parse_traceparent(header).ok_or_else(|| {
                ApiError::request(format!(
                    "traceparent: expected a W3C trace context header (version-traceid-spanid-flags, e.g. 00-<32 hex>-<16 hex>-01), found {header:?}; or send the trace in trace"
                ))
            })?;
            Steps::Otlp { trace_id: id }
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::request(
                "trace, append: give one; trace is the whole trace, append continues one the gate holds",
            ))
        }
        (None, None) => {
            return Err(ApiError::request(
                "trace: missing (the trace so far, any supported format; or append with trace_id and offset; or otlp_trace_id naming a trace sent over OTLP)",
            ))
        }
        (Some(t), None) => {
            let t = json::from_str(t.get())
                .map_err(|e| ApiError::new(Code::InvalidJson, format!("trace: {e}")))?;
            let named = trace_id.is_some();
            let (trace, by_content) = whole_trace(&t, format, trace_id)?;
            if check_ids && !named {
                check_trace_id(&trace.id, "trace.id")?;
            }
            Steps::Whole(Box::new(trace), by_content)
        }
        (None, Some(a)) => {
            let messages: Vec<&RawValue> = serde_json::from_str(a.get()).map_err(|_| {
                ApiError::request("append: expected an array of the messages since the last call")
            })?;
            let trace_id = trace_id.ok_or_else(|| {
                ApiError::request("trace_id: missing (append continues the trace of this id)")
            })?;
            let offset = match head.get("offset") {
                Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(0) as usize,
                Some(_) => return Err(ApiError::request("offset: expected a whole number ≥ 0")),
                None => {
                    return Err(ApiError::request(
                        "offset: missing (the number of messages the gate already holds: the \"messages\" of the last answer)",
                    ))
                }
            };
            let format = Continuation::parse(format).ok_or_else(|| {
                ApiError::request(format!(
                    "format: append takes OpenAI chat messages (openai), Anthropic messages (anthropic), Responses API items (responses), any of these told apart by their content (auto) or normalized ones (tribunal), found {format:?}; send other formats whole in trace"
                ))
            })?;
            Steps::Append {
                trace_id,
                offset,
                messages,
                format,
            }
        }
    };
    Ok(GateRequest { steps, asked })
}

/// An OpenTelemetry trace id: 32 hexadecimal digits, not all zeros; lowercased as the OTLP
/// importer writes it.
fn otlp_trace_id(s: &str) -> Option<String> {
    let ok =
        s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0');
    ok.then(|| s.to_ascii_lowercase())
}

/// The trace id of a W3C `traceparent` header (`00-<trace id>-<parent id>-<flags>`; a later
/// version may add fields after these; version `ff` is invalid).
pub fn parse_traceparent(header: &str) -> Option<String> {
    let mut parts = header.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(version, 2) || version.eq_ignore_ascii_case("ff") || !hex(flags, 2) {
        return None;
    }
    if !hex(parent, 16) || parent.bytes().all(|b| b == b'0') {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    otlp_trace_id(trace)
}

/// A request's members besides its trace: what it asks, the trace's format and id.
struct Head<'a> {
    asked: Asked,
    format: &'a str,
    trace_id: Option<String>,
}

fn parse_head(o: &serde_json::Map<String, Value>) -> Result<Head<'_>, ApiError> {
    let context = match o.get("context") {
        None | Some(Value::Null) => None,
        Some(c @ Value::Object(fields)) => {
            // The named members are strings: say which one is not.
            for key in ["agent", "user", "environment"] {
                match fields.get(key) {
                    None | Some(Value::Null) | Some(Value::String(_)) => {}
                    Some(other) => {
                        return Err(ApiError::request(format!(
                            "context.{key}: expected a string, found {other}"
                        )))
                    }
                }
            }
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

/// The whole trace of a request, named `trace_id` when given; and whether it was named
/// after its content instead (it had no id).
fn whole_trace(
    trace_value: &Value,
    format: &str,
    trace_id: Option<String>,
) -> Result<(Trace, bool), ApiError> {
    let mut trace = if format == "tribunal" {
        tribunal_formats::native::trace(trace_value)
            .map_err(|e| ApiError::new(Code::InvalidTrace, e.within("trace").to_string()))?
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
    let mut by_content = false;
    if let Some(id) = trace_id {
        trace.id = id;
    } else if trace.id == UNNAMED {
        // A trace without an id of its own is named after its content.
        trace.id = format!(
            "gate-{}",
            &crate::audit::digest(trace_value.to_string().as_bytes())[..16]
        );
        by_content = true;
    }
    Ok((trace, by_content))
}

/// The trace and pending step of a stored gate request.
pub fn stored_request(body: &str) -> Option<(Trace, Option<Pending>)> {
    let r = read_members(body.as_bytes(), None, false).ok()?;
    match r.steps {
        Steps::Whole(t, _) => Some((*t, r.asked.pending)),
        Steps::Append { .. } | Steps::Otlp { .. } => None,
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
    let traceparent = match headers.get("traceparent") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::request("traceparent: expected a W3C trace context header in ASCII")
                })?
                .to_owned(),
        ),
    };
    let bytes = body::read(
        &headers,
        body,
        state.options.max_body_bytes,
        state.options.body_timeout,
    )
    .await?;
    // Once the request is read, a decision that waits on model judges is made in a task of
    // its own, which logs it, answers and keeps its trace whatever the connection does: an
    // agent whose timeout is shorter than the models' does not take the stored trace of a
    // logged decision with it. (One that waits for a review does the same from `Tail`.)
    // Code judges and policies decide inline, in a fraction of a millisecond.
    let models = state
        .project(&caller)?
        .runtime()
        .evaluator()
        .max_in_flight()
        > 0;
    if models {
        let detached = state.clone();
        detached
            .detached
            .run(decide_request(state, caller, traceparent, bytes, true))
            .await
            .map_err(|e| ApiError::new(Code::Internal, format!("the decision failed: {e}")))?
    } else {
        decide_request(state, caller, traceparent, bytes, false).await
    }
}

/// A gate request read whole: decided, logged, answered, its trace held; `detached` when
/// this already runs in a task of its own (see [`crate::Detached`]).
async fn decide_request(
    state: Arc<AppState>,
    caller: Caller,
    traceparent: Option<String>,
    bytes: axum::body::Bytes,
    detached: bool,
) -> Result<Response, ApiError> {
    // Counted from here to the answer: the log lets concurrent requests share a commit.
    let _under_way = state.audit.under_way();
    let started = Instant::now();
    body::check_depth(&bytes, state.options.max_json_depth)?;
    let project = state.project(&caller)?;
    let mut request = read_request_with(&bytes, traceparent.as_deref())?;
    speak_for(&caller, &mut request.asked.context)?;
    let (mut asked, appended, trace, inputs_digest, kept, spans_read, extended) =
        hold(&state, &caller, &bytes, request).await?;
    pin_tools(&state, &caller.project, &mut asked, &trace.tools).await?;
    let rt = project.runtime();
    let budget = asked
        .budget
        .or(rt.budget)
        .unwrap_or(state.options.gate.budget)
        .min(state.options.gate.max_budget);
    let pending = asked.pending.take().map(Arc::new);
    let wait = asked.wait;

    let ask = tribunal_engine::Ask {
        pending: pending.clone(),
        context: asked.context.clone(),
        budget: Some(tribunal_engine::Budget {
            limit: budget,
            late: state.options.gate.fail_mode.severity(),
        }),
    };
    let session = tribunal_engine::Session::resume(trace, kept);
    let evaluator = rt.evaluator().clone();
    // Model judges wait on their providers: the decision is then made off the runtime's
    // workers. Code judges and policies decide inline.
    let (session, decided) = if evaluator.max_in_flight() > 0 {
        tokio::task::spawn_blocking(move || decide(session, &evaluator, ask))
            .await
            .map_err(|e| ApiError::new(Code::Internal, format!("the decision failed: {e}")))?
    } else {
        decide(session, &evaluator, ask)
    };
    let (trace, kept) = session.into_parts();
    if let Some(kept) = kept {
        for row in state.sessions.keep_judged(&caller.project, &trace, kept) {
            state.store_gate_trace(row).await;
        }
    }
    let tribunal_engine::Decided {
        verdict,
        shadow: shadow_verdict,
        late,
        context,
    } = decided;
    if !late.is_empty() {
        state
            .metrics
            .budget_exceeded
            .add(&[("project", &caller.project)], 1);
    }
    let judge_errors = verdict
        .feedback
        .iter()
        .filter(|f| f.error.is_some())
        .count() as u64;
    if judge_errors > 0 {
        state
            .metrics
            .judge_errors(&caller.project, &verdict.feedback);
        let untrusted = crate::labels::untrusted_judges(&verdict.feedback);
        if !untrusted.is_empty() {
            let (state, project, trace) = (state.clone(), caller.project.clone(), trace.id.clone());
            tokio::spawn(async move {
                crate::labels::collect_untrusted(&state, &project, &trace, &untrusted).await;
            });
        }
    }
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
            policy_version: rt.shadow().map(|p| p.version()),
            decision: s.decision,
            rules: rules(&s.violations),
        }),
    };
    if let Some(s) = &shadow_verdict {
        if s.decision != verdict.decision {
            state
                .metrics
                .shadow_changed
                .add(&[("project", &caller.project)], 1);
        }
    }
    // One reading of the clock for the log entry and the stored trace.
    let (at, at_ms) = tribunal_store::clock::now_both();
    let entry = serde_json::value::to_raw_value(&entry)
        .map_err(|e| ApiError::new(Code::Internal, format!("the log entry: {e}")))?;
    let outcome = Outcome {
        verdict,
        evidence,
        trace_id: trace.id.clone(),
        messages: trace.messages.len(),
        // Given once the entry is committed.
        decision_id: 0,
        policy_version: rt.policy_version().to_owned(),
        budget_exceeded: !late.is_empty(),
        elapsed_us,
        context,
        shadow: shadow_verdict,
    };
    // Servers that share the store each hold their own copy of a trace: the entry is
    // written only if the trace still stands where this copy had it.
    let guard = tribunal_store::HeadGuard {
        project: caller.project.clone(),
        trace_id: trace.id.clone(),
        prev: extended,
        digest: inputs_digest.clone(),
    };
    let tail = Tail {
        state: state.clone(),
        caller,
        trace,
        digest: inputs_digest,
        pending,
        outcome,
        limited,
        wait,
        explain: asked.explain,
        request: (!appended).then_some(bytes),
        at: at.clone(),
        at_ms,
        spans_read,
    };
    // Answered only once the entry is committed: a decision that cannot be logged is not
    // given (503 store_unavailable). A client that hangs up while the entry is being
    // committed does not take the rest with it: the escalation and the stored trace follow
    // the logged decision in a task of their own.
    let project = tail.caller.project.clone();
    let held = tail.trace.clone();
    let (seq, mut tail) = state
        .audit
        .append_carrying(
            (&project, "gate", &entry, at),
            Some(guard),
            tail,
            move |mut tail: Tail| {
                // Taken as the request is dropped: shutdown waits for it.
                let place = tail.state.detached.hold();
                move |seq| async move {
                    let _place = place;
                    tail.outcome.decision_id = seq;
                    tail.counted(answered, elapsed);
                    if let Err(e) = tail.answer().await {
                        tracing::error!(error = %e.message, "a logged decision whose agent hung up");
                    }
                }
            },
        )
        .await
        .inspect_err(|e| {
            if matches!(e, crate::audit::AuditError::Stale(_)) {
                // Read back from the store on the next call.
                state.sessions.forget(&project, &held);
            }
        })?;
    drop(held);
    tail.outcome.decision_id = seq;
    tail.counted(answered, elapsed);

    if tail.outcome.verdict.decision == Decision::Escalate && limited.is_none() && !detached {
        // The review is awaited in a task of its own: an agent that hangs up while it waits
        // does not take the escalated step's stored trace with it.
        let detached = tail.state.clone();
        detached
            .detached
            .run(tail.answer())
            .await
            .map_err(|e| ApiError::new(Code::Internal, format!("the escalation failed: {e}")))?
    } else {
        tail.answer().await
    }
}

/// What is left of a gate call once its decision is logged: the escalation queued (and
/// awaited) when there is one, the answer, and the trace stored with it.
struct Tail {
    state: Arc<AppState>,
    caller: Caller,
    trace: Arc<Trace>,
    /// The digest of the inputs that built `trace`.
    digest: String,
    pending: Option<Arc<Pending>>,
    outcome: Outcome,
    limited: Option<Decision>,
    wait: Duration,
    explain: bool,
    /// The request as sent, when the trace came whole (an appended one is stored whole in
    /// the normalized format).
    request: Option<axum::body::Bytes>,
    at: String,
    at_ms: i64,
    /// For a trace put together from OTLP spans, when they were read: the stored trace is
    /// the gate's as of then.
    spans_read: Option<(String, i64)>,
}

impl Tail {
    /// Counts the logged decision (`answered`, the one the agent gets) in the metrics.
    fn counted(&self, answered: Decision, elapsed: std::time::Duration) {
        let (metrics, project) = (&self.state.metrics, self.caller.project.as_str());
        metrics.decision(project, answered);
        metrics.violations(project, &self.outcome.verdict.violations);
        metrics.gate_latency.observe(elapsed);
    }

    async fn answer(self) -> Result<Response, ApiError> {
        let seq = self.outcome.decision_id;
        let decision = self.outcome.verdict.decision;
        let (answer, stored, decision) = if decision == Decision::Escalate {
            let mut out = serde_json::to_value(self.outcome.answer(true))
                .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
            match self.limited {
                Some(default) => {
                    escalation::not_queued(&self.state, &self.caller.project, &mut out, default)
                }
                None => {
                    escalation::on_escalate(
                        &self.state,
                        &self.caller,
                        seq,
                        &self.trace,
                        self.pending.as_deref(),
                        &mut out,
                        self.wait,
                    )
                    .await?
                }
            }
            let decision = out["decision"].as_str().unwrap_or("block").to_owned();
            let stored = out.to_string();
            let answer = if self.explain {
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
            let answer = serde_json::to_string(&self.outcome.answer(self.explain))
                .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
            (
                answer,
                // Serialized when stored: once per flush, not per call.
                crate::session::StoredAnswer::Later(Box::new(self.outcome)),
                decision.as_str().to_owned(),
            )
        };
        // Stored with the held trace at the next flush, every few hundred milliseconds
        // (session.rs): an agent calling again meanwhile has its trace written once. A trace
        // sent whole is stored as sent; one grown by appends, whole in the normalized format.
        let unsaved = crate::session::Unsaved {
            pending: self.request.is_none().then(|| self.pending.clone()),
            request: self.request.map(|bytes| match std::str::from_utf8(&bytes) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            }),
            decision,
            result: stored,
            // A trace of spans is stored as seen when they were read, so spans received
            // while the gate decided leave it to be judged again.
            at: self
                .spans_read
                .as_ref()
                .map_or(self.at, |(at, _)| at.clone()),
            at_ms: self.spans_read.map_or(self.at_ms, |(_, ms)| ms),
            agent: self.caller.agent.clone(),
            digest: self.digest,
        };
        for row in self
            .state
            .sessions
            .unsaved(&self.caller.project, &self.trace, unsaved)
        {
            self.state.store_gate_trace(row).await;
        }
        Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
    }
}

/// What a request's trace is once it is held: asked, whether it is stored as the whole
/// normalized trace (grown by appends, or put together from OTLP spans) rather than as the
/// request, the trace, the chained digest of the inputs that built it, what the judges kept
/// of it, when its spans were read (a trace of spans), and the digest of the held copy an
/// append extended.
type Held = (
    Asked,
    bool,
    Arc<Trace>,
    String,
    Option<tribunal_engine::Kept>,
    Option<(String, i64)>,
    Option<String>,
);

/// Names in `context.tool_changes` the tools offered whose definition differs from the one
/// pinned for the agent the request names (see [`crate::tool_pins`]); the gate alone sets it.
async fn pin_tools(
    state: &AppState,
    project: &str,
    asked: &mut Asked,
    tools: &[tribunal_core::ToolDef],
) -> Result<(), ApiError> {
    if let Some(c) = asked.context.as_mut() {
        c.extra.remove(crate::tool_pins::CONTEXT_KEY);
    }
    // Pins are kept per agent: tools offered to a request that names none are not pinned
    // (unnamed agents of a project may well offer different tools of one name).
    let Some(agent) = asked
        .context
        .as_ref()
        .and_then(|c| c.agent.as_deref())
        .filter(|a| !a.is_empty() && !tools.is_empty())
    else {
        return Ok(());
    };
    let changes = state
        .tool_pins
        .changes(&state.store, project, agent, tools)
        .await?;
    if !changes.is_empty() {
        asked
            .context
            .get_or_insert_with(Context::default)
            .extra
            .insert(crate::tool_pins::CONTEXT_KEY.into(), Value::Object(changes));
    }
    Ok(())
}

/// Holds a request's trace: sent whole (what the judges kept of the trace held before goes
/// on when the new one continues it), or extended by an append.
async fn hold(
    state: &AppState,
    caller: &Caller,
    bytes: &[u8],
    request: GateRequest<'_>,
) -> Result<Held, ApiError> {
    let GateRequest { steps, asked } = request;
    let (project, agent) = (caller.project.as_str(), caller.agent.as_deref());
    match steps {
        Steps::Whole(mut t, by_content) => {
            if let (true, Some(agent)) = (by_content, agent) {
                // Traces are held per agent: two agents' traces of the same content are
                // not one trace.
                let named = format!("{agent}\n{}", t.id);
                t.id = format!("gate-{}", &audit::digest(named.as_bytes())[..16]);
            }
            let t: Arc<Trace> = Arc::from(t);
            let digest = audit::digest(bytes);
            let stored = stored_owner(state, project, &t.id, agent).await?;
            let (evicted, kept) =
                state
                    .sessions
                    .hold(project, t.clone(), digest.clone(), (agent, stored))?;
            for row in evicted {
                state.store_gate_trace(row).await;
            }
            state.metrics.gate_read(project, GateRead::InFull);
            Ok((asked, false, t, digest, kept, None, None))
        }
        Steps::Append {
            trace_id,
            offset,
            messages,
            format,
        } => {
            let steps = (trace_id.as_str(), offset, messages.as_slice(), format);
            read_appended(state, caller, bytes, asked, steps).await
        }
        Steps::Otlp { trace_id } => {
            // The stored trace is the gate's as of the spans read now: spans received later
            // leave it to be judged again (see `upsert_gate_traces`).
            let spans_read = tribunal_store::clock::now_both();
            let trace = crate::scorer::assemble(&state.store, project, &trace_id)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "otlp_trace_id: no spans of trace {trace_id} were received in this project (export them to /v1/traces first: flush the span processor before asking), or they no longer read as a trace"
                    ))
                })?;
            // The digest covers what was judged: the trace as put together, and the request.
            let text = serde_json::to_vec(&trace)
                .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
            let digest = audit::chain_hash(&audit::digest(&text), bytes);
            let t = Arc::new(trace);
            let stored = stored_owner(state, project, &t.id, agent).await?;
            let (evicted, kept) =
                state
                    .sessions
                    .hold(project, t.clone(), digest.clone(), (agent, stored))?;
            for row in evicted {
                state.store_gate_trace(row).await;
            }
            state.metrics.gate_read(project, GateRead::FromSpans);
            Ok((asked, true, t, digest, kept, Some(spans_read), None))
        }
    }
}

/// Extends the held trace `trace_id` with `messages` (in `format`, from message `offset`).
async fn read_appended(
    state: &AppState,
    caller: &Caller,
    bytes: &[u8],
    asked: Asked,
    (trace_id, offset, messages, format): (&str, usize, &[&RawValue], Continuation),
) -> Result<Held, ApiError> {
    let (project, agent) = (caller.project.as_str(), caller.agent.as_deref());
    if !state.sessions.holds(project, trace_id) {
        reload(state, project, trace_id, agent).await?;
    }
    let taken = state
        .sessions
        .append(project, trace_id, (offset, bytes, agent), |held| {
            tribunal_formats::continuation::messages_after(&held.messages, messages, format)
                .map_err(|e| ApiError::new(Code::InvalidTrace, e.within("append").to_string()))
        })?;
    for row in taken.evicted {
        state.store_gate_trace(row).await;
    }
    state.metrics.gate_read(project, GateRead::Appended);
    Ok((
        asked,
        true,
        taken.trace,
        taken.digest,
        taken.judged,
        None,
        Some(taken.prev),
    ))
}

/// Reads a trace the gate no longer holds (idle, let go, or held by the server before a
/// restart) back from the store, when it was stored as a gate request; for a caller whose
/// token is bound to `agent`, only a trace no other agent began.
async fn reload(
    state: &AppState,
    project: &str,
    trace_id: &str,
    agent: Option<&str>,
) -> Result<(), ApiError> {
    let row = state
        .store
        .get_trace(project, trace_id)
        .await
        .map_err(ApiError::from)?;
    let Some(row) = row.filter(|r| r.source == "gate") else {
        return Ok(());
    };
    let mut owner = row.agent;
    crate::session::claim(&mut owner, agent, trace_id)?;
    let Some(body) = row.body else {
        return Ok(());
    };
    // Another server that shares the store may have decided on the trace since: its head
    // says where the trace stands. The body stored with that head goes on from it; one that
    // is not stored yet (stored every few hundred milliseconds) cannot be read back.
    let head = state
        .store
        .gate_head(project, trace_id)
        .await
        .map_err(ApiError::from)?;
    let digest = match head {
        None => audit::digest(body.as_bytes()),
        Some((head, stored)) if stored.as_deref() == Some(head.as_str()) => head,
        Some(_) => {
            return Err(ApiError::new(
                Code::TraceNotHeld,
                format!(
                    "trace_id: trace {trace_id:?} was extended through another server and is not stored yet; send it whole in \"trace\", or ask again in a moment"
                ),
            ))
        }
    };
    if let Some((mut trace, _)) = stored_request(&body) {
        trace.id = trace_id.to_owned();
        let (evicted, _) = state
            .sessions
            .hold(project, Arc::new(trace), digest, (agent, owner))?;
        for row in evicted {
            state.store_gate_trace(row).await;
        }
    }
    Ok(())
}

/// The owner the store gives a trace not held here (let go, held before a restart, or held
/// by another server on the same store), checked against the caller's agent: another
/// agent's trace is refused (`trace_owned`), and one a project token sends keeps its owner.
/// `None` when the trace is held here, whose owner is then checked as it is held.
async fn stored_owner(
    state: &AppState,
    project: &str,
    trace_id: &str,
    agent: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if state.sessions.holds(project, trace_id) {
        return Ok(None);
    }
    let mut owner = state
        .store
        .trace_agent(project, trace_id)
        .await
        .map_err(ApiError::from)?;
    crate::session::claim(&mut owner, agent, trace_id)?;
    Ok(owner)
}

/// One decision of a held trace's session.
fn decide(
    mut session: tribunal_engine::Session,
    evaluator: &Arc<tribunal_engine::Evaluator>,
    ask: tribunal_engine::Ask,
) -> (tribunal_engine::Session, tribunal_engine::Decided) {
    let decided = session.decide(evaluator, ask);
    (session, decided)
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

    /// Roughly the memory it takes, with what it points to.
    pub fn bytes(&self) -> usize {
        use tribunal_core::Heap;
        std::mem::size_of::<Outcome>()
            + self.verdict.heap()
            + self.evidence.heap()
            + self.trace_id.heap()
            + self.policy_version.heap()
            + self.shadow.heap()
            // The context: a few names and settings.
            + 256
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
    fn one_reader_takes_every_member_and_names_what_is_wrong() {
        let msg = r#"{"role": "tool", "tool_call_id": "c1", "content": "in \"transit\""}"#;
        let body = format!(
            r#"{{"append": [{msg}, {msg}], "offset": 0, "trace_id": "t\u0031", "pending": {{"name": "send_email", "arguments": {{"to": "a@b.co"}}}}, "context": {{"agent": "support", "team": "eu"}}, "format": "openai", "budget_ms": 20, "wait_ms": 5, "explain": true}}"#
        );
        let r = read_request(body.as_bytes()).unwrap();
        let Steps::Append {
            trace_id,
            offset,
            messages,
            format,
        } = r.steps
        else {
            panic!("{body}")
        };
        assert_eq!(
            (trace_id.as_str(), offset, messages.len(), format),
            ("t1", 0, 2, Continuation::OpenAi)
        );
        assert_eq!(messages[0].get(), msg, "messages stay as sent");
        let a = r.asked;
        assert_eq!(a.pending.unwrap().tool_calls[0].name, "send_email");
        assert_eq!(a.context.unwrap().agent.as_deref(), Some("support"));
        assert_eq!(
            (a.budget, a.wait, a.explain),
            (
                Some(Duration::from_millis(20)),
                Duration::from_millis(5),
                true
            )
        );
        let whole =
            read_request(br#"{"trace": [{"role": "user", "content": "hi"}], "trace_id": "w"}"#)
                .unwrap();
        let Steps::Whole(t, _) = whole.steps else {
            panic!("whole")
        };
        assert_eq!((t.id.as_str(), t.messages.len()), ("w", 1));

        // Each refusal names the member and what was expected.
        let refused = [
            (
                r#"{"trace_id": "t1", "offset": 1, "append": [], "extra": 1}"#,
                "unknown field \"extra\"",
            ),
            (
                r#"{"trace_id": "", "offset": 1, "append": []}"#,
                "trace_id: expected a non-empty string",
            ),
            (
                r#"{"trace_id": "t1", "offset": -1, "append": []}"#,
                "offset: expected a whole number",
            ),
            (r#"{"trace_id": "t1", "append": []}"#, "offset: missing"),
            (
                r#"{"trace_id": "t1", "offset": 1, "append": {}}"#,
                "append: expected an array",
            ),
            (
                r#"{"trace_id": "t1", "offset": 1, "append": [], "trace": []}"#,
                "trace, append: give one",
            ),
            (
                r#"{"trace_id": "t1", "offset": 1, "append": [], "format": "mlflow"}"#,
                "format: append takes",
            ),
            (
                r#"{"trace_id": "t1", "offset": 1, "append": [], "pending": {"x": 1}}"#,
                "pending:",
            ),
            (
                r#"{"trace_id": "t1", "offset": 1, "append": [], "context": "eu"}"#,
                "context: expected an object",
            ),
            (
                r#"{"trace_id": "t1", "offset": 1, "append": [], "context": {"agent": 5}}"#,
                "context.agent: expected a string, found 5",
            ),
            (
                r#"{"trace_id": "t1", "offset": 1, "append": [], "budget_ms": 1.5}"#,
                "budget_ms: expected milliseconds",
            ),
            (
                r#"{"trace_id": "t1", "offset": 1, "append": [], "explain": "yes"}"#,
                "explain: expected true or false",
            ),
            (r#"{"trace": [], "offset": 1}"#, "offset: only with append"),
            (r#"[1, 2]"#, "must be a JSON object"),
            (r#"{}"#, "trace: missing"),
        ];
        for (body, says) in refused {
            let e = read_request(body.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{body}"));
            assert!(e.message.contains(says), "{body}: {}", e.message);
        }
        let e = read_request(b"{\"trace\": [").err().unwrap();
        assert!(e.message.contains("line 1"), "{}", e.message);
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

//! The REST API: traces (list with filters, get), human feedback on traces, evaluation
//! runs, judges, policies (list, reload), decision-log verification, metrics and the
//! OpenAPI description. Every query is scoped to the caller's project.

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, ERROR_CODES};
use crate::{audit, body, scorer, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tribunal_core::{Pending, Trace};
use tribunal_store::{clock, FeedbackRow, TraceFilter};

/// Runs written by `tribunal eval` belong to this project.
pub const DEFAULT_PROJECT: &str = "default";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceQuery {
    source: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    rule: Option<String>,
    q: Option<String>,
    judge: Option<String>,
    value: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list_traces(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<TraceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let Query(q) = q.map_err(|e| {
        ApiError::request(format!(
            "{e}; filters are source, decision, since, rule, q, judge, value, limit, offset"
        ))
    })?;
    if let Some(d) = &q.decision {
        if !["allow", "escalate", "block"].contains(&d.as_str()) {
            return Err(ApiError::request(format!(
                "decision: expected allow, escalate or block, found {d:?}"
            )));
        }
    }
    if let Some(s) = &q.source {
        if !["otlp", "gate"].contains(&s.as_str()) {
            return Err(ApiError::request(format!(
                "source: expected otlp or gate, found {s:?}"
            )));
        }
    }
    let judge = q.judge.filter(|j| !j.is_empty());
    let judge_value = match (&judge, q.value.filter(|v| !v.is_empty())) {
        (None, Some(_)) => {
            return Err(ApiError::request(
                "value: a judge's value needs the judge (judge=NAME&value=...)",
            ))
        }
        // `true`, `4`, `"yes"` as JSON; anything else is the text itself.
        (_, Some(v)) => Some(
            serde_json::from_str::<Value>(&v)
                .unwrap_or(Value::String(v))
                .to_string(),
        ),
        (_, None) => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::request(format!(
            "limit: expected 1..1000, found {limit}"
        )));
    }
    if let Some(o) = q.offset.filter(|o| *o < 0) {
        return Err(ApiError::request(format!(
            "offset: expected a whole number ≥ 0, found {o}"
        )));
    }
    let since = q
        .since
        .filter(|s| !s.trim().is_empty())
        .map(|s| crate::value::since(&s, clock::now_ms()))
        .transpose()
        .map_err(ApiError::request)?;
    let rows = state
        .store
        .list_traces(
            &caller.project,
            &TraceFilter {
                source: q.source,
                decision: q.decision,
                since,
                rule: q.rule.filter(|r| !r.is_empty()),
                text: q.q.filter(|t| !t.is_empty()),
                judge,
                judge_value,
                limit,
                offset: q.offset.unwrap_or(0),
            },
        )
        .await?;
    Ok(Json(json!({"traces": rows})))
}

pub async fn get_trace(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let row = state
        .store
        .get_trace(&caller.project, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no trace {id:?} in this project")))?;
    let (trace, pending) = match stored_trace(&state.store, &row).await? {
        Some((t, p)) => (json!(t), json!(p)),
        None => (Value::Null, Value::Null),
    };
    let result: Value = row
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let feedback = state.store.trace_feedback(&caller.project, &id).await?;
    let monitors = crate::monitor::trace_results(&state, &caller.project, &id).await;
    Ok(Json(json!({
        "summary": row,
        "monitors": monitors,
        "trace": trace,
        "pending": pending,
        "result": result,
        "human_feedback": feedback,
    })))
}

/// The trace a stored row holds (and the step it was about to take, for gate traces):
/// OTLP traces put together from their spans, gate traces read from their request. `None`
/// when what is stored no longer reads as a trace.
pub async fn stored_trace(
    store: &tribunal_store::Store,
    row: &tribunal_store::TraceRow,
) -> Result<Option<(Trace, Option<Pending>)>, tribunal_store::StoreError> {
    Ok(match row.source.as_str() {
        "otlp" => scorer::assemble(store, &row.project, &row.trace_id)
            .await?
            .map(|t| (t, None)),
        _ => row.body.as_deref().and_then(crate::gate::stored_request),
    })
}

pub async fn list_feedback(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let rows = state.store.trace_feedback(&caller.project, &id).await?;
    // As adding feedback to it would be: a mistyped id is not an empty list.
    if rows.is_empty() && state.store.get_trace(&caller.project, &id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no trace {id:?} in this project"
        )));
    }
    Ok(Json(json!({"feedback": rows})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    name: String,
    value: Value,
    rationale: Option<String>,
}

pub async fn add_feedback(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Annotate)?;
    let b: FeedbackBody = body::json(
        &state,
        &headers,
        body,
        1 << 20,
        "{\"name\": string, \"value\": any, \"rationale\"?: string}",
    )
    .await?;
    if b.name.trim().is_empty() {
        return Err(ApiError::request("name: must not be empty"));
    }
    if state.store.get_trace(&caller.project, &id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no trace {id:?} in this project"
        )));
    }
    let row = FeedbackRow {
        id: crate::auth::random_id("fb_"),
        project: caller.project.clone(),
        trace_id: id,
        name: b.name,
        value: b.value.to_string(),
        rationale: b.rationale,
        author: caller.token_id.clone(),
        created_at: clock::now_rfc3339(),
    };
    state.store.insert_feedback(&row).await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!(row))))
}

fn runs_visible(caller: &Caller) -> Result<(), ApiError> {
    run_visible_in(&caller.project, "")
}

/// Whether `project` may read evaluation runs: they belong to the default project, and any
/// other project is answered `not_found` (its message starting with `field` when given), as
/// if the run did not exist. Every route reading a run (its page, a labeling queue's items)
/// asks this first.
pub(crate) fn run_visible_in(project: &str, field: &str) -> Result<(), ApiError> {
    if project == DEFAULT_PROJECT {
        Ok(())
    } else if field.is_empty() {
        Err(ApiError::not_found(
            "evaluation runs belong to the default project",
        ))
    } else {
        Err(ApiError::not_found(format!(
            "{field}: no such run in this project (evaluation runs belong to the default project)"
        )))
    }
}

pub async fn list_runs(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    if runs_visible(&caller).is_err() {
        return Ok(Json(json!({"runs": []})));
    }
    Ok(Json(json!({"runs": state.store.list_runs(100).await?})))
}

pub async fn get_run(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    runs_visible(&caller)?;
    let run = match state.store.find_run(&id).await {
        Ok(r) => r,
        Err(tribunal_store::StoreError::NoSuchRun(_)) => {
            return Err(ApiError::not_found(format!("no run {id:?}")))
        }
        Err(e @ tribunal_store::StoreError::Ambiguous { .. }) => {
            return Err(ApiError::request(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    let results: Vec<Value> = state
        .store
        .run_results(&run.id)
        .await?
        .iter()
        .map(|r| serde_json::from_str(&r.result).unwrap_or(Value::Null))
        .collect();
    let rejected = state.store.run_input_errors(&run.id).await?;
    Ok(Json(
        json!({"run": run, "results": results, "rejected": rejected}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueQuery {
    since: Option<String>,
}

/// `GET /api/v1/report/value?since=30d`: what the gate did for the caller's project.
pub async fn value_report(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ValueQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let Query(q) = q.map_err(|e| ApiError::request(format!("{e}; the filter is since")))?;
    let now = tribunal_store::clock::now_ms();
    let since =
        crate::value::since(q.since.as_deref().unwrap_or("30d"), now).map_err(ApiError::request)?;
    let report = crate::value::value_report(&state.store, &caller.project, &since, now).await?;
    Ok(Json(json!(report)))
}

pub async fn list_judges(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let rt = state.project(&caller)?.runtime();
    let stored = crate::judges::stored_summary(&state, &caller.project).await?;
    Ok(Json(
        json!({"judges": rt.judges, "config_hash": rt.config_hash, "stored": stored}),
    ))
}

fn policies_view(rt: &crate::project::Runtime) -> Value {
    let set = rt.evaluator().policies();
    json!({
        "version": set.version(),
        "gates": set.gates().collect::<Vec<_>>(),
        "files": set.sources().iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        "shadow": rt.shadow().map(|s| json!({
            "version": s.version(),
            "gates": s.gates().collect::<Vec<_>>(),
            "enforced": false,
        })),
        "loaded_at": rt.loaded_at,
    })
}

pub async fn list_policies(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let rt = state.project(&caller)?.runtime();
    Ok(Json(policies_view(&rt)))
}

/// Rebuilds the caller's project from its files; the old version keeps serving on failure.
pub async fn reload(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    state.project(&caller)?;
    let (rt, before) = state.reload(&caller.project, &caller.token_id).await?;
    let mut out = policies_view(&rt);
    out["previous_version"] = json!(before);
    Ok(Json(out))
}

/// `GET /api/v1/audit/entries/{seq}`: one decision-log entry of the caller's project, with
/// its place in the chain.
pub async fn audit_entry(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(seq): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let n: i64 = seq.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::request(format!(
            "seq: expected a positive entry number, found {seq:?}"
        ))
    })?;
    let row = state
        .store
        .audit_entries(n - 1, 1)
        .await?
        .into_iter()
        .find(|r| r.seq == n && r.project == caller.project)
        .ok_or_else(|| ApiError::not_found(format!("no decision-log entry {n} in this project")))?;
    let body: Value = serde_json::from_str(&row.body).unwrap_or(Value::String(row.body.clone()));
    Ok(Json(json!({
        "seq": row.seq,
        "at": row.at,
        "kind": row.kind,
        "body": body,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    })))
}

pub async fn verify_audit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let r = audit::verify(&state.store).await?;
    Ok(Json(json!({"ok": r.ok(), "report": r})))
}

pub async fn metrics(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Permission::Read)?;
    Ok(metrics_text(&state, Some(&caller.project)))
}

/// `/metrics` on the separate metrics address (`--metrics-listen`): no token asked, every
/// project's series (the address is the operator's).
pub async fn metrics_open(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    metrics_text(&state, None)
}

/// The metrics, of `project` only when given.
fn metrics_text(state: &AppState, project: Option<&str>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(
            &state.queue_depths(),
            state.options.write_queue.max(1),
            project,
        ),
    )
}

/// The description is public: clients are generated from it before anyone has a token.
/// `GET /api/v1/errors/{code}`: what an error code means (the `link` of every error).
pub async fn error_code(Path(code): Path<String>) -> Result<Json<Value>, ApiError> {
    crate::error::Code::parse(&code)
        .map(|c| Json(c.describe()))
        .ok_or_else(|| ApiError::not_found(format!("no error code {code:?}")))
}

pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// `operationId` of a route: the method and the path's words (`get_escalations_by_id`).
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for part in path.trim_start_matches("/api/v1").split('/') {
        if part.is_empty() {
            continue;
        }
        id.push('_');
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => {
                id.push_str("by_");
                id.push_str(name);
            }
            None => id.extend(
                part.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
            ),
        }
    }
    id
}

/// The OpenAPI 3.1 description of every route, each operation with an `operationId`.
pub fn openapi_document() -> Value {
    let mut doc = describe();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, ops) in paths.iter_mut() {
            for (method, op) in ops.as_object_mut().into_iter().flatten() {
                op["operationId"] = Value::String(operation_id(method, path));
            }
        }
    }
    crate::schemas::complete(&mut doc);
    doc
}

fn describe() -> Value {
    let err = json!({"$ref": "#/components/responses/Error"});
    let errors = |codes: &[u16]| -> Value {
        let mut m = serde_json::Map::new();
        for c in codes {
            m.insert(c.to_string(), err.clone());
        }
        Value::Object(m)
    };
    let ok = |desc: &str, extra: &[u16]| -> Value {
        let mut r = errors(&[401, 403]);
        for (k, v) in errors(extra).as_object().into_iter().flatten() {
            r[k] = v.clone();
        }
        r["200"] = json!({"description": desc, "content": {"application/json": {}}});
        r
    };
    let id_param = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    let query = |name: &str, t: &str| json!({"name": name, "in": "query", "schema": {"type": t}});
    // A JSON body of this schema.
    let body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    let strict = |required: &[&str], properties: Value| json!({"type": "object", "required": required, "properties": properties, "additionalProperties": false});
    let label_schema = json!({"type": "object", "required": ["name", "type"], "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
        "type": {"enum": ["pass_fail", "categorical", "numeric", "text", "pairwise"]},
        "options": {"type": "array", "items": {"type": "string"}}, "multiple": {"type": "boolean"}, "ordered": {"type": "boolean"},
        "min": {"type": "number"}, "max": {"type": "number"},
        "instructions": {"type": "string"}, "comment": {"type": "boolean"}, "judge": {"type": "string"}}});
    let new_queue = strict(
        &["id", "schema"],
        json!({
        "id": {"type": "string"}, "schema": {"type": "string"},
        "items": {"type": "array", "description": "trace ids, {id?, trace, span? | run?} or {id?, pair: {prompt?, a, b}}"},
        "from": {"type": "object", "description": "{filter: {source?, decision?, rule?, text?, since?, limit?}} | {run: id} | {low_confidence: {judge, below, run?, limit?}}"},
        "gold": {"type": "object"}, "overlap": {"type": "integer", "minimum": 0}, "lock_s": {"type": "integer", "minimum": 0},
        "gold_rate": {"type": "number"}, "blind": {"type": "boolean"}, "people": {"type": "array", "items": {"type": "string"}},
        "spread": {"type": "number"}, "review_against_judge": {"type": "boolean"}, "untrusted_from": {"type": "string"}}),
    );
    let judge_name = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}});
    let one_of = |name: &str, values: &[&str]| json!({"name": name, "in": "query", "schema": {"type": "string", "enum": values}});
    let ranged = |name: &str, min: i64, max: i64| json!({"name": name, "in": "query", "schema": {"type": "integer", "minimum": min, "maximum": max}});
    let error_schema = json!({
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "type", "link"],
            "properties": {"code": {"type": "string", "enum": ERROR_CODES.iter().map(|c| c.0).collect::<Vec<_>>()},
                           "message": {"type": "string"},
                           "type": {"type": "string", "enum": ["invalid_request", "auth", "system", "internal"]},
                           "link": {"type": "string", "description": "GET it for the code's meaning"}}}}});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tribunal",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runtime gate, OTLP receiver, review queue and decision log. Every route but /healthz, /readyz and this description needs `Authorization: Bearer <token>`; a token belongs to one project and has one role (admin, reviewer, annotator, viewer, agent).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Unauthenticated": {
                "description": "No bearer token, or one that is unknown or revoked (code unauthenticated).",
                "headers": {"WWW-Authenticate": {"required": true, "description": "The scheme that is accepted: Bearer realm=\"tribunal\"", "schema": {"type": "string", "pattern": "^Bearer "}}},
                "content": {"application/json": {"schema": error_schema}}
            }, "Error": {
                "description": "An error; `code` is one of x-error-codes.",
                "content": {"application/json": {"schema": error_schema}}
            }},
            "schemas": {"GateRequest": {
                "type": "object",
                "oneOf": [{"required": ["trace"]}, {"required": ["append", "trace_id", "offset"]}, {"required": ["otlp_trace_id"]},
                          {"description": "With a traceparent header: the trace of that id, received over OTLP", "not": {"anyOf": [{"required": ["trace"]}, {"required": ["append"]}, {"required": ["otlp_trace_id"]}]}}],
                "properties": {
                    "trace": {"description": "The trace so far: OpenAI or Anthropic messages, MLflow, OTLP/JSON, or the normalized trace with format = tribunal."},
                    "trace_id": {"type": "string", "description": "Names the trace (with trace) or the held trace an append continues."},
                    "otlp_trace_id": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$", "description": "A trace received over OTLP (/v1/traces, /v1/logs): the gate puts it together from its stored spans and events and decides the pending step with it; nothing else of the trace is sent. A W3C traceparent header does the same for a body with neither trace, append nor otlp_trace_id. 404 when no span of it was received."},
                    "append": {"type": "array", "description": "The messages since the last call (OpenAI chat messages; Anthropic messages, with format = anthropic or told apart by their tool_use / tool_result blocks; or normalized ones with format = tribunal), continuing the trace trace_id the gate holds."},
                    "offset": {"type": "integer", "minimum": 0, "description": "With append: the number of messages the gate holds (the last answer's messages); anything else is refused with offset_mismatch."},
                    "pending": {"description": "The step the agent wants to take: a tool call (OpenAI or Anthropic shape) or a reply."},
                    "context": {"type": "object", "properties": {"agent": {"type": "string"}, "user": {"type": "string"}, "environment": {"type": "string"}}},
                    "format": {"type": "string", "description": "auto (default), tribunal, openai, anthropic, mlflow, otlp, ..."},
                    "budget_ms": {"type": "integer", "minimum": 0, "description": "Latency budget for model judges."},
                    "wait_ms": {"type": "integer", "minimum": 0, "description": "On escalate, how long to wait for a reviewer."},
                    "explain": {"type": "boolean", "description": "Answer with every judge's feedback (rationale, evidence, findings, version) and judge_versions besides the scores."}
                }
            }}
        },
        "security": [{"bearer": []}],
        "x-error-codes": ERROR_CODES.iter().map(|(c, s, d)| json!({"code": c, "status": s, "meaning": d})).collect::<Vec<_>>(),
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness (the store answers)", "security": [], "responses": {"200": {"description": "ready"}, "503": {"description": "store unavailable"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (role: viewer or above)", "responses": ok("text exposition format", &[])}},
            "/api/v1/gate": {"post": {"summary": "Decide on the agent's next step (role: agent or admin)",
                "parameters": [{"name": "traceparent", "in": "header", "schema": {"type": "string"}, "description": "W3C trace context: when the body has neither trace, append nor otlp_trace_id, the trace of this id received over OTLP is judged"}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GateRequest"}}}},
                "responses": ok("decision, reasons, violations, evidence, scores, decision_id, trace_id, messages, policy_version, budget_exceeded, elapsed_us, context; feedback and judge_versions with explain; escalation when escalated", &[400, 404, 409, 413, 415])}},
            "/v1/traces": {"post": {"summary": "OTLP/HTTP trace export (protobuf or JSON, gzip allowed; role: agent or admin)",
                "requestBody": {"required": true, "content": {"application/x-protobuf": {}, "application/json": {}}},
                "responses": ok("accepted and stored", &[400, 413, 415])}},
            "/v1/logs": {"post": {"summary": "OTLP/HTTP logs export (protobuf or JSON, gzip allowed; role: agent or admin): GenAI events that name a trace and span join that span",
                "requestBody": {"required": true, "content": {"application/x-protobuf": {}, "application/json": {}}},
                "responses": ok("accepted and stored", &[400, 413, 415])}},
            "/api/v1/traces": {"get": {"summary": "List traces, newest first; judge (with value, JSON or text) keeps the traces that judge answered, in their own result or a monitor's", "parameters": [one_of("source", &["otlp", "gate"]), one_of("decision", &["allow", "escalate", "block"]), query("since", "string"), query("rule", "string"), query("q", "string"), query("judge", "string"), query("value", "string"), ranged("limit", 1, 1000), ranged("offset", 0, i64::MAX)], "responses": ok("traces", &[400])}},
            "/api/v1/report/value": {"get": {"summary": "The value report: decisions over time, top rules, blocked actions by kind, escalations and time to decide, gate latency percentiles, model judges' cost, adoption (role: viewer or above)", "parameters": [query("since", "string")], "responses": ok("project, since, decisions, over_time, top_rules, blocked_by_kind, escalations, gate_latency, judges, adoption", &[400])}},
            "/api/v1/label-schemas": {
                "get": {"summary": "The project's label schemas (role: viewer or above)", "responses": ok("schemas", &[])},
                "post": {"summary": "Add a label schema {name, type: pass_fail|categorical|numeric|text|pairwise, options?, multiple?, min?, max?, instructions, comment?, judge?} (role: admin)", "requestBody": body(label_schema), "responses": ok("the schema", &[400, 403, 409])}},
            "/api/v1/label-schemas/{name}/agreement": {"get": {"summary": "The agreement and quality figures over every queue of the schema, as if they were one (items named queue/item) (role: reviewer or admin)", "parameters": [id_param("name")], "responses": ok("schema, queues, items_complete, percent_agreement, cohen_kappa_mean, krippendorff_alpha, fleiss_kappa, pairs, people, per_item, judge", &[403, 404])}},
            "/api/v1/queues": {
                "get": {"summary": "Labeling queues the caller may work on (reviewers and admins: all)", "responses": ok("queues", &[])},
                "post": {"summary": "Add a labeling queue {id, schema, items | from: {filter: {source?, decision?, rule?, text?, since?, limit?}} | {run: id} | {low_confidence: {judge, below, run?, limit?}}, overlap?, lock_s?, gold?, gold_rate?, blind?, people?, spread?, review_against_judge?, untrusted_from?}; items are trace ids or {id?, trace, span? | run?} or {id?, pair: {prompt?, a: {trace | text}, b}} (role: admin)", "requestBody": body(new_queue), "responses": ok("id, items, with_judge_value, not_found, warnings", &[400, 403, 404, 409])}},
            "/api/v1/queues/{id}": {"get": {"summary": "The queue's settings, schema and progress (annotators: only queues they are named on or open to all)", "parameters": [id_param("id")], "responses": ok("id, schema, items, overlap, blind, progress", &[403, 404])}},
            "/api/v1/queues/{id}/items": {"post": {"summary": "Add items {items: [...]} in the forms a queue is made with, at the end of the queue; items it has are left as they are (role: admin)", "parameters": [id_param("id")], "requestBody": body(strict(&["items"], json!({"items": {"type": "array"}}))), "responses": ok("added", &[400, 403, 404])}},
            "/api/v1/queues/{id}/items/{item}": {"get": {"summary": "What the item shows (trace, span, run result or pair), its labels, final label and the tied judge's value (role: reviewer or admin)", "parameters": [id_param("id"), id_param("item")], "responses": ok("id, trace?, span?, run?, pair?, labels, final, judge_value", &[403, 404])}},
            "/api/v1/queues/{id}/import": {"post": {"summary": "Import labels {lines: JSONL}: this server's export lines, {item, person, value, comment?}, MLflow assessments or MLflow trace exports (HUMAN assessments of the schema's name); bad lines are refused with their number (role: admin)", "parameters": [id_param("id")], "requestBody": body(strict(&["lines"], json!({"lines": {"type": "string"}}))), "responses": ok("imported, already_there, other_lines, refused", &[400, 403, 404])}},
            "/api/v1/queues/{id}/next": {"post": {"summary": "The caller's next item, locked for them, with its trace; or wait_until_ms, or done (role: annotator or above)", "parameters": [id_param("id")], "responses": ok("done, item, until_ms, schema, trace | wait_until_ms", &[403, 404])}},
            "/api/v1/queues/{id}/items/{item}/label": {"post": {"summary": "Label the item the caller holds {value, comment?}", "parameters": [id_param("id"), id_param("item")], "requestBody": body(strict(&["value"], json!({"value": {}, "comment": {"type": "string"}}))), "responses": ok("item, value", &[400, 403, 404, 409])}},
            "/api/v1/queues/{id}/items/{item}/skip": {"post": {"summary": "Pass on the item the caller holds {reason}; it goes to someone else", "parameters": [id_param("id"), id_param("item")], "requestBody": body(strict(&["reason"], json!({"reason": {"type": "string"}}))), "responses": ok("item, skipped", &[400, 403, 404, 409])}},
            "/api/v1/queues/{id}/labels": {"get": {"summary": "The queue's labels (blind queues: an annotator gets only their own)", "parameters": [id_param("id")], "responses": ok("items", &[404])}},
            "/api/v1/queues/{id}/review": {"get": {"summary": "Items whose labels disagree and are not adjudicated (role: reviewer or admin)", "parameters": [id_param("id"), query("spread", "number")], "responses": ok("items", &[403, 404])}},
            "/api/v1/queues/{id}/items/{item}/adjudicate": {"post": {"summary": "A reviewer's final label {value, note?}; the item never comes back", "parameters": [id_param("id"), id_param("item")], "requestBody": body(strict(&["value"], json!({"value": {}, "note": {"type": "string"}}))), "responses": ok("item, final, by", &[400, 403, 404, 409])}},
            "/api/v1/queues/{id}/export": {"get": {"summary": "The queue's labels as JSON lines: per item with its labels and final label (format=jsonl), or as MLflow assessments with a HUMAN source (format=mlflow) (role: reviewer or admin)", "parameters": [id_param("id"), one_of("format", &["jsonl", "mlflow"])], "responses": ok("application/x-ndjson", &[400, 403, 404])}},
            "/api/v1/queues/{id}/agreement": {"get": {"summary": "Agreement and quality: percent agreement, Cohen's kappa per pair (weighted for ordered labels), Fleiss' kappa, Krippendorff's alpha, per person (labels, skips, gold accuracy, time per item, labels per hour), per item, and the tied judge against people with bootstrap 95% intervals (role: reviewer or admin)", "parameters": [id_param("id")], "responses": ok("items_complete, percent_agreement, cohen_kappa_mean, krippendorff_alpha, fleiss_kappa, pairs, people, per_item, judge", &[403, 404])}},
            "/api/v1/audit/entries/{seq}": {"get": {"summary": "One decision-log entry of the caller's project (role: viewer or above)", "parameters": [json!({"name": "seq", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^0*[1-9][0-9]*$"}})], "responses": ok("seq, at, kind, body, prev_hash, hash", &[400, 404])}},
            "/api/v1/sessions": {"post": {"summary": "Sign in to the UI with an API token (not an agent's): sets an HttpOnly, SameSite=Strict session cookie and answers the CSRF token that state-changing requests made with it must send as X-CSRF-Token", "security": [],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}}}},
                "responses": ok("project, role, token_id, csrf", &[400, 401, 403])}},
            "/api/v1/session": {
                "get": {"summary": "The signed-in caller (and the CSRF token, with the session cookie)", "responses": ok("project, role, token_id, csrf", &[])},
                "delete": {"summary": "Sign out", "responses": ok("signed_out", &[])}},
            "/api/v1/traces/{id}": {"get": {"summary": "One trace with its result and human feedback", "parameters": [id_param("id")], "responses": ok("trace", &[404])}},
            "/api/v1/traces/{id}/feedback": {
                "get": {"summary": "Human feedback on a trace", "parameters": [id_param("id")], "responses": ok("feedback", &[404])},
                "post": {"summary": "Add human feedback (role: annotator, reviewer or admin)", "parameters": [id_param("id")],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "value"], "properties": {"name": {"type": "string"}, "value": {}, "rationale": {"type": "string"}}}}}},
                    "responses": {"201": {"description": "created"}, "400": err, "401": err, "403": err, "404": err}}},
            "/api/v1/runs": {"get": {"summary": "Evaluation runs (default project)", "responses": ok("runs", &[])}},
            "/api/v1/runs/{id}": {"get": {"summary": "One run with its results", "parameters": [id_param("id")], "responses": ok("run", &[404])}},
            "/api/v1/judges": {"get": {"summary": "Configured judges and their versions (judges, config_hash), and the judges stored in the Judge Builder with their latest version (stored: [{name, kind, latest_version, hash, updated_at}])", "responses": ok("judges", &[])}},
            "/api/v1/judges/builtins": {"get": {"summary": "Built-in judge kinds to start from: {builtins: [{kind, description, model_judge, instructions, output}]}; instructions and output are null for code judges", "responses": ok("builtins", &[])}},
            "/api/v1/judges/{name}/versions": {
                "get": {"summary": "A stored judge's versions, oldest first: {name, versions: [{version, kind, settings, hash, note, created_at, created_by}]}", "parameters": [judge_name], "responses": ok("versions", &[400, 404])},
                "post": {"summary": "Store a new version (role: admin); built first, so a bad kind or setting is invalid_judge and nothing is stored; 409 when it equals the latest version", "parameters": [judge_name],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["kind", "settings"], "properties": {"kind": {"type": "string"}, "settings": {"type": "object"}, "note": {"type": "string"}}}}}},
                    "responses": {"201": {"description": "{name, version, hash}"}, "400": err, "401": err, "403": err, "409": err}}},
            "/api/v1/judges/{name}/diff": {"get": {"summary": "What changed between two versions: {name, from, to, changes: [{path, from, to}], text} (text: a unified diff of their tribunal.toml tables)", "parameters": [judge_name, {"name": "from", "in": "query", "required": true, "schema": {"type": "integer"}}, {"name": "to", "in": "query", "required": true, "schema": {"type": "integer"}}], "responses": ok("diff", &[400, 404])}},
            "/api/v1/judges/{name}/rollback": {"post": {"summary": "Store a new version equal to an earlier one, noted \"rollback to N\" (role: admin)", "parameters": [judge_name],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["version"], "properties": {"version": {"type": "integer"}}}}}},
                "responses": {"201": {"description": "{name, version, hash}"}, "400": err, "401": err, "403": err, "404": err, "409": err}}},
            "/api/v1/judges/{name}/align": {
                "get": {"summary": "How many settled labels the store holds for the judge (queues whose schema is tied to it) to align with (role: any but agent): {name, latest_version, labels, found, reason, optimizers}", "parameters": [id_param("name")], "responses": ok("labels to align with", &[400, 404])},
                "post": {"summary": "Align the judge's latest version with the store's labels (role: admin): held-out before and after figures, a bootstrap interval of the difference, model usage; the result is stored as a new version with its lineage (201; 200 when unchanged). 422 not_enough_labels with how many more are needed; 502 alignment_failed when a model fails", "parameters": [id_param("name")],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"optimizer": {"type": "string"}, "holdout": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, "seed": {"type": "integer", "minimum": 0}, "reflection_model": {"type": "string"}, "embeddings": {"type": "string"}}}}}},
                    "responses": {"201": {"description": "the alignment run"}, "200": {"description": "the alignment run; the aligned definition equals the latest version"}, "400": err, "401": err, "403": err, "404": err, "422": err, "502": err}}},
            "/api/v1/judges/try": {"post": {"summary": "Run a judge definition (and optionally a stored version, to compare) on 1 to 50 stored traces of the project (role: annotator, reviewer or admin; settings base_url, api_key_env and path: admin only, else 403 forbidden naming the setting): {results: [{trace_id, feedback, usage, compare: {feedback, usage} | null}], totals, compare_totals, version_hash}; usage is {calls, cached_calls, input_tokens, output_tokens, cost_usd}; the totals add traces (how many were tried) and errors (how many got no answer)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["kind", "settings", "trace_ids"], "properties": {"kind": {"type": "string"}, "settings": {"type": "object"}, "trace_ids": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string"}}, "compare": {"type": "object", "required": ["name", "version"], "properties": {"name": {"type": "string"}, "version": {"type": "integer"}}}, "name": {"type": "string"}}}}}},
                "responses": ok("results", &[400, 404])}},
            "/api/v1/policies": {"get": {"summary": "Policy version, gates, files, shadow policies", "responses": ok("policies", &[])}},
            "/api/v1/policies/reload": {"post": {"summary": "Reload the project's configuration and policies (role: admin)", "responses": ok("new versions", &[400])}},
            "/api/v1/escalations": {"get": {"summary": "The review queue", "parameters": [one_of("status", &["pending", "approved", "denied", "expired"]), ranged("limit", 1, 1000)], "responses": ok("escalations", &[400])}},
            "/api/v1/escalations/{id}": {"get": {"summary": "One escalation (agents poll here)", "parameters": [id_param("id")], "responses": ok("escalation", &[404])}},
            "/api/v1/escalations/{id}/decision": {"post": {"summary": "Approve or deny (role: reviewer or admin)", "parameters": [id_param("id")],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["decision"], "properties": {"decision": {"enum": ["approve", "deny"]}, "note": {"type": "string"}}}}}},
                "responses": ok("the settled escalation", &[400, 404, 409])}},
            "/api/v1/tools/pins": {"get": {"summary": "Tool definitions pinned at the gate per named agent, with the definition seen since that differs from the pinned one (changed; c12.tool_definition_changed blocks calls of the tool while it is offered)", "parameters": [{"name": "changed", "in": "query", "required": false, "schema": {"type": "boolean"}}], "responses": ok("pins", &[400])}},
            "/api/v1/tools/pins/approve": {"post": {"summary": "Make a tool's changed definition, named by its hash, the pinned one (role: reviewer or admin); 409 when the pin has no change with that hash",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["tool", "hash"], "properties": {"tool": {"type": "string"}, "agent": {"type": "string"}, "hash": {"type": "string"}}, "additionalProperties": false}}}},
                "responses": ok("the pin", &[400, 404, 409])}},
            "/api/v1/tools/pins/remove": {"post": {"summary": "Remove a tool's pin (role: admin): the next definition seen is pinned",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["tool"], "properties": {"tool": {"type": "string"}, "agent": {"type": "string"}}, "additionalProperties": false}}}},
                "responses": ok("removed", &[400, 404])}},
            "/api/v1/audit/verify": {"get": {"summary": "Verify the decision log's hash chain (role: admin)", "responses": ok("report", &[])}},
            "/": {"get": {"summary": "The web UI's page (no token needed; the page signs in with one)", "security": [], "responses": {"200": {"description": "the page"}}}},
            "/ui/{file}": {"get": {"summary": "The web UI's script and style sheet (no token needed)", "security": [], "parameters": [id_param("file")], "responses": {"200": {"description": "the file"}, "404": err.clone()}}},
            "/api/v1/errors/{code}": {"get": {"summary": "What an error code means: the link of every error answer (no token needed)", "security": [], "parameters": [id_param("code")], "responses": {"200": {"description": "the code, its status, type and meaning"}, "404": err.clone()}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document (no token needed)", "security": [], "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}}
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.extend(crate::monitor::openapi_paths());
        paths.extend(crate::policies::openapi_paths());
    }
    doc
}

//! Live monitoring: a stored judge version switched on for a project's incoming traces
//! (gate and OTLP), with a sample rate and the trace list's filter. A background task claims
//! newly stored traces from the store (see `tribunal_store::monitors`), judges them through
//! the same path as the Judge Builder's try (`Judge::judge` on the blocking pool, with the
//! store's response cache) and stores each result with the judge version that made it. It
//! never runs on a request's path, so it cannot delay the gate.
//!
//! Alerts: rules over a monitor's latest results (failure or error rate over the last N
//! results or M minutes, or any block decision of a rule) that post a JSON payload, signed
//! with HMAC-SHA256, to a webhook, retried with backoff; every delivery is recorded. An
//! alert notifies when it starts firing and when it resolves, not while it stays firing.

use crate::auth::{self, Caller, Permission};
use crate::error::{ApiError, Code};
use crate::judges::{self, Loaded};
use crate::{api, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tribunal_core::Feedback;
use tribunal_judges::Judge;
use tribunal_store::{
    clock, AlertRow, ClaimContext, DeliveryRow, MonitorResultRow, MonitorRow, TraceFilter,
};

/// How often the task looks for new traces.
const TICK: Duration = Duration::from_millis(200);
/// Traces claimed per monitor and tick.
const CLAIM_LIMIT: i64 = 64;
/// How far before the cursor traces are still looked at: rows another server committed
/// after newer ones, and OTLP traces judged after their quiet time.
const GRACE: Duration = Duration::from_secs(600);
/// A claim still unfinished this long after it was made is taken over by another round: its
/// server stopped or died while judging (a judge's own calls give up well before).
const RECLAIM_AFTER: Duration = Duration::from_secs(15 * 60);
/// How often a monitor without new results has its time-window alerts looked at.
const IDLE_ALERT_CHECK: Duration = Duration::from_secs(1);
/// Webhook attempts per delivery, and the wait before the second (doubled each time).
const WEBHOOK_ATTEMPTS: u32 = 5;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(250);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// String values that pass (case-insensitive); any other string fails.
pub const PASSING_STRINGS: &[&str] = &[
    "yes", "pass", "passed", "true", "safe", "ok", "correct", "relevant", "grounded", "complete",
    "allow",
];
/// The header carrying the signature: `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-tribunal-signature";

// ---------------------------------------------------------------------------------------
// What a monitor is told.

/// The trace filter a monitor applies: the trace list's filters, except time and paging.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Free text found in the trace id, stored request or result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

impl MonitorFilter {
    fn check(mut self) -> Result<MonitorFilter, ApiError> {
        let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        self.source = blank(self.source);
        self.decision = blank(self.decision);
        self.rule = blank(self.rule);
        self.q = blank(self.q);
        if let Some(s) = &self.source {
            if !["otlp", "gate"].contains(&s.as_str()) {
                return Err(ApiError::request(format!(
                    "filter.source: expected otlp or gate, found {s:?}"
                )));
            }
        }
        if let Some(d) = &self.decision {
            if !["allow", "escalate", "block"].contains(&d.as_str()) {
                return Err(ApiError::request(format!(
                    "filter.decision: expected allow, escalate or block, found {d:?}"
                )));
            }
        }
        Ok(self)
    }

    fn trace_filter(&self) -> TraceFilter {
        TraceFilter {
            source: self.source.clone(),
            decision: self.decision.clone(),
            since: None,
            rule: self.rule.clone(),
            text: self.q.clone(),
            judge: None,
            judge_value: None,
            limit: CLAIM_LIMIT,
            offset: 0,
        }
    }
}

/// Whether a trace is in a sample of `rate`: the first 8 bytes of the SHA-256 of its id,
/// as a fraction of 2^64, below the rate. The same trace is in or out on every server.
pub fn sampled(trace_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let d = Sha256::digest(trace_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) as f64 / 18_446_744_073_709_551_616.0) < rate
}

/// `pass`, `fail` or `error` for a judge's feedback on one trace, with the value judged.
pub fn outcome(feedback: &[Feedback], threshold: f64) -> (&'static str, Value) {
    let Some(f) = feedback.first() else {
        return ("error", Value::Null);
    };
    if feedback.iter().any(|f| f.error.is_some()) {
        return ("error", f.value.clone());
    }
    let pass = match &f.value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x >= threshold),
        Value::String(s) => PASSING_STRINGS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(s.trim())),
        _ => return ("error", f.value.clone()),
    };
    (if pass { "pass" } else { "fail" }, f.value.clone())
}

fn monitor_json(m: &MonitorRow) -> Value {
    let filter: Value = serde_json::from_str(&m.filter).unwrap_or(Value::Null);
    json!({
        "id": m.id,
        "judge": m.judge_name,
        "version": m.judge_version,
        "sample_rate": m.sample_rate,
        "filter": filter,
        "pass_threshold": m.pass_threshold,
        "enabled": m.enabled,
        "since": clock::rfc3339_from_ms(m.since_ms),
        "created_at": m.created_at,
        "created_by": m.created_by,
        "updated_at": m.updated_at,
    })
}

fn check_rate(rate: f64) -> Result<f64, ApiError> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(ApiError::request(format!(
            "sample_rate: expected a number from 0 to 1, found {rate}"
        )))
    }
}

fn check_threshold(t: f64) -> Result<f64, ApiError> {
    if t.is_finite() {
        Ok(t)
    } else {
        Err(ApiError::request(
            "pass_threshold: expected a finite number",
        ))
    }
}

/// The numbers a stored judge answers when its output is a number range other than 0 to 1
/// (`int 1..5`, say): its lowest and highest score.
fn score_range(row: &tribunal_store::JudgeVersionRow) -> Option<(f64, f64)> {
    use tribunal_judges::llm::OutputType;
    let settings: Value = serde_json::from_str(&row.settings).ok()?;
    let output = match settings.get("output").and_then(Value::as_str) {
        Some(o) => o.to_owned(),
        None => tribunal_judges::llm::presets::for_kind(&row.kind)?
            .output
            .to_owned(),
    };
    let (lo, hi) = match OutputType::parse(&output).ok()? {
        OutputType::Int { min, max } => (min as f64, max as f64),
        OutputType::Float { min, max } => (min, max),
        _ => return None,
    };
    (lo != 0.0 || hi != 1.0).then_some((lo, hi))
}

/// The pass threshold of a monitor of `row`: `given`, or 0.5 for a judge that answers
/// yes/no, true/false, a word or a score from 0 to 1. A judge scoring on a range of its own
/// must be given one inside that range: 0.5 would pass every score of a 1-to-5 judge.
fn threshold_for(
    row: &tribunal_store::JudgeVersionRow,
    given: Option<f64>,
) -> Result<f64, ApiError> {
    let Some((lo, hi)) = score_range(row) else {
        return check_threshold(given.unwrap_or(0.5));
    };
    match given {
        None => Err(ApiError::request(format!(
            "pass_threshold: judge {:?} scores from {lo} to {hi}; give the lowest score that passes",
            row.name
        ))),
        Some(t) if t.is_finite() && t > lo && t <= hi => Ok(t),
        Some(t) => Err(ApiError::request(format!(
            "pass_threshold: judge {:?} scores from {lo} to {hi}; a threshold of {t} would pass {} score; expected a number above {lo} and at most {hi}",
            row.name,
            if t <= lo { "every" } else { "no" }
        ))),
    }
}

async fn judge_version(
    state: &AppState,
    project: &str,
    name: &str,
    version: Option<i64>,
) -> Result<tribunal_store::JudgeVersionRow, ApiError> {
    judges::check_name(name).map_err(|e| ApiError::request(format!("judge: {}", e.message)))?;
    let row = match version {
        Some(v) => state.store.judge_version(project, name, v).await?,
        None => state.store.judge_versions(project, name).await?.pop(),
    };
    row.ok_or_else(|| match version {
        Some(v) => {
            ApiError::not_found(format!("judge {name:?} has no version {v} in this project"))
        }
        None => ApiError::not_found(format!("no stored judge {name:?} in this project")),
    })
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<MonitorRow, ApiError> {
    state
        .store
        .monitor(&caller.project, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no monitor {id:?} in this project")))
}

// ---------------------------------------------------------------------------------------
// The API.

/// `GET /api/v1/monitors`: the project's monitors with their alerts.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let mut out = Vec::new();
    for m in state.store.monitors(&caller.project).await? {
        let mut v = monitor_json(&m);
        v["alerts"] = alerts_json(&state, &m.id).await?;
        out.push(v);
    }
    Ok(Json(json!({ "monitors": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    judge: String,
    version: Option<i64>,
    sample_rate: Option<f64>,
    filter: Option<MonitorFilter>,
    pass_threshold: Option<f64>,
    enabled: Option<bool>,
}

/// `POST /api/v1/monitors`: switches a stored judge version (the latest by default) on
/// for the project's incoming traces.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Admin)?;
    let b: CreateBody = judges::json_body(
        &state,
        &headers,
        body,
        "{\"judge\": string, \"version\"?: integer, \"sample_rate\"?: number 0..1, \"filter\"?: {\"source\"?, \"decision\"?, \"rule\"?, \"q\"?}, \"pass_threshold\"?: number, \"enabled\"?: bool}",
    )
    .await?;
    let rate = check_rate(b.sample_rate.unwrap_or(1.0))?;
    let filter = b.filter.unwrap_or_default().check()?;
    let row = judge_version(&state, &caller.project, &b.judge, b.version).await?;
    let threshold = threshold_for(&row, b.pass_threshold)?;
    // A stored version that no longer builds is refused now, not at the first trace (the
    // caller is an admin).
    judges::build_stored(&row, true).await?;
    let enabled = b.enabled.unwrap_or(true);
    if enabled {
        let dup = state
            .store
            .monitors(&caller.project)
            .await?
            .into_iter()
            .find(|m| m.enabled && m.judge_name == row.name);
        if let Some(d) = dup {
            return Err(ApiError::new(
                Code::Conflict,
                format!(
                    "judge {:?} is already monitored by {} (switched on); change that monitor or switch it off first",
                    row.name, d.id
                ),
            ));
        }
    }
    let (now, now_ms) = clock::now_both();
    let m = MonitorRow {
        id: auth::random_id("mon_"),
        project: caller.project.clone(),
        judge_name: row.name.clone(),
        judge_version: row.version,
        sample_rate: rate,
        filter: serde_json::to_string(&filter).unwrap_or_else(|_| "{}".into()),
        pass_threshold: threshold,
        enabled,
        since_ms: now_ms,
        cursor_ms: now_ms,
        created_at: now.clone(),
        created_by: caller.token_id.clone(),
        updated_at: now,
    };
    state.store.insert_monitor(&m).await?;
    let mut v = monitor_json(&m);
    v["alerts"] = json!([]);
    Ok((StatusCode::CREATED, Json(v)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    enabled: Option<bool>,
    version: Option<i64>,
    sample_rate: Option<f64>,
    filter: Option<MonitorFilter>,
    pass_threshold: Option<f64>,
}

/// `PATCH /api/v1/monitors/{id}`: switches a monitor on or off, or changes its version,
/// sample rate, filter or threshold. Switched on again, it watches traces from then on.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let b: UpdateBody = judges::json_body(
        &state,
        &headers,
        body,
        "{\"enabled\"?: bool, \"version\"?: integer, \"sample_rate\"?: number 0..1, \"filter\"?: object, \"pass_threshold\"?: number}",
    )
    .await?;
    let mut m = find(&state, &caller, &id).await?;
    if let Some(r) = b.sample_rate {
        m.sample_rate = check_rate(r)?;
    }
    if let Some(f) = b.filter {
        m.filter = serde_json::to_string(&f.check()?).unwrap_or_else(|_| "{}".into());
    }
    if b.version.is_some() || b.pass_threshold.is_some() {
        let version = b.version.unwrap_or(m.judge_version);
        let row = judge_version(&state, &caller.project, &m.judge_name, Some(version)).await?;
        if b.version.is_some() {
            judges::build_stored(&row, true).await?;
            m.judge_version = version;
        }
        // The threshold, given or kept, must suit the version's scores.
        m.pass_threshold = threshold_for(&row, Some(b.pass_threshold.unwrap_or(m.pass_threshold)))?;
    }
    let (now, now_ms) = clock::now_both();
    if let Some(on) = b.enabled {
        if on && !m.enabled {
            let dup = state
                .store
                .monitors(&caller.project)
                .await?
                .into_iter()
                .find(|o| o.enabled && o.judge_name == m.judge_name && o.id != m.id);
            if let Some(d) = dup {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!(
                        "judge {:?} is already monitored by {} (switched on)",
                        m.judge_name, d.id
                    ),
                ));
            }
            m.since_ms = now_ms;
        }
        m.enabled = on;
    }
    m.updated_at = now;
    if !state.store.update_monitor(&m).await? {
        return Err(ApiError::not_found(format!(
            "no monitor {id:?} in this project"
        )));
    }
    let mut v = monitor_json(&m);
    v["alerts"] = alerts_json(&state, &m.id).await?;
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// Seconds back from now the windows cover (default one hour).
    window: Option<i64>,
    /// Seconds per bucket (default a twelfth of the window).
    bucket: Option<i64>,
    /// Latest results listed (default 20).
    limit: Option<i64>,
}

fn rate(part: i64, whole: i64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!(part as f64 / whole as f64)
    }
}

fn result_json(r: &MonitorResultRow) -> Value {
    let feedback: Value = r
        .feedback
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or(Value::Null);
    let first = feedback.get(0);
    json!({
        "trace_id": r.trace_id,
        "status": r.status,
        "value": r.value.as_deref().and_then(|v| serde_json::from_str::<Value>(v).ok()),
        "rationale": first.and_then(|f| f.get("rationale")).cloned(),
        "error": first.and_then(|f| f.get("error")).cloned(),
        "trace_decision": r.trace_decision,
        "judge_version": r.judge_version,
        "judge_hash": r.judge_hash,
        "at": r.at,
    })
}

/// `GET /api/v1/monitors/{id}/results`: pass rate per time bucket over a window, the
/// totals, and the latest results.
pub async fn results(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let Query(q) = q.map_err(|e| {
        ApiError::request(format!(
            "{e}; parameters are window, bucket (seconds) and limit"
        ))
    })?;
    let window = q.window.unwrap_or(3600);
    if !(60..=90 * 86_400).contains(&window) {
        return Err(ApiError::request(format!(
            "window: expected 60 to 7776000 seconds, found {window}"
        )));
    }
    let bucket = q.bucket.unwrap_or((window / 12).max(1));
    if !(1..=window).contains(&bucket) || window / bucket > 1000 {
        return Err(ApiError::request(format!(
            "bucket: expected 1 to {window} seconds (the window) and at most 1000 buckets per window, found {bucket}"
        )));
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::request(format!(
            "limit: expected 1 to 500, found {limit}"
        )));
    }
    let m = find(&state, &caller, &id).await?;
    let since = clock::now_ms() - window * 1000;
    let buckets = state
        .store
        .monitor_buckets(&m.id, since, bucket * 1000)
        .await?;
    let (mut pass, mut fail, mut error) = (0, 0, 0);
    let windows: Vec<Value> = buckets
        .iter()
        .map(|b| {
            pass += b.pass;
            fail += b.fail;
            error += b.error;
            json!({
                "start": clock::rfc3339_from_ms(b.start_ms),
                "pass": b.pass,
                "fail": b.fail,
                "error": b.error,
                "pass_rate": rate(b.pass, b.pass + b.fail),
            })
        })
        .collect();
    let latest: Vec<Value> = state
        .store
        .latest_monitor_results(&m.id, limit)
        .await?
        .iter()
        .map(result_json)
        .collect();
    Ok(Json(json!({
        "monitor": monitor_json(&m),
        "window_seconds": window,
        "bucket_seconds": bucket,
        "totals": {
            "judged": pass + fail + error,
            "pass": pass,
            "fail": fail,
            "error": error,
            "pass_rate": rate(pass, pass + fail),
            "error_rate": rate(error, pass + fail + error),
        },
        "windows": windows,
        "latest": latest,
    })))
}

/// Every monitor's result on a trace, for the trace view.
pub async fn trace_results(state: &AppState, project: &str, trace_id: &str) -> Value {
    match state.store.trace_monitor_results(project, trace_id).await {
        Ok(rows) => Value::from(rows.iter().map(result_json).collect::<Vec<_>>()),
        Err(e) => {
            tracing::error!(error = %e, "reading a trace's monitor results failed");
            Value::Null
        }
    }
}

// ---------------------------------------------------------------------------------------
// Alerts.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertBody {
    kind: String,
    threshold: Option<f64>,
    last_n: Option<i64>,
    minutes: Option<i64>,
    rule: Option<String>,
    webhook_url: String,
    secret: Option<String>,
}

async fn alerts_json(state: &AppState, monitor_id: &str) -> Result<Value, ApiError> {
    let mut out = Vec::new();
    for a in state.store.monitor_alerts(monitor_id).await? {
        let deliveries: Vec<Value> = state
            .store
            .alert_deliveries(&a.id, 10)
            .await?
            .into_iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "event": d.event,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_status": d.last_status,
                    "last_error": d.last_error,
                    "created_at": d.created_at,
                    "updated_at": d.updated_at,
                })
            })
            .collect();
        let mut v = json!(a);
        v["deliveries"] = Value::from(deliveries);
        out.push(v);
    }
    Ok(Value::from(out))
}

/// `POST /api/v1/monitors/{id}/alerts`: adds an alert rule. The signing secret is given or
/// made, and answered once.
pub async fn add_alert(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Admin)?;
    let b: AlertBody = judges::json_body(
        &state,
        &headers,
        body,
        "{\"kind\": \"failure_rate\"|\"error_rate\"|\"block\", \"threshold\"?: number 0..1, \"last_n\"?: integer, \"minutes\"?: integer, \"rule\"?: string, \"webhook_url\": string, \"secret\"?: string}",
    )
    .await?;
    let m = find(&state, &caller, &id).await?;
    match b.kind.as_str() {
        "failure_rate" | "error_rate" => {
            let t = b
                .threshold
                .ok_or_else(|| ApiError::request(format!("threshold: required for {}", b.kind)))?;
            if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
                return Err(ApiError::request(format!(
                    "threshold: expected a rate from 0 to 1, found {t}"
                )));
            }
            if b.last_n.is_none() == b.minutes.is_none() {
                return Err(ApiError::request(
                    "last_n or minutes: give exactly one, the window the rate is taken over",
                ));
            }
            if b.rule.is_some() {
                return Err(ApiError::request("rule: only a block alert names a rule"));
            }
        }
        "block" => {
            if b.threshold.is_some() {
                return Err(ApiError::request(
                    "threshold: a block alert fires on any block decision; it takes no threshold",
                ));
            }
            if b.last_n.is_none() && b.minutes.is_none() {
                return Err(ApiError::request(
                    "last_n or minutes: give the window block decisions are looked for in",
                ));
            }
        }
        k => {
            return Err(ApiError::request(format!(
                "kind: expected failure_rate, error_rate or block, found {k:?}"
            )))
        }
    }
    if b.last_n.is_some_and(|n| !(1..=10_000).contains(&n)) {
        return Err(ApiError::request("last_n: expected 1 to 10000"));
    }
    if b.minutes.is_some_and(|n| !(1..=10_080).contains(&n)) {
        return Err(ApiError::request("minutes: expected 1 to 10080 (a week)"));
    }
    match reqwest::Url::parse(&b.webhook_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(ApiError::request(format!(
                "webhook_url: expected an http or https URL, found {:?}",
                b.webhook_url
            )))
        }
    }
    let secret = match b.secret {
        Some(s) if s.len() < 16 => {
            return Err(ApiError::request(
                "secret: expected at least 16 characters (or none, to have one made)",
            ))
        }
        Some(s) => s,
        None => crate::audit::hex(&auth::random_bytes::<24>()),
    };
    let a = AlertRow {
        id: auth::random_id("alr_"),
        monitor_id: m.id.clone(),
        project: caller.project.clone(),
        kind: b.kind,
        threshold: b.threshold.unwrap_or(0.0),
        last_n: b.last_n,
        minutes: b.minutes,
        rule: b.rule.filter(|r| !r.is_empty()),
        webhook_url: b.webhook_url,
        secret: secret.clone(),
        firing: false,
        created_at: clock::now_rfc3339(),
    };
    state.store.insert_alert(&a).await?;
    let mut v = json!(a);
    v["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /api/v1/monitors/{id}/alerts`: the monitor's alert rules, whether each is firing,
/// and its latest deliveries.
pub async fn list_alerts(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let m = find(&state, &caller, &id).await?;
    Ok(Json(json!({ "alerts": alerts_json(&state, &m.id).await? })))
}

/// `DELETE /api/v1/monitors/{id}/alerts/{alert}`.
pub async fn delete_alert(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((id, alert)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Admin)?;
    let m = find(&state, &caller, &id).await?;
    if state
        .store
        .delete_alert(&caller.project, &m.id, &alert)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "monitor {id:?} has no alert {alert:?}"
        )))
    }
}

/// Whether an alert's condition holds over `recent` (newest first), with the figure
/// observed (a rate, or the number of block decisions).
pub fn evaluate(a: &AlertRow, recent: &[MonitorResultRow]) -> (bool, f64) {
    let window: &[MonitorResultRow] = match a.last_n {
        Some(n) => &recent[..recent.len().min(n.max(0) as usize)],
        None => recent,
    };
    match a.kind.as_str() {
        "block" => {
            let blocks = window
                .iter()
                .filter(|r| r.trace_decision.as_deref() == Some("block"))
                .filter(|r| match &a.rule {
                    None => true,
                    Some(rule) => serde_json::from_str::<Vec<String>>(&r.rules)
                        .is_ok_and(|rs| rs.iter().any(|x| x == rule)),
                })
                .count();
            (blocks > 0, blocks as f64)
        }
        kind => {
            if window.is_empty() {
                return (false, 0.0);
            }
            let hits = window
                .iter()
                .filter(|r| {
                    r.status
                        == if kind == "error_rate" {
                            "error"
                        } else {
                            "fail"
                        }
                })
                .count();
            let rate = hits as f64 / window.len() as f64;
            (rate > a.threshold, rate)
        }
    }
}

/// HMAC-SHA256 of `body` under `key` (RFC 2104), as lowercase hex.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(body);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    crate::audit::hex(&outer.finalize())
}

/// Evaluates the monitor's alert rules after a round: all of them when the round judged
/// traces, else only those over a time window, whose results age out without traffic (a
/// firing alert resolves when its window no longer holds the failures).
async fn check_alerts(state: &Arc<AppState>, m: &MonitorRow, judged: bool) {
    let alerts = match state.store.monitor_alerts(&m.id).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(monitor = %m.id, error = %e, "reading alert rules failed");
            return;
        }
    };
    for a in alerts {
        if !judged && (a.last_n.is_some() || a.minutes.is_none()) {
            continue;
        }
        let recent = match (a.last_n, a.minutes) {
            (Some(n), _) => state.store.latest_monitor_results(&m.id, n).await,
            (None, Some(min)) => {
                state
                    .store
                    .monitor_results_since(&m.id, clock::now_ms() - min * 60_000, 10_000)
                    .await
            }
            (None, None) => continue,
        };
        let recent = match recent {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(alert = %a.id, error = %e, "reading results for an alert failed");
                continue;
            }
        };
        let (firing, observed) = evaluate(&a, &recent);
        if firing == a.firing {
            continue;
        }
        match state.store.set_alert_firing(&a.id, firing).await {
            Ok(true) => {}
            Ok(false) => continue, // another server saw the change first
            Err(e) => {
                tracing::error!(alert = %a.id, error = %e, "recording an alert's state failed");
                continue;
            }
        }
        let event = if firing { "firing" } else { "resolved" };
        let (now, _) = clock::now_both();
        let payload = json!({
            "event": event,
            "project": m.project,
            "alert": {
                "id": a.id, "kind": a.kind, "threshold": a.threshold, "last_n": a.last_n,
                "minutes": a.minutes, "rule": a.rule,
            },
            "monitor": {"id": m.id, "judge": m.judge_name, "version": m.judge_version},
            "observed": observed,
            "results": recent.len().min(a.last_n.unwrap_or(i64::MAX).max(0) as usize),
            "at": now,
        });
        let d = DeliveryRow {
            id: auth::random_id("dlv_"),
            alert_id: a.id.clone(),
            project: m.project.clone(),
            event: event.to_owned(),
            payload: payload.to_string(),
            status: "pending".into(),
            attempts: 0,
            last_status: None,
            last_error: None,
            created_at: now.clone(),
            updated_at: now,
        };
        if let Err(e) = state.store.insert_delivery(&d).await {
            tracing::error!(alert = %a.id, error = %e, "recording a delivery failed");
            continue;
        }
        tracing::warn!(alert = %a.id, monitor = %m.id, event, observed, "alert");
        tokio::spawn(deliver(
            state.clone(),
            d,
            a.webhook_url.clone(),
            a.secret.clone(),
        ));
    }
}

/// Posts a delivery's payload until the receiver answers 2xx or the attempts run out,
/// waiting twice as long after each failure; records every attempt.
async fn deliver(state: Arc<AppState>, d: DeliveryRow, url: String, secret: String) {
    let client = match reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "making the webhook client failed");
            return;
        }
    };
    let signature = format!("sha256={}", sign(secret.as_bytes(), d.payload.as_bytes()));
    let mut wait = WEBHOOK_BACKOFF;
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .header("x-tribunal-delivery", &d.id)
            .body(d.payload.clone())
            .send()
            .await;
        let (status, error) = match sent {
            Ok(r) if r.status().is_success() => (Some(i64::from(r.status().as_u16())), None),
            Ok(r) => (
                Some(i64::from(r.status().as_u16())),
                Some(format!("the receiver answered {}", r.status())),
            ),
            Err(e) => (None, Some(format!("{e}"))),
        };
        let last = attempt == WEBHOOK_ATTEMPTS;
        let outcome = match (&error, last) {
            (None, _) => "delivered",
            (Some(_), true) => "failed",
            (Some(_), false) => "pending",
        };
        if let Err(e) = state
            .store
            .update_delivery(
                &d.id,
                outcome,
                i64::from(attempt),
                status,
                error.as_deref(),
                &clock::now_rfc3339(),
            )
            .await
        {
            tracing::error!(delivery = %d.id, error = %e, "recording a delivery attempt failed");
        }
        if error.is_none() {
            return;
        }
        if last {
            tracing::error!(delivery = %d.id, url = %url, "a webhook delivery failed after every attempt");
            return;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

// ---------------------------------------------------------------------------------------
// The background task.

/// A monitor's judge, built once per version.
struct Built {
    version: i64,
    hash: String,
    judge: Arc<dyn Judge>,
    /// The judge's own score range, when it has one (see [`score_range`]).
    range: Option<(f64, f64)>,
}

async fn built_judge(
    state: &AppState,
    m: &MonitorRow,
    cache: &mut HashMap<String, Built>,
) -> Result<(), ApiError> {
    if cache
        .get(&m.id)
        .is_some_and(|b| b.version == m.judge_version)
    {
        return Ok(());
    }
    let row = state
        .store
        .judge_version(&m.project, &m.judge_name, m.judge_version)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "judge {:?} version {} is gone",
                m.judge_name, m.judge_version
            ))
        })?;
    // Its results, errors included, are read by every role of the project: they never
    // quote what a model server answered.
    let (_, judge) = judges::build_stored(&row, false).await?;
    let judge = judges::with_cache(judge, state, &m.project)?;
    cache.insert(
        m.id.clone(),
        Built {
            version: row.version,
            range: score_range(&row),
            hash: row.hash,
            judge,
        },
    );
    Ok(())
}

/// Claims and judges one round of a monitor's new traces; how many were judged.
async fn round(
    state: &Arc<AppState>,
    m: &MonitorRow,
    cache: &mut HashMap<String, Built>,
) -> Result<usize, ApiError> {
    built_judge(state, m, cache).await?;
    let Some(b) = cache.get(&m.id) else {
        return Ok(0);
    };
    let filter: MonitorFilter = serde_json::from_str(&m.filter).unwrap_or_default();
    let (at, at_ms) = clock::now_both();
    let ctx = ClaimContext {
        instance: &state.instance,
        at: &at,
        at_ms,
        judge_hash: &b.hash,
        grace_ms: GRACE.as_millis() as i64,
        limit: CLAIM_LIMIT,
    };
    let rate = m.sample_rate;
    let claimed = state
        .store
        .claim_monitor_traces(m, &filter.trace_filter(), &ctx, |id| sampled(id, rate))
        .await?;
    // Claims a stopped server left unfinished are judged here.
    let stale = state
        .store
        .reclaim_stale_monitor_claims(&m.id, at_ms - RECLAIM_AFTER.as_millis() as i64, &ctx)
        .await?;
    if !stale.is_empty() {
        tracing::warn!(monitor = %m.id, traces = stale.len(), "judging traces another server claimed and did not finish");
    }
    let to_judge = claimed
        .into_iter()
        .filter(|c| c.sampled)
        .map(|c| c.trace_id)
        .chain(stale);
    let mut ids = Vec::new();
    let mut traces: Vec<Loaded> = Vec::new();
    for trace_id in to_judge {
        let loaded = match state.store.get_trace(&m.project, &trace_id).await? {
            Some(row) => api::stored_trace(&state.store, &row).await?,
            None => None,
        };
        match loaded {
            Some(t) => {
                ids.push(trace_id);
                traces.push(Arc::new(t));
            }
            None => {
                let (at, at_ms) = clock::now_both();
                let fb =
                    json!([{"error": "what is stored of the trace no longer reads as a trace"}]);
                state
                    .store
                    .finish_monitor_result(
                        &m.id,
                        &trace_id,
                        "error",
                        None,
                        Some(&fb.to_string()),
                        (&at, at_ms),
                    )
                    .await?;
            }
        }
    }
    if traces.is_empty() {
        return Ok(0);
    }
    let feedback = match judges::run_on(b.judge.clone(), &traces).await {
        Ok(f) => f,
        Err(e) => vec![vec![Feedback::error(&m.judge_name, &m.judge_name, e.message)]; ids.len()],
    };
    // A monitor made before thresholds were checked against the judge's range (0.5 on a
    // 1-to-5 judge) would pass every score: its results are errors until it is given one.
    let unfit = b
        .range
        .filter(|&(lo, hi)| !(m.pass_threshold > lo && m.pass_threshold <= hi));
    for (id, fb) in ids.iter().zip(&feedback) {
        let (status, value) = match unfit {
            None => outcome(fb, m.pass_threshold),
            Some(_) => (
                "error",
                fb.first().map(|f| f.value.clone()).unwrap_or_default(),
            ),
        };
        let replaced;
        let fb: &Vec<Feedback> = match unfit {
            None => fb,
            Some((lo, hi)) => {
                replaced = vec![Feedback::error(
                    &m.judge_name,
                    &m.judge_name,
                    format!(
                        "pass_threshold {} does not fit judge {:?}'s scores from {lo} to {hi}; give the monitor one above {lo} and at most {hi}",
                        m.pass_threshold, m.judge_name
                    ),
                )];
                &replaced
            }
        };
        let (at, at_ms) = clock::now_both();
        state
            .store
            .finish_monitor_result(
                &m.id,
                id,
                status,
                Some(&value.to_string()),
                Some(&json!(fb).to_string()),
                (&at, at_ms),
            )
            .await?;
    }
    Ok(ids.len())
}

/// Judges new traces for every switched-on monitor of the projects served here, and checks
/// their alerts, until `stop`.
pub async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut cache: HashMap<String, Built> = HashMap::new();
    let mut idle_checked: HashMap<String, std::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let monitors = match state.store.enabled_monitors().await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "listing monitors failed");
                continue;
            }
        };
        cache.retain(|id, _| monitors.iter().any(|m| &m.id == id));
        idle_checked.retain(|id, _| monitors.iter().any(|m| &m.id == id));
        for m in monitors
            .iter()
            .filter(|m| state.projects.contains_key(&m.project))
        {
            match round(&state, m, &mut cache).await {
                Ok(n) if n > 0 => check_alerts(&state, m, true).await,
                // Without traffic, time windows are looked at once a second.
                Ok(_) => {
                    let due = idle_checked
                        .get(&m.id)
                        .is_none_or(|t| t.elapsed() >= IDLE_ALERT_CHECK);
                    if due {
                        idle_checked.insert(m.id.clone(), std::time::Instant::now());
                        check_alerts(&state, m, false).await;
                    }
                }
                Err(e) => {
                    tracing::error!(monitor = %m.id, error = %e.message, "a monitoring round failed")
                }
            }
        }
    }
}

/// The monitoring routes for the OpenAPI description.
pub fn openapi_paths() -> serde_json::Map<String, Value> {
    let err = json!({"$ref": "#/components/responses/Error"});
    let id = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "integer"}});
    let filter = json!({"type": "object", "properties": {
        "source": {"enum": ["gate", "otlp"]}, "decision": {"enum": ["allow", "escalate", "block"]},
        "rule": {"type": "string"}, "q": {"type": "string"}}});
    let answers = |ok: &str, codes: &[u16]| {
        let mut r = serde_json::Map::new();
        r.insert(
            ok.split(' ').next().unwrap_or("200").to_owned(),
            json!({"description": ok, "content": {"application/json": {}}}),
        );
        for c in [400, 401, 403].iter().chain(codes) {
            r.insert(c.to_string(), err.clone());
        }
        Value::Object(r)
    };
    let doc = json!({
        "/api/v1/monitors": {
            "get": {"summary": "The project's monitors (a stored judge version switched on for incoming traces) with their alerts: {monitors: [{id, judge, version, sample_rate, filter, pass_threshold, enabled, since, alerts}]}", "responses": answers("200 monitors", &[])},
            "post": {"summary": "Switch a stored judge version (latest by default) on for incoming gate and OTLP traces (role: admin). sample_rate 0..1 picks traces by a hash of their id; filter is the trace list's; a numeric value at or above pass_threshold passes (default 0.5; a judge scoring on another range than 0..1, such as int 1..5, must be given one inside it), true passes, strings pass when yes/pass/safe/correct/...; 409 when the judge already has a switched-on monitor",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["judge"], "properties": {
                    "judge": {"type": "string"}, "version": {"type": "integer"}, "sample_rate": {"type": "number", "minimum": 0, "maximum": 1},
                    "filter": filter.clone(), "pass_threshold": {"type": "number"}, "enabled": {"type": "boolean"}}}}}},
                "responses": answers("201 the monitor", &[404, 409])}
        },
        "/api/v1/monitors/{id}": {
            "patch": {"summary": "Switch a monitor on or off, or change its version, sample rate, filter or threshold (role: admin)", "parameters": [id("id")],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "enabled": {"type": "boolean"}, "version": {"type": "integer"}, "sample_rate": {"type": "number"}, "filter": filter, "pass_threshold": {"type": "number"}}}}}},
                "responses": answers("200 the monitor", &[404, 409])}
        },
        "/api/v1/monitors/{id}/results": {
            "get": {"summary": "A monitor's results: {totals: {judged, pass, fail, error, pass_rate, error_rate}, windows: [{start, pass, fail, error, pass_rate}], latest: [{trace_id, status, value, rationale, error, trace_decision, judge_version, judge_hash, at}]} over the last `window` seconds (default 3600) in buckets of `bucket` seconds",
                "parameters": [id("id"), query("window"), query("bucket"), query("limit")], "responses": answers("200 results", &[404])}
        },
        "/api/v1/monitors/{id}/alerts": {
            "get": {"summary": "A monitor's alert rules, whether each is firing, and their latest webhook deliveries (status, attempts, last_status)", "parameters": [id("id")], "responses": answers("200 alerts", &[404])},
            "post": {"summary": "Add an alert rule (role: admin): failure_rate or error_rate above threshold over the last last_n results or minutes, or block (any block decision, of `rule` if given, within the window). Changes of state post {event: firing|resolved, project, alert, monitor, observed, results, at} to webhook_url, signed in X-Tribunal-Signature: sha256=HMAC-SHA256(secret, body) hex, retried with backoff; the secret (given, or made) is answered once",
                "parameters": [id("id")],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["kind", "webhook_url"], "properties": {
                    "kind": {"enum": ["failure_rate", "error_rate", "block"]}, "threshold": {"type": "number"}, "last_n": {"type": "integer"},
                    "minutes": {"type": "integer"}, "rule": {"type": "string"}, "webhook_url": {"type": "string"}, "secret": {"type": "string", "minLength": 16}}}}}},
                "responses": answers("201 the alert with its secret", &[404])}
        },
        "/api/v1/monitors/{id}/alerts/{alert}": {
            "delete": {"summary": "Remove an alert rule (role: admin)", "parameters": [id("id"), id("alert")], "responses": answers("204 removed", &[404])}
        }
    });
    match doc {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test cases 2 and 6 (a key longer than the block).
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn sampling_is_stable_and_near_the_rate() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("trace-{i}")).collect();
        for rate in [0.1, 0.5, 0.9] {
            let n = ids.iter().filter(|id| sampled(id, rate)).count() as f64;
            assert!((n / 10_000.0 - rate).abs() < 0.03, "rate {rate}: {n}");
        }
        assert!(ids.iter().all(|id| sampled(id, 1.0)));
        assert!(!ids.iter().any(|id| sampled(id, 0.0)));
        // A trace in a sample is in every larger one.
        assert!(ids
            .iter()
            .filter(|id| sampled(id, 0.3))
            .all(|id| sampled(id, 0.6)));
    }

    #[test]
    fn outcomes_of_values() {
        let f = |v: Value| vec![Feedback::code("j", "j", v)];
        assert_eq!(outcome(&f(json!(true)), 0.5).0, "pass");
        assert_eq!(outcome(&f(json!(false)), 0.5).0, "fail");
        assert_eq!(outcome(&f(json!(0.7)), 0.5).0, "pass");
        assert_eq!(outcome(&f(json!(0.2)), 0.5).0, "fail");
        assert_eq!(outcome(&f(json!(3)), 4.0).0, "fail");
        assert_eq!(outcome(&f(json!("Yes")), 0.5).0, "pass");
        assert_eq!(outcome(&f(json!("unsafe")), 0.5).0, "fail");
        assert_eq!(outcome(&f(json!({"a": 1})), 0.5).0, "error");
        assert_eq!(outcome(&[], 0.5).0, "error");
        assert_eq!(
            outcome(&[Feedback::error("j", "j", "model down")], 0.5).0,
            "error"
        );
    }

    fn row(status: &str, decision: &str, rules: &[&str]) -> MonitorResultRow {
        MonitorResultRow {
            monitor_id: "m".into(),
            trace_id: "t".into(),
            status: status.into(),
            trace_decision: Some(decision.into()),
            rules: json!(rules).to_string(),
            judge_version: 1,
            judge_hash: "h".into(),
            value: None,
            feedback: None,
            claimed_by: "s".into(),
            at: String::new(),
            at_ms: 0,
        }
    }

    fn alert(kind: &str, threshold: f64, last_n: Option<i64>, rule: Option<&str>) -> AlertRow {
        AlertRow {
            id: "a".into(),
            monitor_id: "m".into(),
            project: "p".into(),
            kind: kind.into(),
            threshold,
            last_n,
            minutes: None,
            rule: rule.map(str::to_owned),
            webhook_url: "http://x".into(),
            secret: "s".into(),
            firing: false,
            created_at: String::new(),
        }
    }

    #[test]
    fn alert_conditions() {
        let recent = vec![
            row("fail", "allow", &[]),
            row("pass", "block", &["c6.dangerous_command"]),
            row("error", "allow", &[]),
            row("fail", "allow", &[]),
        ];
        // Newest first: the last 2 are one fail and one pass.
        assert_eq!(
            evaluate(&alert("failure_rate", 0.5, Some(2), None), &recent),
            (false, 0.5)
        );
        assert_eq!(
            evaluate(&alert("failure_rate", 0.4, Some(2), None), &recent),
            (true, 0.5)
        );
        assert_eq!(
            evaluate(&alert("error_rate", 0.2, None, None), &recent),
            (true, 0.25)
        );
        assert!(
            evaluate(
                &alert("block", 0.0, None, Some("c6.dangerous_command")),
                &recent
            )
            .0
        );
        assert!(!evaluate(&alert("block", 0.0, None, Some("c1.other")), &recent).0);
        assert!(!evaluate(&alert("block", 0.0, Some(1), None), &recent).0);
        assert_eq!(
            evaluate(&alert("failure_rate", 0.0, Some(5), None), &[]),
            (false, 0.0)
        );
    }
}

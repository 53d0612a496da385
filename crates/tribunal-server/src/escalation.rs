//! The review queue. An `escalate` decision becomes a pending item; the agent may wait for
//! the human decision up to `wait_ms` (or poll `GET /api/v1/escalations/{id}` later).
//! Reviewers approve or deny; an item not decided by its deadline expires and the configured
//! default applies. New items per project are rate-limited so reviewers are not flooded:
//! past the limit the escalation is not queued and the default applies at once; the gate
//! logs and counts that default as the decision, marked `rate_limited`.

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tribunal_core::{Decision, Pending, Trace};
use tribunal_store::{clock, EscalationRow};

#[derive(Debug, Clone)]
pub struct ReviewSettings {
    /// How long an item waits for a reviewer.
    pub deadline: Duration,
    /// What applies when no reviewer decided in time, or the queue is full: `block` or
    /// `allow`.
    pub default: Decision,
    /// New items per project per minute.
    pub per_minute: u32,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        ReviewSettings {
            deadline: Duration::from_secs(15 * 60),
            default: Decision::Block,
            per_minute: 30,
        }
    }
}

/// Rate limits and the agents waiting for a decision.
pub struct Queue {
    settings: ReviewSettings,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    waiters: Mutex<HashMap<String, watch::Sender<Option<String>>>>,
    /// Set when the server shuts down: agents stop waiting for reviews.
    closing: watch::Sender<bool>,
}

impl Queue {
    pub fn new(settings: ReviewSettings) -> Queue {
        Queue {
            settings,
            buckets: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            closing: watch::channel(false).0,
        }
    }

    /// Ends every wait for a review at once (the server is shutting down): each waiting
    /// agent is answered with its escalation as it stands, as when its wait runs out, and
    /// its trace is stored; later calls do not wait.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Takes one token from the project's bucket (capacity and refill: `per_minute`).
    fn admit(&self, project: &str) -> bool {
        let cap = f64::from(self.settings.per_minute);
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = b.entry(project.to_owned()).or_insert((cap, Instant::now()));
        *tokens = (*tokens + at.elapsed().as_secs_f64() * cap / 60.0).min(cap);
        *at = Instant::now();
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The decision that applies at once when `project`'s bucket is empty (the escalation is
    /// then not queued); `None` when a new item may be queued, which takes a token.
    pub fn rate_limited(&self, project: &str) -> Option<Decision> {
        (!self.admit(project)).then_some(self.settings.default)
    }

    fn subscribe(&self, id: &str) -> watch::Receiver<Option<String>> {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        w.entry(id.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    fn settle(&self, id: &str, status: &str) {
        let w = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(tx) = w {
            let _ = tx.send(Some(status.to_owned()));
        }
    }

    /// Wakes the agent waiting here for `id`, if any, to read its stored status: another
    /// server on the same store settled it.
    pub fn wake(&self, id: &str) {
        self.settle(id, "settled elsewhere");
    }

    fn forget(&self, id: &str) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// How often an agent waiting on a shared store reads its item's status, in case the
/// message from the server that settled it was lost.
const POLL: Duration = Duration::from_millis(500);

/// The decision an item's status stands for.
fn outcome(status: &str, default: Decision) -> Option<Decision> {
    match status {
        "approved" => Some(Decision::Allow),
        "denied" => Some(Decision::Block),
        "expired" => Some(default),
        _ => None,
    }
}

/// An escalation past the queue's rate limit ([`Queue::rate_limited`]): not queued, and
/// `default` is the decision. Rewrites `out` to say so.
pub fn not_queued(state: &AppState, project: &str, out: &mut Value, default: Decision) {
    state
        .metrics
        .escalations
        .add(&[("project", project), ("outcome", "rate_limited")], 1);
    out["escalation"] =
        json!({"status": "not_queued", "reason": "the review queue's rate limit was reached"});
    out["decision"] = json!(default);
    push_reason(
        out,
        format!("review queue rate limit reached; default decision {default:?} applies")
            .to_lowercase(),
    );
}

/// Queues the escalation (admitted by [`Queue::rate_limited`]), then waits up to `wait` for
/// a reviewer. Rewrites `out.decision` when the matter is settled.
pub async fn on_escalate(
    state: &Arc<AppState>,
    caller: &Caller,
    decision_seq: i64,
    trace: &Trace,
    pending: Option<&Pending>,
    out: &mut Value,
    wait: Duration,
) -> Result<(), ApiError> {
    let q = &state.reviews;
    let default = q.settings.default;
    let id = crate::auth::random_id("esc_");
    let now = clock::now_ms();
    let row = EscalationRow {
        id: id.clone(),
        project: caller.project.clone(),
        created_at: clock::now_rfc3339(),
        deadline_ms: now + q.settings.deadline.as_millis() as i64,
        status: "pending".into(),
        decision_seq,
        summary: json!({
            "trace_id": trace.id,
            "pending": pending,
            "reasons": out["reasons"],
            "violations": out["violations"],
            "evidence": out["evidence"],
            "context": out.get("context"),
            // The agent of the token that raised it: the one agent token bound to an agent
            // that may poll it.
            "agent": caller.agent,
        })
        .to_string(),
        reviewer: None,
        note: None,
        decided_at: None,
    };
    let mut rx = q.subscribe(&id);
    if let Err(e) = state.store.insert_escalation(&row).await {
        q.forget(&id);
        return Err(e.into());
    }
    state
        .metrics
        .escalations
        .add(&[("project", &caller.project), ("outcome", "queued")], 1);
    out["escalation"] = json!({
        "id": id,
        "status": "pending",
        "deadline_ms": row.deadline_ms,
        "poll": format!("/api/v1/escalations/{id}"),
    });
    if wait.is_zero() {
        q.forget(&id);
        return Ok(());
    }
    let whole = wait >= q.settings.deadline;
    let wait = wait.min(q.settings.deadline);
    let mut settled = wait_settled(state, &caller.project, &id, &mut rx, wait).await;
    q.forget(&id);
    // At shutdown the agent is answered with the escalation as it stands: the default is
    // not applied early, and the expiry of another server (or of this one after a
    // restart) settles it at its deadline.
    if settled.is_none() && whole && !*q.closing.borrow() {
        // The agent waited out the whole deadline: the default applies now, in this answer,
        // rather than at the next round of the expiry task.
        let left = row.deadline_ms - clock::now_ms();
        if left > 0 {
            tokio::time::sleep(Duration::from_millis(left as u64)).await;
        }
        if let Err(e) = expire(state, &row).await {
            tracing::warn!(error = %e.message, escalation = %id, "expiring a waited-out escalation failed");
        }
        settled = match state.store.get_escalation(&caller.project, &id).await {
            Ok(Some(r)) if r.status != "pending" => Some(r.status),
            _ => None,
        };
    }
    if let Some(status) = settled {
        if let Some(d) = outcome(&status, default) {
            out["escalation"]["status"] = json!(status);
            out["decision"] = json!(d);
            push_reason(out, format!("escalation {id} {status}"));
        }
    }
    Ok(())
}

/// Waits up to `wait` for item `id` to be settled and returns its stored status, or `None`
/// when it is still pending (or the store could not say: the decision is already logged, so
/// the agent gets the escalation to poll rather than an error). Woken when this server (or,
/// through [`crate::peers`], another one) settles it; on a shared store the status is also
/// read every [`POLL`].
async fn wait_settled(
    state: &AppState,
    project: &str,
    id: &str,
    rx: &mut watch::Receiver<Option<String>>,
    wait: Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    let shared = state.store.is_shared();
    let mut listening = true;
    let mut closing = state.reviews.closing.subscribe();
    loop {
        let until = if shared {
            (tokio::time::Instant::now() + POLL).min(deadline)
        } else {
            deadline
        };
        let closed = tokio::select! {
            _ = closing.wait_for(|c| *c) => true,
            _ = async {
                if listening {
                    if let Ok(Err(_)) = tokio::time::timeout_at(until, rx.changed()).await {
                        // Settled here: no more wake-ups will come.
                        listening = false;
                    }
                } else {
                    tokio::time::sleep_until(until).await;
                }
            } => false,
        };
        // The decision the agent gets is the one stored.
        match state.store.get_escalation(project, id).await {
            Ok(Some(row)) if row.status != "pending" => return Some(row.status),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, escalation = id, "reading a waited-for escalation failed")
            }
        }
        if closed || tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

fn push_reason(out: &mut Value, reason: String) {
    if let Some(r) = out["reasons"].as_array_mut() {
        r.push(Value::String(reason));
    }
}

fn view(row: &EscalationRow, default: Decision) -> Value {
    let summary: Value = serde_json::from_str(&row.summary).unwrap_or(Value::Null);
    json!({
        "id": row.id,
        "status": row.status,
        "decision": outcome(&row.status, default),
        "created_at": row.created_at,
        "deadline_ms": row.deadline_ms,
        "decision_id": row.decision_seq,
        "summary": summary,
        "reviewer": row.reviewer,
        "note": row.note,
        "decided_at": row.decided_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let Query(q) =
        q.map_err(|e| ApiError::request(format!("{e}; the filters are status and limit")))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::request(format!(
            "limit: expected 1 to 1000, found {limit}"
        )));
    }
    if let Some(s) = &q.status {
        if !["pending", "approved", "denied", "expired"].contains(&s.as_str()) {
            return Err(ApiError::request(format!(
                "status: expected pending, approved, denied or expired, found {s:?}"
            )));
        }
    }
    let rows = state
        .store
        .list_escalations(&caller.project, q.status.as_deref(), limit)
        .await?;
    let default = state.reviews.settings.default;
    Ok(Json(
        json!({"escalations": rows.iter().map(|r| view(r, default)).collect::<Vec<_>>()}),
    ))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !(crate::auth::allows(&caller.role, Permission::Read)
        || crate::auth::allows(&caller.role, Permission::Gate))
    {
        caller.require(Permission::Read)?;
    }
    let missing = || ApiError::not_found(format!("no escalation {id:?} in this project"));
    let row = state
        .store
        .get_escalation(&caller.project, &id)
        .await?
        .ok_or_else(missing)?;
    let reader = caller.may(Permission::Read);
    if let (false, Some(agent)) = (reader, caller.agent.as_deref()) {
        // A token bound to an agent polls its own agent's escalations; another's is not
        // there for it (nor is it said that one exists).
        let summary: Value = serde_json::from_str(&row.summary).unwrap_or(Value::Null);
        let raised_by = match summary.get("agent") {
            Some(a) => a.as_str().map(str::to_owned),
            // Raised before escalations kept their agent: the escalated trace's owner.
            None => match summary["trace_id"].as_str() {
                Some(trace) => state.store.trace_agent(&caller.project, trace).await?,
                None => None,
            },
        };
        if raised_by.as_deref() != Some(agent) {
            return Err(missing());
        }
    }
    let row = if row.status == "pending" && row.deadline_ms <= clock::now_ms() {
        expire(&state, &row).await?;
        state
            .store
            .get_escalation(&caller.project, &id)
            .await?
            .unwrap_or(row)
    } else {
        row
    };
    let mut v = view(&row, state.reviews.settings.default);
    if !reader {
        // Which token reviewed it is the reviewers' business, not the agent's.
        v["reviewer"] = Value::Null;
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    decision: String,
    note: Option<String>,
}

pub async fn decide(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Review)?;
    let b: DecideBody = crate::body::json(
        &state,
        &headers,
        body,
        64 << 10,
        "{\"decision\": \"approve\"|\"deny\", \"note\"?: string}",
    )
    .await?;
    let status = match b.decision.as_str() {
        "approve" => "approved",
        "deny" => "denied",
        other => {
            return Err(ApiError::request(format!(
                "decision: expected approve or deny, found {other:?}"
            )))
        }
    };
    let row = state
        .store
        .get_escalation(&caller.project, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no escalation {id:?} in this project")))?;
    let now = clock::now_ms();
    if row.status == "pending" && row.deadline_ms <= now {
        expire(&state, &row).await?;
    }
    // The decision stands exactly when its log entry is written: one transaction.
    let entry = state.audit.record(
        &caller.project,
        "review",
        &json!({"escalation": id, "decision_id": row.decision_seq, "status": status,
            "reviewer": caller.token_id, "note": b.note}),
    )?;
    let decided = state
        .store
        .decide_escalation(
            &caller.project,
            &id,
            status,
            Some(&caller.token_id),
            b.note.as_deref(),
            &entry.at,
            crate::audit::logged(&entry),
        )
        .await?;
    if decided.is_none() {
        let current = state
            .store
            .get_escalation(&caller.project, &id)
            .await?
            .map(|r| r.status)
            .unwrap_or_default();
        return Err(ApiError::new(
            Code::Conflict,
            format!("escalation {id} is already {current}"),
        ));
    }
    state.reviews.settle(&id, status);
    crate::peers::reviewed(&state, &id).await;
    let row = state
        .store
        .get_escalation(&caller.project, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no escalation {id:?} in this project")))?;
    Ok(Json(view(&row, state.reviews.settings.default)))
}

async fn expire(state: &AppState, row: &EscalationRow) -> Result<(), ApiError> {
    let entry = state.audit.record(
        &row.project,
        "review",
        &json!({"escalation": row.id, "decision_id": row.decision_seq, "status": "expired",
            "applied": state.reviews.settings.default}),
    )?;
    if state
        .store
        .decide_escalation(
            &row.project,
            &row.id,
            "expired",
            None,
            Some("no reviewer decided before the deadline"),
            &entry.at,
            crate::audit::logged(&entry),
        )
        .await?
        .is_some()
    {
        state.reviews.settle(&row.id, "expired");
        crate::peers::reviewed(state, &row.id).await;
    }
    Ok(())
}

/// How often the expiry task lets go of the browser sessions that have ended.
const WEB_SESSION_SWEEP: Duration = Duration::from_secs(60);

/// Expires overdue items twice a second until `stop`; on its first round and then once every
/// [`WEB_SESSION_SWEEP`], also deletes the stored browser sessions that have ended, so they
/// do not pile up when nobody signs in.
pub async fn expire_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut swept: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if swept.is_none_or(|t| t.elapsed() >= WEB_SESSION_SWEEP) {
            swept = Some(Instant::now());
            match state.store.remove_ended_web_sessions(clock::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "ended browser sessions removed"),
                Err(e) => tracing::error!(error = %e, "removing ended browser sessions failed"),
            }
        }
        match state.store.overdue_escalations(clock::now_ms()).await {
            Ok(rows) => {
                for r in rows {
                    if let Err(e) = expire(&state, &r).await {
                        tracing::error!(error = %e.message, "expiring an escalation failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "listing overdue escalations failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_admits_per_minute_then_refuses() {
        let q = Queue::new(ReviewSettings {
            per_minute: 3,
            ..ReviewSettings::default()
        });
        assert!(q.admit("a") && q.admit("a") && q.admit("a"));
        assert!(!q.admit("a"));
        assert_eq!(q.rate_limited("a"), Some(Decision::Block));
        assert!(q.admit("b"), "projects have separate buckets");
    }
}

//! Judges ingested traces: a trace whose spans have been quiet for `score_quiet` is put
//! together from its stored spans, judged by its project's judges and policies, and its
//! result stored. Spans that arrive later mark it for judging again.

use crate::AppState;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tribunal_core::{Trace, Verdict};
use tribunal_store::{clock, Store, StoreError};

/// Puts a stored trace together from its spans.
pub async fn assemble(
    store: &Store,
    project: &str,
    trace_id: &str,
) -> Result<Option<Trace>, StoreError> {
    let spans = store.trace_spans(project, trace_id).await?;
    let mut bodies: Vec<Value> = spans
        .iter()
        .filter_map(|s| serde_json::from_str(&s.body).ok())
        .collect();
    if bodies.is_empty() {
        return Ok(None);
    }
    // Events received as log records join their spans.
    let events: Vec<tribunal_formats::otlp::LogEvent> = store
        .trace_span_events(project, trace_id)
        .await?
        .into_iter()
        .filter_map(|e| {
            Some(tribunal_formats::otlp::LogEvent {
                event: serde_json::from_str(&e.body).ok()?,
                trace_id: e.trace_id,
                span_id: e.span_id,
            })
        })
        .collect();
    tribunal_formats::otlp::attach_events(&mut bodies, &events);
    let doc = tribunal_formats::otlp::assemble(bodies.iter());
    match tribunal_formats::otlp::import_request(&doc) {
        Ok(mut traces) => Ok(traces.pop()),
        Err(e) => {
            tracing::error!(trace = %trace_id, error = %e, "stored spans no longer read as a trace");
            Ok(None)
        }
    }
}

/// The result document stored for a judged trace.
pub fn result_json(trace: &Trace, verdict: &Verdict, policy_version: &str) -> Value {
    json!({
        "trace_id": trace.id,
        "decision": verdict.decision,
        "reasons": verdict.reasons,
        "violations": verdict.violations,
        "feedback": verdict.feedback,
        "policy_version": policy_version,
    })
}

async fn score_one(
    state: &Arc<AppState>,
    project: &str,
    trace_id: &str,
    through_ms: i64,
) -> Result<(), StoreError> {
    let Some(p) = state.projects.get(project) else {
        return Ok(());
    };
    let Some(trace) = assemble(&state.store, project, trace_id).await? else {
        return Ok(());
    };
    let rt = p.runtime();
    let judged = tokio::task::spawn_blocking(move || {
        let trace = std::sync::Arc::new(trace);
        let session = tribunal_engine::Session::new(trace.clone());
        let verdict = session
            .decide_once(rt.evaluator(), Default::default())
            .verdict;
        let doc = result_json(&trace, &verdict, rt.policy_version());
        let untrusted = crate::labels::untrusted_judges(&verdict.feedback);
        (verdict.decision, doc, untrusted)
    })
    .await;
    let (decision, doc, untrusted) = match judged {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(trace = %trace_id, error = %e, "judging an ingested trace failed");
            return Ok(());
        }
    };
    state
        .store
        .set_trace_result(
            project,
            trace_id,
            decision.as_str(),
            &doc.to_string(),
            through_ms,
        )
        .await?;
    state.metrics.traces_scored.add(&[("project", project)], 1);
    if !untrusted.is_empty() {
        crate::labels::collect_untrusted(state, project, trace_id, &untrusted).await;
    }
    Ok(())
}

/// Polls for quiet traces until `stop`.
pub async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let quiet = state.options.score_quiet;
    let tick = (quiet / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let through = clock::now_ms() - quiet.as_millis() as i64;
        let due = match state.store.dirty_traces(through, 64).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "listing traces to judge failed");
                continue;
            }
        };
        for (project, id) in due {
            if let Err(e) = score_one(&state, &project, &id, through).await {
                tracing::error!(trace = %id, error = %e, "storing a trace's result failed");
            }
        }
    }
}

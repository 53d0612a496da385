//! `tribunal replay`: stored traces (from the gate and from OTLP) judged again by a new
//! policy version, compared with the decision they got at the time. A gate trace is judged
//! as the gate judged it: its stored request (a trace grown by appends is stored whole, in
//! the normalized format), with the context the gate used (kept in the stored answer), and
//! compared with the gate's own decision (`escalate` for an escalation, whatever a reviewer,
//! the deadline or the queue's rate limit then made of it).

use serde::Serialize;
use tribunal_core::Decision;
use tribunal_engine::{Ask, Evaluator, Session};
use tribunal_policy::Context;
use tribunal_store::{Store, StoreError, TraceFilter};

/// One trace whose decision would change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub trace_id: String,
    pub source: String,
    pub before: String,
    pub after: Decision,
    /// The new decision's reasons.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub project: String,
    pub policy_version: String,
    pub traces: usize,
    pub unchanged: usize,
    /// Traces that were stored but never judged (or whose data no longer reads).
    pub skipped: usize,
    pub changes: Vec<Change>,
}

impl ReplayReport {
    /// Counts of changes by `before -> after`.
    pub fn transitions(&self) -> Vec<(String, usize)> {
        let mut m: std::collections::BTreeMap<String, usize> = Default::default();
        for c in &self.changes {
            *m.entry(format!("{} -> {}", c.before, c.after)).or_default() += 1;
        }
        m.into_iter().collect()
    }
}

/// What the gate decided of a stored trace and with which context, from its stored answer:
/// `escalate` when it escalated (the stored decision is then what the review made of it).
fn as_decided(row: &tribunal_store::TraceRow) -> Option<(String, Option<Context>)> {
    let stored = row.decision.clone()?;
    let answer: Option<serde_json::Value> = row
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let Some(answer) = answer.filter(|_| row.source != "otlp") else {
        return Some((stored, None));
    };
    let decision = if answer.get("escalation").is_some() {
        Decision::Escalate.as_str().to_owned()
    } else {
        stored
    };
    let context = answer
        .get("context")
        .and_then(|c| serde_json::from_value::<Context>(c.clone()).ok());
    Some((decision, context))
}

/// Judges up to `limit` of the project's most recent traces with `evaluator`.
pub async fn replay(
    store: &Store,
    project: &str,
    evaluator: &std::sync::Arc<Evaluator>,
    limit: i64,
) -> Result<ReplayReport, StoreError> {
    let mut report = ReplayReport {
        project: project.to_owned(),
        policy_version: evaluator.policies().version().to_owned(),
        ..ReplayReport::default()
    };
    let mut offset = 0;
    while (offset as i64) < limit {
        let page = store
            .list_traces(
                project,
                &TraceFilter {
                    limit: (limit - offset as i64).min(500),
                    offset: offset as i64,
                    ..TraceFilter::default()
                },
            )
            .await?;
        if page.is_empty() {
            break;
        }
        offset += page.len();
        for row in &page {
            report.traces += 1;
            let Some((before, context)) = as_decided(row) else {
                report.skipped += 1;
                continue;
            };
            let Some((trace, pending)) = crate::api::stored_trace(store, row).await? else {
                report.skipped += 1;
                continue;
            };
            let ask = Ask {
                pending: pending.map(std::sync::Arc::new),
                context,
                budget: None,
            };
            let v = Session::new(trace).decide_once(evaluator, ask).verdict;
            if v.decision.as_str() == before {
                report.unchanged += 1;
            } else {
                report.changes.push(Change {
                    trace_id: row.trace_id.clone(),
                    source: row.source.clone(),
                    before,
                    after: v.decision,
                    reasons: v.reasons,
                });
            }
        }
    }
    Ok(report)
}

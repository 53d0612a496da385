//! GenAI events received as OpenTelemetry log records, kept until their trace is judged:
//! each names its trace and span, and is joined to the span when the trace is assembled.
//! A record sent twice (an exporter retrying) is kept once.

use crate::{Store, StoreError};
use sqlx::Row;

pub(crate) const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS span_events (
        project TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        event_key TEXT NOT NULL,
        received_at TEXT NOT NULL,
        received_ms BIGINT NOT NULL,
        time_ns BIGINT NOT NULL,
        position BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (project, trace_id, span_id, event_key)
    )"];

/// One received event: its trace and span, and the event as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEventRecord {
    pub trace_id: String,
    pub span_id: String,
    /// The event's identity within its span (a hash of its body), so a resent record
    /// replaces itself.
    pub event_key: String,
    /// When the event happened (Unix nanoseconds; 0 when unknown): events are read in this
    /// order, then in the order received.
    pub time_ns: i64,
    pub body: String,
}

impl Store {
    /// Stores received events and marks their traces for judging again, in one
    /// transaction: when this returns, the events are on disk. Events sent with a token
    /// bound to `agent` claim their traces as spans do (see [`Store::insert_spans`]).
    pub async fn insert_span_events(
        &self,
        (project, agent): (&str, Option<&str>),
        events: &[SpanEventRecord],
        at: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        crate::server::mark_otlp_traces(
            &mut tx,
            project,
            (events.iter().map(|e| e.trace_id.as_str()), agent),
            at,
            at_ms,
        )
        .await?;
        // An event sent twice keeps its first copy (`DO NOTHING`, also within one statement).
        let numbered: Vec<(usize, &SpanEventRecord)> = events.iter().enumerate().collect();
        crate::server::insert_rows(
            &mut tx,
            self.sqlite,
            (
                "INSERT INTO span_events (project, trace_id, span_id, event_key, received_at,
                    received_ms, time_ns, position, body) VALUES ",
                "($, $, $, $, $, $, $, $, $)",
                " ON CONFLICT (project, trace_id, span_id, event_key) DO NOTHING",
            ),
            &numbered,
            |q, (position, e)| {
                q.bind(project)
                    .bind(&e.trace_id)
                    .bind(&e.span_id)
                    .bind(&e.event_key)
                    .bind(at)
                    .bind(at_ms)
                    .bind(e.time_ns)
                    .bind(*position as i64)
                    .bind(&e.body)
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The events of one trace, in the order they were received.
    pub async fn trace_span_events(
        &self,
        project: &str,
        trace_id: &str,
    ) -> Result<Vec<SpanEventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT trace_id, span_id, event_key, time_ns, body FROM span_events
             WHERE project = $1 AND trace_id = $2
             ORDER BY time_ns, received_ms, position",
        )
        .bind(project)
        .bind(trace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SpanEventRecord {
                    trace_id: r.try_get("trace_id")?,
                    span_id: r.try_get("span_id")?,
                    event_key: r.try_get("event_key")?,
                    time_ns: r.try_get("time_ns")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }
}

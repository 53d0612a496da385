//! Live monitoring: a stored judge version switched on for a project's incoming traces
//! (with a sample rate and a trace filter), the result it gave on each trace it judged,
//! alert rules over those results, and each webhook delivery of an alert.
//!
//! Servers sharing one database divide the work by claiming traces: a claim is a row keyed
//! by monitor and trace, written in the same transaction that moves the monitor's cursor,
//! so a trace is judged by one server once.

use crate::server::{filter_clauses, TraceFilter};
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS monitors (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        judge_name TEXT NOT NULL,
        judge_version BIGINT NOT NULL,
        sample_rate DOUBLE PRECISION NOT NULL,
        filter TEXT NOT NULL,
        pass_threshold DOUBLE PRECISION NOT NULL,
        enabled BIGINT NOT NULL,
        since_ms BIGINT NOT NULL,
        cursor_ms BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS monitors_project ON monitors (project, enabled)",
    "CREATE TABLE IF NOT EXISTS monitor_results (
        monitor_id TEXT NOT NULL,
        project TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        status TEXT NOT NULL,
        trace_decision TEXT,
        rules TEXT NOT NULL,
        judge_version BIGINT NOT NULL,
        judge_hash TEXT NOT NULL,
        value TEXT,
        feedback TEXT,
        claimed_by TEXT NOT NULL,
        at TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (monitor_id, trace_id)
    )",
    "CREATE INDEX IF NOT EXISTS monitor_results_time ON monitor_results (monitor_id, at_ms)",
    "CREATE TABLE IF NOT EXISTS alert_rules (
        id TEXT PRIMARY KEY,
        monitor_id TEXT NOT NULL,
        project TEXT NOT NULL,
        kind TEXT NOT NULL,
        threshold DOUBLE PRECISION NOT NULL,
        last_n BIGINT,
        minutes BIGINT,
        rule TEXT,
        webhook_url TEXT NOT NULL,
        secret TEXT NOT NULL,
        firing BIGINT NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS alert_deliveries (
        id TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL,
        project TEXT NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        last_status BIGINT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS alert_deliveries_alert ON alert_deliveries (alert_id, created_at)",
    "CREATE INDEX IF NOT EXISTS monitor_results_open ON monitor_results (monitor_id, status, at_ms)",
];

/// A judge version switched on for incoming traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorRow {
    pub id: String,
    pub project: String,
    pub judge_name: String,
    pub judge_version: i64,
    /// 0..=1: the share of matching traces judged (chosen by a hash of the trace id).
    pub sample_rate: f64,
    /// The trace filter as JSON: `{source, decision, rule, q}`, each optional.
    pub filter: String,
    /// A numeric value at or above it passes.
    pub pass_threshold: f64,
    pub enabled: bool,
    /// Traces last seen before this time (ms) are not judged: the monitor watches what
    /// arrives after it was switched on.
    pub since_ms: i64,
    /// The latest `last_seen_ms` among the traces claimed so far.
    pub cursor_ms: i64,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
}

/// A monitor's result on one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorResultRow {
    pub monitor_id: String,
    pub trace_id: String,
    /// `claimed` (being judged), `pass`, `fail`, `error` or `skipped` (not in the sample).
    pub status: String,
    /// The trace's own decision when it was claimed.
    pub trace_decision: Option<String>,
    /// The rules the trace's decision cites, as a JSON array.
    pub rules: String,
    pub judge_version: i64,
    pub judge_hash: String,
    /// The judge's value as JSON.
    pub value: Option<String>,
    /// The judge's feedback as JSON.
    pub feedback: Option<String>,
    pub claimed_by: String,
    pub at: String,
    pub at_ms: i64,
}

/// A trace a monitor claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub trace_id: String,
    /// Whether it is in the sample (a trace outside is recorded as `skipped`).
    pub sampled: bool,
}

/// Counts of one time bucket of a monitor's results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResultBucket {
    /// The bucket's start (ms since the epoch).
    pub start_ms: i64,
    pub pass: i64,
    pub fail: i64,
    pub error: i64,
}

/// An alert rule on a monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub id: String,
    pub monitor_id: String,
    pub project: String,
    /// `failure_rate`, `error_rate` or `block`.
    pub kind: String,
    pub threshold: f64,
    pub last_n: Option<i64>,
    pub minutes: Option<i64>,
    /// For `block`: the rule whose block decisions fire it (any rule when `None`).
    pub rule: Option<String>,
    pub webhook_url: String,
    #[serde(skip_serializing)]
    pub secret: String,
    pub firing: bool,
    pub created_at: String,
}

/// One webhook delivery of an alert's change of state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRow {
    pub id: String,
    pub alert_id: String,
    pub project: String,
    /// `firing` or `resolved`.
    pub event: String,
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// The receiver's last HTTP status.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const MONITOR_COLUMNS: &str = "id, project, judge_name, judge_version, sample_rate, filter,
    pass_threshold, enabled, since_ms, cursor_ms, created_at, created_by, updated_at";

fn monitor(r: &AnyRow) -> Result<MonitorRow, StoreError> {
    let enabled: i64 = r.try_get("enabled")?;
    Ok(MonitorRow {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        judge_name: r.try_get("judge_name")?,
        judge_version: r.try_get("judge_version")?,
        sample_rate: r.try_get("sample_rate")?,
        filter: r.try_get("filter")?,
        pass_threshold: r.try_get("pass_threshold")?,
        enabled: enabled != 0,
        since_ms: r.try_get("since_ms")?,
        cursor_ms: r.try_get("cursor_ms")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const RESULT_COLUMNS: &str = "monitor_id, trace_id, status, trace_decision, rules, judge_version,
    judge_hash, value, feedback, claimed_by, at, at_ms";

fn result(r: &AnyRow) -> Result<MonitorResultRow, StoreError> {
    Ok(MonitorResultRow {
        monitor_id: r.try_get("monitor_id")?,
        trace_id: r.try_get("trace_id")?,
        status: r.try_get("status")?,
        trace_decision: r.try_get("trace_decision")?,
        rules: r.try_get("rules")?,
        judge_version: r.try_get("judge_version")?,
        judge_hash: r.try_get("judge_hash")?,
        value: r.try_get("value")?,
        feedback: r.try_get("feedback")?,
        claimed_by: r.try_get("claimed_by")?,
        at: r.try_get("at")?,
        at_ms: r.try_get("at_ms")?,
    })
}

const ALERT_COLUMNS: &str = "id, monitor_id, project, kind, threshold, last_n, minutes, rule,
    webhook_url, secret, firing, created_at";

fn alert(r: &AnyRow) -> Result<AlertRow, StoreError> {
    let firing: i64 = r.try_get("firing")?;
    Ok(AlertRow {
        id: r.try_get("id")?,
        monitor_id: r.try_get("monitor_id")?,
        project: r.try_get("project")?,
        kind: r.try_get("kind")?,
        threshold: r.try_get("threshold")?,
        last_n: r.try_get("last_n")?,
        minutes: r.try_get("minutes")?,
        rule: r.try_get("rule")?,
        webhook_url: r.try_get("webhook_url")?,
        secret: r.try_get("secret")?,
        firing: firing != 0,
        created_at: r.try_get("created_at")?,
    })
}

const DELIVERY_COLUMNS: &str = "id, alert_id, project, event, payload, status, attempts,
    last_status, last_error, created_at, updated_at";

fn delivery(r: &AnyRow) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        alert_id: r.try_get("alert_id")?,
        project: r.try_get("project")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What a claim writes for each trace, besides its id.
pub struct ClaimContext<'a> {
    /// This server.
    pub instance: &'a str,
    pub at: &'a str,
    pub at_ms: i64,
    /// The judge version's hash.
    pub judge_hash: &'a str,
    /// Traces last seen this long before the cursor are still looked at (rows committed
    /// late by another writer).
    pub grace_ms: i64,
    pub limit: i64,
}

impl Store {
    pub async fn insert_monitor(&self, m: &MonitorRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO monitors ({MONITOR_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )))
        .bind(&m.id)
        .bind(&m.project)
        .bind(&m.judge_name)
        .bind(m.judge_version)
        .bind(m.sample_rate)
        .bind(&m.filter)
        .bind(m.pass_threshold)
        .bind(i64::from(m.enabled))
        .bind(m.since_ms)
        .bind(m.cursor_ms)
        .bind(&m.created_at)
        .bind(&m.created_by)
        .bind(&m.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rewrites a monitor's settings (not its cursor, which only claims move).
    pub async fn update_monitor(&self, m: &MonitorRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE monitors SET judge_version = $3, sample_rate = $4, filter = $5,
                pass_threshold = $6, enabled = $7, since_ms = $8, updated_at = $9
             WHERE project = $1 AND id = $2",
        )
        .bind(&m.project)
        .bind(&m.id)
        .bind(m.judge_version)
        .bind(m.sample_rate)
        .bind(&m.filter)
        .bind(m.pass_threshold)
        .bind(i64::from(m.enabled))
        .bind(m.since_ms)
        .bind(&m.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn monitor(&self, project: &str, id: &str) -> Result<Option<MonitorRow>, StoreError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MONITOR_COLUMNS} FROM monitors WHERE project = $1 AND id = $2"
        )))
        .bind(project)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(monitor).transpose()
    }

    /// A project's monitors, oldest first.
    pub async fn monitors(&self, project: &str) -> Result<Vec<MonitorRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MONITOR_COLUMNS} FROM monitors WHERE project = $1 ORDER BY created_at, id"
        )))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(monitor).collect()
    }

    /// Every switched-on monitor of every project.
    pub async fn enabled_monitors(&self) -> Result<Vec<MonitorRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MONITOR_COLUMNS} FROM monitors WHERE enabled = 1 ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(monitor).collect()
    }

    /// Claims up to `ctx.limit` judged traces of the monitor's project that match `filter`,
    /// were last seen after the monitor was switched on (and not long before its cursor),
    /// and that no server has claimed for it yet; `sample` says which are judged. The
    /// claims and the moved cursor are written in one transaction that first locks the
    /// monitor's row, so two servers never claim the same trace.
    pub async fn claim_monitor_traces(
        &self,
        m: &MonitorRow,
        filter: &TraceFilter,
        ctx: &ClaimContext<'_>,
        sample: impl Fn(&str) -> bool,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut tx = self.begin_write().await?;
        // Takes the row lock (PostgreSQL) or the write lock (SQLite) before reading.
        let locked =
            sqlx::query("UPDATE monitors SET cursor_ms = cursor_ms WHERE id = $1 AND enabled = 1")
                .bind(&m.id)
                .execute(&mut *tx)
                .await?;
        if locked.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let cursor: i64 = sqlx::query("SELECT cursor_ms FROM monitors WHERE id = $1")
            .bind(&m.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("cursor_ms")?;
        let mut sql = String::from(
            "SELECT trace_id, last_seen_ms, decision, result FROM traces t
             WHERE project = $1 AND dirty = 0 AND decision IS NOT NULL
               AND last_seen_ms >= $2 AND last_seen_ms >= $3
               AND NOT EXISTS (SELECT 1 FROM monitor_results r
                               WHERE r.monitor_id = $4 AND r.trace_id = t.trace_id)",
        );
        let mut n = 4;
        let mut binds = Vec::new();
        filter_clauses(filter, &mut sql, &mut n, &mut binds);
        sql.push_str(&format!(
            " ORDER BY last_seen_ms, trace_id LIMIT ${}",
            n + 1
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&m.project)
            .bind(m.since_ms)
            .bind(cursor.saturating_sub(ctx.grace_ms))
            .bind(&m.id);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind(ctx.limit).fetch_all(&mut *tx).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut newest = cursor;
        for r in &rows {
            let trace_id: String = r.try_get("trace_id")?;
            let seen: i64 = r.try_get("last_seen_ms")?;
            let decision: Option<String> = r.try_get("decision")?;
            let result: Option<String> = r.try_get("result")?;
            newest = newest.max(seen);
            let sampled = sample(&trace_id);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO monitor_results ({RESULT_COLUMNS}, project)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8, $9, $10, $11)"
            )))
            .bind(&m.id)
            .bind(&trace_id)
            .bind(if sampled { "claimed" } else { "skipped" })
            .bind(decision)
            .bind(cited_rules(result.as_deref()))
            .bind(m.judge_version)
            .bind(ctx.judge_hash)
            .bind(ctx.instance)
            .bind(ctx.at)
            .bind(ctx.at_ms)
            .bind(&m.project)
            .execute(&mut *tx)
            .await?;
            claimed.push(Claimed { trace_id, sampled });
        }
        sqlx::query("UPDATE monitors SET cursor_ms = $2 WHERE id = $1")
            .bind(&m.id)
            .bind(newest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Takes over up to `ctx.limit` claims of the monitor that are still unfinished and were
    /// made before `before_ms` (their server stopped or died while judging), so every claimed
    /// trace is judged in the end. Locks the monitor's row first, as claims do, so two servers
    /// never take over the same claim.
    pub async fn reclaim_stale_monitor_claims(
        &self,
        monitor_id: &str,
        before_ms: i64,
        ctx: &ClaimContext<'_>,
    ) -> Result<Vec<String>, StoreError> {
        // Looked for without a lock first: almost always there are none.
        let any = sqlx::query(
            "SELECT trace_id FROM monitor_results
             WHERE monitor_id = $1 AND status = 'claimed' AND at_ms < $2 LIMIT 1",
        )
        .bind(monitor_id)
        .bind(before_ms)
        .fetch_optional(&self.pool)
        .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let locked =
            sqlx::query("UPDATE monitors SET cursor_ms = cursor_ms WHERE id = $1 AND enabled = 1")
                .bind(monitor_id)
                .execute(&mut *tx)
                .await?;
        if locked.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT trace_id FROM monitor_results
             WHERE monitor_id = $1 AND status = 'claimed' AND at_ms < $2
             ORDER BY at_ms, trace_id LIMIT $3",
        )
        .bind(monitor_id)
        .bind(before_ms)
        .bind(ctx.limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut taken = Vec::with_capacity(rows.len());
        for r in &rows {
            let trace_id: String = r.try_get("trace_id")?;
            sqlx::query(
                "UPDATE monitor_results SET claimed_by = $3, at = $4, at_ms = $5, judge_hash = $6
                 WHERE monitor_id = $1 AND trace_id = $2 AND status = 'claimed'",
            )
            .bind(monitor_id)
            .bind(&trace_id)
            .bind(ctx.instance)
            .bind(ctx.at)
            .bind(ctx.at_ms)
            .bind(ctx.judge_hash)
            .execute(&mut *tx)
            .await?;
            taken.push(trace_id);
        }
        tx.commit().await?;
        Ok(taken)
    }

    /// Records the judge's result on a claimed trace, judged at `(at, at_ms)`.
    pub async fn finish_monitor_result(
        &self,
        monitor_id: &str,
        trace_id: &str,
        status: &str,
        value: Option<&str>,
        feedback: Option<&str>,
        (at, at_ms): (&str, i64),
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE monitor_results SET status = $3, value = $4, feedback = $5, at = $6, at_ms = $7
             WHERE monitor_id = $1 AND trace_id = $2",
        )
        .bind(monitor_id)
        .bind(trace_id)
        .bind(status)
        .bind(value)
        .bind(feedback)
        .bind(at)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest judged results (pass, fail or error) of a monitor, newest first.
    pub async fn latest_monitor_results(
        &self,
        monitor_id: &str,
        limit: i64,
    ) -> Result<Vec<MonitorResultRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RESULT_COLUMNS} FROM monitor_results
             WHERE monitor_id = $1 AND status IN ('pass', 'fail', 'error')
             ORDER BY at_ms DESC, trace_id LIMIT $2"
        )))
        .bind(monitor_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(result).collect()
    }

    /// Judged results of a monitor at or after `since_ms`, newest first, at most `limit`.
    pub async fn monitor_results_since(
        &self,
        monitor_id: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<MonitorResultRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RESULT_COLUMNS} FROM monitor_results
             WHERE monitor_id = $1 AND status IN ('pass', 'fail', 'error') AND at_ms >= $2
             ORDER BY at_ms DESC, trace_id LIMIT $3"
        )))
        .bind(monitor_id)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(result).collect()
    }

    /// Every monitor's result on one trace.
    pub async fn trace_monitor_results(
        &self,
        project: &str,
        trace_id: &str,
    ) -> Result<Vec<MonitorResultRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RESULT_COLUMNS} FROM monitor_results
             WHERE project = $1 AND trace_id = $2 AND status IN ('pass', 'fail', 'error')
             ORDER BY at_ms"
        )))
        .bind(project)
        .bind(trace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(result).collect()
    }

    /// A monitor's judged results at or after `since_ms`, counted per `bucket_ms`.
    pub async fn monitor_buckets(
        &self,
        monitor_id: &str,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<ResultBucket>, StoreError> {
        let rows = sqlx::query(
            "SELECT (at_ms / $3) * $3 AS start_ms,
                    SUM(CASE WHEN status = 'pass' THEN 1 ELSE 0 END) AS pass,
                    SUM(CASE WHEN status = 'fail' THEN 1 ELSE 0 END) AS fail,
                    SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS error
             FROM monitor_results
             WHERE monitor_id = $1 AND at_ms >= $2 AND status IN ('pass', 'fail', 'error')
             GROUP BY (at_ms / $3) * $3 ORDER BY start_ms",
        )
        .bind(monitor_id)
        .bind(since_ms)
        .bind(bucket_ms.max(1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ResultBucket {
                    start_ms: r.try_get("start_ms")?,
                    pass: r.try_get("pass")?,
                    fail: r.try_get("fail")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    pub async fn insert_alert(&self, a: &AlertRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO alert_rules ({ALERT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )))
        .bind(&a.id)
        .bind(&a.monitor_id)
        .bind(&a.project)
        .bind(&a.kind)
        .bind(a.threshold)
        .bind(a.last_n)
        .bind(a.minutes)
        .bind(a.rule.clone())
        .bind(&a.webhook_url)
        .bind(&a.secret)
        .bind(i64::from(a.firing))
        .bind(&a.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn monitor_alerts(&self, monitor_id: &str) -> Result<Vec<AlertRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alert_rules WHERE monitor_id = $1 ORDER BY created_at, id"
        )))
        .bind(monitor_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert).collect()
    }

    pub async fn delete_alert(
        &self,
        project: &str,
        monitor_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM alert_rules WHERE project = $1 AND monitor_id = $2 AND id = $3",
        )
        .bind(project)
        .bind(monitor_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves an alert to `firing` (or out of it); `true` when this call changed it, so one
    /// server alone sends the notification of a change.
    pub async fn set_alert_firing(&self, id: &str, firing: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE alert_rules SET firing = $2 WHERE id = $1 AND firing = $3")
            .bind(id)
            .bind(i64::from(firing))
            .bind(i64::from(!firing))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_delivery(&self, d: &DeliveryRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO alert_deliveries ({DELIVERY_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(&d.id)
        .bind(&d.alert_id)
        .bind(&d.project)
        .bind(&d.event)
        .bind(&d.payload)
        .bind(&d.status)
        .bind(d.attempts)
        .bind(d.last_status)
        .bind(d.last_error.clone())
        .bind(&d.created_at)
        .bind(&d.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records an attempt at a delivery.
    pub async fn update_delivery(
        &self,
        id: &str,
        status: &str,
        attempts: i64,
        last_status: Option<i64>,
        last_error: Option<&str>,
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_deliveries SET status = $2, attempts = $3, last_status = $4,
                last_error = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(attempts)
        .bind(last_status)
        .bind(last_error)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An alert's deliveries, newest first.
    pub async fn alert_deliveries(
        &self,
        alert_id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE alert_id = $1
             ORDER BY created_at DESC, id LIMIT $2"
        )))
        .bind(alert_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }
}

/// The rules a stored trace result cites (its violations'), as a JSON array.
fn cited_rules(result: Option<&str>) -> String {
    let mut rules: Vec<String> = result
        .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        .and_then(|v| v.get("violations").and_then(|v| v.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.get("rule").and_then(|r| r.as_str()).map(str::to_owned))
        .collect();
    rules.sort();
    rules.dedup();
    serde_json::Value::from(rules).to_string()
}

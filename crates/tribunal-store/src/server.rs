//! What the server keeps: API tokens (hashed), received spans and the traces they make up,
//! the hash-chained decision log, the review queue and human feedback. Same portable SQL as
//! the rest of the store; every row belongs to a project.

use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;

pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS api_tokens (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )",
    "CREATE TABLE IF NOT EXISTS spans (
        project TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (project, trace_id, span_id)
    )",
    "CREATE TABLE IF NOT EXISTS traces (
        project TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        source TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        last_seen_ms BIGINT NOT NULL,
        span_count BIGINT NOT NULL DEFAULT 0,
        dirty BIGINT NOT NULL DEFAULT 1,
        decision TEXT,
        result TEXT,
        body TEXT,
        agent TEXT,
        gate_digest TEXT,
        PRIMARY KEY (project, trace_id)
    )",
    // Where each trace the gate holds stands, for servers that share the store: the digest
    // of the inputs that built its last logged decision (see `HeadGuard`).
    "CREATE TABLE IF NOT EXISTS gate_heads (
        project TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (project, trace_id)
    )",
    "CREATE INDEX IF NOT EXISTS traces_dirty ON traces (dirty, last_seen_ms)",
    // The trace list: newest first, all of a project or one decision of it.
    "CREATE INDEX IF NOT EXISTS traces_recent ON traces (project, last_seen, trace_id)",
    "CREATE INDEX IF NOT EXISTS traces_by_decision ON traces (project, decision, last_seen, trace_id)",
    "CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY,
        at TEXT NOT NULL,
        project TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS audit_head (
        id BIGINT PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS escalations (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        created_at TEXT NOT NULL,
        deadline_ms BIGINT NOT NULL,
        status TEXT NOT NULL,
        decision_seq BIGINT NOT NULL,
        summary TEXT NOT NULL,
        reviewer TEXT,
        note TEXT,
        decided_at TEXT
    )",
    "CREATE INDEX IF NOT EXISTS escalations_status ON escalations (project, status)",
    "CREATE TABLE IF NOT EXISTS feedback (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        rationale TEXT,
        author TEXT NOT NULL,
        created_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS feedback_trace ON feedback (project, trace_id)",
];

/// An API token as stored: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub project: String,
    pub role: String,
    pub name: String,
    #[serde(skip_serializing)]
    pub hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The agent an `agent` token speaks for: the gate judges its requests as that agent's
    /// and refuses ones that name another. `None`: the request names its agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// One received span in OTLP/JSON form with its resource and scope
/// (`{"resource": .., "scope": .., "span": ..}`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    pub body: String,
}

/// A trace the server knows: assembled from spans (`source = "otlp"`) or sent to the gate
/// (`source = "gate"`, `body` holding the request as received).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRow {
    pub project: String,
    pub trace_id: String,
    pub source: String,
    pub first_seen: String,
    pub last_seen: String,
    pub span_count: i64,
    /// `true` until the spans received so far have been judged.
    pub dirty: bool,
    pub decision: Option<String>,
    #[serde(skip)]
    pub result: Option<String>,
    #[serde(skip)]
    pub body: Option<String>,
    /// For a trace the gate judged, the agent whose token began it (none for a token of
    /// the whole project).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// Filters for listing traces.
#[derive(Debug, Clone, Default)]
pub struct TraceFilter {
    pub source: Option<String>,
    pub decision: Option<String>,
    /// RFC 3339 lower bound on `last_seen`.
    pub since: Option<String>,
    /// Traces whose result has a violation of this rule.
    pub rule: Option<String>,
    /// Traces whose id, stored request or result contains this text.
    pub text: Option<String>,
    /// Traces this judge answered (in the trace's own result, or a monitor's result)...
    pub judge: Option<String>,
    /// ...with this value (compact JSON: `true`, `"yes"`, `4`).
    pub judge_value: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// One entry of the decision log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub project: String,
    pub kind: String,
    /// The entry's JSON exactly as hashed.
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A decision-log entry to append: [`Store::append_audit`] numbers and chains it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub at: String,
    pub project: String,
    pub kind: String,
    /// The entry's JSON.
    pub body: String,
}

/// What a gate decision's log entry claims of its trace, checked and moved in the entry's
/// own transaction by [`Store::append_audit_guarded`]: the trace stood at `prev` (the
/// digest of the inputs that built the held copy it extends; `None`: it replaces whatever
/// stood, a trace sent whole) and now stands at `digest`. Servers that share the store
/// each hold their own copy of a trace; a copy another server has extended since is stale,
/// and its decision is refused instead of forking the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadGuard {
    pub project: String,
    pub trace_id: String,
    pub prev: Option<String>,
    pub digest: String,
}

/// A decision-log entry that records a change, written in the change's own transaction
/// (see [`Store::decide_escalation`], [`Store::approve_tool_change`],
/// [`Store::remove_tool_pin`]).
#[derive(Clone, Copy)]
pub struct Logged<'a> {
    pub entry: &'a NewAuditEntry,
    /// The entry's hash from its number, the entry and the previous entry's hash.
    pub hash: fn(i64, &NewAuditEntry, &str) -> String,
}

/// An item of the review queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationRow {
    pub id: String,
    pub project: String,
    pub created_at: String,
    pub deadline_ms: i64,
    /// `pending`, `approved`, `denied` or `expired`.
    pub status: String,
    pub decision_seq: i64,
    /// JSON: what was asked and why it was escalated.
    pub summary: String,
    pub reviewer: Option<String>,
    pub note: Option<String>,
    pub decided_at: Option<String>,
}

/// A human judgement on a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRow {
    pub id: String,
    pub project: String,
    pub trace_id: String,
    pub name: String,
    /// JSON value.
    pub value: String,
    pub rationale: Option<String>,
    pub author: String,
    pub created_at: String,
}

impl Store {
    pub async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, project, role, name, hash, created_at, revoked_at, agent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.id)
        .bind(&t.project)
        .bind(&t.role)
        .bind(&t.name)
        .bind(&t.hash)
        .bind(&t.created_at)
        .bind(t.revoked_at.clone())
        .bind(t.agent.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token with this secret hash, revoked or not.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TOKEN_SELECT} WHERE hash = $1"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TOKEN_SELECT} ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Marks a token revoked and ends the browser sessions signed in with it; `false` when
    /// no unrevoked token has this id.
    pub async fn revoke_token(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        self.remove_web_sessions_of_token(id).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores received spans and marks their traces for judging, in one transaction: when
    /// this returns, the spans are on disk. A span received twice replaces the first copy.
    /// Spans sent with a token bound to `agent` claim their traces for that agent; a trace
    /// another agent's token began is refused ([`StoreError::Owned`]) and nothing is stored.
    pub async fn insert_spans(
        &self,
        (project, agent): (&str, Option<&str>),
        spans: &[SpanRecord],
        at: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        // The last copy of a span sent twice in one request is the one kept; one statement
        // may not update a row twice (PostgreSQL), so earlier copies are dropped first.
        let mut last = HashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            last.insert((s.trace_id.as_str(), s.span_id.as_str()), i);
        }
        let kept: Vec<&SpanRecord> = spans
            .iter()
            .enumerate()
            .filter(|(i, s)| last[&(s.trace_id.as_str(), s.span_id.as_str())] == *i)
            .map(|(_, s)| s)
            .collect();
        let mut tx = self.begin_write().await?;
        let ids = mark_otlp_traces(
            &mut tx,
            project,
            (spans.iter().map(|s| s.trace_id.as_str()), agent),
            at,
            at_ms,
        )
        .await?;
        insert_rows(
            &mut tx,
            self.sqlite,
            (
                "INSERT INTO spans (project, trace_id, span_id, received_at, body) VALUES ",
                "($, $, $, $, $)",
                " ON CONFLICT (project, trace_id, span_id) DO UPDATE
                 SET received_at = excluded.received_at, body = excluded.body",
            ),
            &kept,
            |q, s| {
                q.bind(project)
                    .bind(&s.trace_id)
                    .bind(&s.span_id)
                    .bind(at)
                    .bind(&s.body)
            },
        )
        .await?;
        for id in ids {
            sqlx::query(
                "UPDATE traces SET span_count =
                    (SELECT COUNT(*) FROM spans WHERE project = $1 AND trace_id = $2)
                 WHERE project = $1 AND trace_id = $2",
            )
            .bind(project)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The spans of one trace, in the order they were received.
    pub async fn trace_spans(
        &self,
        project: &str,
        trace_id: &str,
    ) -> Result<Vec<SpanRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT trace_id, span_id, body FROM spans WHERE project = $1 AND trace_id = $2
             ORDER BY received_at, span_id",
        )
        .bind(project)
        .bind(trace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SpanRecord {
                    trace_id: r.try_get("trace_id")?,
                    span_id: r.try_get("span_id")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    /// Traces with spans not yet judged whose last span arrived at or before `quiet_before_ms`.
    pub async fn dirty_traces(
        &self,
        quiet_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT project, trace_id FROM traces WHERE dirty = 1 AND last_seen_ms <= $1
             ORDER BY last_seen_ms LIMIT $2",
        )
        .bind(quiet_before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("project")?, r.try_get("trace_id")?)))
            .collect()
    }

    /// Records the judgement of a trace. It stays dirty when spans arrived after
    /// `judged_through_ms` (they are judged in the next round).
    /// A gate's decision on a trace (its row's source is then `gate`) is not replaced unless
    /// spans arrived after it: the row then holds the judgement of the spans, as `otlp`.
    pub async fn set_trace_result(
        &self,
        project: &str,
        trace_id: &str,
        decision: &str,
        result: &str,
        judged_through_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE traces SET decision = $3, result = $4, source = 'otlp',
                dirty = CASE WHEN last_seen_ms > $5 THEN 1 ELSE 0 END
             WHERE project = $1 AND trace_id = $2 AND (source = 'otlp' OR dirty = 1)",
        )
        .bind(project)
        .bind(trace_id)
        .bind(decision)
        .bind(result)
        .bind(judged_through_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores (or replaces) traces sent to the gate, with their decisions, in transactions
    /// of at most [`BYTES_PER_TRANSACTION`] (or one trace), one statement per
    /// [`ROWS_PER_INSERT`] traces. A trace sent
    /// several times in one batch keeps its last request and answer and its first time.
    pub async fn upsert_gate_traces(&self, rows: &[GateTraceRow]) -> Result<(), StoreError> {
        let mut index: std::collections::HashMap<(&str, &str), usize> = Default::default();
        // (first time seen in the batch, latest row)
        let mut latest: Vec<(&str, &GateTraceRow)> = Vec::with_capacity(rows.len());
        for r in rows {
            match index.entry((r.project.as_str(), r.trace_id.as_str())) {
                std::collections::hash_map::Entry::Occupied(e) => latest[*e.get()].1 = r,
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(latest.len());
                    latest.push((r.at.as_str(), r));
                }
            }
        }
        // Transactions of about `BYTES_PER_TRANSACTION` each, so that a batch of large
        // traces holds the connection (and SQLite's write lock) for a few hundred
        // kilobytes at a time, and the decision log's commits, which requests wait for,
        // come in between. Each row stands alone: a batch retried after a failure writes
        // what was already committed again, to the same values.
        let mut rest = latest.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0;
            let n = rest
                .iter()
                .take_while(|(_, r)| {
                    let fits = bytes == 0 || bytes + r.body.len() <= BYTES_PER_TRANSACTION;
                    bytes += r.body.len() + r.result.len();
                    fits
                })
                .count();
            let (group, after) = rest.split_at(n);
            rest = after;
            self.upsert_gate_group(group).await?;
        }
        Ok(())
    }

    /// One transaction of [`Store::upsert_gate_traces`]: (first seen, row) pairs.
    async fn upsert_gate_group(&self, latest: &[(&str, &GateTraceRow)]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_rows(
            &mut tx,
            self.sqlite,
            (
                "INSERT INTO traces (project, trace_id, source, first_seen, last_seen,
                    last_seen_ms, span_count, dirty, decision, result, body, agent, gate_digest)
                    VALUES ",
                "($, $, 'gate', $, $, $, 0, 0, $, $, $, $, $)",
                // The gate's decision takes the row (also one made of OTLP spans, so that
                // replay judges what the gate judged); spans received after it leave the row
                // to be judged again. A row another agent's token began is never replaced
                // (the gate refuses such a call; this holds for servers that share the store).
                " ON CONFLICT (project, trace_id) DO UPDATE
                  SET source = 'gate',
                      dirty = CASE WHEN traces.last_seen_ms > excluded.last_seen_ms
                          THEN traces.dirty ELSE 0 END,
                      last_seen = CASE WHEN traces.last_seen_ms > excluded.last_seen_ms
                          THEN traces.last_seen ELSE excluded.last_seen END,
                      last_seen_ms = CASE WHEN traces.last_seen_ms > excluded.last_seen_ms
                          THEN traces.last_seen_ms ELSE excluded.last_seen_ms END,
                      decision = excluded.decision, result = excluded.result, body = excluded.body,
                      gate_digest = excluded.gate_digest,
                      agent = COALESCE(traces.agent, excluded.agent)
                  WHERE (excluded.agent IS NULL OR traces.agent IS NULL
                      OR traces.agent = excluded.agent)
                    -- A body behind its trace's head (a copy another server has since
                    -- replaced) does not overwrite the one written at the head.
                    AND (excluded.gate_digest IS NULL OR NOT EXISTS (
                      SELECT 1 FROM gate_heads h WHERE h.project = excluded.project
                        AND h.trace_id = excluded.trace_id
                        AND h.digest <> excluded.gate_digest))",
            ),
            latest,
            |q, (first, r)| {
                q.bind(&r.project)
                    .bind(&r.trace_id)
                    .bind(*first)
                    .bind(&r.at)
                    .bind(r.at_ms)
                    .bind(&r.decision)
                    .bind(&r.result)
                    .bind(&r.body)
                    .bind(&r.agent)
                    .bind(&r.digest)
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_traces(
        &self,
        project: &str,
        f: &TraceFilter,
    ) -> Result<Vec<TraceRow>, StoreError> {
        let mut sql = format!("{TRACE_SELECT} WHERE project = $1");
        let mut n = 1;
        let mut binds: Vec<String> = Vec::new();
        filter_clauses(f, &mut sql, &mut n, &mut binds);
        sql.push_str(&format!(
            " ORDER BY last_seen DESC, trace_id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind(f.limit).bind(f.offset).fetch_all(&self.pool).await?;
        rows.iter().map(trace_from_row).collect()
    }

    pub async fn get_trace(
        &self,
        project: &str,
        trace_id: &str,
    ) -> Result<Option<TraceRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TRACE_SELECT} WHERE project = $1 AND trace_id = $2"
        )))
        .bind(project)
        .bind(trace_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(trace_from_row).transpose()
    }

    /// The agent whose token began a trace the gate judged (none when no agent's did, or
    /// the trace is not stored).
    pub async fn trace_agent(
        &self,
        project: &str,
        trace_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT agent FROM traces WHERE project = $1 AND trace_id = $2")
            .bind(project)
            .bind(trace_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("agent")?,
            None => None,
        })
    }

    /// The last entry of the decision log: (seq, hash), or (0, "") when empty.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
            None => (0, String::new()),
        })
    }

    /// Numbers, chains and writes entries after the log's head, and moves the head, in one
    /// transaction; returns the first entry's sequence number (the others follow it in
    /// order). `hash` gives an entry's hash from its sequence number, the entry and the
    /// previous entry's hash.
    ///
    /// The head row is read and moved inside the transaction, locked on PostgreSQL
    /// (`FOR UPDATE`) and under SQLite's write lock (`BEGIN IMMEDIATE`), so writers in
    /// several processes append to one chain, and a number is only ever given by a commit:
    /// an entry that was not committed leaves no gap and no number to reuse.
    pub async fn append_audit(
        &self,
        entries: &[NewAuditEntry],
        hash: impl Fn(i64, &NewAuditEntry, &str) -> String,
    ) -> Result<i64, StoreError> {
        if entries.is_empty() {
            return self.audit_head().await.map(|(seq, _)| seq + 1);
        }
        let mut tx = self.begin_write().await?;
        let first = append_in(&mut tx, self.sqlite, entries, &hash).await?;
        tx.commit().await?;
        Ok(first)
    }

    /// [`Store::append_audit`] for entries that may carry a [`HeadGuard`] (`guards[i]` is
    /// `entries[i]`'s): in the same transaction, each guard is checked and its trace's head
    /// moved, in order, and an entry whose guard fails is not written. Each entry's
    /// sequence number, or `None` for one refused by its guard.
    pub async fn append_audit_guarded(
        &self,
        entries: &[NewAuditEntry],
        guards: &[Option<HeadGuard>],
        hash: impl Fn(i64, &NewAuditEntry, &str) -> String,
    ) -> Result<Vec<Option<i64>>, StoreError> {
        if guards.iter().all(Option::is_none) {
            let first = self.append_audit(entries, hash).await?;
            return Ok((0..entries.len()).map(|i| Some(first + i as i64)).collect());
        }
        let mut tx = self.begin_write().await?;
        let mut passed = Vec::with_capacity(entries.len());
        for (i, _) in entries.iter().enumerate() {
            let ok = match guards.get(i).and_then(Option::as_ref) {
                Some(g) => move_head(&mut tx, g).await?,
                None => true,
            };
            passed.push(ok);
        }
        let kept: Vec<NewAuditEntry> = entries
            .iter()
            .zip(&passed)
            .filter(|(_, ok)| **ok)
            .map(|(e, _)| e.clone())
            .collect();
        let mut next = if kept.is_empty() {
            0
        } else {
            append_in(&mut tx, self.sqlite, &kept, &hash).await?
        };
        tx.commit().await?;
        Ok(passed
            .into_iter()
            .map(|ok| {
                ok.then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect())
    }

    /// Where the gate's trace stands for servers that share the store: the digest of its
    /// last logged decision's inputs, and the digest the stored body was written with (none
    /// when it was written without one); `None` when no decision on it moved a head.
    pub async fn gate_head(
        &self,
        project: &str,
        trace_id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row = sqlx::query(
            "SELECT h.digest AS head, t.gate_digest AS stored FROM gate_heads h
             LEFT JOIN traces t ON t.project = h.project AND t.trace_id = h.trace_id
             WHERE h.project = $1 AND h.trace_id = $2",
        )
        .bind(project)
        .bind(trace_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("head")?, r.try_get("stored")?)))
            .transpose()
    }

    /// Log entries with `seq > after`, in order, at most `limit`.
    pub async fn audit_entries(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, project, kind, body, prev_hash, hash FROM audit_log
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    project: r.try_get("project")?,
                    kind: r.try_get("kind")?,
                    body: r.try_get("body")?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }

    pub async fn insert_escalation(&self, e: &EscalationRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO escalations (id, project, created_at, deadline_ms, status, decision_seq,
                summary, reviewer, note, decided_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&e.id)
        .bind(&e.project)
        .bind(&e.created_at)
        .bind(e.deadline_ms)
        .bind(&e.status)
        .bind(e.decision_seq)
        .bind(&e.summary)
        .bind(e.reviewer.clone())
        .bind(e.note.clone())
        .bind(e.decided_at.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_escalation(
        &self,
        project: &str,
        id: &str,
    ) -> Result<Option<EscalationRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ESCALATION_SELECT} WHERE project = $1 AND id = $2"
        )))
        .bind(project)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(escalation_from_row).transpose()
    }

    pub async fn list_escalations(
        &self,
        project: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EscalationRow>, StoreError> {
        let rows = match status {
            Some(s) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{ESCALATION_SELECT} WHERE project = $1 AND status = $2
                     ORDER BY created_at DESC, id LIMIT $3"
                )))
                .bind(project)
                .bind(s)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{ESCALATION_SELECT} WHERE project = $1 ORDER BY created_at DESC, id LIMIT $2"
                )))
                .bind(project)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(escalation_from_row).collect()
    }

    /// Settles a pending item and writes `log`'s entry, which records it, in the same
    /// transaction: the entry's number, or `None` (nothing written) when the item is not
    /// pending any more.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_escalation(
        &self,
        project: &str,
        id: &str,
        status: &str,
        reviewer: Option<&str>,
        note: Option<&str>,
        at: &str,
        log: Logged<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let change = sqlx::query(
            "UPDATE escalations SET status = $3, reviewer = $4, note = $5, decided_at = $6
             WHERE project = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(project.to_owned())
        .bind(id.to_owned())
        .bind(status.to_owned())
        .bind(reviewer.map(str::to_owned))
        .bind(note.map(str::to_owned))
        .bind(at.to_owned());
        self.change_logged(change, log).await
    }

    /// Runs `change`; when it changed one row, appends `log`'s entry in the same
    /// transaction and commits both, so a change a person made is in the store exactly
    /// when its entry is in the log. The entry's number, or `None` when the change changed
    /// nothing (nothing is written).
    pub(crate) async fn change_logged(
        &self,
        change: AnyQuery,
        log: Logged<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        if change.execute(&mut *tx).await?.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let seq = append_in(
            &mut tx,
            self.sqlite,
            std::slice::from_ref(log.entry),
            &log.hash,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(seq))
    }

    /// Pending items whose deadline has passed.
    pub async fn overdue_escalations(&self, now_ms: i64) -> Result<Vec<EscalationRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ESCALATION_SELECT} WHERE status = 'pending' AND deadline_ms <= $1"
        )))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(escalation_from_row).collect()
    }

    pub async fn insert_feedback(&self, f: &FeedbackRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO feedback (id, project, trace_id, name, value, rationale, author, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&f.id)
        .bind(&f.project)
        .bind(&f.trace_id)
        .bind(&f.name)
        .bind(&f.value)
        .bind(f.rationale.clone())
        .bind(&f.author)
        .bind(&f.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn trace_feedback(
        &self,
        project: &str,
        trace_id: &str,
    ) -> Result<Vec<FeedbackRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, project, trace_id, name, value, rationale, author, created_at
             FROM feedback WHERE project = $1 AND trace_id = $2 ORDER BY created_at, id",
        )
        .bind(project)
        .bind(trace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FeedbackRow {
                    id: r.try_get("id")?,
                    project: r.try_get("project")?,
                    trace_id: r.try_get("trace_id")?,
                    name: r.try_get("name")?,
                    value: r.try_get("value")?,
                    rationale: r.try_get("rationale")?,
                    author: r.try_get("author")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Runs one SQL statement as given (maintenance and tests).
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// A cheap query that proves the store answers.
    /// Whether the store answers: a query goes through, and a SQLite file is still where it
    /// was opened (its open connections would still answer after it is moved or deleted,
    /// though nothing could be written any more).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.still_there()?;
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// A trace sent to the gate, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct GateTraceRow {
    pub project: String,
    pub trace_id: String,
    /// The gate request as received (the trace in the format it was sent in).
    pub body: String,
    pub decision: String,
    /// The gate's answer.
    pub result: String,
    pub at: String,
    pub at_ms: i64,
    /// The agent whose token began the trace (none for a token of the whole project): no
    /// other agent's token may replace or extend it.
    pub agent: Option<String>,
    /// The digest of the inputs that built the stored trace (see [`HeadGuard`]).
    pub digest: Option<String>,
}

/// Moves a trace's head as `g` says inside `tx`: whether it stood where `g` claims (a
/// trace with no head yet stands anywhere).
async fn move_head(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    g: &HeadGuard,
) -> Result<bool, StoreError> {
    let upsert = "INSERT INTO gate_heads (project, trace_id, digest) VALUES ($1, $2, $3)
         ON CONFLICT (project, trace_id) DO UPDATE SET digest = excluded.digest";
    let done = match &g.prev {
        Some(prev) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{upsert} WHERE gate_heads.digest = $4"
            )))
            .bind(&g.project)
            .bind(&g.trace_id)
            .bind(&g.digest)
            .bind(prev)
            .execute(&mut **tx)
            .await?
        }
        None => {
            sqlx::query(upsert)
                .bind(&g.project)
                .bind(&g.trace_id)
                .bind(&g.digest)
                .execute(&mut **tx)
                .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Rows per multi-row INSERT: few statements per batch, well under the bind-parameter limits
/// of SQLite and PostgreSQL.
const ROWS_PER_INSERT: usize = 100;

/// Bytes of gate traces written in one transaction at most (a single larger trace is
/// written alone).
const BYTES_PER_TRANSACTION: usize = 256 * 1024;

/// `head` then `rows` copies of `row` then `tail`. Each `$` of `row` becomes a parameter
/// bound in order: `?` when `positional` (SQLite), else `$1` upwards (PostgreSQL).
/// A statement being bound.
pub(crate) type AnyQuery = sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>;

/// Numbers, chains and writes `entries` after the log's head and moves the head, inside
/// `tx` (a write transaction); returns the first entry's number. See
/// [`Store::append_audit`].
pub(crate) async fn append_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sqlite: bool,
    entries: &[NewAuditEntry],
    hash: &impl Fn(i64, &NewAuditEntry, &str) -> String,
) -> Result<i64, StoreError> {
    // The head row exists before it is locked, so two first writers wait on one row.
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING",
    )
    .execute(&mut **tx)
    .await?;
    let head = if sqlite {
        "SELECT seq, hash FROM audit_head WHERE id = 1"
    } else {
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
    };
    let row = sqlx::query(head).fetch_one(&mut **tx).await?;
    let head_seq: i64 = row.try_get("seq")?;
    let mut prev: String = row.try_get("hash")?;
    let first = head_seq + 1;
    let mut chained: Vec<(i64, String, String)> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let seq = first + i as i64;
        let h = hash(seq, e, &prev);
        chained.push((seq, std::mem::replace(&mut prev, h.clone()), h));
    }
    let rows: Vec<(&NewAuditEntry, &(i64, String, String))> =
        entries.iter().zip(&chained).collect();
    insert_rows(
        tx,
        sqlite,
        (
            "INSERT INTO audit_log (seq, at, project, kind, body, prev_hash, hash) VALUES ",
            "($, $, $, $, $, $, $)",
            "",
        ),
        &rows,
        |q, (e, (seq, prev_hash, h))| {
            q.bind(*seq)
                .bind(&e.at)
                .bind(&e.project)
                .bind(&e.kind)
                .bind(&e.body)
                .bind(prev_hash)
                .bind(h)
        },
    )
    .await?;
    if let Some((last, _, h)) = chained.last() {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(*last)
            .bind(h)
            .execute(&mut **tx)
            .await?;
    }
    Ok(first)
}

/// Writes `rows` on `conn` (a transaction's) in multi-row statements of
/// [`ROWS_PER_INSERT`] rows each: `head`, one `row` per record (each `$` a parameter), then
/// `tail`. `bind` binds one record's parameters in the order of `row`'s `$`s.
pub(crate) async fn insert_rows<T>(
    conn: &mut sqlx::AnyConnection,
    sqlite: bool,
    (head, row, tail): (&str, &str, &str),
    rows: &[T],
    bind: impl Fn(AnyQuery, &T) -> AnyQuery,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = multi_row_insert(head, row, chunk.len(), tail, sqlite);
        let q = chunk
            .iter()
            .fold(sqlx::query(sqlx::AssertSqlSafe(sql)), &bind);
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

fn multi_row_insert(head: &str, row: &str, rows: usize, tail: &str, positional: bool) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 16) + tail.len());
    sql.push_str(head);
    let mut n = 0;
    let mut digits = itoa::Buffer::new();
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        for c in row.chars() {
            if c != '$' {
                sql.push(c);
            } else if positional {
                sql.push('?');
            } else {
                n += 1;
                sql.push('$');
                sql.push_str(digits.format(n));
            }
        }
    }
    sql.push_str(tail);
    sql
}

const TOKEN_SELECT: &str =
    "SELECT id, project, role, name, hash, created_at, revoked_at, agent FROM api_tokens";

fn token_from_row(r: &AnyRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        role: r.try_get("role")?,
        name: r.try_get("name")?,
        hash: r.try_get("hash")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        agent: r.try_get("agent")?,
    })
}

const TRACE_SELECT: &str = "SELECT project, trace_id, source, first_seen, last_seen, span_count,
    dirty, decision, result, body, agent FROM traces t";

fn trace_from_row(r: &AnyRow) -> Result<TraceRow, StoreError> {
    let dirty: i64 = r.try_get("dirty")?;
    Ok(TraceRow {
        project: r.try_get("project")?,
        trace_id: r.try_get("trace_id")?,
        source: r.try_get("source")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        span_count: r.try_get("span_count")?,
        dirty: dirty != 0,
        decision: r.try_get("decision")?,
        result: r.try_get("result")?,
        body: r.try_get("body")?,
        agent: r.try_get("agent")?,
    })
}

const ESCALATION_SELECT: &str = "SELECT id, project, created_at, deadline_ms, status,
    decision_seq, summary, reviewer, note, decided_at FROM escalations";

fn escalation_from_row(r: &AnyRow) -> Result<EscalationRow, StoreError> {
    Ok(EscalationRow {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        created_at: r.try_get("created_at")?,
        deadline_ms: r.try_get("deadline_ms")?,
        status: r.try_get("status")?,
        decision_seq: r.try_get("decision_seq")?,
        summary: r.try_get("summary")?,
        reviewer: r.try_get("reviewer")?,
        note: r.try_get("note")?,
        decided_at: r.try_get("decided_at")?,
    })
}

/// Appends `AND ...` conditions for `f`'s source, decision, since, rule and text to `sql`,
/// numbering parameters after `n` and pushing their values to `binds` (the trace list and
/// the monitors use the same filter).
pub(crate) fn filter_clauses(
    f: &TraceFilter,
    sql: &mut String,
    n: &mut usize,
    binds: &mut Vec<String>,
) {
    for (column, value, op) in [
        ("source", &f.source, "="),
        ("decision", &f.decision, "="),
        ("last_seen", &f.since, ">="),
    ] {
        if let Some(v) = value {
            *n += 1;
            sql.push_str(&format!(" AND {column} {op} ${n}", n = *n));
            binds.push(v.clone());
        }
    }
    // A rule is found in the stored result as its serialized member.
    if let Some(rule) = &f.rule {
        *n += 1;
        sql.push_str(&format!(" AND result LIKE ${n} ESCAPE '\\'", n = *n));
        let quoted = serde_json::to_string(rule).unwrap_or_default();
        binds.push(format!("%\"rule\":{}%", like_escape(&quoted)));
    }
    // A judge's answer is found as its feedback's serialized `name` and `value` members in
    // the trace's result, or as a monitor's result on the trace (the trace table is `t`).
    if let Some(judge) = &f.judge {
        let name = serde_json::to_string(judge).unwrap_or_default();
        let value = f.judge_value.as_deref();
        let pattern = match value {
            Some(v) => format!(
                "%\"name\":{},\"value\":{}%",
                like_escape(&name),
                like_escape(v)
            ),
            None => format!("%\"name\":{},\"value\":%", like_escape(&name)),
        };
        let (a, b) = (*n + 1, *n + 2);
        *n += 2;
        binds.push(pattern);
        binds.push(judge.clone());
        let monitored = match value {
            Some(v) => {
                *n += 1;
                binds.push(v.to_owned());
                format!("r.value = ${}", *n)
            }
            None => "r.status IN ('pass', 'fail')".to_owned(),
        };
        sql.push_str(&format!(
            " AND (t.result LIKE ${a} ESCAPE '\\' OR EXISTS (SELECT 1 FROM monitor_results r \
             JOIN monitors m ON m.id = r.monitor_id WHERE r.project = t.project \
             AND r.trace_id = t.trace_id AND m.judge_name = ${b} AND {monitored}))"
        ));
    }
    if let Some(text) = &f.text {
        *n += 1;
        sql.push_str(&format!(
                " AND (trace_id LIKE ${n} ESCAPE '\\' OR body LIKE ${n} ESCAPE '\\' OR result LIKE ${n} ESCAPE '\\')",
                n = *n
            ));
        binds.push(format!("%{}%", like_escape(text)));
    }
}

/// `text` with LIKE's wildcards and the escape character escaped (escape: backslash).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Marks the OTLP traces `ids` (made when new) as seen at `at` and to be judged again, in
/// `tx`; returns the ids, each once.
pub(crate) async fn mark_otlp_traces<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project: &str,
    (ids, agent): (impl Iterator<Item = &'a str>, Option<&str>),
    at: &str,
    at_ms: i64,
) -> Result<Vec<&'a str>, StoreError> {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    for id in &ids {
        // A token bound to an agent claims a trace no agent holds yet; the row is then
        // locked by this transaction, so the owner read next is the one that stays.
        sqlx::query(
            "INSERT INTO traces (project, trace_id, source, first_seen, last_seen,
                last_seen_ms, span_count, dirty, agent)
             VALUES ($1, $2, 'otlp', $3, $3, $4, 0, 1, $5)
             ON CONFLICT (project, trace_id) DO UPDATE
             SET last_seen = $3, last_seen_ms = $4, dirty = 1,
                 agent = COALESCE(traces.agent, excluded.agent)",
        )
        .bind(project)
        .bind(*id)
        .bind(at)
        .bind(at_ms)
        .bind(agent)
        .execute(&mut **tx)
        .await?;
        if let Some(agent) = agent {
            let owner: Option<String> =
                sqlx::query("SELECT agent FROM traces WHERE project = $1 AND trace_id = $2")
                    .bind(project)
                    .bind(*id)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("agent")?;
            if owner.as_deref().is_some_and(|o| o != agent) {
                return Err(StoreError::Owned {
                    trace_id: (*id).to_owned(),
                });
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::multi_row_insert;

    #[test]
    fn multi_row_statements_number_parameters_for_postgres_and_not_for_sqlite() {
        assert_eq!(
            multi_row_insert(
                "INSERT INTO t VALUES ",
                "($, 'x', $)",
                3,
                " ON CONFLICT",
                false
            ),
            "INSERT INTO t VALUES ($1, 'x', $2), ($3, 'x', $4), ($5, 'x', $6) ON CONFLICT"
        );
        assert_eq!(
            multi_row_insert("INSERT INTO t VALUES ", "($, 'x', $)", 2, "", true),
            "INSERT INTO t VALUES (?, 'x', ?), (?, 'x', ?)"
        );
    }
}

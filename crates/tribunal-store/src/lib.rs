//! The store: evaluation runs and their per-trace results, kept in SQLite by default
//! (`.tribunal/tribunal.db`). Queries go through sqlx's `Any` driver with portable SQL
//! (`$n` placeholders, TEXT/INTEGER/REAL columns), so a PostgreSQL URL works with the same code.

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::path::Path;
use thiserror::Error;

mod checkpoint;
pub mod clock;
mod judges;
mod labels;
mod lineage;
mod llm_cache;
mod monitors;
mod notify;
mod prefs;
mod server;
mod span_events;
mod sqlite_log;
mod tool_pins;
mod web_sessions;
pub use sqlite_log::{Attempt, LogConnection, MOVED};
pub mod testing;

pub use checkpoint::{Checkpoint, WalCheckpointer, BACKSTOP_PAGES};
pub use judges::{Appended, JudgeVersionRow, NewJudgeVersion};
pub use labels::{LabelEvent, QueueChange};
pub use llm_cache::StoreCache;
pub use monitors::{
    AlertRow, ClaimContext, Claimed, DeliveryRow, MonitorResultRow, MonitorRow, ResultBucket,
};
pub use notify::{Notification, Notifications};
pub use prefs::{PreferenceInsert, PreferenceRow};
pub use span_events::SpanEventRecord;
pub use tool_pins::{ToolChange, ToolPin};
pub use web_sessions::{LiveWebSession, WebSession};

pub use server::{
    AuditRow, EscalationRow, FeedbackRow, GateTraceRow, HeadGuard, Logged, NewAuditEntry,
    SpanRecord, TokenRecord, TraceFilter, TraceRow,
};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("store: {0}")]
    Query(#[from] sqlx::Error),
    #[error("store: cannot create {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no run matches {0:?}")]
    NoSuchRun(String),
    /// Something stored that does not read (a queue whose schema is gone, say).
    #[error("stored {what}: {message}")]
    Stored { what: String, message: String },
    #[error("{prefix:?} matches several runs: {matches}")]
    Ambiguous { prefix: String, matches: String },
    /// A SQLite file moved or deleted since the store opened it (`path`: where it was).
    #[error("store {path}: {}", sqlite_log::MOVED)]
    Moved { path: String },
    /// The decision log's own connection to a SQLite file failed (`path`: the file).
    #[error("decision log in {path}: {message}")]
    Log { path: String, message: String },
    /// Spans or events sent with a token bound to one agent name a trace another agent's
    /// token began; nothing of the request was stored.
    #[error("trace {trace_id:?} was begun by another agent's token")]
    Owned { trace_id: String },
}

/// One evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The command line that started it.
    pub command: String,
    /// Input paths, comma-separated.
    pub inputs: String,
    pub policy_version: String,
    pub config_hash: String,
    /// The configuration in force: its path, or `built-in defaults`.
    #[serde(default)]
    pub config: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub total: i64,
    pub allowed: i64,
    pub escalated: i64,
    pub blocked: i64,
    pub rejected: i64,
}

/// One trace's result within a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub seq: i64,
    pub trace_id: String,
    pub source_file: String,
    pub source_line: i64,
    pub decision: String,
    /// The whole result object as JSON.
    pub result: String,
    /// The trace as it was judged (the trace model as JSON), when the run kept it: written
    /// with the result, read by [`Store::run_trace`] only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// One input that could not be read or imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputErrorRecord {
    pub seq: i64,
    pub source_file: String,
    pub source_line: i64,
    pub message: String,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        command TEXT NOT NULL,
        inputs TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        status TEXT NOT NULL,
        total BIGINT NOT NULL DEFAULT 0,
        allowed BIGINT NOT NULL DEFAULT 0,
        escalated BIGINT NOT NULL DEFAULT 0,
        blocked BIGINT NOT NULL DEFAULT 0,
        rejected BIGINT NOT NULL DEFAULT 0,
        config TEXT NOT NULL DEFAULT ''
    )",
    "CREATE TABLE IF NOT EXISTS results (
        run_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        trace_id TEXT NOT NULL,
        source_file TEXT NOT NULL,
        source_line BIGINT NOT NULL,
        decision TEXT NOT NULL,
        result TEXT NOT NULL,
        trace TEXT,
        PRIMARY KEY (run_id, seq)
    )",
    "CREATE INDEX IF NOT EXISTS results_trace ON results (trace_id)",
    "CREATE TABLE IF NOT EXISTS input_errors (
        run_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        source_file TEXT NOT NULL,
        source_line BIGINT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    )",
    "CREATE TABLE IF NOT EXISTS llm_cache (
        cache_key TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at TEXT NOT NULL
    )",
];

/// Columns a store made by an earlier version lacks: a query that fails without the
/// column, and the statement that adds it.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    (
        "SELECT config FROM runs WHERE 1 = 0",
        "ALTER TABLE runs ADD COLUMN config TEXT NOT NULL DEFAULT ''",
    ),
    (
        "SELECT version FROM label_queues WHERE 1 = 0",
        "ALTER TABLE label_queues ADD COLUMN version BIGINT NOT NULL DEFAULT 0",
    ),
    (
        "SELECT version FROM label_events WHERE 1 = 0",
        "ALTER TABLE label_events ADD COLUMN version BIGINT NOT NULL DEFAULT 0",
    ),
    (
        "SELECT agent FROM api_tokens WHERE 1 = 0",
        "ALTER TABLE api_tokens ADD COLUMN agent TEXT",
    ),
    (
        "SELECT agent FROM traces WHERE 1 = 0",
        "ALTER TABLE traces ADD COLUMN agent TEXT",
    ),
    (
        "SELECT gate_digest FROM traces WHERE 1 = 0",
        "ALTER TABLE traces ADD COLUMN gate_digest TEXT",
    ),
    (
        "SELECT trace FROM results WHERE 1 = 0",
        "ALTER TABLE results ADD COLUMN trace TEXT",
    ),
    (
        "SELECT shown FROM label_events WHERE 1 = 0",
        "ALTER TABLE label_events ADD COLUMN shown TEXT",
    ),
];

/// A connection pool to the store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite rather than PostgreSQL: large statements use positional `?` parameters
    /// (SQLite looks up each numbered `$N` by scanning every parameter name, so binding a
    /// statement of many numbered parameters costs their count squared).
    sqlite: bool,
    /// Where it is, for connections of their own (listening for notifications).
    url: notify::Url,
    /// SQLite: the log's length in pages at which a commit checkpoints it, for every
    /// connection the pool makes (raised while a [`WalCheckpointer`] runs).
    autocheckpoint: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// SQLite: the database file, for the decision log's own connection (`None` in memory).
    file: Option<String>,
    /// SQLite: the file's device and inode when it was opened, to tell that it was moved or
    /// deleted since.
    identity: Option<(u64, u64)>,
}

/// A file's device and inode (`None` where they cannot be read).
fn identity_of(path: &str) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

impl Store {
    /// Opens (and creates) the store. `location` is a database URL (`sqlite://…`,
    /// `postgres://…`) or a file path for SQLite.
    pub async fn open(location: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = if location.contains("://") || location.starts_with("sqlite:") {
            location.to_owned()
        } else {
            let path = Path::new(location);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            format!("sqlite://{location}?mode=rwc")
        };
        let is_sqlite = url.starts_with("sqlite:");
        let open_error = |source| StoreError::Open {
            location: tribunal_core::redact::secrets(location).into_owned(),
            source,
        };
        if is_sqlite && !url.contains(":memory:") && !url.contains("mode=memory") {
            // The pool retries a connection that fails for its whole acquire timeout (30 s)
            // and then says only that it timed out: one connection first names at once a
            // file that is no database, or that cannot be written (read-only, or in a
            // folder where its write-ahead log cannot be made).
            use sqlx::Connection;
            let mut probe = sqlx::AnyConnection::connect(&url)
                .await
                .map_err(open_error)?;
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut probe)
                .await
                .map_err(open_error)?;
            let _ = probe.close().await;
        } else if !is_sqlite {
            // The same for a database server: one connection first says at once that the
            // server refuses it, the database does not exist or the password is wrong,
            // where the pool would retry for 30 s and then say only that it timed out.
            use sqlx::Connection;
            let probe = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                sqlx::AnyConnection::connect(&url),
            )
            .await
            .map_err(|_| {
                open_error(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer from the database server within 10 s",
                )))
            })?
            .map_err(open_error)?;
            let _ = probe.close().await;
        }
        let autocheckpoint =
            std::sync::Arc::new(std::sync::atomic::AtomicI64::new(checkpoint::DEFAULT_PAGES));
        let pages = autocheckpoint.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 1 } else { 4 })
            // No idle timeout nor lifetime, so no maintenance task: sqlx's walks the idle
            // connections by a count that a release racing an acquire can leave at
            // `usize::MAX` for a moment, and it then spins on a runtime worker without
            // yielding, holding every task queued there (seen as a gate request that never
            // got its answer). A SQLite file keeps its one connection; PostgreSQL's few are
            // checked before each use (`test_before_acquire`) and replaced when broken.
            .idle_timeout(None)
            .max_lifetime(None)
            // A SQLite file does not drop connections; no round trip before every query.
            .test_before_acquire(!is_sqlite)
            // A transaction the database rolled back by itself (SQLite does on a full disk,
            // an I/O error or a trigger's RAISE(ROLLBACK)) makes the ROLLBACK of its dropped
            // `Transaction` fail, and sqlx then goes on counting it open: every later
            // transaction on the connection would fail ("non-zero transaction depth"), and
            // a SQLite file has this one connection. Such a connection is closed instead of
            // reused; the pool opens a new one.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    // A dropped transaction's rollback may still be queued: once the
                    // connection answers, it has run.
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .after_connect(move |conn, _| {
                let pages = pages.load(std::sync::atomic::Ordering::Relaxed);
                Box::pin(async move {
                    // Per connection: a replaced connection keeps the same durability.
                    if is_sqlite {
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "PRAGMA wal_autocheckpoint = {pages}"
                        )))
                        .execute(&mut *conn)
                        .await?;
                    } else {
                        // A commit is on disk when it returns, whatever the database's or
                        // role's default (`synchronous_commit = off` is a common tuning that
                        // would lose answered decisions on a crash of the database; a stronger
                        // setting, `remote_write` or `remote_apply`, is kept); a lock held
                        // elsewhere fails a statement after 10 s instead of holding a request
                        // for as long as it is held; the schema's "already exists" notices stay
                        // out of the log.
                        use sqlx::Row;
                        let sync: String =
                            sqlx::query("SELECT current_setting('synchronous_commit') AS v")
                                .fetch_one(&mut *conn)
                                .await?
                                .try_get("v")?;
                        if matches!(sync.as_str(), "off" | "local") {
                            sqlx::query("SET synchronous_commit = on")
                                .execute(&mut *conn)
                                .await?;
                        }
                        for set in [
                            "SET lock_timeout = '10s'",
                            "SET client_min_messages = warning",
                        ] {
                            sqlx::query(set).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(open_error)?;
        if is_sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        // The schema is made on one connection that waits for locks as long as they are
        // held: another server at work on the same tables must not make a start fail.
        let mut schema = pool.acquire().await?;
        if !is_sqlite {
            sqlx::query("SET lock_timeout = 0")
                .execute(&mut *schema)
                .await?;
        }
        for stmt in SCHEMA
            .iter()
            .chain(server::SCHEMA)
            .chain(span_events::SCHEMA)
            .chain(labels::SCHEMA)
            .chain(judges::SCHEMA)
            .chain(monitors::SCHEMA)
            .chain(prefs::SCHEMA)
            .chain(lineage::SCHEMA)
            .chain(tool_pins::SCHEMA)
            .chain(web_sessions::SCHEMA)
        {
            sqlx::query(*stmt).execute(&mut *schema).await?;
        }
        // Columns added since a table was first made.
        for (probe, add) in ADDED_COLUMNS {
            if sqlx::query(*probe)
                .fetch_optional(&mut *schema)
                .await
                .is_err()
            {
                sqlx::query(*add).execute(&mut *schema).await?;
            }
        }
        if !is_sqlite {
            sqlx::query("SET lock_timeout = '10s'")
                .execute(&mut *schema)
                .await?;
        }
        drop(schema);
        let file = sqlite_log::file_of(&url);
        Ok(Store {
            pool,
            sqlite: is_sqlite,
            identity: file.as_deref().and_then(identity_of),
            file,
            url: notify::Url::new(&url),
            autocheckpoint,
        })
    }

    /// An error when the SQLite file the store opened was moved or deleted since.
    pub(crate) fn still_there(&self) -> Result<(), StoreError> {
        if let (Some(path), Some(opened)) = (&self.file, self.identity) {
            if identity_of(path) != Some(opened) {
                return Err(StoreError::Moved { path: path.clone() });
            }
        }
        Ok(())
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), waiting for it like any write: a transaction that read first could not
    /// take it once another connection (the decision log's own, say) had committed since,
    /// and would fail instead of waiting.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        self.still_there()?;
        Ok(if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        })
    }

    /// Records a run under its id; an id already taken is an error.
    pub async fn create_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        if self.insert_run(run).await? {
            Ok(())
        } else {
            Err(StoreError::Stored {
                what: format!("run {}", run.id),
                message: "a run with this id is already stored".into(),
            })
        }
    }

    /// Records a new run, giving it another [`clock::new_run_id`] while its id is taken (two
    /// runs started in the same second can draw the same one).
    pub async fn create_new_run(&self, run: &mut RunRecord) -> Result<(), StoreError> {
        for _ in 0..16 {
            if self.insert_run(run).await? {
                return Ok(());
            }
            run.id = clock::new_run_id();
        }
        Err(StoreError::Stored {
            what: format!("run {}", run.id),
            message: "no free run id after 16 tries".into(),
        })
    }

    /// Inserts the run unless its id is taken; whether it went in.
    async fn insert_run(&self, run: &RunRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO runs (id, started_at, finished_at, command, inputs, policy_version,
                config_hash, status, total, allowed, escalated, blocked, rejected, config)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&run.id)
        .bind(&run.started_at)
        .bind(run.finished_at.clone())
        .bind(&run.command)
        .bind(&run.inputs)
        .bind(&run.policy_version)
        .bind(&run.config_hash)
        .bind(&run.status)
        .bind(run.total)
        .bind(run.allowed)
        .bind(run.escalated)
        .bind(run.blocked)
        .bind(run.rejected)
        .bind(&run.config)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a batch of results in one transaction, many rows per statement.
    pub async fn insert_results(
        &self,
        run_id: &str,
        rows: &[ResultRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        server::insert_rows(
            &mut tx,
            self.sqlite,
            (
                "INSERT INTO results (run_id, seq, trace_id, source_file, source_line, decision, result, trace) VALUES ",
                "($, $, $, $, $, $, $, $)",
                "",
            ),
            rows,
            |q, r| {
                q.bind(run_id)
                    .bind(r.seq)
                    .bind(&r.trace_id)
                    .bind(&r.source_file)
                    .bind(r.source_line)
                    .bind(&r.decision)
                    .bind(&r.result)
                    .bind(&r.trace)
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes a batch of input errors in one transaction, many rows per statement.
    pub async fn insert_input_errors(
        &self,
        run_id: &str,
        rows: &[InputErrorRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        server::insert_rows(
            &mut tx,
            self.sqlite,
            (
                "INSERT INTO input_errors (run_id, seq, source_file, source_line, message) VALUES ",
                "($, $, $, $, $)",
                "",
            ),
            rows,
            |q, r| {
                q.bind(run_id)
                    .bind(r.seq)
                    .bind(&r.source_file)
                    .bind(r.source_line)
                    .bind(&r.message)
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the final counts and status of a run.
    pub async fn finish_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET finished_at = $2, status = $3, total = $4, allowed = $5,
                escalated = $6, blocked = $7, rejected = $8 WHERE id = $1",
        )
        .bind(&run.id)
        .bind(run.finished_at.clone())
        .bind(&run.status)
        .bind(run.total)
        .bind(run.allowed)
        .bind(run.escalated)
        .bind(run.blocked)
        .bind(run.rejected)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent runs first.
    pub async fn list_runs(&self, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_SELECT} ORDER BY started_at DESC, id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Finds a run by its id or a unique prefix of it.
    pub async fn find_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError> {
        let pattern = format!("{}%", id_or_prefix.replace(['%', '_'], ""));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_SELECT} WHERE id = $1 OR id LIKE $2 ORDER BY id LIMIT 5"
        )))
        .bind(id_or_prefix)
        .bind(&pattern)
        .fetch_all(&self.pool)
        .await?;
        let runs: Vec<RunRecord> = rows.iter().map(run_from_row).collect::<Result<_, _>>()?;
        if let Some(exact) = runs.iter().find(|r| r.id == id_or_prefix) {
            return Ok(exact.clone());
        }
        match runs.len() {
            0 => Err(StoreError::NoSuchRun(id_or_prefix.to_owned())),
            1 => Ok(runs.into_iter().next().expect("one run")),
            _ => Err(StoreError::Ambiguous {
                prefix: id_or_prefix.to_owned(),
                matches: runs
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The trace `trace_id` as run `run_id` judged it, when the run kept it (the first
    /// result of that id). `Ok(None)`: no such result, or its trace was not kept.
    pub async fn run_trace(
        &self,
        run_id: &str,
        trace_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT trace FROM results WHERE run_id = $1 AND trace_id = $2 ORDER BY seq LIMIT 1",
        )
        .bind(run_id)
        .bind(trace_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<String>, _>("trace")?,
            None => None,
        })
    }

    pub async fn run_results(&self, run_id: &str) -> Result<Vec<ResultRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, trace_id, source_file, source_line, decision, result
             FROM results WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ResultRecord {
                    seq: r.try_get("seq")?,
                    trace_id: r.try_get("trace_id")?,
                    source_file: r.try_get("source_file")?,
                    source_line: r.try_get("source_line")?,
                    decision: r.try_get("decision")?,
                    result: r.try_get("result")?,
                    trace: None,
                })
            })
            .collect()
    }

    pub async fn run_input_errors(
        &self,
        run_id: &str,
    ) -> Result<Vec<InputErrorRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, source_file, source_line, message FROM input_errors
             WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InputErrorRecord {
                    seq: r.try_get("seq")?,
                    source_file: r.try_get("source_file")?,
                    source_line: r.try_get("source_line")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

const RUN_SELECT: &str = "SELECT id, started_at, finished_at, command, inputs, policy_version,
    config_hash, status, total, allowed, escalated, blocked, rejected, config FROM runs";

fn run_from_row(r: &AnyRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: r.try_get("id")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        command: tribunal_core::redact::secrets(&r.try_get::<String, _>("command")?).into_owned(),
        inputs: r.try_get("inputs")?,
        policy_version: r.try_get("policy_version")?,
        config_hash: r.try_get("config_hash")?,
        status: r.try_get("status")?,
        total: r.try_get("total")?,
        allowed: r.try_get("allowed")?,
        escalated: r.try_get("escalated")?,
        blocked: r.try_get("blocked")?,
        rejected: r.try_get("rejected")?,
        config: r.try_get("config")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, at: &str) -> RunRecord {
        RunRecord {
            id: id.into(),
            started_at: at.into(),
            finished_at: None,
            command: "tribunal eval x".into(),
            inputs: "x.jsonl".into(),
            policy_version: "abc".into(),
            config_hash: "def".into(),
            config: "built-in defaults".into(),
            status: "running".into(),
            total: 0,
            allowed: 0,
            escalated: 0,
            blocked: 0,
            rejected: 0,
        }
    }

    /// No idle timeout nor lifetime: sqlx then starts no maintenance task, whose walk over
    /// the idle connections can spin on a runtime worker (see `Store::open`).
    #[tokio::test]
    async fn the_pool_runs_no_maintenance_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        let options = store.pool.options();
        assert_eq!(options.get_idle_timeout(), None);
        assert_eq!(options.get_max_lifetime(), None);
        assert_eq!(options.get_min_connections(), 0);
    }

    /// Two runs started in the same second may draw the same id: a new run takes another.
    #[tokio::test]
    async fn a_taken_run_id_is_refused_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .create_run(&run("run-b2", "2026-01-02T00:00:00Z"))
            .await
            .unwrap();
        let err = store
            .create_run(&run("run-b2", "2026-01-03T00:00:00Z"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already stored"), "{err}");
        let mut again = run("run-b2", "2026-01-03T00:00:00Z");
        store.create_new_run(&mut again).await.unwrap();
        assert_ne!(again.id, "run-b2");
        assert_eq!(store.list_runs(10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn runs_and_results_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.db");
        let store = Store::open(path.to_str().unwrap()).await.unwrap();
        store
            .create_run(&run("run-a1", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        store
            .create_run(&run("run-b2", "2026-01-02T00:00:00Z"))
            .await
            .unwrap();
        // Several multi-row statements' worth.
        let rows: Vec<ResultRecord> = (0..250)
            .map(|i| ResultRecord {
                seq: i,
                trace_id: format!("t{i}"),
                source_file: "x.jsonl".into(),
                source_line: i + 1,
                decision: if i == 1 {
                    "block".into()
                } else {
                    "allow".into()
                },
                result: "{}".into(),
                trace: None,
            })
            .collect();
        store.insert_results("run-a1", &rows).await.unwrap();
        store
            .insert_input_errors(
                "run-a1",
                &[InputErrorRecord {
                    seq: 3,
                    source_file: "x.jsonl".into(),
                    source_line: 4,
                    message: "bad".into(),
                }],
            )
            .await
            .unwrap();
        let mut done = run("run-a1", "2026-01-01T00:00:00Z");
        done.status = "done".into();
        done.total = 3;
        done.blocked = 1;
        done.rejected = 1;
        done.finished_at = Some("2026-01-01T00:00:01Z".into());
        store.finish_run(&done).await.unwrap();

        let list = store.list_runs(10).await.unwrap();
        assert_eq!(
            list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["run-b2", "run-a1"]
        );
        let found = store.find_run("run-a").await.unwrap();
        assert_eq!(found, done);
        assert!(matches!(
            store.find_run("run-").await,
            Err(StoreError::Ambiguous { .. })
        ));
        assert!(matches!(
            store.find_run("zzz").await,
            Err(StoreError::NoSuchRun(_))
        ));
        let results = store.run_results("run-a1").await.unwrap();
        assert_eq!(results, rows);
        assert_eq!(
            store.run_input_errors("run-a1").await.unwrap()[0].source_line,
            4
        );
        store.close().await;
        // Reopening keeps everything.
        let again = Store::open(path.to_str().unwrap()).await.unwrap();
        assert_eq!(again.list_runs(10).await.unwrap().len(), 2);
    }
}

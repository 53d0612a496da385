//! The decision log's own connection to a SQLite file, used synchronously by one thread.
//!
//! A request the gate answers waits for its log entry's commit. Through the pool, that
//! commit is six statements, each a round trip to the connection's worker thread and back
//! (two thread wake-ups apiece); on a connection of its own, driven directly from the
//! log's writer thread, it is the same statements with no hand-off at all. The
//! transaction is the one [`Store::append_audit`] makes (`BEGIN IMMEDIATE`, the head row
//! read and moved with the entries), so both may write the same file, from one process or
//! several, and still make one chain.

use crate::{NewAuditEntry, Store, StoreError};
use libsqlite3_sys as ffi;
use std::ffi::{c_int, CStr, CString};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The statements a batch runs, prepared once.
const STATEMENTS: [&str; 7] = [
    "BEGIN IMMEDIATE",
    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING",
    "SELECT seq, hash FROM audit_head WHERE id = 1",
    "INSERT INTO audit_log (seq, at, project, kind, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1",
    "COMMIT",
    "ROLLBACK",
];
const BEGIN: usize = 0;
const HEAD_ROW: usize = 1;
const HEAD: usize = 2;
const INSERT: usize = 3;
const MOVE_HEAD: usize = 4;
const COMMIT: usize = 5;
const ROLLBACK: usize = 6;

/// What one append without waiting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Committed; the first entry's number.
    Written(i64),
    /// Another connection held the write lock: nothing was written.
    Busy,
}

/// A SQLite connection for appending to the decision log. It belongs to one thread at a
/// time (it is `Send`, not `Sync`).
pub struct LogConnection {
    db: NonNull<ffi::sqlite3>,
    statements: Vec<NonNull<ffi::sqlite3_stmt>>,
    /// The store's checkpoint threshold, followed before each batch.
    autocheckpoint: Arc<AtomicI64>,
    applied: i64,
    path: String,
}

// SAFETY: the connection is opened in SQLite's multi-thread mode, where one connection may
// be used from any thread as long as no two threads use it at once; `LogConnection` is not
// `Sync` (it holds raw pointers), so only the thread that holds it can use it.
unsafe impl Send for LogConnection {}

/// A failed SQLite call: its result code and the connection's message.
struct Failed {
    code: c_int,
    message: String,
}

impl Failed {
    fn busy(&self) -> bool {
        self.code & 0xff == ffi::SQLITE_BUSY || self.code & 0xff == ffi::SQLITE_LOCKED
    }
}

impl Store {
    /// The decision log's own connection, when the store is a SQLite file (`None` for
    /// PostgreSQL or an in-memory database, which append through the pool).
    pub fn log_connection(&self) -> Result<Option<LogConnection>, StoreError> {
        let Some(path) = self.file.as_deref() else {
            return Ok(None);
        };
        LogConnection::open(path, self.autocheckpoint.clone()).map(Some)
    }
}

/// The file a SQLite URL names, when it names one.
pub(crate) fn file_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory");
    if memory {
        return None;
    }
    // Decoded as the pool's driver decodes it (`%3F` for a `?` in a file name).
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    Some(path.into_owned())
}

impl LogConnection {
    fn open(path: &str, autocheckpoint: Arc<AtomicI64>) -> Result<LogConnection, StoreError> {
        let failed = |message: String| StoreError::Log {
            path: path.to_owned(),
            message: format!("cannot open a connection: {message}"),
        };
        let c_path = CString::new(path).map_err(|_| failed("the path holds a NUL byte".into()))?;
        let mut db = ptr::null_mut();
        // SAFETY: `c_path` is a NUL-terminated string and `db` a place for the handle.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c_path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let Some(db) = NonNull::new(db) else {
            return Err(failed("SQLite could not allocate a connection".into()));
        };
        let mut conn = LogConnection {
            db,
            statements: Vec::new(),
            autocheckpoint,
            applied: 0,
            path: path.to_owned(),
        };
        if rc != ffi::SQLITE_OK {
            return Err(failed(conn.message()));
        }
        conn.exec("PRAGMA synchronous = NORMAL")
            .map_err(|f| failed(f.message))?;
        conn.follow_checkpoints().map_err(|f| failed(f.message))?;
        for sql in STATEMENTS {
            let stmt = conn.prepare(sql).map_err(|f| failed(f.message))?;
            conn.statements.push(stmt);
        }
        Ok(conn)
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn message(&self) -> String {
        // SAFETY: the handle is open; SQLite returns a NUL-terminated string it owns.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }

    fn check(&self, rc: c_int) -> Result<(), Failed> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(Failed {
                code: rc,
                message: self.message(),
            })
        }
    }

    fn exec(&mut self, sql: &str) -> Result<(), Failed> {
        let sql = CString::new(sql).expect("statements hold no NUL byte");
        // SAFETY: the handle is open and `sql` NUL-terminated; no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        self.check(rc)
    }

    fn prepare(&mut self, sql: &str) -> Result<NonNull<ffi::sqlite3_stmt>, Failed> {
        let mut stmt = ptr::null_mut();
        // SAFETY: the handle is open; `sql` is read for its given length.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                sql.len() as c_int,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        self.check(rc)?;
        NonNull::new(stmt).ok_or_else(|| Failed {
            code: ffi::SQLITE_MISUSE,
            message: format!("no statement in {sql:?}"),
        })
    }

    /// The connection's checkpoint threshold follows the store's (raised while a
    /// checkpointer runs, see `checkpoint.rs`).
    fn follow_checkpoints(&mut self) -> Result<(), Failed> {
        let pages = self.autocheckpoint.load(Ordering::Relaxed);
        if pages != self.applied {
            self.exec(&format!("PRAGMA wal_autocheckpoint = {pages}"))?;
            self.applied = pages;
        }
        Ok(())
    }

    fn bind_text(&self, s: usize, i: c_int, text: &str) -> Result<(), Failed> {
        // SAFETY: the statement is prepared on this connection; SQLite copies the text
        // (SQLITE_TRANSIENT) before returning.
        let rc = unsafe {
            ffi::sqlite3_bind_text(
                self.statements[s].as_ptr(),
                i,
                text.as_ptr().cast(),
                text.len() as c_int,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        self.check(rc)
    }

    fn bind_int(&self, s: usize, i: c_int, v: i64) -> Result<(), Failed> {
        // SAFETY: the statement is prepared on this connection.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.statements[s].as_ptr(), i, v) };
        self.check(rc)
    }

    /// Runs statement `s` to its end, or to its first row (`true` when there is one); it
    /// is reset afterwards either way, its bindings cleared.
    fn step(&self, s: usize, row: impl FnOnce(*mut ffi::sqlite3_stmt)) -> Result<bool, Failed> {
        let stmt = self.statements[s].as_ptr();
        // SAFETY: the statement is prepared on this connection and used by this thread only.
        let rc = unsafe { ffi::sqlite3_step(stmt) };
        let out = match rc {
            ffi::SQLITE_ROW => {
                row(stmt);
                Ok(true)
            }
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(Failed {
                code: rc,
                message: self.message(),
            }),
        };
        // SAFETY: as above. Reset's own result repeats the step's error, already taken.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        out
    }

    /// Numbers, chains and writes `entries` after the log's head and moves the head, in one
    /// transaction, as [`Store::append_audit`] does; returns the first entry's number. While
    /// another connection holds the write lock it tries again, until `deadline`.
    pub fn append(
        &mut self,
        entries: &[NewAuditEntry],
        hash: impl Fn(i64, &NewAuditEntry, &str) -> String,
        deadline: Instant,
    ) -> Result<i64, StoreError> {
        let mut pause = Duration::from_micros(20);
        loop {
            match self.attempt(entries, &hash) {
                Ok(first) => return Ok(first),
                Err(f) if f.busy() && Instant::now() + pause <= deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(2));
                }
                Err(f) => return Err(self.failure(f)),
            }
        }
    }

    /// [`LogConnection::append`] without waiting: while another connection holds the write
    /// lock, [`Attempt::Busy`] at once, with nothing written.
    pub fn append_now(
        &mut self,
        entries: &[NewAuditEntry],
        hash: impl Fn(i64, &NewAuditEntry, &str) -> String,
    ) -> Result<Attempt, StoreError> {
        match self.attempt(entries, &hash) {
            Ok(first) => Ok(Attempt::Written(first)),
            Err(f) if f.busy() => Ok(Attempt::Busy),
            Err(f) => Err(self.failure(f)),
        }
    }

    fn failure(&self, f: Failed) -> StoreError {
        StoreError::Log {
            path: self.path.clone(),
            message: f.message,
        }
    }

    /// One try of the transaction; a failed one is rolled back.
    fn attempt(
        &mut self,
        entries: &[NewAuditEntry],
        hash: &impl Fn(i64, &NewAuditEntry, &str) -> String,
    ) -> Result<i64, Failed> {
        self.try_append(entries, hash).inspect_err(|_| {
            // SAFETY: the handle is open. Outside a transaction already when the failure
            // ended it (or it never began), else rolled back here.
            if unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) } == 0 {
                let _ = self.step(ROLLBACK, |_| {});
            }
        })
    }

    fn try_append(
        &mut self,
        entries: &[NewAuditEntry],
        hash: &impl Fn(i64, &NewAuditEntry, &str) -> String,
    ) -> Result<i64, Failed> {
        self.follow_checkpoints()?;
        self.step(BEGIN, |_| {})?;
        self.step(HEAD_ROW, |_| {})?;
        let mut head = (0i64, String::new());
        self.step(HEAD, |stmt| {
            // SAFETY: `stmt` is on a row of two columns; the text is copied before the
            // statement moves on.
            unsafe {
                head.0 = ffi::sqlite3_column_int64(stmt, 0);
                let text = ffi::sqlite3_column_text(stmt, 1);
                if !text.is_null() {
                    head.1 = CStr::from_ptr(text.cast()).to_string_lossy().into_owned();
                }
            }
        })?;
        let (head_seq, mut prev) = head;
        let first = head_seq + 1;
        for (i, e) in entries.iter().enumerate() {
            let seq = first + i as i64;
            let h = hash(seq, e, &prev);
            self.bind_int(INSERT, 1, seq)?;
            for (n, text) in [(2, &e.at), (3, &e.project), (4, &e.kind), (5, &e.body)] {
                self.bind_text(INSERT, n, text)?;
            }
            self.bind_text(INSERT, 6, &prev)?;
            self.bind_text(INSERT, 7, &h)?;
            self.step(INSERT, |_| {})?;
            prev = h;
        }
        if !entries.is_empty() {
            self.bind_int(MOVE_HEAD, 1, head_seq + entries.len() as i64)?;
            self.bind_text(MOVE_HEAD, 2, &prev)?;
            self.step(MOVE_HEAD, |_| {})?;
        }
        self.still_there()?;
        self.step(COMMIT, |_| {})?;
        Ok(first)
    }

    /// A database file moved or deleted while open still takes writes, which no one reads
    /// again: decisions answered now would be lost. Such a file is refused, and the gate
    /// answers `store_unavailable` instead of a decision.
    fn still_there(&self) -> Result<(), Failed> {
        let mut moved: c_int = 0;
        // SAFETY: the handle is open; HAS_MOVED writes one int through the pointer.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                self.db.as_ptr(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_HAS_MOVED,
                (&mut moved as *mut c_int).cast(),
            )
        };
        self.check(rc)?;
        if moved != 0 {
            return Err(Failed {
                code: ffi::SQLITE_READONLY_DBMOVED,
                message: format!("{MOVED}; restart the server on a database file"),
            });
        }
        Ok(())
    }
}

/// What an error says of a database file moved or deleted while open.
pub const MOVED: &str =
    "the database file was moved or deleted while open: what is written to it now is lost";

impl Drop for LogConnection {
    fn drop(&mut self) {
        // SAFETY: every statement was prepared on this connection and is finalized once,
        // before the connection closes.
        unsafe {
            for s in self.statements.drain(..) {
                ffi::sqlite3_finalize(s.as_ptr());
            }
            ffi::sqlite3_close(self.db.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Appended, NewJudgeVersion};

    fn entry(i: usize) -> NewAuditEntry {
        NewAuditEntry {
            at: format!("2026-01-01T00:00:{:02}Z", i % 60),
            project: "default".into(),
            kind: "gate".into(),
            body: format!("{{\"i\":{i}}}"),
        }
    }

    /// The log's connection commits while the pool's transactions read and then write: each
    /// of them waits for the write lock instead of failing, and the log stays one chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_and_the_pool_write_one_file_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap();
        let mut conn = store.log_connection().unwrap().expect("a SQLite file");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let done = batches.clone();
        // The log commits all the while the pool writes.
        let writer = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut firsts = Vec::new();
            let mut b = 0;
            while !stopped.load(Ordering::Relaxed) {
                b += 1;
                let batch: Vec<_> = (0..1 + b % 3).map(entry).collect();
                let first = conn
                    .append(&batch, |seq, _, prev| format!("{seq}:{prev}"), deadline)
                    .unwrap();
                firsts.push((first, batch.len() as i64));
                done.fetch_add(1, Ordering::Relaxed);
            }
            firsts
        });
        for n in 0..150 {
            // Each write of the pool comes after another commit of the log, whichever of
            // the two takes the write lock more often.
            while batches.load(Ordering::Relaxed) <= n {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            let v = NewJudgeVersion {
                project: "default".into(),
                name: "j".into(),
                kind: "regex".into(),
                settings: "{}".into(),
                hash: format!("h{n}"),
                note: String::new(),
                created_at: "2026-01-01T00:00:00Z".into(),
                created_by: "test".into(),
            };
            assert_eq!(
                store.append_judge_version(&v).await.unwrap(),
                Appended::Added(n as i64 + 1)
            );
        }
        stop.store(true, Ordering::Relaxed);
        let firsts = writer.join().unwrap();
        assert!(firsts.len() >= 150, "{} batches", firsts.len());
        // Numbers follow on from batch to batch, with no gap.
        let mut next = 1;
        for (first, len) in firsts {
            assert_eq!(first, next);
            next += len;
        }
        let (head, hash) = store.audit_head().await.unwrap();
        assert_eq!(head, next - 1);
        assert!(hash.starts_with(&format!("{head}:")), "{hash}");
    }

    #[test]
    fn the_file_of_a_sqlite_url() {
        assert_eq!(
            file_of("sqlite://a/b.db?mode=rwc").as_deref(),
            Some("a/b.db")
        );
        assert_eq!(file_of("sqlite:/tmp/x.db").as_deref(), Some("/tmp/x.db"));
        assert_eq!(file_of("sqlite::memory:"), None);
        assert_eq!(file_of("sqlite://x.db?mode=memory&cache=shared"), None);
        assert_eq!(file_of("postgres://localhost/test"), None);
        assert_eq!(
            file_of("sqlite://a%3Fb/c%20d.db?mode=rwc").as_deref(),
            Some("a?b/c d.db")
        );
    }
}

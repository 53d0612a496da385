//! The decision log: every gate decision (and every review of one) is an entry whose hash
//! covers all of its columns (sequence number, time, kind, project, body) and the previous
//! entry's hash, so editing or removing any entry breaks the chain from there on. A head
//! record (last seq and hash) is moved in the same transaction as the entries, so removing
//! entries at the end is caught too; a head kept elsewhere (`tribunal audit head`) catches
//! a log cut back together with its head record.
//!
//! Entries are queued to one writer that writes whatever has gathered in one transaction
//! and only then wakes each waiting request (group commit): on a SQLite file a thread with
//! a connection of its own ([`LogConnection`]), else a task on the store's pool
//! (`batch.rs`). On a SQLite file, a request that is the only one under way and finds the
//! connection free commits its entry itself, on its own thread, with no hand-off to the
//! writer and back; it queues its entry instead when another connection holds the file's
//! write lock (the writer waits for it, a runtime worker does not). Requests under way
//! together go through the writer and share its commits. Either way the entries are
//! numbered and chained inside the transaction that writes them, so a decision is answered
//! only once its entry is committed, and a number is given once, by a commit. A batch that fails fails each of its requests (the gate answers 503
//! `store_unavailable`, never a decision).
//!
//! A change a person makes (a review's decision, a tool pin approved or removed) is
//! written with its entry in one transaction of the store's ([`AuditLog::record`]): the
//! change stands exactly when its entry is in the log.

use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tribunal_store::{
    clock, Attempt, HeadGuard, LogConnection, Logged, NewAuditEntry, Store, StoreError,
};

/// How long one batch may take to commit before its requests fail.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// The hash of an entry: SHA-256 over the tag `tribunal-audit-v2` and then, in this order,
/// the sequence number (decimal), the time, the kind, the project, the body and the
/// previous entry's hash, each as its length in bytes (8 bytes, big-endian) followed by
/// its bytes. Every column is covered and no two different entries encode alike.
pub fn entry_hash(
    seq: i64,
    at: &str,
    kind: &str,
    project: &str,
    body: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"tribunal-audit-v2");
    let seq = seq.to_string();
    for field in [seq.as_str(), at, kind, project, body, prev_hash] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex(&h.finalize())
}

/// SHA-256 over the previous hash, a newline and some bytes (a running digest).
pub fn chain_hash(prev_hash: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex(&h.finalize())
}

/// SHA-256 of some bytes, hex.
pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Why an entry was not written. The decision it records must not be given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuditError {
    #[error("the decision log could not be written: {0}")]
    Store(String),
    #[error("the decision log is closed (the server is stopping)")]
    Closed,
    /// The entry's [`HeadGuard`] failed: another server that shares the store extended the
    /// trace since this one read it (the trace's id).
    #[error("trace {0:?} was extended by another server since this one read it")]
    Stale(String),
}

/// An entry waiting for the writer, and who waits for its number.
struct Queued {
    entry: NewAuditEntry,
    /// Checked in the entry's commit when the log is written through the pool (servers
    /// that share a database); one server alone on its SQLite file holds every trace it
    /// extends, and needs none.
    guard: Option<HeadGuard>,
    done: oneshot::Sender<Result<i64, AuditError>>,
}

/// An entry committed at once, or queued for the writer, which says when it is committed.
enum Submitted {
    Committed(i64),
    Queued(oneshot::Receiver<Result<i64, AuditError>>),
}

fn stopped() -> AuditError {
    AuditError::Store("the writer stopped before writing the entry".into())
}

/// A request's work after its queued entry, done in a task of its own if the request is
/// dropped while it waits (see [`AuditLog::append_carrying`]).
struct Carry<T, F, G, Fut>
where
    T: Send + 'static,
    F: FnOnce(T) -> G,
    G: FnOnce(i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    committed: Option<oneshot::Receiver<Result<i64, AuditError>>>,
    rest: Option<(T, F)>,
}

impl<T, F, G, Fut> Drop for Carry<T, F, G, Fut>
where
    T: Send + 'static,
    F: FnOnce(T) -> G,
    G: FnOnce(i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    fn drop(&mut self) {
        if let (Some(committed), Some((carried, if_dropped))) =
            (self.committed.take(), self.rest.take())
        {
            // Called here, while the request's connection is still open, so what it takes
            // (a place shutdown waits for) is taken before shutdown can pass it by.
            let then = if_dropped(carried);
            tokio::spawn(async move {
                if let Ok(Ok(seq)) = committed.await {
                    then(seq).await;
                }
            });
        }
    }
}

/// Where new entries go.
pub struct AuditLog {
    /// The writer's queue; `None` once closed.
    tx: std::sync::RwLock<Option<mpsc::Sender<Queued>>>,
    /// The same queue, for its depth (weak: closing the log still ends the writer).
    queue: mpsc::WeakSender<Queued>,
    /// The log's own SQLite connection, shared by its writer and requests that find it
    /// free (`None` when the log is written through the pool).
    conn: Option<Arc<Mutex<LogConnection>>>,
    /// Requests under way that append to the log ([`AuditLog::under_way`]).
    active: AtomicUsize,
    /// Entries committed by their own request.
    here: AtomicU64,
}

/// A request counted as under way while this lives.
pub struct UnderWay<'a>(&'a AtomicUsize);

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes one batch through the store's pool and tells each request its number, or the
/// failure.
async fn write_batch(store: &Store, batch: Vec<Queued>) {
    let mut entries = Vec::with_capacity(batch.len());
    let mut guards = Vec::with_capacity(batch.len());
    let mut waiters = Vec::with_capacity(batch.len());
    for q in batch {
        entries.push(q.entry);
        guards.push(q.guard);
        waiters.push(q.done);
    }
    let written = tokio::time::timeout(
        WRITE_TIMEOUT,
        store.append_audit_guarded(&entries, &guards, hash_of),
    )
    .await;
    let written = match written {
        Ok(w) => w.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the store did not commit within {} s",
            WRITE_TIMEOUT.as_secs()
        )),
    };
    match written {
        Ok(seqs) => {
            for ((w, seq), guard) in waiters.into_iter().zip(seqs).zip(guards) {
                let told = match (seq, guard) {
                    (Some(seq), _) => Ok(seq),
                    (None, g) => Err(AuditError::Stale(g.map(|g| g.trace_id).unwrap_or_default())),
                };
                let _ = w.send(told);
            }
        }
        Err(failed) => tell(waiters, Err(failed)),
    }
}

fn hash_of(seq: i64, e: &NewAuditEntry, prev: &str) -> String {
    entry_hash(seq, &e.at, &e.kind, &e.project, &e.body, prev)
}

/// `entry` chained as every entry of the log is, for the store to write with a change.
pub fn logged(entry: &NewAuditEntry) -> Logged<'_> {
    Logged {
        entry,
        hash: hash_of,
    }
}

/// Tells each request of a batch its number (the first entry's `first`, the others in
/// order) or why the batch was not written.
fn tell(waiters: Vec<oneshot::Sender<Result<i64, AuditError>>>, written: Result<i64, String>) {
    match written {
        Ok(first) => {
            for (i, w) in waiters.into_iter().enumerate() {
                let _ = w.send(Ok(first + i as i64));
            }
        }
        Err(failed) => {
            tracing::error!(error = %failed, entries = waiters.len(), "writing the decision log failed; the requests fail");
            for w in waiters {
                let _ = w.send(Err(AuditError::Store(failed.clone())));
            }
        }
    }
}

/// The connection, once no one else uses it. A panic while it was held leaves it usable:
/// a transaction it left open makes the next attempt fail, which rolls it back.
fn lock(conn: &Mutex<LogConnection>) -> std::sync::MutexGuard<'_, LogConnection> {
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the writer on the log's own SQLite connection: a thread that takes whatever has
/// gathered in the queue, commits it in one transaction and wakes its requests.
fn spawn_on(
    conn: Arc<Mutex<LogConnection>>,
    capacity: usize,
) -> Result<(mpsc::Sender<Queued>, tokio::task::JoinHandle<()>), StoreError> {
    let (tx, mut rx) = mpsc::channel::<Queued>(capacity.max(1));
    let (ended, end) = oneshot::channel::<()>();
    let conn_path = lock(&conn).path().to_owned();
    std::thread::Builder::new()
        .name("decision-log".into())
        .spawn(move || {
            let mut batch = Vec::new();
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < crate::batch::BATCH {
                    match rx.try_recv() {
                        Ok(q) => batch.push(q),
                        Err(_) => break,
                    }
                }
                let (entries, waiters): (Vec<NewAuditEntry>, Vec<_>) =
                    batch.drain(..).map(|q| (q.entry, q.done)).unzip();
                let written = lock(&conn)
                    .append(&entries, hash_of, Instant::now() + WRITE_TIMEOUT)
                    .map_err(|e| e.to_string());
                tell(waiters, written);
            }
            let _ = ended.send(());
        })
        .map_err(|e| StoreError::Log {
            path: conn_path,
            message: format!("its writer thread did not start: {e}"),
        })?;
    let writer = tokio::spawn(async move {
        let _ = end.await;
    });
    Ok((tx, writer))
}

impl AuditLog {
    /// Starts the writer on `store` (entries continue the chain the store holds). The
    /// returned handle finishes when every queued entry is written after
    /// [`AuditLog::close`].
    pub async fn open(
        store: Store,
        capacity: usize,
    ) -> Result<(AuditLog, tokio::task::JoinHandle<()>), StoreError> {
        // The store answers before the server starts.
        store.audit_head().await?;
        // A SQLite file is written from a connection of the log's own, without the pool's
        // hand-offs to its worker thread; PostgreSQL through the pool.
        let conn = store.log_connection()?.map(|c| Arc::new(Mutex::new(c)));
        let (tx, writer) = match &conn {
            Some(conn) => spawn_on(conn.clone(), capacity)?,
            None => crate::batch::spawn(
                "the decision log",
                store,
                capacity,
                Duration::ZERO,
                |store, batch| async move {
                    write_batch(&store, batch).await;
                    (Vec::new(), Ok(()))
                },
            ),
        };
        Ok((
            AuditLog {
                queue: tx.downgrade(),
                tx: std::sync::RwLock::new(Some(tx)),
                conn,
                active: AtomicUsize::new(0),
                here: AtomicU64::new(0),
            },
            writer,
        ))
    }

    /// Counts a request as under way until the returned guard is dropped: a gate request,
    /// from its start to its answer. While others are, an entry is left to the writer to
    /// share a commit with theirs; a request alone commits its own.
    pub fn under_way(&self) -> UnderWay<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        UnderWay(&self.active)
    }

    /// Entries committed by their own request rather than by the writer.
    pub fn committed_here(&self) -> u64 {
        self.here.load(Ordering::Relaxed)
    }

    /// Entries queued but not yet committed.
    pub fn queued(&self) -> usize {
        self.queue
            .upgrade()
            .map_or(0, |tx| crate::batch::depth(&tx))
    }

    /// Writes an entry; returns its sequence number once it is committed. Waits while the
    /// queue is full.
    pub async fn append(
        &self,
        project: &str,
        kind: &str,
        body: &impl serde::Serialize,
    ) -> Result<i64, AuditError> {
        self.append_at(project, kind, body, clock::now_rfc3339())
            .await
    }

    /// [`AuditLog::append`] with the entry's time given (`at`, RFC 3339).
    pub async fn append_at(
        &self,
        project: &str,
        kind: &str,
        body: &impl serde::Serialize,
        at: String,
    ) -> Result<i64, AuditError> {
        match self.submit(project, kind, body, at, None).await? {
            Submitted::Committed(seq) => Ok(seq),
            Submitted::Queued(committed) => committed.await.unwrap_or_else(|_| Err(stopped())),
        }
    }

    /// [`AuditLog::append_at`] for a request with work to do once its entry is committed
    /// (`carried`): given back with the sequence number. When the request stops waiting
    /// after its entry was queued (its client hung up), the entry is still committed:
    /// `if_dropped(carried)` is called as the request is dropped, and what it gives runs with
    /// the sequence number in a task of its own once the entry is committed, so what follows
    /// a logged decision is done whatever the connection does.
    ///
    /// `guard`, when the log is written through the pool, is checked in the entry's commit:
    /// an entry whose trace another server extended since is not written
    /// ([`AuditError::Stale`]).
    pub async fn append_carrying<T, F, G, Fut>(
        &self,
        (project, kind, body, at): (&str, &str, &impl serde::Serialize, String),
        guard: Option<HeadGuard>,
        carried: T,
        if_dropped: F,
    ) -> Result<(i64, T), AuditError>
    where
        T: Send + 'static,
        F: FnOnce(T) -> G,
        G: FnOnce(i64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        match self.submit(project, kind, body, at, guard).await? {
            Submitted::Committed(seq) => Ok((seq, carried)),
            Submitted::Queued(committed) => {
                let mut carry = Carry {
                    committed: Some(committed),
                    rest: Some((carried, if_dropped)),
                };
                let done = match carry.committed.as_mut() {
                    Some(rx) => rx.await.unwrap_or_else(|_| Err(stopped())),
                    None => Err(stopped()),
                };
                carry.committed = None;
                let (carried, _) = carry.rest.take().ok_or_else(stopped)?;
                done.map(|seq| (seq, carried))
            }
        }
    }

    /// Commits the entry here when that is quicker, else queues it for the writer.
    async fn submit(
        &self,
        project: &str,
        kind: &str,
        body: &impl serde::Serialize,
        at: String,
        guard: Option<HeadGuard>,
    ) -> Result<Submitted, AuditError> {
        let body = serde_json::to_string(body)
            .map_err(|e| AuditError::Store(format!("the entry did not serialize: {e}")))?;
        let tx = self
            .tx
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(AuditError::Closed)?;
        let entry = NewAuditEntry {
            at,
            project: project.to_owned(),
            kind: kind.to_owned(),
            body,
        };
        // At most this request under way: no other entry is coming to share a commit with.
        let alone = self.active.load(Ordering::Relaxed) <= 1;
        if let Some(seq) = self.commit_here(&tx, &entry, alone)? {
            return Ok(Submitted::Committed(seq));
        }
        let (done, committed) = oneshot::channel();
        // The log's own SQLite connection serves one server, which needs no guard.
        let guard = guard.filter(|_| self.conn.is_none());
        tx.send(Queued { entry, guard, done })
            .await
            .map_err(|_| AuditError::Closed)?;
        Ok(Submitted::Queued(committed))
    }

    /// Commits `entry` on this thread when no other request is under way (else it shares
    /// the writer's next commit with theirs) and the log's connection is free; `None` when
    /// it is to be queued (nothing written).
    fn commit_here(
        &self,
        tx: &mpsc::Sender<Queued>,
        entry: &NewAuditEntry,
        alone: bool,
    ) -> Result<Option<i64>, AuditError> {
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        if !alone || crate::batch::depth(tx) > 0 {
            return Ok(None);
        }
        let mut conn = match conn.try_lock() {
            Ok(c) => c,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        match conn.append_now(std::slice::from_ref(entry), hash_of) {
            Ok(Attempt::Written(seq)) => {
                self.here.fetch_add(1, Ordering::Relaxed);
                Ok(Some(seq))
            }
            Ok(Attempt::Busy) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, entries = 1, "writing the decision log failed; the request fails");
                Err(AuditError::Store(e.to_string()))
            }
        }
    }

    /// The entry that records a change a person makes, for the store to write in the
    /// change's own transaction ([`Logged`]). Refused once the log is closed, as
    /// [`AuditLog::append`] is.
    pub fn record(
        &self,
        project: &str,
        kind: &str,
        body: &impl serde::Serialize,
    ) -> Result<NewAuditEntry, AuditError> {
        if self.tx.read().unwrap_or_else(|p| p.into_inner()).is_none() {
            return Err(AuditError::Closed);
        }
        let body = serde_json::to_string(body)
            .map_err(|e| AuditError::Store(format!("the entry did not serialize: {e}")))?;
        Ok(NewAuditEntry {
            at: clock::now_rfc3339(),
            project: project.to_owned(),
            kind: kind.to_owned(),
            body,
        })
    }

    /// Stops accepting entries; the writer writes what is queued and ends.
    pub fn close(&self) {
        self.tx.write().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// The configuration entry a gate entry names, when it names one.
fn config_of(body: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Named {
        config: Option<i64>,
    }
    serde_json::from_str::<Named>(body).ok()?.config
}

/// The log's last entry, as `tribunal audit head` prints it, to be kept elsewhere and
/// given back to `tribunal audit verify --head`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// The head the log's head record names.
pub async fn head(store: &Store) -> Result<Head, StoreError> {
    let (seq, hash) = store.audit_head().await?;
    Ok(Head { seq, hash })
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifyReport {
    pub entries: i64,
    pub head_seq: i64,
    pub head_hash: String,
    /// One line per problem; empty when the log is intact.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the whole log and checks numbering, links, hashes and the head record.
pub async fn verify(store: &Store) -> Result<VerifyReport, StoreError> {
    verify_against(store, None).await
}

/// [`verify`], and also that the log still holds `saved` (a head kept elsewhere): an entry
/// with its sequence number and hash.
///
/// Servers may append while the log is read. The head is read after the entries: an entry
/// is committed with the head that names it, so a head beyond the last entry read means
/// entries committed since, which are read in turn, until the entries and the head meet
/// (or the entries stop coming: then some were removed).
pub async fn verify_against(
    store: &Store,
    saved: Option<&Head>,
) -> Result<VerifyReport, StoreError> {
    let mut walk = Walk {
        problems: Vec::new(),
        expected_seq: 1,
        prev_hash: String::new(),
        entries: 0,
        after: 0,
        saved_found: saved.is_none_or(|h| h.seq == 0),
        configs: std::collections::HashMap::new(),
        kept_growing: false,
    };
    walk.read_to_end(store, saved).await?;
    let (mut head_seq, mut head_hash) = store.audit_head().await?;
    for round in 0..=CATCH_UP_ROUNDS {
        if head_seq <= walk.last_seq() {
            break;
        }
        if round == CATCH_UP_ROUNDS {
            walk.kept_growing = true;
            break;
        }
        let before = walk.last_seq();
        walk.read_to_end(store, saved).await?;
        if walk.last_seq() == before {
            // Nothing more to read: the entries the head names are gone.
            break;
        }
        (head_seq, head_hash) = store.audit_head().await?;
    }
    let last_seq = walk.last_seq();
    let mut problems = walk.problems;
    if head_seq > last_seq && walk.kept_growing {
        problems.push(format!(
            "the log was still being written after {CATCH_UP_ROUNDS} rounds of reading on: it was read to entry {last_seq} (the head says {head_seq}); verify again when it is quieter"
        ));
    } else if head_seq != last_seq || head_hash != walk.prev_hash {
        problems.push(format!(
            "the head record says the log ends at entry {head_seq}, but it ends at entry {last_seq}{}",
            if head_seq > last_seq { " (entries at the end were removed)" } else { "" }
        ));
    }
    if let Some(h) = saved.filter(|_| !walk.saved_found) {
        problems.push(format!(
            "the saved head names entry {}, but the log {} (entries were removed)",
            h.seq,
            if last_seq < h.seq {
                format!("ends at entry {last_seq}")
            } else {
                format!("has no entry {}", h.seq)
            }
        ));
    }
    Ok(VerifyReport {
        entries: walk.entries,
        head_seq,
        head_hash,
        problems,
    })
}

/// How many times [`verify_against`] reads on after entries committed while it read.
const CATCH_UP_ROUNDS: usize = 100;

/// What reading the log in order has found so far.
struct Walk {
    problems: Vec<String>,
    expected_seq: i64,
    prev_hash: String,
    entries: i64,
    /// The last sequence number read.
    after: i64,
    saved_found: bool,
    /// Configuration entries seen so far, by sequence number: their projects.
    configs: std::collections::HashMap<i64, String>,
    /// Entries were still being committed after every round of reading on.
    kept_growing: bool,
}

impl Walk {
    fn last_seq(&self) -> i64 {
        self.expected_seq - 1
    }

    /// Checks the entries after the last one read, to the end of the log as it is now.
    async fn read_to_end(&mut self, store: &Store, saved: Option<&Head>) -> Result<(), StoreError> {
        loop {
            let rows = store.audit_entries(self.after, 1000).await?;
            if rows.is_empty() {
                return Ok(());
            }
            for r in &rows {
                self.check(r, saved);
            }
            self.after = rows.last().map_or(self.after, |r| r.seq);
        }
    }

    fn check(&mut self, r: &tribunal_store::AuditRow, saved: Option<&Head>) {
        let problems = &mut self.problems;
        let expected_seq = self.expected_seq;
        self.entries += 1;
        if r.seq != expected_seq {
            problems.push(format!(
                "entry {}: expected entry {expected_seq} here (entries {expected_seq}..{} are missing)",
                r.seq,
                r.seq - 1
            ));
        }
        if r.prev_hash != self.prev_hash {
            problems.push(format!(
                "entry {}: its previous hash does not match entry {}'s hash",
                r.seq,
                r.seq - 1
            ));
        }
        if entry_hash(r.seq, &r.at, &r.kind, &r.project, &r.body, &r.prev_hash) != r.hash {
            problems.push(format!(
                "entry {}: its content does not match its hash (edited)",
                r.seq
            ));
        }
        if let Some(h) = saved.filter(|h| h.seq == r.seq) {
            self.saved_found = true;
            if h.hash != r.hash {
                problems.push(format!(
                    "entry {}: its hash is not the one the saved head records (the log was rewritten behind the saved head)",
                    r.seq
                ));
            }
        }
        match r.kind.as_str() {
            "config" => {
                self.configs.insert(r.seq, r.project.clone());
            }
            "gate" => {
                if let Some(c) = config_of(&r.body) {
                    if self.configs.get(&c) != Some(&r.project) {
                        problems.push(format!(
                            "entry {}: the configuration it names (entry {c}) is not an earlier configuration entry of project {}",
                            r.seq, r.project
                        ));
                    }
                }
            }
            _ => {}
        }
        self.expected_seq = r.seq + 1;
        self.prev_hash = r.hash.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tribunal_store::testing::FAIL_LOG_WRITES;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("a.db").to_str().unwrap())
            .await
            .unwrap();
        (dir, s)
    }

    async fn write(store: &Store, n: usize) -> Vec<i64> {
        let (log, writer) = AuditLog::open(store.clone(), 4).await.unwrap();
        let mut seqs = Vec::new();
        for i in 0..n {
            seqs.push(
                log.append("default", "gate", &json!({"decision": "allow", "i": i}))
                    .await
                    .unwrap(),
            );
        }
        log.close();
        writer.await.unwrap();
        seqs
    }

    /// An entry added after the last one, chained to it but with the head left as it was,
    /// is found: the head is read after the entries, and stays behind them.
    #[tokio::test]
    async fn an_entry_added_beyond_the_head_is_found() {
        let (_dir, store) = store().await;
        write(&store, 5).await;
        let (seq, hash) = store.audit_head().await.unwrap();
        let (at, kind, project, body) = ("2026-12-07T00:00:00Z", "gate", "default", "{}");
        let h = entry_hash(seq + 1, at, kind, project, body, &hash);
        store
            .execute_raw(&format!(
                "INSERT INTO audit_log (seq, at, project, kind, body, prev_hash, hash) VALUES ({}, '{at}', '{project}', '{kind}', '{body}', '{hash}', '{h}')",
                seq + 1
            ))
            .await
            .unwrap();
        let report = verify(&store).await.unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains(&format!(
                "ends at entry {seq}, but it ends at entry {}",
                seq + 1
            ))),
            "{:?}",
            report.problems
        );
    }

    /// A log that servers write to while it is verified is intact: entries committed
    /// during the reading are read too, not taken for entries beyond the head.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_written_while_it_is_verified_is_intact() {
        let (_dir, store) = store().await;
        write(&store, 1500).await;
        let writing = {
            let store = store.clone();
            tokio::spawn(async move { write(&store, 3000).await })
        };
        let mut rounds = 0;
        while !writing.is_finished() {
            let report = verify(&store).await.unwrap();
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            assert_eq!(report.entries, report.head_seq);
            rounds += 1;
        }
        writing.await.unwrap();
        assert!(rounds > 0);
        let report = verify(&store).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.head_seq, 4500);
    }

    #[tokio::test]
    async fn intact_chain_verifies_and_continues_across_restarts() {
        let (_d, s) = store().await;
        assert_eq!(write(&s, 5).await, [1, 2, 3, 4, 5]);
        assert_eq!(write(&s, 3).await, [6, 7, 8]);
        let r = verify(&s).await.unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!((r.entries, r.head_seq), (8, 8));
    }

    /// Two stores on one SQLite file (two servers) write one chain, one after the other
    /// and both at once.
    #[tokio::test]
    async fn two_stores_on_one_file_write_one_chain() {
        let (d, a) = store().await;
        let b = Store::open(d.path().join("a.db").to_str().unwrap())
            .await
            .unwrap();
        let mut seqs = Vec::new();
        for round in 0..6 {
            for (s, n) in [(&a, 3), (&b, round % 3)] {
                let (log, writer) = AuditLog::open(s.clone(), 4).await.unwrap();
                for i in 0..n {
                    seqs.push(
                        log.append("default", "gate", &json!({"round": round, "i": i}))
                            .await
                            .unwrap(),
                    );
                }
                log.close();
                writer.await.unwrap();
            }
        }
        // Both at once, too.
        let (la, wa) = AuditLog::open(a.clone(), 64).await.unwrap();
        let (lb, wb) = AuditLog::open(b.clone(), 64).await.unwrap();
        let (la, lb) = (std::sync::Arc::new(la), std::sync::Arc::new(lb));
        let mut tasks = Vec::new();
        for i in 0..60 {
            let log = if i % 2 == 0 { la.clone() } else { lb.clone() };
            tasks.push(tokio::spawn(async move {
                log.append("default", "gate", &json!({"both": i}))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        la.close();
        lb.close();
        wa.await.unwrap();
        wb.await.unwrap();
        seqs.sort();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        let r = verify(&a).await.unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.entries, seqs.len() as i64);
    }

    #[tokio::test]
    async fn an_entry_is_numbered_when_it_is_committed() {
        let (_d, s) = store().await;
        let (log, writer) = AuditLog::open(s.clone(), 64).await.unwrap();
        let log = std::sync::Arc::new(log);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append("default", "gate", &json!({"i": i}))
                    .await
                    .unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            let seq = t.await.unwrap();
            seqs.push(seq);
        }
        // Every number returned is already in the store, with its own body.
        let rows = s.audit_entries(0, 100).await.unwrap();
        for seq in &seqs {
            assert!(rows.iter().any(|r| r.seq == *seq), "{seq} not written");
        }
        seqs.sort();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
        log.close();
        writer.await.unwrap();
    }

    /// A request alone commits its entry itself; while another connection holds the file's
    /// write lock it leaves the entry to the writer, which waits for the lock, instead of
    /// waiting on a runtime worker: on a runtime of one thread, the task that releases the
    /// lock still runs, and the entry is written then.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_alone_commits_itself_and_never_waits_for_a_lock_on_the_runtime() {
        let (d, s) = store().await;
        let (log, writer) = AuditLog::open(s.clone(), 4).await.unwrap();
        assert_eq!(log.append("default", "gate", &json!({"i": 1})).await, Ok(1));
        assert_eq!(log.committed_here(), 1);
        let lock = tribunal_store::testing::WriteLock::take(&d.path().join("a.db"))
            .await
            .unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            lock.release().await.unwrap();
        });
        assert_eq!(log.append("default", "gate", &json!({"i": 2})).await, Ok(2));
        release.await.unwrap();
        // The second entry went through the writer.
        assert_eq!(log.committed_here(), 1);
        assert_eq!(log.append("default", "gate", &json!({"i": 3})).await, Ok(3));
        assert_eq!(log.committed_here(), 2);
        log.close();
        writer.await.unwrap();
        let r = verify(&s).await.unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.entries, 3);
    }

    /// Requests under way together share the writer's commits; one alone commits itself;
    /// both kinds make one chain with every number given once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_committed_here_and_by_the_writer_make_one_chain() {
        let (_d, s) = store().await;
        let (log, writer) = AuditLog::open(s.clone(), 64).await.unwrap();
        let log = std::sync::Arc::new(log);
        let mut seqs = Vec::new();
        for round in 0..20 {
            // A burst, then one alone.
            let mut tasks = Vec::new();
            for i in 0..(round % 5) * 4 {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    let _under_way = log.under_way();
                    // The burst's requests are all under way before they append.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    log.append("default", "gate", &json!({"round": round, "i": i}))
                        .await
                        .unwrap()
                }));
            }
            for t in tasks {
                seqs.push(t.await.unwrap());
            }
            seqs.push(
                log.append("default", "gate", &json!({"alone": round}))
                    .await
                    .unwrap(),
            );
        }
        assert!(log.committed_here() >= 20, "{}", log.committed_here());
        assert!((log.committed_here() as usize) < seqs.len());
        seqs.sort();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        log.close();
        writer.await.unwrap();
        let r = verify(&s).await.unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.entries, seqs.len() as i64);
    }

    #[tokio::test]
    async fn a_failed_write_fails_the_request_and_gives_no_number() {
        let (_d, s) = store().await;
        write(&s, 2).await;
        let (log, writer) = AuditLog::open(s.clone(), 4).await.unwrap();
        s.execute_raw(FAIL_LOG_WRITES).await.unwrap();
        let e = log
            .append("default", "gate", &json!({"decision": "allow"}))
            .await
            .unwrap_err();
        // The error names the file and what SQLite said.
        let AuditError::Store(message) = &e else {
            panic!("{e:?}")
        };
        assert!(
            message.contains("a.db") && message.contains("the test makes decision-log writes fail"),
            "{message}"
        );
        s.execute_raw("DROP TRIGGER fail_log_writes").await.unwrap();
        // The number the failed entry would have had is given to the next one.
        assert_eq!(log.append("default", "gate", &json!({})).await, Ok(3));
        log.close();
        assert_eq!(
            log.append("default", "gate", &json!({})).await,
            Err(AuditError::Closed)
        );
        writer.await.unwrap();
        assert!(verify(&s).await.unwrap().ok());
    }

    #[tokio::test]
    async fn gate_entries_must_name_an_earlier_configuration_of_their_project() {
        let (_d, s) = store().await;
        let (log, writer) = AuditLog::open(s.clone(), 4).await.unwrap();
        let a = log
            .append("a", "config", &json!({"judges": {}}))
            .await
            .unwrap();
        let b = log
            .append("b", "config", &json!({"judges": {}}))
            .await
            .unwrap();
        for (project, config) in [("a", a), ("b", b), ("a", b), ("a", 9), ("a", 3)] {
            // Another project's configuration, a later entry, one that is no configuration.
            log.append(
                project,
                "gate",
                &json!({"decision": "allow", "config": config}),
            )
            .await
            .unwrap();
        }
        log.close();
        writer.await.unwrap();
        let r = verify(&s).await.unwrap();
        let named: Vec<&str> = r.problems.iter().map(|p| &p[..8]).collect();
        assert_eq!(
            named,
            ["entry 5:", "entry 6:", "entry 7:"],
            "{:?}",
            r.problems
        );
        assert!(r.problems[0].contains("(entry 2)") && r.problems[0].contains("project a"));
    }

    async fn exec(s: &Store, sql: &str) {
        s.execute_raw(sql).await.unwrap();
    }

    #[tokio::test]
    async fn an_edit_of_any_column_is_detected() {
        for (column, edit, problem) in [
            ("body", "body = replace(body, 'allow', 'block')", "edited"),
            ("at", "at = '2020-01-01T00:00:00Z'", "edited"),
            ("kind", "kind = 'review'", "edited"),
            ("project", "project = 'other'", "edited"),
            ("prev_hash", "prev_hash = hash", "previous hash"),
            ("hash", "hash = prev_hash", "edited"),
            // Two entries swap numbers (the rest of each row kept).
            ("seq", "", "edited"),
        ] {
            let (_d, s) = store().await;
            write(&s, 6).await;
            let sql = if column == "seq" {
                // Through a free number, so the primary key holds at every step.
                exec(&s, "UPDATE audit_log SET seq = 100 WHERE seq = 3").await;
                exec(&s, "UPDATE audit_log SET seq = 3 WHERE seq = 4").await;
                "UPDATE audit_log SET seq = 4 WHERE seq = 100".to_owned()
            } else {
                format!("UPDATE audit_log SET {edit} WHERE seq = 3")
            };
            exec(&s, &sql).await;
            let r = verify(&s).await.unwrap();
            assert!(
                r.problems
                    .iter()
                    .any(|p| p.starts_with("entry 3") && p.contains(problem)),
                "{column}: {:?}",
                r.problems
            );
        }
    }

    #[tokio::test]
    async fn removals_are_detected() {
        let (_d, s) = store().await;
        write(&s, 6).await;
        exec(&s, "DELETE FROM audit_log WHERE seq = 4").await;
        let r = verify(&s).await.unwrap();
        assert!(r
            .problems
            .iter()
            .any(|p| p.contains("entries 4..4 are missing")));

        let (_d, s) = store().await;
        write(&s, 6).await;
        exec(&s, "DELETE FROM audit_log WHERE seq = 6").await;
        let r = verify(&s).await.unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("were removed")),
            "{:?}",
            r.problems
        );
    }

    #[tokio::test]
    async fn a_saved_head_catches_a_log_cut_back_with_its_head_record() {
        let (_d, s) = store().await;
        write(&s, 6).await;
        let saved = head(&s).await.unwrap();
        assert_eq!(saved.seq, 6);
        let r = verify_against(&s, Some(&saved)).await.unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        // Entries 5 and 6 removed and the head record moved back to entry 4: the log is
        // consistent in itself, but not with the head kept elsewhere.
        exec(&s, "DELETE FROM audit_log WHERE seq > 4").await;
        exec(
            &s,
            "UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit_log WHERE seq = 4)",
        )
        .await;
        assert!(verify(&s).await.unwrap().ok());
        let r = verify_against(&s, Some(&saved)).await.unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("names entry 6") && p.contains("ends at entry 4")),
            "{:?}",
            r.problems
        );
        // Cut back and written again: entry 6 exists but is another entry.
        write(&s, 2).await;
        assert!(verify(&s).await.unwrap().ok());
        let r = verify_against(&s, Some(&saved)).await.unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.starts_with("entry 6") && p.contains("saved head")),
            "{:?}",
            r.problems
        );
        // A log that grew past the saved head still holds it.
        let (_d, s) = store().await;
        write(&s, 3).await;
        let saved = head(&s).await.unwrap();
        write(&s, 3).await;
        assert!(verify_against(&s, Some(&saved)).await.unwrap().ok());
    }
}

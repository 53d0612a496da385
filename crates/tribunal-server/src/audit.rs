//! The decision log: every gate decision (and every review of one) is an entry whose hash
//! covers its body and the previous entry's hash, so editing or removing any entry breaks
//! the chain from there on. A head record (last seq and hash) is moved in the same
//! transaction as the entries, so removing entries at the end is caught too.
//!
//! Entries are numbered when the decision is made and written by one task in batches
//! (`batch.rs`: one transaction per batch), so the gate does not wait for the disk unless
//! the writer is a whole queue behind; shutdown drains the queue.

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Mutex};
use tribunal_store::{clock, AuditRow, Store, StoreError};

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

/// The hash of an entry: SHA-256 over the previous hash, a newline and the body.
pub fn entry_hash(prev_hash: &str, body: &str) -> String {
    chain_hash(prev_hash, body.as_bytes())
}

/// [`entry_hash`] over bytes.
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

/// Where new entries go.
pub struct AuditLog {
    /// Next sequence number and the hash of the entry before it; held while an entry is
    /// numbered, chained and queued so the queue order is the chain order.
    next: Mutex<(i64, String, Option<mpsc::Sender<AuditRow>>)>,
    /// The writer's queue, for its depth (weak: closing the log still ends the writer).
    queue: mpsc::WeakSender<AuditRow>,
}

impl AuditLog {
    /// Continues the chain found in the store and starts the writer task. The returned
    /// handle finishes when every queued entry is written after [`AuditLog::close`].
    pub async fn open(
        store: Store,
        capacity: usize,
    ) -> Result<(AuditLog, tokio::task::JoinHandle<()>), StoreError> {
        let (seq, hash) = store.audit_head().await?;
        let (tx, writer) = crate::batch::spawn(
            "the decision log",
            store,
            capacity,
            |store, rows| async move {
                let result = store.append_audit(&rows).await;
                (rows, result)
            },
        );
        Ok((
            AuditLog {
                next: Mutex::new((seq + 1, hash, Some(tx.clone()))),
                queue: tx.downgrade(),
            },
            writer,
        ))
    }

    /// Entries numbered but not yet handed to the store.
    pub fn queued(&self) -> usize {
        self.queue
            .upgrade()
            .map_or(0, |tx| crate::batch::depth(&tx))
    }

    /// Numbers, chains and queues an entry; returns its sequence number. Waits while the
    /// queue is full; entries are queued in chain order.
    pub async fn append(&self, project: &str, kind: &str, body: &impl serde::Serialize) -> i64 {
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
    ) -> i64 {
        // Entries are plain data (strings, numbers, lists, maps with string keys), which
        // always serialize.
        let body = serde_json::to_string(body).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a decision-log entry did not serialize");
            serde_json::json!({"unserializable": e.to_string()}).to_string()
        });
        let mut g = self.next.lock().await;
        let (seq, prev, tx) = &mut *g;
        let hash = entry_hash(prev, &body);
        let row = AuditRow {
            seq: *seq,
            at,
            project: project.to_owned(),
            kind: kind.to_owned(),
            body,
            prev_hash: std::mem::replace(prev, hash.clone()),
            hash,
        };
        let n = *seq;
        *seq += 1;
        match tx {
            Some(tx) => {
                if tx.send(row).await.is_err() {
                    tracing::error!(seq = n, "decision log writer is gone; entry not written");
                }
            }
            None => tracing::error!(seq = n, "decision log closed; entry not written"),
        }
        n
    }

    /// Stops accepting entries; the writer drains what is queued and ends.
    pub async fn close(&self) {
        self.next.lock().await.2 = None;
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
    let (head_seq, head_hash) = store.audit_head().await?;
    let mut problems = Vec::new();
    let mut expected_seq = 1;
    let mut prev_hash = String::new();
    let mut entries = 0;
    let mut after = 0;
    // Configuration entries seen so far, by sequence number: their projects.
    let mut configs: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    loop {
        let rows = store.audit_entries(after, 1000).await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            entries += 1;
            if r.seq != expected_seq {
                problems.push(format!(
                    "entry {}: expected entry {expected_seq} here (entries {expected_seq}..{} are missing)",
                    r.seq,
                    r.seq - 1
                ));
            }
            if r.prev_hash != prev_hash {
                problems.push(format!(
                    "entry {}: its previous hash does not match entry {}'s hash",
                    r.seq,
                    r.seq - 1
                ));
            }
            if entry_hash(&r.prev_hash, &r.body) != r.hash {
                problems.push(format!(
                    "entry {}: its content does not match its hash (edited)",
                    r.seq
                ));
            }
            match r.kind.as_str() {
                "config" => {
                    configs.insert(r.seq, r.project.clone());
                }
                "gate" => {
                    if let Some(c) = config_of(&r.body) {
                        if configs.get(&c) != Some(&r.project) {
                            problems.push(format!(
                                "entry {}: the configuration it names (entry {c}) is not an earlier configuration entry of project {}",
                                r.seq, r.project
                            ));
                        }
                    }
                }
                _ => {}
            }
            expected_seq = r.seq + 1;
            prev_hash = r.hash.clone();
        }
        after = rows.last().map_or(after, |r| r.seq);
    }
    let last_seq = expected_seq - 1;
    if head_seq != last_seq || head_hash != prev_hash {
        problems.push(format!(
            "the head record says the log ends at entry {head_seq}, but it ends at entry {last_seq}{}",
            if head_seq > last_seq { " (entries at the end were removed)" } else { "" }
        ));
    }
    Ok(VerifyReport {
        entries,
        head_seq,
        head_hash,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("a.db").to_str().unwrap())
            .await
            .unwrap();
        (dir, s)
    }

    async fn write(store: &Store, n: usize) {
        let (log, writer) = AuditLog::open(store.clone(), 4).await.unwrap();
        for i in 0..n {
            log.append("default", "gate", &json!({"decision": "allow", "i": i}))
                .await;
        }
        log.close().await;
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn intact_chain_verifies_and_continues_across_restarts() {
        let (_d, s) = store().await;
        write(&s, 5).await;
        write(&s, 3).await;
        let r = verify(&s).await.unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!((r.entries, r.head_seq), (8, 8));
    }

    #[tokio::test]
    async fn gate_entries_must_name_an_earlier_configuration_of_their_project() {
        let (_d, s) = store().await;
        let (log, writer) = AuditLog::open(s.clone(), 4).await.unwrap();
        let a = log.append("a", "config", &json!({"judges": {}})).await;
        let b = log.append("b", "config", &json!({"judges": {}})).await;
        log.append("a", "gate", &json!({"decision": "allow", "config": a}))
            .await;
        log.append("b", "gate", &json!({"decision": "allow", "config": b}))
            .await;
        // Another project's configuration, a later entry, one that is no configuration.
        log.append("a", "gate", &json!({"decision": "allow", "config": b}))
            .await;
        log.append("a", "gate", &json!({"decision": "allow", "config": 9}))
            .await;
        log.append("a", "gate", &json!({"decision": "allow", "config": 3}))
            .await;
        log.close().await;
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
    async fn edits_and_removals_are_detected() {
        let (_d, s) = store().await;
        write(&s, 6).await;
        exec(
            &s,
            "UPDATE audit_log SET body = replace(body, 'allow', 'block') WHERE seq = 3",
        )
        .await;
        let r = verify(&s).await.unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("entry 3") && r.problems[0].contains("edited"));

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
}

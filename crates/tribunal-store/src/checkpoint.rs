//! Moving a SQLite store's write-ahead log into the database file away from the commits.
//!
//! SQLite checkpoints the log by itself in the commit that crosses its threshold: that
//! commit then copies pages and waits for two `fsync`s, and on a busy disk that is tens of
//! milliseconds in which every other write of the process waits behind it. A server instead
//! checkpoints from a connection of its own ([`WalCheckpointer`]), which neither waits for
//! nor blocks the writers; the commits' own threshold is raised to a backstop that bounds
//! the log if the checkpoints fall behind. Commits are as durable as before: they are in the
//! log, whatever moves them on.

use crate::{Store, StoreError};
use sqlx::{Connection, Row};
use std::sync::atomic::Ordering;

/// The log's length, in pages, at which a commit checkpoints by itself while a
/// [`WalCheckpointer`] runs (SQLite's own default is 1,000).
pub const BACKSTOP_PAGES: i64 = 16_384;

/// SQLite's own threshold, for connections of a store without a [`WalCheckpointer`].
pub(crate) const DEFAULT_PAGES: i64 = 1_000;

/// A connection that checkpoints a SQLite store's log.
pub struct WalCheckpointer {
    conn: sqlx::AnyConnection,
}

/// What one checkpoint found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Frames in the log.
    pub log: i64,
    /// Frames of it now in the database file.
    pub moved: i64,
}

impl Store {
    /// A checkpointer for this store, when it is a SQLite file in WAL mode (`None` for
    /// PostgreSQL or an in-memory database). From then on the store's commits leave the
    /// checkpoints to it up to [`BACKSTOP_PAGES`].
    pub async fn wal_checkpointer(&self) -> Result<Option<WalCheckpointer>, StoreError> {
        if !self.sqlite {
            return Ok(None);
        }
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(None);
        }
        let mut conn = sqlx::AnyConnection::connect(self.url.expose())
            .await
            .map_err(|source| StoreError::Open {
                location: tribunal_core::redact::secrets(self.url.expose()).into_owned(),
                source,
            })?;
        sqlx::query("PRAGMA busy_timeout = 5000")
            .execute(&mut conn)
            .await?;
        // Connections made from now on take the backstop too (see `Store::open`).
        self.autocheckpoint.store(BACKSTOP_PAGES, Ordering::Relaxed);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}"
        )))
        .execute(&self.pool)
        .await?;
        Ok(Some(WalCheckpointer { conn }))
    }
}

impl WalCheckpointer {
    /// Copies the committed pages of the log into the database file, as many as no reader
    /// still needs in the log (SQLite's `PASSIVE` checkpoint: it takes no write lock, so
    /// commits go on meanwhile). Once all are copied, the next commit starts the log over.
    pub async fn checkpoint(&mut self) -> Result<Checkpoint, StoreError> {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut self.conn)
            .await?;
        Ok(Checkpoint {
            log: row.try_get(1)?,
            moved: row.try_get(2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_leave_the_log_to_the_checkpointer_which_moves_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("c.db").to_str().unwrap())
            .await
            .unwrap();
        let pages = |s: &Store| {
            let s = s.clone();
            async move {
                let r = sqlx::query("PRAGMA wal_autocheckpoint")
                    .fetch_one(&s.pool)
                    .await
                    .unwrap();
                r.try_get::<i64, _>(0).unwrap()
            }
        };
        assert_eq!(pages(&store).await, DEFAULT_PAGES);
        let mut c = store.wal_checkpointer().await.unwrap().expect("a WAL file");
        assert_eq!(pages(&store).await, BACKSTOP_PAGES);
        store
            .execute_raw("CREATE TABLE filler (x TEXT)")
            .await
            .unwrap();
        // More than SQLite's own threshold of pages, in many commits: none checkpoints.
        for _ in 0..300 {
            store
                .execute_raw("INSERT INTO filler VALUES (printf('%.20000c', 'x'))")
                .await
                .unwrap();
        }
        let wal = dir.path().join("c.db-wal");
        let before = std::fs::metadata(&wal).unwrap().len();
        assert!(before > 1_000 * 4096, "the log holds {before} bytes");
        let done = c.checkpoint().await.unwrap();
        assert!(done.log > 1_000, "{done:?}");
        assert_eq!(done.moved, done.log);
        // Every frame moved: the next commit starts the log over instead of growing it.
        store
            .execute_raw("INSERT INTO filler VALUES ('y')")
            .await
            .unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), before);
        assert!(c.checkpoint().await.unwrap().log < 10);
    }

    #[tokio::test]
    async fn a_memory_store_has_no_checkpointer() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        assert!(store.wal_checkpointer().await.unwrap().is_none());
    }
}

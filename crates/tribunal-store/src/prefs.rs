//! Preference records, one row per content id (the SHA-256 of the prompt and the two replies
//! that `tribunal-prefs` computes): a pair stored once stays as it was first stored, and a
//! second import of it is counted, not added. The record itself is kept as its JSON line;
//! its source (a file's format, `constitution`, `labels`) and subset are columns to filter on.

use crate::{Store, StoreError};
use sqlx::Row;

pub(crate) const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS preferences (
        content_id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        subset TEXT,
        record TEXT NOT NULL,
        added_at TEXT NOT NULL,
        seq BIGINT NOT NULL
    )"];

/// One stored preference record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceRow {
    pub content_id: String,
    /// Where it came from: an import format, `constitution`, `labels`.
    pub source: String,
    pub subset: Option<String>,
    /// The record as its JSON line.
    pub record: String,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreferenceInsert {
    pub added: usize,
    /// Rows whose content id was stored already.
    pub duplicates: usize,
}

impl Store {
    /// Stores `rows` in one transaction, in order; a content id stored already (or earlier in
    /// `rows`) is counted as a duplicate and left as it was.
    pub async fn insert_preferences(
        &self,
        rows: &[PreferenceRow],
        at: &str,
    ) -> Result<PreferenceInsert, StoreError> {
        let mut tx = self.begin_write().await?;
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS m FROM preferences")
            .fetch_one(&mut *tx)
            .await?
            .try_get("m")?;
        let mut out = PreferenceInsert::default();
        for r in rows {
            let done = sqlx::query(
                "INSERT INTO preferences (content_id, source, subset, record, added_at, seq)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (content_id) DO NOTHING",
            )
            .bind(&r.content_id)
            .bind(&r.source)
            .bind(r.subset.clone())
            .bind(&r.record)
            .bind(at)
            .bind(next + 1 + out.added as i64)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                out.added += 1;
            } else {
                out.duplicates += 1;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The stored records in the order they were added, only those of `source` and `subset`
    /// when given.
    pub async fn preferences(
        &self,
        source: Option<&str>,
        subset: Option<&str>,
    ) -> Result<Vec<PreferenceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT content_id, source, subset, record FROM preferences
             WHERE ($1 = '' OR source = $2) AND ($3 = '' OR subset = $4)
             ORDER BY seq",
        )
        .bind(source.unwrap_or(""))
        .bind(source.unwrap_or(""))
        .bind(subset.unwrap_or(""))
        .bind(subset.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PreferenceRow {
                    content_id: r.try_get("content_id")?,
                    source: r.try_get("source")?,
                    subset: r.try_get("subset")?,
                    record: r.try_get("record")?,
                })
            })
            .collect()
    }
}

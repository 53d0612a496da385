//! Where a judge version came from when a command made it: for `tribunal judges align` the
//! labels used, the optimizer, its settings and the held-out figures; for `tribunal judges
//! calibrate` the threshold and its figures. One JSON document per version, written once.

use crate::{Store, StoreError};
use sqlx::Row;

pub(crate) const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS judge_lineage (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (project, name, version)
    )"];

impl Store {
    /// Records the lineage of a version; `false` when it has one already.
    pub async fn insert_judge_lineage(
        &self,
        project: &str,
        name: &str,
        version: i64,
        body: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO judge_lineage (project, name, version, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(project)
        .bind(name)
        .bind(version)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The lineage of each version of a judge that has one, by version.
    pub async fn judge_lineage(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, body FROM judge_lineage WHERE project = $1 AND name = $2
             ORDER BY version",
        )
        .bind(project)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("version")?, r.try_get("body")?)))
            .collect()
    }
}

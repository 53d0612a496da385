//! Judge definitions written in the Judge Builder (or imported from a `tribunal.toml`),
//! kept per project as numbered versions, append-only: a change or a rollback is a new
//! version, nothing is rewritten. Each version records its kind, its settings (JSON), the
//! hash of both (the judge's version as its feedback names it), a note, and who wrote it.

use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

pub(crate) const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS judge_versions (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        kind TEXT NOT NULL,
        settings TEXT NOT NULL,
        hash TEXT NOT NULL,
        note TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (project, name, version)
    )"];

/// One stored version of a judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeVersionRow {
    pub project: String,
    pub name: String,
    /// 1 for the first version of the name in its project, then 2, 3, ...
    pub version: i64,
    pub kind: String,
    /// The settings as JSON text (an object).
    pub settings: String,
    /// The hash of kind and settings (`JudgeSpec::version`).
    pub hash: String,
    pub note: String,
    pub created_at: String,
    /// The id of the token that wrote it (or `cli` for `tribunal judges import`).
    pub created_by: String,
}

/// A version to add; the store numbers it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJudgeVersion {
    pub project: String,
    pub name: String,
    pub kind: String,
    pub settings: String,
    pub hash: String,
    pub note: String,
    pub created_at: String,
    pub created_by: String,
}

/// What adding a version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored as this version.
    Added(i64),
    /// Not stored: the latest version (this one) has the same hash.
    Unchanged(i64),
}

/// Attempts at numbering a version when another writer took the number first.
const NUMBERING_ATTEMPTS: usize = 8;

const COLUMNS: &str = "project, name, version, kind, settings, hash, note, created_at, created_by";

fn row(r: &AnyRow) -> Result<JudgeVersionRow, StoreError> {
    Ok(JudgeVersionRow {
        project: r.try_get("project")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        kind: r.try_get("kind")?,
        settings: r.try_get("settings")?,
        hash: r.try_get("hash")?,
        note: r.try_get("note")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}

fn is_duplicate_key(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || {
                let m = d.message().to_ascii_lowercase();
                m.contains("unique") || m.contains("duplicate")
            }
        }
        _ => false,
    }
}

impl Store {
    /// Adds a version after the latest one of its name, numbered in the same transaction,
    /// unless the latest has the same hash. A writer that loses the race for a number (the
    /// primary key refuses it) tries again with the next one.
    pub async fn append_judge_version(&self, v: &NewJudgeVersion) -> Result<Appended, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_append_judge_version(v).await {
                Err(StoreError::Query(e))
                    if attempt < NUMBERING_ATTEMPTS && is_duplicate_key(&e) =>
                {
                    continue
                }
                other => return other,
            }
        }
    }

    async fn try_append_judge_version(&self, v: &NewJudgeVersion) -> Result<Appended, StoreError> {
        let mut tx = self.begin_write().await?;
        let latest = sqlx::query(
            "SELECT version, hash FROM judge_versions WHERE project = $1 AND name = $2
             ORDER BY version DESC LIMIT 1",
        )
        .bind(&v.project)
        .bind(&v.name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = latest {
            let hash: String = r.try_get("hash")?;
            if hash == v.hash {
                let version: i64 = r.try_get("version")?;
                tx.rollback().await?;
                return Ok(Appended::Unchanged(version));
            }
        }
        let r = sqlx::query(
            "INSERT INTO judge_versions (project, name, version, kind, settings, hash, note,
                created_at, created_by)
             SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7, $8
             FROM judge_versions WHERE project = $1 AND name = $2
             RETURNING version",
        )
        .bind(&v.project)
        .bind(&v.name)
        .bind(&v.kind)
        .bind(&v.settings)
        .bind(&v.hash)
        .bind(&v.note)
        .bind(&v.created_at)
        .bind(&v.created_by)
        .fetch_one(&mut *tx)
        .await?;
        let version: i64 = r.try_get("version")?;
        tx.commit().await?;
        Ok(Appended::Added(version))
    }

    /// Every version of one judge, oldest first; empty when there is none.
    pub async fn judge_versions(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Vec<JudgeVersionRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM judge_versions WHERE project = $1 AND name = $2
             ORDER BY version"
        )))
        .bind(project)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }

    /// One version of a judge.
    pub async fn judge_version(
        &self,
        project: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<JudgeVersionRow>, StoreError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM judge_versions
             WHERE project = $1 AND name = $2 AND version = $3"
        )))
        .bind(project)
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(row).transpose()
    }

    /// The latest version of every judge of a project, by name.
    pub async fn latest_judge_versions(
        &self,
        project: &str,
    ) -> Result<Vec<JudgeVersionRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM judge_versions j WHERE project = $1
             AND version = (SELECT MAX(version) FROM judge_versions k
                            WHERE k.project = j.project AND k.name = j.name)
             ORDER BY name"
        )))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, hash: &str) -> NewJudgeVersion {
        NewJudgeVersion {
            project: "p".into(),
            name: name.into(),
            kind: "llm".into(),
            settings: format!("{{\"instructions\": \"{hash}\"}}"),
            hash: hash.into(),
            note: String::new(),
            created_at: "2026-01-01T00:00:00Z".into(),
            created_by: "tok_1".into(),
        }
    }

    async fn numbering(store: Store) {
        assert_eq!(
            store.append_judge_version(&new("a", "h1")).await.unwrap(),
            Appended::Added(1)
        );
        assert_eq!(
            store.append_judge_version(&new("a", "h1")).await.unwrap(),
            Appended::Unchanged(1)
        );
        assert_eq!(
            store.append_judge_version(&new("a", "h2")).await.unwrap(),
            Appended::Added(2)
        );
        // Back to the first definition: a new version, not a rewrite.
        assert_eq!(
            store.append_judge_version(&new("a", "h1")).await.unwrap(),
            Appended::Added(3)
        );
        assert_eq!(
            store.append_judge_version(&new("b", "h1")).await.unwrap(),
            Appended::Added(1)
        );
        let mut other = new("a", "h9");
        other.project = "q".into();
        assert_eq!(
            store.append_judge_version(&other).await.unwrap(),
            Appended::Added(1)
        );
        let all = store.judge_versions("p", "a").await.unwrap();
        assert_eq!(all.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[1].hash, "h2");
        assert_eq!(all[1].created_by, "tok_1");
        assert_eq!(
            store.judge_version("p", "a", 2).await.unwrap().unwrap(),
            all[1]
        );
        assert!(store.judge_version("p", "a", 4).await.unwrap().is_none());
        assert!(store.judge_versions("p", "zzz").await.unwrap().is_empty());
        let latest = store.latest_judge_versions("p").await.unwrap();
        assert_eq!(
            latest
                .iter()
                .map(|v| (v.name.as_str(), v.version))
                .collect::<Vec<_>>(),
            [("a", 3), ("b", 1)]
        );

        // Writers at once never share a number.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.append_judge_version(&new("c", &format!("h{i}"))).await
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            match t.await.unwrap().unwrap() {
                Appended::Added(n) => got.push(n),
                Appended::Unchanged(n) => panic!("unchanged {n}"),
            }
        }
        got.sort_unstable();
        assert_eq!(got, (1..=8).collect::<Vec<i64>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn versions_are_numbered_per_name_in_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        numbering(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn versions_are_numbered_per_name_in_postgres() {
        let db = crate::testing::TestDatabase::create("judge_versions")
            .await
            .unwrap();
        let store = Store::open(&db.url).await.unwrap();
        numbering(store.clone()).await;
        drop(store);
        db.drop().await.unwrap();
    }
}

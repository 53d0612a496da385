//! Human labels: label schemas, labeling queues and what people did in them (labels, skips,
//! final labels), kept as an append-only record from which a queue's state is read again.
//! A person labels an item of a queue once and skips it once (the primary keys say so, for
//! every server on the database).

use crate::{Store, StoreError};
use sqlx::Row;

pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS label_schemas (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (project, name)
    )",
    "CREATE TABLE IF NOT EXISTS label_queues (
        project TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (project, id)
    )",
    "CREATE TABLE IF NOT EXISTS label_events (
        project TEXT NOT NULL,
        queue_id TEXT NOT NULL,
        item TEXT NOT NULL,
        person TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT,
        comment TEXT,
        at TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (project, queue_id, item, person, kind)
    )",
];

/// One thing a person did in a queue: `label`, `skip` or `final`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabelEvent {
    pub queue_id: String,
    pub item: String,
    pub person: String,
    pub kind: String,
    /// The value as JSON text (labels and final labels); the reason for a skip.
    pub value: Option<String>,
    pub comment: Option<String>,
    pub at: String,
    pub at_ms: i64,
}

impl Store {
    /// Adds a label schema; `false` when the project has one of that name already.
    pub async fn insert_label_schema(
        &self,
        project: &str,
        name: &str,
        body: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO label_schemas (project, name, body, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project, name) DO NOTHING",
        )
        .bind(project)
        .bind(name)
        .bind(body)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The project's label schemas: (name, body).
    pub async fn label_schemas(&self, project: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT name, body FROM label_schemas WHERE project = $1 ORDER BY name")
                .bind(project)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("body")?)))
            .collect()
    }

    /// Adds a queue; `false` when the project has one with that id already.
    pub async fn insert_label_queue(
        &self,
        project: &str,
        id: &str,
        body: &str,
        at: &str,
        by: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO label_queues (project, id, body, created_at, created_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (project, id) DO NOTHING",
        )
        .bind(project)
        .bind(id)
        .bind(body)
        .bind(at)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The project's queues: (id, body), oldest first.
    pub async fn label_queues(&self, project: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, body FROM label_queues WHERE project = $1 ORDER BY created_at, id",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("body")?)))
            .collect()
    }

    /// Records what a person did; `false` when they did that to the item already.
    pub async fn insert_label_event(
        &self,
        project: &str,
        e: &LabelEvent,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO label_events (project, queue_id, item, person, kind, value, comment, at, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (project, queue_id, item, person, kind) DO NOTHING",
        )
        .bind(project)
        .bind(&e.queue_id)
        .bind(&e.item)
        .bind(&e.person)
        .bind(&e.kind)
        .bind(e.value.clone())
        .bind(e.comment.clone())
        .bind(&e.at)
        .bind(e.at_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Everything people did in a queue, in order.
    pub async fn label_events(
        &self,
        project: &str,
        queue_id: &str,
    ) -> Result<Vec<LabelEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue_id, item, person, kind, value, comment, at, at_ms FROM label_events
             WHERE project = $1 AND queue_id = $2 ORDER BY at_ms, item, person",
        )
        .bind(project)
        .bind(queue_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LabelEvent {
                    queue_id: r.try_get("queue_id")?,
                    item: r.try_get("item")?,
                    person: r.try_get("person")?,
                    kind: r.try_get("kind")?,
                    value: r.try_get("value")?,
                    comment: r.try_get("comment")?,
                    at: r.try_get("at")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }
}

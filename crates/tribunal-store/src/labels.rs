//! Human labels: label schemas, labeling queues and what people did in them (items given,
//! labels, skips, final labels), kept as a record from which a queue's state is read again.
//! A person labels an item of a queue once and skips it once (the primary keys say so, for
//! every server on the database).
//!
//! Every change to a queue is made in a [`QueueChange`]: a transaction that first raises the
//! queue's `version`, which locks the queue's row (PostgreSQL) or the database (SQLite) until
//! it ends, and stamps what it writes with that version. Changes to one queue therefore
//! happen one after the other whichever server makes them, and a server brings its copy of a
//! queue up to date by reading what was written since the version it last saw.

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
        version BIGINT NOT NULL DEFAULT 0,
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
        version BIGINT NOT NULL DEFAULT 0,
        shown TEXT,
        PRIMARY KEY (project, queue_id, item, person, kind)
    )",
];

/// One thing a person did in a queue: `lock` (was given the item; `value` says until when,
/// and whether it is a gold item; given again, the row is replaced), `shown` (what they were
/// shown of the item when it was given, in `shown`), `label`, `skip` or `final`.
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
    /// The version of the queue that wrote it.
    pub version: i64,
    /// What the person was shown (labels and final labels; see
    /// `tribunal_labels::state::Event::shown`).
    pub shown: Option<String>,
}

impl LabelEvent {
    /// The event as the queue's state takes it in.
    pub fn to_event(&self) -> tribunal_labels::state::Event {
        tribunal_labels::state::Event {
            item: self.item.clone(),
            person: self.person.clone(),
            kind: self.kind.clone(),
            value: self.value.clone(),
            comment: self.comment.clone(),
            at_ms: self.at_ms,
            version: self.version,
            shown: self.shown.clone(),
        }
    }
}

const EVENT_SELECT: &str =
    "SELECT queue_id, item, person, kind, value, comment, at, at_ms, version, shown
    FROM label_events WHERE project = $1 AND queue_id = $2 AND version > $3
    ORDER BY version, at_ms, item, person";

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<LabelEvent, StoreError> {
    Ok(LabelEvent {
        queue_id: r.try_get("queue_id")?,
        item: r.try_get("item")?,
        person: r.try_get("person")?,
        kind: r.try_get("kind")?,
        value: r.try_get("value")?,
        comment: r.try_get("comment")?,
        at: r.try_get("at")?,
        at_ms: r.try_get("at_ms")?,
        version: r.try_get("version")?,
        shown: r.try_get("shown")?,
    })
}

/// A change to one queue under way (see the module's comment). Dropped without
/// [`QueueChange::commit`], nothing of it is kept.
pub struct QueueChange {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    project: String,
    queue_id: String,
    /// The version this change writes.
    pub version: i64,
}

impl QueueChange {
    /// What was written to the queue after `version` (by any server), in order.
    pub async fn events_since(&mut self, version: i64) -> Result<Vec<LabelEvent>, StoreError> {
        let rows = sqlx::query(EVENT_SELECT)
            .bind(&self.project)
            .bind(&self.queue_id)
            .bind(version)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Writes what a person did, stamped with this change's version; `false` when they did
    /// that to the item already (a `lock`, and what they were shown with it, `shown`, replace
    /// the earlier ones instead: the item given again is shown as it is then).
    pub async fn record(&mut self, e: &LabelEvent) -> Result<bool, StoreError> {
        let on_conflict = if e.kind == "lock" || e.kind == "shown" {
            "DO UPDATE SET value = excluded.value, at = excluded.at, at_ms = excluded.at_ms,
             version = excluded.version, shown = excluded.shown"
        } else {
            "DO NOTHING"
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO label_events (project, queue_id, item, person, kind, value, comment, at, at_ms, version, shown)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (project, queue_id, item, person, kind) {on_conflict}"
        )))
        .bind(&self.project)
        .bind(&self.queue_id)
        .bind(&e.item)
        .bind(&e.person)
        .bind(&e.kind)
        .bind(e.value.clone())
        .bind(e.comment.clone())
        .bind(&e.at)
        .bind(e.at_ms)
        .bind(self.version)
        .bind(e.shown.clone())
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
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

    /// Starts a change to a queue; `None` when the project has no such queue.
    pub async fn begin_queue_change(
        &self,
        project: &str,
        queue_id: &str,
    ) -> Result<Option<QueueChange>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE label_queues SET version = version + 1 WHERE project = $1 AND id = $2
             RETURNING version",
        )
        .bind(project)
        .bind(queue_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(QueueChange {
            tx,
            project: project.to_owned(),
            queue_id: queue_id.to_owned(),
            version: row.try_get("version")?,
        }))
    }

    /// What was written to a queue after `version`, in the order it was written.
    pub async fn label_events_since(
        &self,
        project: &str,
        queue_id: &str,
        version: i64,
    ) -> Result<Vec<LabelEvent>, StoreError> {
        let rows = sqlx::query(EVENT_SELECT)
            .bind(project)
            .bind(queue_id)
            .bind(version)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// A queue's state rebuilt from everything people did in it; `None` when the project
    /// has no such queue.
    pub async fn queue_state(
        &self,
        project: &str,
        queue_id: &str,
    ) -> Result<Option<tribunal_labels::state::QueueState>, StoreError> {
        let stored = |message: String| StoreError::Stored {
            what: format!("queue {queue_id}"),
            message,
        };
        let Some((_, body)) = self
            .label_queues(project)
            .await?
            .into_iter()
            .find(|(i, _)| i == queue_id)
        else {
            return Ok(None);
        };
        let def: tribunal_labels::state::QueueDef =
            serde_json::from_str(&body).map_err(|e| stored(e.to_string()))?;
        let schema = self
            .label_schemas(project)
            .await?
            .into_iter()
            .find(|(n, _)| *n == def.schema)
            .ok_or_else(|| stored(format!("its schema {:?} is not stored", def.schema)))?;
        let schema = serde_json::from_str(&schema.1).map_err(|e| stored(e.to_string()))?;
        let mut state = tribunal_labels::state::QueueState::new(def, schema).map_err(stored)?;
        let events = self.label_events(project, queue_id).await?;
        state.take_in(&events.iter().map(LabelEvent::to_event).collect::<Vec<_>>());
        Ok(Some(state))
    }

    /// Everything people did in a queue, in order.
    pub async fn label_events(
        &self,
        project: &str,
        queue_id: &str,
    ) -> Result<Vec<LabelEvent>, StoreError> {
        self.label_events_since(project, queue_id, -1).await
    }
}

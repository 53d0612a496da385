//! Tool definitions pinned per project and agent: the first definition of a tool the gate
//! sees is kept by its hash; a later definition with another hash is recorded beside it as
//! a change, which stands until a person approves it (the changed definition becomes the
//! pinned one) or removes the pin.

use crate::{Logged, Store, StoreError};
use sqlx::Row;

pub(crate) const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS tool_pins (
        project TEXT NOT NULL,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        hash TEXT NOT NULL,
        definition TEXT NOT NULL,
        pinned_at TEXT NOT NULL,
        changed_hash TEXT,
        changed_definition TEXT,
        changed_at TEXT,
        PRIMARY KEY (project, agent, tool)
    )"];

/// A pinned tool definition and the change seen since, if any.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToolPin {
    pub project: String,
    /// The agent the definition was offered to.
    pub agent: String,
    pub tool: String,
    /// SHA-256 of the pinned definition.
    pub hash: String,
    /// The pinned definition (JSON).
    pub definition: String,
    pub pinned_at: String,
    /// The last definition seen that differs from the pinned one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<ToolChange>,
}

/// A definition that differs from the pinned one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToolChange {
    pub hash: String,
    pub definition: String,
    pub at: String,
}

fn pin_of(r: &sqlx::any::AnyRow) -> Result<ToolPin, StoreError> {
    let changed_hash: Option<String> = r.try_get("changed_hash")?;
    Ok(ToolPin {
        project: r.try_get("project")?,
        agent: r.try_get("agent")?,
        tool: r.try_get("tool")?,
        hash: r.try_get("hash")?,
        definition: r.try_get("definition")?,
        pinned_at: r.try_get("pinned_at")?,
        changed: match changed_hash {
            Some(hash) => Some(ToolChange {
                hash,
                definition: r
                    .try_get::<Option<String>, _>("changed_definition")?
                    .unwrap_or_default(),
                at: r
                    .try_get::<Option<String>, _>("changed_at")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
    })
}

const COLUMNS: &str = "project, agent, tool, hash, definition, pinned_at, changed_hash, \
                       changed_definition, changed_at";

impl Store {
    /// The pin of a tool for an agent after this definition was seen: pinned now when the
    /// tool had none (the first writer wins when servers race), and the definition recorded
    /// as the pin's change when its hash differs from the pinned one. Only reads when the
    /// definition is the pinned one or the change already recorded.
    pub async fn see_tool(
        &self,
        project: &str,
        agent: &str,
        tool: &str,
        hash: &str,
        definition: &str,
    ) -> Result<ToolPin, StoreError> {
        let now = crate::clock::now_rfc3339();
        let gone = || StoreError::Stored {
            what: "tool pin".into(),
            message: format!("the pin of {tool:?} was removed while it was read"),
        };
        let pin = match self.tool_pin(project, agent, tool).await? {
            Some(pin) => pin,
            None => {
                sqlx::query(
                    "INSERT INTO tool_pins (project, agent, tool, hash, definition, pinned_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(project)
                .bind(agent)
                .bind(tool)
                .bind(hash)
                .bind(definition)
                .bind(&now)
                .execute(&self.pool)
                .await?;
                self.tool_pin(project, agent, tool)
                    .await?
                    .ok_or_else(gone)?
            }
        };
        let recorded = pin.hash == hash || pin.changed.as_ref().is_some_and(|c| c.hash == hash);
        if recorded {
            return Ok(pin);
        }
        sqlx::query(
            "UPDATE tool_pins SET changed_hash = $4, changed_definition = $5, changed_at = $6
             WHERE project = $1 AND agent = $2 AND tool = $3 AND hash <> $4",
        )
        .bind(project)
        .bind(agent)
        .bind(tool)
        .bind(hash)
        .bind(definition)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        self.tool_pin(project, agent, tool).await?.ok_or_else(gone)
    }

    /// The pin of one tool, if any.
    pub async fn tool_pin(
        &self,
        project: &str,
        agent: &str,
        tool: &str,
    ) -> Result<Option<ToolPin>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tool_pins WHERE project = $1 AND agent = $2 AND tool = $3"
        )))
        .bind(project)
        .bind(agent)
        .bind(tool)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pin_of).transpose()
    }

    /// A project's pins, by agent and tool; only those with a change when `changed`.
    pub async fn tool_pins(
        &self,
        project: &str,
        changed: bool,
    ) -> Result<Vec<ToolPin>, StoreError> {
        let filter = if changed {
            " AND changed_hash IS NOT NULL"
        } else {
            ""
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tool_pins WHERE project = $1{filter} ORDER BY agent, tool"
        )))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pin_of).collect()
    }

    /// Approves the change of a pin whose changed definition has hash `hash` (the one a
    /// person reviewed): it becomes the pinned definition, and `log`'s entry is written in
    /// the same transaction. The entry's number, or `None` (nothing written) when the pin
    /// has no change with that hash (none, or a newer one came since).
    pub async fn approve_tool_change(
        &self,
        project: &str,
        agent: &str,
        tool: &str,
        hash: &str,
        log: Logged<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let change = sqlx::query(
            "UPDATE tool_pins SET hash = changed_hash, definition = changed_definition,
                 pinned_at = $5, changed_hash = NULL, changed_definition = NULL, changed_at = NULL
             WHERE project = $1 AND agent = $2 AND tool = $3 AND changed_hash = $4",
        )
        .bind(project.to_owned())
        .bind(agent.to_owned())
        .bind(tool.to_owned())
        .bind(hash.to_owned())
        .bind(crate::clock::now_rfc3339());
        self.change_logged(change, log).await
    }

    /// Removes a pin (the next definition seen is pinned) and writes `log`'s entry in the
    /// same transaction. The entry's number, or `None` (nothing written) when there was no
    /// pin.
    pub async fn remove_tool_pin(
        &self,
        project: &str,
        agent: &str,
        tool: &str,
        log: Logged<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let change =
            sqlx::query("DELETE FROM tool_pins WHERE project = $1 AND agent = $2 AND tool = $3")
                .bind(project.to_owned())
                .bind(agent.to_owned())
                .bind(tool.to_owned());
        self.change_logged(change, log).await
    }
}

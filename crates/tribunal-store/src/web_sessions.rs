//! Browser sessions of the UI, kept in the store so that every server on one database knows
//! them: a session signed in on one server is used, and signed out, on any. A session is
//! found by the hash of its cookie value (the value itself is never stored) and holds what
//! rebuilds its caller (the token's hash, id, project, role and agent), its CSRF token and
//! when it ends.

use crate::{Store, StoreError};
use sqlx::Row;

pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS web_sessions (
        id_hash TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        token_id TEXT NOT NULL,
        project TEXT NOT NULL,
        role TEXT NOT NULL,
        agent TEXT,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS web_sessions_expiry ON web_sessions (expires_ms)",
    "CREATE INDEX IF NOT EXISTS web_sessions_token ON web_sessions (token_id)",
];

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 (hex) of the cookie's value.
    pub id_hash: String,
    /// The hash of the token it signed in with.
    pub token_hash: String,
    pub token_id: String,
    pub project: String,
    pub role: String,
    /// The agent the token is bound to, if it is.
    pub agent: Option<String>,
    pub csrf: String,
    /// When it ends, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
}

/// A stored session with the state of its token as the store holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveWebSession {
    pub session: WebSession,
    /// The token is still known and not revoked.
    pub token_valid: bool,
}

impl Store {
    /// Keeps a new session, and lets go of the sessions that ended before `now_ms`.
    pub async fn insert_web_session(&self, s: &WebSession, now_ms: i64) -> Result<(), StoreError> {
        self.remove_ended_web_sessions(now_ms).await?;
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, token_hash, token_id, project, role, agent, csrf,
                 created_at, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&s.id_hash)
        .bind(&s.token_hash)
        .bind(&s.token_id)
        .bind(&s.project)
        .bind(&s.role)
        .bind(s.agent.clone())
        .bind(&s.csrf)
        .bind(crate::clock::now_rfc3339())
        .bind(s.expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session whose cookie hashes to `id_hash`, if it has not ended by `now_ms`, with
    /// whether its token is still valid (read in the same query).
    pub async fn web_session(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> Result<Option<LiveWebSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id_hash, s.token_hash, s.token_id, s.project, s.role, s.agent, s.csrf,
                    s.expires_ms, t.hash AS known, t.revoked_at
             FROM web_sessions s LEFT JOIN api_tokens t ON t.hash = s.token_hash
             WHERE s.id_hash = $1 AND s.expires_ms > $2",
        )
        .bind(id_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let known: Option<String> = r.try_get("known")?;
        let revoked: Option<String> = r.try_get("revoked_at")?;
        Ok(Some(LiveWebSession {
            session: WebSession {
                id_hash: r.try_get("id_hash")?,
                token_hash: r.try_get("token_hash")?,
                token_id: r.try_get("token_id")?,
                project: r.try_get("project")?,
                role: r.try_get("role")?,
                agent: r.try_get("agent")?,
                csrf: r.try_get("csrf")?,
                expires_ms: r.try_get("expires_ms")?,
            },
            token_valid: known.is_some() && revoked.is_none(),
        }))
    }

    /// Ends a session; `false` when there was none.
    pub async fn remove_web_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends the sessions signed in with the token `token_id`; how many there were.
    pub async fn remove_web_sessions_of_token(&self, token_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE token_id = $1")
            .bind(token_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Lets go of the sessions that ended before `now_ms`; how many there were.
    pub async fn remove_ended_web_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, token_hash: &str, expires_ms: i64) -> WebSession {
        WebSession {
            id_hash: id.into(),
            token_hash: token_hash.into(),
            token_id: "t1".into(),
            project: "p".into(),
            role: "viewer".into(),
            agent: None,
            csrf: "c".into(),
            expires_ms,
        }
    }

    #[tokio::test]
    async fn sessions_are_found_until_they_end_or_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .insert_web_session(&session("a", "no-such-token", 1_000), 0)
            .await
            .unwrap();
        let live = store.web_session("a", 500).await.unwrap().unwrap();
        assert_eq!(live.session, session("a", "no-such-token", 1_000));
        assert!(!live.token_valid, "an unknown token is not valid");
        assert!(store.web_session("a", 1_000).await.unwrap().is_none());
        assert!(store.web_session("b", 0).await.unwrap().is_none());
        // A new session lets go of those that ended.
        store
            .insert_web_session(&session("b", "h", 5_000), 2_000)
            .await
            .unwrap();
        assert!(!store.remove_web_session("a").await.unwrap());
        assert!(store.remove_web_session("b").await.unwrap());
        store
            .insert_web_session(&session("c", "h", 5_000), 0)
            .await
            .unwrap();
        assert_eq!(store.remove_web_sessions_of_token("t1").await.unwrap(), 1);
    }
}

//! Messages between the servers that share one PostgreSQL database (`LISTEN`/`NOTIFY`):
//! a review decided on one server wakes the agent waiting on another, a reload on one
//! reaches them all. A SQLite store has one server, which needs no messages.

use crate::{Store, StoreError};

/// Notifications received on the channels a server listens to.
pub struct Notifications {
    listener: sqlx::postgres::PgListener,
}

/// One notification: its channel and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
}

impl Notifications {
    /// The next notification; `Ok(None)` when the connection was lost (notifications sent
    /// meanwhile are gone; the next call reconnects).
    pub async fn next(&mut self) -> Result<Option<Notification>, StoreError> {
        Ok(self.listener.try_recv().await?.map(|n| Notification {
            channel: n.channel().to_owned(),
            payload: n.payload().to_owned(),
        }))
    }
}

impl Store {
    /// Whether several servers may share the store (PostgreSQL) and so need to tell each
    /// other of reviews and reloads.
    pub fn is_shared(&self) -> bool {
        !self.sqlite
    }

    /// Sends `payload` to every server listening on `channel` (this one too), once the
    /// statement commits. Does nothing on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.sqlite {
            return Ok(());
        }
        // `pg_notify` returns `void`, which the `Any` driver cannot describe: count instead.
        sqlx::query("SELECT COUNT(*) AS n FROM (SELECT pg_notify($1, $2)) AS sent")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Listens on `channels` over a connection of its own; `None` on SQLite.
    pub async fn listen(&self, channels: &[&str]) -> Result<Option<Notifications>, StoreError> {
        if self.sqlite {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(self.url.expose())
            .await
            .map_err(|source| StoreError::Open {
                location: tribunal_core::redact::secrets(self.url.expose()).into_owned(),
                source,
            })?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(Some(Notifications { listener }))
    }
}

/// A database URL, which may hold a password: never printed.
#[derive(Clone)]
pub(crate) struct Url(std::sync::Arc<str>);

impl Url {
    pub(crate) fn new(url: &str) -> Url {
        Url(url.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&tribunal_core::redact::secrets(&self.0))
    }
}

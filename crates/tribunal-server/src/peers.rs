//! Several `tribunal serve` processes on one PostgreSQL database. They share the store (traces,
//! the review queue, tokens, the decision log) and tell each other, over `LISTEN`/`NOTIFY`,
//! of what each keeps in memory: a review decided on one wakes the agent waiting on another,
//! and a reload on one makes every other reload that project from its own files (and log
//! its own `config` entry). On SQLite there is one process and nothing to tell.

use crate::AppState;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A review was decided (or expired): `{"id": …}`.
pub const REVIEWED: &str = "tribunal_reviewed";
/// A project was reloaded: `{"project": …, "origin": …, "by": …}`.
pub const RELOADED: &str = "tribunal_reloaded";

#[derive(Serialize, Deserialize)]
struct Reviewed {
    id: String,
}

#[derive(Serialize, Deserialize)]
struct Reloaded {
    project: String,
    /// The process that reloaded (its [`AppState::instance`]); it does not reload again.
    origin: String,
    by: String,
}

/// Tells the other processes that escalation `id` is settled (it is already stored).
pub async fn reviewed(state: &AppState, id: &str) {
    let payload = serde_json::json!(Reviewed { id: id.to_owned() }).to_string();
    if let Err(e) = state.store.notify(REVIEWED, &payload).await {
        // The waiting agent still sees the decision: waiters on a shared store also poll.
        tracing::warn!(error = %e, escalation = id, "telling other servers of a review failed");
    }
}

/// Tells the other processes that `project` was reloaded here.
pub async fn reloaded(state: &AppState, project: &str, by: &str) {
    let payload = serde_json::json!(Reloaded {
        project: project.to_owned(),
        origin: state.instance.clone(),
        by: by.to_owned(),
    })
    .to_string();
    if let Err(e) = state.store.notify(RELOADED, &payload).await {
        tracing::error!(error = %e, project, "telling other servers of a reload failed; they run the version they had");
    }
}

/// Listens for the other processes' messages until `stop`; returns at once on SQLite.
pub async fn listen(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    if !state.store.is_shared() {
        return;
    }
    loop {
        let connected = tokio::select! {
            _ = stop.changed() => return,
            l = state.store.listen(&[REVIEWED, RELOADED]) => l,
        };
        let mut listener = match connected {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "listening for other servers failed; retrying");
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = stop.changed() => return,
                n = listener.next() => n,
            };
            match next {
                Ok(Some(n)) => handle(&state, &n.channel, &n.payload).await,
                Ok(None) => {
                    tracing::warn!("the connection listening for other servers was lost; reconnecting (a reload sent meanwhile is missed)");
                }
                Err(e) => {
                    tracing::error!(error = %e, "listening for other servers failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn handle(state: &Arc<AppState>, channel: &str, payload: &str) {
    match channel {
        REVIEWED => match serde_json::from_str::<Reviewed>(payload) {
            Ok(r) => state.reviews.wake(&r.id),
            Err(e) => tracing::warn!(error = %e, "a review message could not be read"),
        },
        RELOADED => match serde_json::from_str::<Reloaded>(payload) {
            Ok(r) if r.origin == state.instance => {}
            Ok(r) if state.projects.contains_key(&r.project) => {
                let by = format!("peer {} ({})", r.origin, r.by);
                match state.reload_here(&r.project, &by).await {
                    Ok((rt, before)) => tracing::info!(
                        target: "tribunal::reload",
                        "project {}: {before} -> {} (reloaded by {by})",
                        r.project,
                        rt.policy_version()
                    ),
                    Err(e) => tracing::error!(
                        target: "tribunal::reload",
                        project = r.project,
                        error = %e.message,
                        "reload asked by another server failed; the running version stays"
                    ),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "a reload message could not be read"),
        },
        _ => {}
    }
}

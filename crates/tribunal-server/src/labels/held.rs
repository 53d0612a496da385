//! Each server's copy of the queues in use, kept up to date with the store. A queue's copy is
//! read whole on first use; after that, before every read the copy takes in what any server
//! wrote since the version it last saw, and every change is made inside a store
//! [`QueueChange`](tribunal_store::QueueChange), so changes to one queue are made one after
//! the other across all servers on the database, each seeing all that came before. A change
//! that fails or is refused drops the copy, which is read whole again next time.

use crate::error::{ApiError, Code};
use crate::AppState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tribunal_labels::schema::Schema;
pub use tribunal_labels::state::{QueueDef, QueueState};
use tribunal_store::{clock, LabelEvent};

type Slot = Arc<tokio::sync::Mutex<Option<QueueState>>>;

/// The queues this server holds, by (project, queue id).
#[derive(Default)]
pub struct Queues(Mutex<HashMap<(String, String), Slot>>);

impl Queues {
    /// Drops every held copy: each is read whole from the store when next used.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn slot(&self, project: &str, id: &str) -> Slot {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry((project.to_owned(), id.to_owned()))
            .or_default()
            .clone()
    }
}

/// A record of what a person did, to be written with the change.
pub struct Did {
    pub item: String,
    pub person: String,
    pub kind: &'static str,
    pub value: Option<String>,
    pub comment: Option<String>,
    /// When it was done, in ms since the epoch, when that is known (an imported label keeps
    /// its time); else now.
    pub at_ms: Option<i64>,
    /// What the person was shown, for `shown`, a label or a final label (see
    /// [`crate::labels::items::shown`]).
    pub shown: Option<String>,
}

pub async fn schema_of(state: &AppState, project: &str, name: &str) -> Result<Schema, ApiError> {
    state
        .store
        .label_schemas(project)
        .await?
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .ok_or_else(|| ApiError::not_found(format!("no label schema {name:?} in this project")))
}

pub async fn def_of(state: &AppState, project: &str, id: &str) -> Result<QueueDef, ApiError> {
    let body = state
        .store
        .label_queues(project)
        .await?
        .into_iter()
        .find(|(i, _)| i == id)
        .map(|(_, b)| b)
        .ok_or_else(|| ApiError::not_found(format!("no queue {id:?} in this project")))?;
    serde_json::from_str(&body)
        .map_err(|e| ApiError::new(Code::Internal, format!("stored queue {id}: {e}")))
}

async fn load(state: &AppState, project: &str, id: &str) -> Result<QueueState, ApiError> {
    match state.store.queue_state(project, id).await {
        Ok(Some(q)) => Ok(q),
        Ok(None) => Err(ApiError::not_found(format!(
            "no queue {id:?} in this project"
        ))),
        Err(e @ tribunal_store::StoreError::Stored { .. }) => {
            Err(ApiError::new(Code::Internal, e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `f` on the queue's copy, brought up to date first.
pub async fn read<T>(
    state: &AppState,
    project: &str,
    id: &str,
    f: impl FnOnce(&QueueState) -> T,
) -> Result<T, ApiError> {
    let slot = state.label_queues.slot(project, id);
    let mut guard = slot.lock().await;
    match guard.as_mut() {
        None => *guard = Some(load(state, project, id).await?),
        Some(held) => {
            let events = state
                .store
                .label_events_since(project, id, held.version)
                .await?;
            held.take_in(&events.iter().map(LabelEvent::to_event).collect::<Vec<_>>());
        }
    }
    Ok(f(guard.as_ref().expect("loaded above")))
}

/// Changes the queue: `f` gets the copy, brought up to date inside the change, and the time;
/// it answers and says what to write. Nothing is answered that is not committed.
pub async fn change<T>(
    state: &AppState,
    project: &str,
    id: &str,
    f: impl FnOnce(&mut QueueState, i64) -> Result<(T, Vec<Did>), ApiError>,
) -> Result<T, ApiError> {
    let slot = state.label_queues.slot(project, id);
    let mut guard = slot.lock().await;
    if guard.is_none() {
        *guard = Some(load(state, project, id).await?);
    }
    let outcome = async {
        let held = guard.as_mut().expect("loaded above");
        let mut change = state
            .store
            .begin_queue_change(project, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no queue {id:?} in this project")))?;
        let events = change.events_since(held.version).await?;
        held.take_in(&events.iter().map(LabelEvent::to_event).collect::<Vec<_>>());
        let now = clock::now_ms();
        let (out, did) = f(held, now)?;
        let mut written = Vec::with_capacity(did.len());
        for d in did {
            let e = LabelEvent {
                queue_id: id.to_owned(),
                item: d.item,
                person: d.person,
                kind: d.kind.to_owned(),
                value: d.value,
                comment: d.comment,
                at: clock::rfc3339_from_ms(d.at_ms.unwrap_or(now)),
                at_ms: d.at_ms.unwrap_or(now),
                version: change.version,
                shown: d.shown,
            };
            change.record(&e).await?;
            written.push(e);
        }
        change.commit().await?;
        // What this change wrote is taken in like anyone else's (taking in is idempotent
        // for what `f` did already), so the copy is the same as one read whole.
        held.take_in(&written.iter().map(LabelEvent::to_event).collect::<Vec<_>>());
        Ok::<T, ApiError>(out)
    }
    .await;
    if outcome.is_err() {
        *guard = None;
    }
    outcome
}

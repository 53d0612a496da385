//! Each server's copy of the queues in use, kept up to date with the store. A queue's copy is
//! read whole on first use; after that, before every read the copy takes in what any server
//! wrote since the version it last saw, and every change is made inside a store
//! [`QueueChange`](tribunal_store::QueueChange), so changes to one queue are made one after
//! the other across all servers on the database, each seeing all that came before. A change
//! that fails or is refused drops the copy, which is read whole again next time.

use super::items::{read_items, Item};
use crate::error::{ApiError, Code};
use crate::AppState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tribunal_labels::queue::{Queue, Settings};
use tribunal_labels::schema::Schema;
use tribunal_store::{clock, LabelEvent};

/// A queue as stored: how it was made and what it holds.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct QueueDef {
    pub id: String,
    pub schema: String,
    /// Items in the forms [`read_items`] takes (a bare trace id, or an item object).
    pub items: Vec<Value>,
    #[serde(default)]
    pub gold: BTreeMap<String, Value>,
    pub overlap: usize,
    pub lock_s: u64,
    #[serde(default)]
    pub gold_rate: f64,
    #[serde(default)]
    pub blind: bool,
    #[serde(default)]
    pub people: Option<Vec<String>>,
    /// Numeric labels further apart than this disagree.
    #[serde(default)]
    pub spread: f64,
    /// Items where people's label differs from the tied judge's value go to review.
    #[serde(default)]
    pub review_against_judge: bool,
    /// Where the items came from, as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
}

/// What went with a thing a person did: a comment (a label's or a reviewer's note), when,
/// and the skip's reason or how a final label was decided.
#[derive(Debug, Clone)]
pub struct Note {
    pub comment: Option<String>,
    pub at_ms: i64,
    pub detail: Option<String>,
}

/// A final label as stored: the value and how it was decided (`accepted`, `corrected` or
/// `adjudicated`). Older stores hold the bare value.
pub fn final_record(value: &Value, how: &str) -> String {
    serde_json::json!({"value": value, "how": how}).to_string()
}

fn read_final(v: Value) -> (Value, String) {
    match v {
        Value::Object(mut o) if o.contains_key("how") && o.contains_key("value") => {
            let how = o
                .get("how")
                .and_then(Value::as_str)
                .unwrap_or("adjudicated")
                .to_owned();
            (o.remove("value").unwrap_or(Value::Null), how)
        }
        other => (other, "adjudicated".to_owned()),
    }
}

/// A queue held in memory.
pub struct Held {
    pub def: QueueDef,
    pub schema: Schema,
    pub items: HashMap<String, Item>,
    pub queue: Queue,
    /// When each person was last given each item, and how long labelling took.
    pub given_at: HashMap<(String, String), i64>,
    pub took_ms: Vec<(String, i64)>,
    /// What went with each thing a person did, by (item, person, kind).
    pub notes: HashMap<(String, String, String), Note>,
    /// The last version of the queue taken in.
    pub version: i64,
}

type Slot = Arc<tokio::sync::Mutex<Option<Held>>>;

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

async fn load(state: &AppState, project: &str, id: &str) -> Result<Held, ApiError> {
    let def = def_of(state, project, id).await?;
    let schema = schema_of(state, project, &def.schema).await?;
    let items = read_items(&def.items)
        .map_err(|e| ApiError::new(Code::Internal, format!("stored queue {id}: {}", e.message)))?;
    let queue = Queue::new(
        Settings {
            overlap: def.overlap,
            lock_ms: (def.lock_s * 1000) as i64,
            gold_rate: def.gold_rate,
            blind: def.blind,
            people: def.people.clone(),
        },
        items.iter().map(|i| i.id.clone()).collect(),
        def.gold.clone(),
    );
    let mut held = Held {
        def,
        schema,
        items: items.into_iter().map(|i| (i.id.clone(), i)).collect(),
        queue,
        given_at: HashMap::new(),
        took_ms: Vec::new(),
        notes: HashMap::new(),
        version: -1,
    };
    let events = state.store.label_events(project, id).await?;
    take_in(&mut held, &events);
    Ok(held)
}

/// Brings the copy up to date with `events` (written after `held.version`, in order).
fn take_in(held: &mut Held, events: &[LabelEvent]) {
    for e in events {
        let value = e
            .value
            .as_deref()
            .and_then(|v| serde_json::from_str::<Value>(v).ok());
        let q = &mut held.queue;
        let mut detail = None;
        match e.kind.as_str() {
            "lock" => {
                let v = value.unwrap_or(Value::Null);
                let until = v["until_ms"].as_i64().unwrap_or(e.at_ms);
                q.restore_lock(&e.person, &e.item, v["gold"] == true, until);
                held.given_at
                    .insert((e.person.clone(), e.item.clone()), e.at_ms);
            }
            "label" => {
                if let Some(v) = value {
                    q.restore_label(&e.person, &e.item, v);
                }
                if let Some(at) = held.given_at.get(&(e.person.clone(), e.item.clone())) {
                    held.took_ms.push((e.person.clone(), (e.at_ms - at).max(0)));
                }
            }
            "skip" => q.restore_skip(&e.person, &e.item),
            "final" => {
                if let Some(v) = value {
                    let (v, how) = read_final(v);
                    q.restore_final(&e.item, v, &e.person);
                    detail = Some(how);
                }
            }
            _ => {}
        }
        if e.kind == "skip" {
            detail = e.value.clone();
        }
        held.notes.insert(
            (e.item.clone(), e.person.clone(), e.kind.clone()),
            Note {
                comment: e.comment.clone(),
                at_ms: e.at_ms,
                detail,
            },
        );
        held.version = held.version.max(e.version);
    }
}

/// Runs `f` on the queue's copy, brought up to date first.
pub async fn read<T>(
    state: &AppState,
    project: &str,
    id: &str,
    f: impl FnOnce(&Held) -> T,
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
            take_in(held, &events);
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
    f: impl FnOnce(&mut Held, i64) -> Result<(T, Vec<Did>), ApiError>,
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
        take_in(held, &events);
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
                at: clock::rfc3339_from_ms(now),
                at_ms: now,
                version: change.version,
            };
            change.record(&e).await?;
            written.push(e);
        }
        change.commit().await?;
        // What this change wrote is taken in like anyone else's (taking in is idempotent
        // for what `f` did already), so the copy is the same as one read whole.
        take_in(held, &written);
        Ok::<T, ApiError>(out)
    }
    .await;
    if outcome.is_err() {
        *guard = None;
    }
    outcome
}

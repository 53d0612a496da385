//! A queue's state as people's work left it: the queue (who labels what next), its schema
//! and items, and what went with each thing people did (comments, times, skip reasons, how a
//! final label was decided), rebuilt from the record of events the store keeps. Taking in an
//! event twice changes nothing, so a copy brought up to date from any point equals one read
//! whole. Also what people settled on for each item and why an item needs a reviewer, and the
//! labels written out as JSONL or as MLflow assessments.

use crate::items::{read_items, Item};
use crate::queue::{self, Queue, Settings};
use crate::schema::Schema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

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
    /// Traces whose answer from this judge was not trusted (below its calibrated
    /// threshold) are added to the queue as they are judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted_from: Option<String>,
}

/// What went with a thing a person did: a comment (a label's or a reviewer's note), when,
/// and the skip's reason or how a final label was decided.
#[derive(Debug, Clone)]
pub struct Note {
    pub comment: Option<String>,
    pub at_ms: i64,
    pub detail: Option<String>,
    /// What the person was shown (see [`Event::shown`]).
    pub shown: Option<String>,
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

/// One thing a person did, as the store records it: `lock` (was given the item; `value` is
/// `{until_ms, gold}`), `shown` (what they were shown of it then, in `shown`), `label`,
/// `skip` (`value` is the reason), `final`, or `add` (an item added after the queue was
/// made; `value` is the item).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub item: String,
    pub person: String,
    pub kind: String,
    /// JSON text (locks, labels, final labels) or the reason of a skip.
    pub value: Option<String>,
    pub comment: Option<String>,
    pub at_ms: i64,
    /// The version of the queue that wrote it.
    pub version: i64,
    /// For `shown` (when the item was given), a label or a final label, the item as the
    /// person was shown it: how many messages, a digest of them, and the question and reply
    /// a judge reads (for a pair, each side's), so a trace that later changes under the same
    /// id is not taken as the one labelled.
    pub shown: Option<String>,
}

/// A queue's state.
#[derive(Debug, Clone)]
pub struct QueueState {
    pub def: QueueDef,
    pub schema: Schema,
    pub items: HashMap<String, Item>,
    pub queue: Queue,
    /// When each person was last given each item, by (person, item).
    pub given_at: HashMap<(String, String), i64>,
    /// How long each label took from the item being given: (person, milliseconds).
    pub took_ms: Vec<(String, i64)>,
    /// What went with each thing a person did, by (item, person, kind).
    pub notes: HashMap<(String, String, String), Note>,
    /// The last version of the queue taken in.
    pub version: i64,
}

/// What people settled on for an item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settled {
    pub value: Value,
    /// Who decided it: the reviewer, or everyone who labelled it.
    pub by: Vec<String>,
    /// `accepted`, `adjudicated`, `corrected` (by a reviewer) or `unanimous`.
    pub how: String,
}

impl QueueState {
    /// An empty state of the queue `def` asks for; the error names a stored item that does
    /// not read.
    pub fn new(def: QueueDef, schema: Schema) -> Result<QueueState, String> {
        let items = read_items(&def.items)?;
        let queue = Queue::new(
            Settings {
                overlap: def.overlap,
                lock_ms: i64::try_from(def.lock_s.saturating_mul(1000)).unwrap_or(i64::MAX),
                gold_rate: def.gold_rate,
                blind: def.blind,
                people: def.people.clone(),
            },
            items.iter().map(|i| i.id.clone()).collect(),
            def.gold.clone(),
        );
        Ok(QueueState {
            def,
            schema,
            items: items.into_iter().map(|i| (i.id.clone(), i)).collect(),
            queue,
            given_at: HashMap::new(),
            took_ms: Vec::new(),
            notes: HashMap::new(),
            version: -1,
        })
    }

    /// Brings the copy up to date with `events` (written after `self.version`, in order).
    pub fn take_in(&mut self, events: &[Event]) {
        for e in events {
            let value = e
                .value
                .as_deref()
                .and_then(|v| serde_json::from_str::<Value>(v).ok());
            let q = &mut self.queue;
            let mut detail = None;
            match e.kind.as_str() {
                "lock" => {
                    let v = value.unwrap_or(Value::Null);
                    let until = v["until_ms"].as_i64().unwrap_or(e.at_ms);
                    q.restore_lock(&e.person, &e.item, v["gold"] == true, until);
                    self.given_at
                        .insert((e.person.clone(), e.item.clone()), e.at_ms);
                }
                "label" => {
                    if let Some(v) = value {
                        q.restore_label(&e.person, &e.item, v);
                    }
                    if let Some(at) = self.given_at.get(&(e.person.clone(), e.item.clone())) {
                        self.took_ms.push((e.person.clone(), (e.at_ms - at).max(0)));
                    }
                }
                "skip" => q.restore_skip(&e.person, &e.item),
                "add" => {
                    if let Some(item) = value.and_then(|v| crate::items::read_item(&v, "item").ok())
                    {
                        if q.add_item(&item.id) {
                            self.items.insert(item.id.clone(), item);
                        }
                    }
                }
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
            self.notes.insert(
                (e.item.clone(), e.person.clone(), e.kind.clone()),
                Note {
                    comment: e.comment.clone(),
                    at_ms: e.at_ms,
                    detail,
                    shown: e.shown.clone(),
                },
            );
            self.version = self.version.max(e.version);
        }
    }

    /// How the final label `by` gave `item` was decided.
    pub fn how(&self, item: &str, by: &str) -> String {
        self.notes
            .get(&(item.to_owned(), by.to_owned(), "final".to_owned()))
            .and_then(|n| n.detail.clone())
            .unwrap_or_else(|| "adjudicated".to_owned())
    }

    /// What people settled on for `item`: a reviewer's final label, or the unanimous label
    /// of everyone who labelled it once all labels are in.
    pub fn settled(&self, item: &str) -> Option<Settled> {
        if let Some((v, by)) = self.queue.final_label(item) {
            return Some(Settled {
                value: v.clone(),
                by: vec![by.clone()],
                how: self.how(item, by),
            });
        }
        let labels = self.queue.labels_for("", item, true);
        (labels.len() >= self.def.overlap && !labels.is_empty() && !queue::disagree(&labels, 0.0))
            .then(|| Settled {
                value: labels[0].1.clone(),
                by: labels.iter().map(|(p, _)| p.clone()).collect(),
                how: "unanimous".to_owned(),
            })
    }

    /// Every item's labels as JSON lines: per item with its labels, settled label and the
    /// skips people gave it with their reasons, or
    /// (`mlflow`) one MLflow assessment per label with a HUMAN source and the schema's name,
    /// final labels marked in `metadata.final`.
    pub fn export(&self, mlflow: bool) -> String {
        let mut out = String::new();
        let note = |item: &str, person: &str, kind: &str| {
            self.notes
                .get(&(item.to_owned(), person.to_owned(), kind.to_owned()))
                .cloned()
        };
        let mut skips: HashMap<&str, Vec<Value>> = HashMap::new();
        if !mlflow {
            for ((item, person, kind), n) in &self.notes {
                if kind == "skip" {
                    skips
                        .entry(item.as_str())
                        .or_default()
                        .push(json!({"person": person, "reason": n.detail, "at_ms": n.at_ms}));
                }
            }
            for list in skips.values_mut() {
                list.sort_by_key(|s| (s["at_ms"].as_i64(), s["person"].to_string()));
            }
        }
        for (item, labels) in self.queue.all_labels() {
            let it = self.items.get(item);
            if !mlflow {
                let labels: Vec<Value> = labels
                    .iter()
                    .map(|(p, v)| {
                        let n = note(item, p, "label");
                        json!({"person": p, "value": v,
                            "at_ms": n.as_ref().map(|n| n.at_ms),
                            "shown": n.as_ref().and_then(|n| n.shown.as_deref())
                                .and_then(|s| serde_json::from_str::<Value>(s).ok()),
                            "comment": n.and_then(|n| n.comment)})
                    })
                    .collect();
                let fin = self.settled(item).map(|s| {
                    let by = if s.how == "unanimous" {
                        json!(s.by)
                    } else {
                        json!(s.by[0])
                    };
                    let n = (s.how != "unanimous")
                        .then(|| note(item, &s.by[0], "final"))
                        .flatten();
                    json!({"value": s.value, "by": by, "how": s.how,
                        "at_ms": n.as_ref().map(|n| n.at_ms),
                        "shown": n.as_ref().and_then(|n| n.shown.as_deref())
                            .and_then(|s| serde_json::from_str::<Value>(s).ok()),
                        "note": n.and_then(|n| n.comment)})
                });
                let line = json!({"queue": self.def.id, "schema": self.schema.name, "item": item,
                    "trace": it.and_then(|i| i.trace.clone()), "span": it.and_then(|i| i.span.clone()),
                    "pair": it.and_then(|i| i.pair.clone()), "labels": labels, "final": fin,
                    "skips": skips.remove(item).unwrap_or_default()});
                out.push_str(&line.to_string());
                out.push('\n');
                continue;
            }
            let trace = it
                .and_then(|i| i.trace.clone())
                .unwrap_or_else(|| item.to_owned());
            let span = it.and_then(|i| i.span.clone());
            let mut push = |person: &str, kind: &str, value: &Value, meta: Value| {
                let n = note(item, person, kind);
                let line = json!({
                    "assessment_name": self.schema.name,
                    "trace_id": trace,
                    "span_id": span,
                    "source": {"source_type": "HUMAN", "source_id": person},
                    "create_time_ms": n.as_ref().map_or(0, |n| n.at_ms),
                    "feedback": {"value": value},
                    "rationale": n.and_then(|n| n.comment),
                    "metadata": meta,
                });
                out.push_str(&line.to_string());
                out.push('\n');
            };
            for (person, value) in labels {
                push(person, "label", value, json!({"queue": self.def.id}));
            }
            if let Some((value, by)) = self.queue.final_label(item) {
                push(
                    by,
                    "final",
                    value,
                    json!({"queue": self.def.id, "final": self.how(item, by)}),
                );
            }
        }
        out
    }

    /// The queues of one schema as one state, for figures over the schema: each item named
    /// `queue/item`, with its labels, final label, notes and times; an item counts as
    /// complete at the smallest overlap among the queues. `None` without queues.
    pub fn merged(states: &[&QueueState]) -> Option<QueueState> {
        let first = states.first()?;
        let name = |q: &QueueState, item: &str| format!("{}/{}", q.def.id, item);
        let mut items = Vec::new();
        let mut gold = BTreeMap::new();
        for q in states {
            for (id, item) in &q.items {
                let mut item = item.clone();
                item.id = name(q, id);
                items.push(serde_json::to_value(&item).unwrap_or(Value::Null));
            }
            for (g, v) in q.queue.gold() {
                gold.insert(name(q, g), v.clone());
            }
        }
        let def = QueueDef {
            id: format!("schema {}", first.schema.name),
            schema: first.schema.name.clone(),
            items,
            gold,
            overlap: states.iter().map(|q| q.def.overlap).min().unwrap_or(1),
            lock_s: first.def.lock_s,
            gold_rate: 0.0,
            blind: false,
            people: None,
            spread: first.def.spread,
            review_against_judge: states.iter().any(|q| q.def.review_against_judge),
            from: None,
            untrusted_from: None,
        };
        let mut out = QueueState::new(def, first.schema.clone()).ok()?;
        for q in states {
            for (item, labels) in q.queue.all_labels() {
                for (p, v) in labels {
                    out.queue.restore_label(p, &name(q, item), v.clone());
                }
                if let Some((v, by)) = q.queue.final_label(item) {
                    out.queue.restore_final(&name(q, item), v.clone(), by);
                }
            }
            for ((p, g), v) in q.queue.gold_answers() {
                out.queue.restore_label(p, &name(q, g), v.clone());
            }
            for ((item, p, kind), n) in &q.notes {
                out.notes
                    .insert((name(q, item), p.clone(), kind.clone()), n.clone());
            }
            out.took_ms.extend(q.took_ms.iter().cloned());
        }
        Some(out)
    }
}

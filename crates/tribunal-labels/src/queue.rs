//! Who labels what next. A queue holds items (traces, spans or pairs, by id) that each need
//! `overlap` labels from different people, and gold items whose answer is known. Asking for
//! work locks an item for the asker until the lock times out, so two people do not label the
//! same item at once beyond what the overlap allows; a skipped item goes to someone else and
//! never back to who skipped it; gold items are mixed in at a set rate, counted per person.
//! Time is passed in (milliseconds), so the rules are pure and testable.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How a queue hands out work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Distinct people who label each item.
    pub overlap: usize,
    /// How long an item stays locked for the person it was given to.
    pub lock_ms: i64,
    /// The share of a person's items that are gold items (0 to 1).
    pub gold_rate: f64,
    /// People never see each other's labels.
    pub blind: bool,
    /// Who may work on the queue (`None`: every annotator of the project).
    pub people: Option<Vec<String>>,
}

/// What a person is given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Next {
    /// Label this item; the lock ends at `until_ms`.
    Item {
        item: String,
        gold: bool,
        until_ms: i64,
    },
    /// Nothing free now, but items held by others may come free (a skip or a lock that
    /// times out): ask again after `until_ms` at the latest.
    Wait { until_ms: i64 },
    /// Nothing left for this person.
    Done,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("{0} may not work on this queue")]
    NotAllowed(String),
    #[error("item {0} is not in this queue")]
    NoSuchItem(String),
    #[error("{person} does not hold item {item}: ask for the next item again")]
    NotHeld { person: String, item: String },
    #[error("{person} already labelled item {item}")]
    AlreadyLabelled { person: String, item: String },
    #[error("item {0} was adjudicated; its label is final")]
    Final(String),
}

#[derive(Debug, Clone, Default)]
struct ItemState {
    labels: Vec<(String, Value)>,
    skipped: HashSet<String>,
    locks: HashMap<String, i64>,
    final_label: Option<(Value, String)>,
}

#[derive(Debug, Clone, Default)]
struct Person {
    served: u64,
    gold_served: u64,
    gold_done: HashSet<String>,
    /// Every item (gold or not) this person was ever given: an item given again after its
    /// lock timed out counts once.
    given: HashSet<String>,
    /// The item or gold item this person holds, and until when.
    holding: Option<(String, bool, i64)>,
}

impl Person {
    /// `item` is given to this person until `until_ms`.
    fn give(&mut self, item: &str, gold: bool, until_ms: i64) {
        if self.given.insert(item.to_owned()) {
            self.served += 1;
            if gold {
                self.gold_served += 1;
            }
        }
        self.holding = Some((item.to_owned(), gold, until_ms));
    }

    /// This person is done with `item` (labelled or skipped it).
    fn release(&mut self, item: &str) {
        if self.holding.as_ref().is_some_and(|(i, _, _)| i == item) {
            self.holding = None;
        }
    }
}

/// One queue's state.
#[derive(Debug, Clone)]
pub struct Queue {
    pub settings: Settings,
    order: Vec<String>,
    items: HashMap<String, ItemState>,
    gold: BTreeMap<String, Value>,
    gold_answers: HashMap<(String, String), Value>,
    people: HashMap<String, Person>,
}

impl Queue {
    pub fn new(settings: Settings, items: Vec<String>, gold: BTreeMap<String, Value>) -> Queue {
        let mut map = HashMap::new();
        let mut order = Vec::new();
        for i in items {
            if map.insert(i.clone(), ItemState::default()).is_none() {
                order.push(i);
            }
        }
        Queue {
            settings,
            order,
            items: map,
            gold,
            gold_answers: HashMap::new(),
            people: HashMap::new(),
        }
    }

    fn allowed(&self, person: &str) -> Result<(), QueueError> {
        match &self.settings.people {
            Some(list) if !list.iter().any(|p| p == person) => {
                Err(QueueError::NotAllowed(person.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Whether the next item of a person who has been served `served` items is a gold one:
    /// gold items come at exactly the set rate over a person's items.
    fn gold_turn(&self, p: &Person) -> bool {
        let rate = self.settings.gold_rate.clamp(0.0, 1.0);
        ((p.served + 1) as f64 * rate).floor() > (p.gold_served as f64)
    }

    /// The next item for `person` at `now_ms`: the one they hold, else a gold item when it
    /// is its turn, else the first item that still needs a label from someone new.
    pub fn next(&mut self, person: &str, now_ms: i64) -> Result<Next, QueueError> {
        self.allowed(person)?;
        let lock_ms = self.settings.lock_ms;
        let overlap = self.settings.overlap;
        let p = self.people.entry(person.to_owned()).or_default().clone();
        if let Some((item, gold, until)) = &p.holding {
            let still = if *gold {
                *until > now_ms
            } else {
                self.items
                    .get(item)
                    .and_then(|s| s.locks.get(person))
                    .is_some_and(|u| *u > now_ms)
            };
            if still {
                return Ok(Next::Item {
                    item: item.clone(),
                    gold: *gold,
                    until_ms: *until,
                });
            }
        }
        let until_ms = now_ms.saturating_add(lock_ms);
        if self.gold_turn(&p) {
            if let Some(g) = self
                .gold
                .keys()
                .find(|g| !p.gold_done.contains(*g))
                .cloned()
            {
                let person_state = self.people.get_mut(person).expect("made above");
                person_state.give(&g, true, until_ms);
                return Ok(Next::Item {
                    item: g,
                    gold: true,
                    until_ms,
                });
            }
        }
        // The earliest time a lock held by someone else ends on an item this person could
        // still label.
        let mut wait: Option<i64> = None;
        for id in &self.order {
            let s = self
                .items
                .get_mut(id)
                .expect("every ordered item has a state");
            if s.final_label.is_some()
                || s.skipped.contains(person)
                || s.labels.iter().any(|(who, _)| who == person)
            {
                continue;
            }
            s.locks.retain(|_, until| *until > now_ms);
            if s.labels.len() + s.locks.len() >= overlap {
                if s.labels.len() < overlap {
                    let soonest = s.locks.values().copied().min().unwrap_or(now_ms);
                    wait = Some(wait.map_or(soonest, |w| w.min(soonest)));
                }
                continue;
            }
            s.locks.insert(person.to_owned(), until_ms);
            let person_state = self.people.get_mut(person).expect("made above");
            person_state.give(id, false, until_ms);
            return Ok(Next::Item {
                item: id.clone(),
                gold: false,
                until_ms,
            });
        }
        Ok(match wait {
            Some(until_ms) => Next::Wait { until_ms },
            None => Next::Done,
        })
    }

    /// Records `person`'s label of `item` (which they were given). A lock that timed out
    /// still counts while nobody else has taken the place.
    pub fn submit(
        &mut self,
        person: &str,
        item: &str,
        value: Value,
        now_ms: i64,
    ) -> Result<(), QueueError> {
        self.allowed(person)?;
        if self.gold.contains_key(item) {
            let p = self.people.entry(person.to_owned()).or_default();
            if !matches!(&p.holding, Some((i, true, _)) if i == item) {
                return Err(QueueError::NotHeld {
                    person: person.to_owned(),
                    item: item.to_owned(),
                });
            }
            p.holding = None;
            p.gold_done.insert(item.to_owned());
            self.gold_answers
                .insert((person.to_owned(), item.to_owned()), value);
            return Ok(());
        }
        let overlap = self.settings.overlap;
        let s = self
            .items
            .get_mut(item)
            .ok_or_else(|| QueueError::NoSuchItem(item.to_owned()))?;
        if s.final_label.is_some() {
            return Err(QueueError::Final(item.to_owned()));
        }
        if s.labels.iter().any(|(who, _)| who == person) {
            return Err(QueueError::AlreadyLabelled {
                person: person.to_owned(),
                item: item.to_owned(),
            });
        }
        let held = s.locks.remove(person).is_some();
        s.locks.retain(|_, until| *until > now_ms);
        if !held || s.labels.len() + s.locks.len() >= overlap {
            return Err(QueueError::NotHeld {
                person: person.to_owned(),
                item: item.to_owned(),
            });
        }
        s.labels.push((person.to_owned(), value));
        if let Some(p) = self.people.get_mut(person) {
            p.holding = None;
        }
        Ok(())
    }

    /// Takes back a label `person` just gave (when it could not be recorded), so the item
    /// is theirs to label again.
    pub fn withdraw(&mut self, person: &str, item: &str) {
        if let Some(s) = self.items.get_mut(item) {
            s.labels.retain(|(who, _)| who != person);
        }
    }

    /// `person` passes on `item`: it goes to someone else and never back to them.
    pub fn skip(&mut self, person: &str, item: &str) -> Result<(), QueueError> {
        self.allowed(person)?;
        let s = self
            .items
            .get_mut(item)
            .ok_or_else(|| QueueError::NoSuchItem(item.to_owned()))?;
        if s.locks.remove(person).is_none() {
            return Err(QueueError::NotHeld {
                person: person.to_owned(),
                item: item.to_owned(),
            });
        }
        s.skipped.insert(person.to_owned());
        if let Some(p) = self.people.get_mut(person) {
            p.holding = None;
        }
        Ok(())
    }

    /// The labels of `item` that `person` may see: in blind mode only their own (a reviewer
    /// or admin reads them all with `all`).
    pub fn labels_for(&self, person: &str, item: &str, all: bool) -> Vec<(String, Value)> {
        let Some(s) = self.items.get(item) else {
            return Vec::new();
        };
        s.labels
            .iter()
            .filter(|(who, _)| all || !self.settings.blind || who == person)
            .cloned()
            .collect()
    }

    /// Every label of every item, for figures and checks.
    pub fn all_labels(&self) -> impl Iterator<Item = (&str, &[(String, Value)])> {
        self.order
            .iter()
            .map(|id| (id.as_str(), self.items[id].labels.as_slice()))
    }

    /// Every answer people gave to gold items: ((person, gold item), answer).
    pub fn gold_answers(&self) -> impl Iterator<Item = (&(String, String), &Value)> {
        self.gold_answers.iter()
    }

    /// The gold items with their known answers.
    pub fn gold(&self) -> &BTreeMap<String, Value> {
        &self.gold
    }

    /// `person`'s share of correct gold answers, when they answered any.
    pub fn gold_accuracy(&self, person: &str) -> Option<(usize, usize)> {
        let answered: Vec<bool> = self
            .gold_answers
            .iter()
            .filter(|((who, _), _)| who == person)
            .map(|((_, g), v)| self.gold.get(g) == Some(v))
            .collect();
        (!answered.is_empty()).then(|| (answered.iter().filter(|c| **c).count(), answered.len()))
    }

    /// How many distinct items `person` was given and how many of those were gold.
    pub fn served(&self, person: &str) -> (u64, u64) {
        self.people
            .get(person)
            .map_or((0, 0), |p| (p.served, p.gold_served))
    }

    /// Items with all their labels whose labels disagree by `disagrees` and that no one has
    /// adjudicated yet: the reviewer's queue.
    pub fn review(&self, disagrees: impl Fn(&[(String, Value)]) -> bool) -> Vec<&str> {
        self.order
            .iter()
            .filter(|id| {
                let s = &self.items[*id];
                s.final_label.is_none()
                    && s.labels.len() >= self.settings.overlap
                    && disagrees(&s.labels)
            })
            .map(String::as_str)
            .collect()
    }

    /// A reviewer's final label; the item never comes back to anyone.
    pub fn adjudicate(&mut self, item: &str, value: Value, by: &str) -> Result<(), QueueError> {
        let s = self
            .items
            .get_mut(item)
            .ok_or_else(|| QueueError::NoSuchItem(item.to_owned()))?;
        if s.final_label.is_some() {
            return Err(QueueError::Final(item.to_owned()));
        }
        s.final_label = Some((value, by.to_owned()));
        s.locks.clear();
        Ok(())
    }

    /// Puts back an item given to `person` until `until_ms` (when a queue is read again
    /// from the store, or brought up to date with what other servers did).
    pub fn restore_lock(&mut self, person: &str, item: &str, gold: bool, until_ms: i64) {
        let done = self.items.get(item).is_some_and(|s| {
            s.final_label.is_some()
                || s.skipped.contains(person)
                || s.labels.iter().any(|(who, _)| who == person)
        });
        if !gold && done {
            return;
        }
        if let Some(s) = self.items.get_mut(item) {
            s.locks.insert(person.to_owned(), until_ms);
        } else if !gold {
            return;
        }
        self.people
            .entry(person.to_owned())
            .or_default()
            .give(item, gold, until_ms);
    }

    /// Puts back a label recorded earlier (when a queue is read again from the store).
    pub fn restore_label(&mut self, person: &str, item: &str, value: Value) {
        if let Some(p) = self.people.get_mut(person) {
            p.release(item);
        }
        if let Some(s) = self.items.get_mut(item) {
            s.locks.remove(person);
            if !s.labels.iter().any(|(who, _)| who == person) {
                s.labels.push((person.to_owned(), value));
            }
        } else if self.gold.contains_key(item) {
            self.people
                .entry(person.to_owned())
                .or_default()
                .gold_done
                .insert(item.to_owned());
            self.gold_answers
                .insert((person.to_owned(), item.to_owned()), value);
        }
    }

    /// Puts back a skip recorded earlier.
    pub fn restore_skip(&mut self, person: &str, item: &str) {
        if let Some(p) = self.people.get_mut(person) {
            p.release(item);
        }
        if let Some(s) = self.items.get_mut(item) {
            s.locks.remove(person);
            s.skipped.insert(person.to_owned());
        }
    }

    /// Puts back a final label recorded earlier.
    pub fn restore_final(&mut self, item: &str, value: Value, by: &str) {
        if let Some(s) = self.items.get_mut(item) {
            s.final_label = Some((value, by.to_owned()));
            s.locks.clear();
        }
    }

    /// Adds an item at the end of the queue; `false` when it is in the queue already.
    pub fn add_item(&mut self, item: &str) -> bool {
        if self.items.contains_key(item) || self.gold.contains_key(item) {
            return false;
        }
        self.items.insert(item.to_owned(), ItemState::default());
        self.order.push(item.to_owned());
        true
    }

    /// Whether `item` is one of the queue's gold items.
    pub fn is_gold(&self, item: &str) -> bool {
        self.gold.contains_key(item)
    }

    /// The adjudicated label of `item` and who decided it.
    pub fn final_label(&self, item: &str) -> Option<&(Value, String)> {
        self.items.get(item)?.final_label.as_ref()
    }
}

/// Whether labels disagree: categorical or boolean labels that are not unanimous, or
/// numbers whose spread (max − min) is above `spread`.
/// Whether two labels say the same: numbers by their value (`4` and `4.0` are one label),
/// anything else as written.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub fn disagree(labels: &[(String, Value)], spread: f64) -> bool {
    let numbers: Vec<f64> = labels.iter().filter_map(|(_, v)| v.as_f64()).collect();
    if numbers.len() == labels.len() && !numbers.is_empty() {
        let (lo, hi) = numbers
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        return hi - lo > spread;
    }
    labels.windows(2).any(|w| w[0].1 != w[1].1)
}

//! The queue's rules under many people working at once: overlap 3 over 1,000 items and 10
//! annotators whose actions interleave at random (labels, skips, abandoned locks that time
//! out): every item ends with exactly 3 labels from 3 different people, nobody labels an item
//! twice, skipped and expired items go to others, gold items come at the set rate; blind
//! mode; review and adjudication.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use tribunal_labels::queue::{disagree, Next, Queue, QueueError, Settings};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn settings(overlap: usize, gold_rate: f64, blind: bool) -> Settings {
    Settings {
        overlap,
        lock_ms: 60_000,
        gold_rate,
        blind,
        people: None,
    }
}

#[test]
fn overlap_three_over_a_thousand_items_and_ten_people() {
    let items: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
    let gold: BTreeMap<String, Value> = (0..200)
        .map(|i| (format!("g{i}"), json!(i % 2 == 0)))
        .collect();
    let mut q = Queue::new(settings(3, 0.05, true), items.clone(), gold);
    let people: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut now = 0i64;
    let mut done: HashSet<String> = HashSet::new();
    let (mut skips, mut abandoned, mut refused) = (0, 0, 0);
    let mut holding: Vec<Option<(String, bool)>> = vec![None; people.len()];
    while done.len() < people.len() {
        now += 1 + rng.below(500) as i64;
        let who = rng.below(people.len() as u64) as usize;
        let p = &people[who];
        if done.contains(p) {
            continue;
        }
        match holding[who].take() {
            None => match q.next(p, now).unwrap() {
                Next::Done => {
                    done.insert(p.clone());
                }
                // Someone else holds what is left; they will label, skip or let it go.
                Next::Wait { .. } => {}
                Next::Item { item, gold, .. } => holding[who] = Some((item, gold)),
            },
            Some((item, gold)) => {
                let roll = rng.below(100);
                if gold {
                    q.submit(p, &item, json!(rng.below(10) < 8), now).unwrap();
                } else if roll < 80 {
                    match q.submit(p, &item, json!(rng.below(3)), now) {
                        Ok(()) => {}
                        Err(QueueError::NotHeld { .. }) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                } else if roll < 90 {
                    // A lock that timed out meanwhile cannot be skipped: it is gone already.
                    match q.skip(p, &item) {
                        Ok(()) => skips += 1,
                        Err(QueueError::NotHeld { .. }) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                } else {
                    // Walks away: the lock times out and the item goes to someone else.
                    abandoned += 1;
                    now += 61_000;
                }
            }
        }
    }
    let mut complete = 0;
    for (item, labels) in q.all_labels() {
        let who: HashSet<&str> = labels.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(who.len(), labels.len(), "{item}: someone labelled it twice");
        assert!(labels.len() <= 3, "{item}: {} labels", labels.len());
        if labels.len() == 3 {
            complete += 1;
        }
    }
    assert_eq!(complete, 1000, "every item ends with exactly 3 labels");
    assert!(
        skips > 50 && abandoned > 50,
        "{skips} skips, {abandoned} abandoned"
    );
    println!("{skips} skips, {abandoned} abandoned locks, {refused} late submissions refused");
    for p in &people {
        let (served, gold) = q.served(p);
        let rate = gold as f64 / served as f64;
        assert!((rate - 0.05).abs() <= 0.01, "{p}: {gold} gold of {served}");
        let (right, answered) = q.gold_accuracy(p).unwrap();
        assert!(right <= answered && answered as u64 == gold);
    }
}

#[test]
fn blind_mode_shows_people_only_their_own_labels() {
    let mut q = Queue::new(settings(2, 0.0, true), vec!["a".into()], BTreeMap::new());
    for p in ["ann", "bob"] {
        let Next::Item { item, .. } = q.next(p, 0).unwrap() else {
            panic!()
        };
        q.submit(p, &item, json!(p), 1).unwrap();
    }
    assert_eq!(
        q.labels_for("ann", "a", false),
        vec![("ann".to_owned(), json!("ann"))]
    );
    assert_eq!(
        q.labels_for("ann", "a", true).len(),
        2,
        "a reviewer sees both"
    );
    let mut open = Queue::new(settings(2, 0.0, false), vec!["a".into()], BTreeMap::new());
    for p in ["ann", "bob"] {
        let Next::Item { item, .. } = open.next(p, 0).unwrap() else {
            panic!()
        };
        open.submit(p, &item, json!(p), 1).unwrap();
    }
    assert_eq!(open.labels_for("ann", "a", false).len(), 2);
}

#[test]
fn disagreements_go_to_review_once_and_adjudication_is_final() {
    let mut q = Queue::new(
        settings(2, 0.0, false),
        vec!["same".into(), "split".into(), "far".into(), "near".into()],
        BTreeMap::new(),
    );
    let answers = [
        ("same", json!("x"), json!("x")),
        ("split", json!("x"), json!("y")),
        ("far", json!(1), json!(5)),
        ("near", json!(3), json!(4)),
    ];
    for (item, a, b) in &answers {
        for (p, v) in [("ann", a), ("bob", b)] {
            let Next::Item { item: got, .. } = q.next(p, 0).unwrap() else {
                panic!()
            };
            assert_eq!(&got, item);
            q.submit(p, item, v.clone(), 1).unwrap();
        }
    }
    let review = q.review(|l| disagree(l, 1.0));
    assert_eq!(review, ["split", "far"]);
    q.adjudicate("split", json!("y"), "rita").unwrap();
    assert_eq!(q.review(|l| disagree(l, 1.0)), ["far"]);
    assert_eq!(
        q.final_label("split"),
        Some(&(json!("y"), "rita".to_owned()))
    );
    assert!(matches!(
        q.adjudicate("split", json!("x"), "rita"),
        Err(QueueError::Final(_))
    ));
    // Every item has its labels; the adjudicated one never comes back.
    assert_eq!(q.next("carl", 2).unwrap(), Next::Done);
    assert!(matches!(
        q.submit("carl", "split", json!("x"), 3),
        Err(QueueError::Final(_))
    ));
}

#[test]
fn a_withdrawn_label_leaves_the_item_to_be_labelled_again() {
    let mut q = Queue::new(settings(1, 0.0, false), vec!["a".into()], BTreeMap::new());
    let Next::Item { item, .. } = q.next("ann", 0).unwrap() else {
        panic!()
    };
    q.submit("ann", &item, json!(1), 1).unwrap();
    assert_eq!(q.next("bob", 2).unwrap(), Next::Done);
    q.withdraw("ann", &item);
    assert!(q.labels_for("ann", "a", true).is_empty());
    assert!(matches!(q.next("ann", 3).unwrap(), Next::Item { .. }));
}

#[test]
fn people_outside_the_queue_and_unheld_items_are_refused() {
    let mut s = settings(1, 0.0, false);
    s.people = Some(vec!["ann".into()]);
    let mut q = Queue::new(s, vec!["a".into(), "b".into()], BTreeMap::new());
    assert!(matches!(q.next("eve", 0), Err(QueueError::NotAllowed(_))));
    assert!(matches!(
        q.submit("ann", "a", json!(1), 0),
        Err(QueueError::NotHeld { .. })
    ));
    assert!(matches!(
        q.submit("ann", "zzz", json!(1), 0),
        Err(QueueError::NoSuchItem(_))
    ));
    let Next::Item { item, .. } = q.next("ann", 0).unwrap() else {
        panic!()
    };
    assert_eq!(
        q.next("ann", 10).unwrap(),
        Next::Item {
            item: item.clone(),
            gold: false,
            until_ms: 60_000
        },
        "the held item again"
    );
    q.submit("ann", &item, json!(1), 20).unwrap();
    assert!(matches!(
        q.submit("ann", &item, json!(1), 20),
        Err(QueueError::AlreadyLabelled { .. })
    ));
}

/// A lock too long to count in milliseconds holds the item for as long as time can say,
/// without overflowing; the next person gets another item.
#[test]
fn a_huge_lock_saturates_instead_of_overflowing() {
    let mut q = Queue::new(
        Settings {
            lock_ms: i64::MAX,
            ..settings(1, 0.0, false)
        },
        vec!["a".into(), "b".into()],
        BTreeMap::new(),
    );
    let now = 1_800_000_000_000;
    let Next::Item { item, until_ms, .. } = q.next("p1", now).unwrap() else {
        panic!("an item")
    };
    assert_eq!(until_ms, i64::MAX);
    let Next::Item { item: other, .. } = q.next("p2", now + 1).unwrap() else {
        panic!("another item")
    };
    assert_ne!(item, other, "a lock does not wrap into the past");
}

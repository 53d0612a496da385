//! What a scanner found in each text, kept between calls for callers that send the same
//! texts again and again: a gate called before every step of an agent gets the whole
//! conversation each time, and only the newest messages are new.
//!
//! Keyed by the text itself (a lookup compares the stored text with the asked one, so two
//! texts never share an entry), split into shards with a lock each. Each shard holds two
//! generations: when the newer one reaches its share of the byte budget, the older one is
//! dropped and the newer becomes the older, so texts in use stay (they are moved forward
//! when found in the older generation) and memory stays bounded.

use super::Hit;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

const SHARDS: usize = 16;

/// Bytes of text (and hits) one detector keeps, over both generations, at most about twice
/// this.
pub(crate) const BUDGET: usize = 4 << 20;

/// Texts shorter than this are scanned every time: hashing and locking would cost about
/// as much as the scan.
const MIN_LEN: usize = 24;

type Map = HashMap<Box<str>, Box<[Hit]>, foldhash::fast::RandomState>;

#[derive(Default)]
struct Shard {
    newer: Map,
    older: Map,
    bytes: usize,
}

/// Scan results per text; see the module documentation.
pub(crate) struct ScanMemo {
    shards: Vec<Mutex<Shard>>,
    hasher: foldhash::fast::RandomState,
    shard_budget: usize,
}

impl ScanMemo {
    pub(crate) fn new(budget: usize) -> ScanMemo {
        ScanMemo {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            shard_budget: (budget / SHARDS).max(1),
        }
    }

    /// Appends to `out` what `scan` finds in `text`, from the memo when the text was seen.
    pub(crate) fn scan(
        &self,
        text: &str,
        out: &mut Vec<Hit>,
        scan: impl FnOnce(&str, &mut Vec<Hit>),
    ) {
        if text.len() < MIN_LEN {
            return scan(text, out);
        }
        let shard = &self.shards[(self.hasher.hash_one(text) as usize) % SHARDS];
        {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hits) = s.newer.get(text) {
                out.extend_from_slice(hits);
                return;
            }
            if let Some((k, hits)) = s.older.remove_entry(text) {
                out.extend_from_slice(&hits);
                Self::insert(&mut s, self.shard_budget, k, hits);
                return;
            }
        }
        // Scanned without the lock; two callers may scan the same new text at once, and
        // the second insert replaces the first with the same hits.
        let from = out.len();
        scan(text, out);
        let hits: Box<[Hit]> = out[from..].into();
        let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
        Self::insert(&mut s, self.shard_budget, text.into(), hits);
    }

    fn insert(s: &mut Shard, budget: usize, text: Box<str>, hits: Box<[Hit]>) {
        let size = text.len() + std::mem::size_of_val::<[Hit]>(&hits) + 64;
        if s.bytes + size > budget {
            s.older = std::mem::take(&mut s.newer);
            s.bytes = 0;
        }
        s.bytes += size;
        s.newer.insert(text, hits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn hit(start: usize) -> Hit {
        Hit {
            kind: Arc::from("k"),
            score: 0.5,
            start,
            end: start + 1,
        }
    }

    fn counting_scan(calls: &std::cell::Cell<usize>) -> impl Fn(&str, &mut Vec<Hit>) + '_ {
        move |t: &str, out: &mut Vec<Hit>| {
            calls.set(calls.get() + 1);
            for (i, _) in t.match_indices('x') {
                out.push(hit(i));
            }
        }
    }

    #[test]
    fn a_text_seen_before_is_not_scanned_again_and_gets_the_same_hits() {
        let memo = ScanMemo::new(BUDGET);
        let calls = std::cell::Cell::new(0);
        let scan = counting_scan(&calls);
        let text = "a long enough string with an x here and an x there";
        let (mut first, mut again) = (Vec::new(), vec![hit(99)]);
        memo.scan(text, &mut first, &scan);
        memo.scan(text, &mut again, &scan);
        assert_eq!(calls.get(), 1);
        assert_eq!(first.len(), 2);
        // Appended after what the caller already had.
        assert_eq!(&again[1..], &first[..]);
        assert_eq!(again[0], hit(99));
        // A different text of the same length is its own entry.
        let other = "a long enough string with an y here and an y there";
        let mut none = Vec::new();
        memo.scan(other, &mut none, &scan);
        assert_eq!(calls.get(), 2);
        assert!(none.is_empty());
    }

    #[test]
    fn short_texts_are_always_scanned() {
        let memo = ScanMemo::new(BUDGET);
        let calls = std::cell::Cell::new(0);
        let scan = counting_scan(&calls);
        for _ in 0..3 {
            memo.scan("x", &mut Vec::new(), &scan);
        }
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn memory_stays_within_two_generations_and_texts_in_use_stay() {
        // A budget of about 40 texts per shard.
        let memo = ScanMemo::new(SHARDS * 40 * 100);
        let calls = std::cell::Cell::new(0);
        let scan = counting_scan(&calls);
        let hot = "the system prompt every call repeats, x marks it";
        for i in 0..20_000 {
            memo.scan(
                &format!("{i:0>30} a text seen once"),
                &mut Vec::new(),
                &scan,
            );
            memo.scan(hot, &mut Vec::new(), &scan);
        }
        assert_eq!(calls.get(), 20_001, "the repeated text was scanned once");
        for s in &memo.shards {
            let s = s.lock().unwrap();
            assert!(s.bytes <= memo.shard_budget);
            assert!(
                s.newer.len() + s.older.len() <= 2 * 41,
                "{}",
                s.newer.len() + s.older.len()
            );
        }
    }
}

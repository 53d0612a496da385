//! The features a reply is scored on, all hashed into one space of `2^bits` weights:
//!
//! - `word`: the reply's lower-cased word unigrams and bigrams;
//! - `char`: the reply's lower-cased character n-grams (3 to 5 by default);
//! - `pair`: conjunctions of the words of the prompt's last message with the reply's words
//!   (what the reply says given what was asked);
//! - `shape`: log length in words, questions asked, refusal phrases ("I can't", "I'm
//!   sorry"…), list items, code blocks, an empty reply.
//!
//! Each group is scaled to unit length, so a long reply does not outweigh a short one by its
//! count of n-grams. Hashing is FNV-1a with a group tag, with a sign bit to halve the bias of
//! collisions; the same text gives the same features on every machine.

use serde::{Deserialize, Serialize};

/// What [`features`] extracts; saved with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSettings {
    /// The space has `2^bits` weights.
    pub bits: u32,
    pub words: bool,
    pub chars: bool,
    pub char_min: usize,
    pub char_max: usize,
    pub pair: bool,
    /// At most this many distinct prompt words and reply words take part in `pair`.
    pub pair_limit: usize,
    pub shape: bool,
}

impl Default for FeatureSettings {
    fn default() -> Self {
        FeatureSettings {
            bits: 18,
            words: true,
            chars: true,
            char_min: 3,
            char_max: 5,
            pair: true,
            pair_limit: 48,
            shape: true,
        }
    }
}

impl FeatureSettings {
    pub fn dim(&self) -> usize {
        1usize << self.bits
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if !(4..=24).contains(&self.bits) {
            return Err(format!("bits is {}, expected 4 to 24", self.bits));
        }
        if self.chars && (self.char_min == 0 || self.char_min > self.char_max) {
            return Err(format!(
                "char n-gram sizes {}..={} are not a range of positive sizes",
                self.char_min, self.char_max
            ));
        }
        Ok(())
    }
}

/// Phrases that mark a refusal or a hedge.
pub const REFUSALS: &[&str] = &[
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm sorry",
    "i am sorry",
    "i'm not able",
    "i am not able",
    "i'm unable",
    "i am unable",
    "not appropriate",
    "i don't think",
    "i do not think",
    "illegal",
    "harmful",
];

/// A sparse vector: sorted, distinct indices with their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub indices: Vec<u32>,
    pub values: Vec<f64>,
}

impl Features {
    pub fn dot(&self, w: &[f64]) -> f64 {
        self.indices
            .iter()
            .zip(&self.values)
            .map(|(&i, &v)| w.get(i as usize).copied().unwrap_or(0.0) * v)
            .sum()
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(tag: &[u8], parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in tag.iter().copied().chain([0xff]) {
        h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
    }
    for p in parts {
        for &b in *p {
            h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
        }
        h = (h ^ 0xfe).wrapping_mul(FNV_PRIME);
    }
    // Finish with a mix so the low bits depend on every byte.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Lower-cased words: runs of letters, digits and apostrophes.
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .map(|w| w.replace('’', "'"))
        .collect()
}

/// Counts in one group, before scaling.
struct Group {
    entries: Vec<(u32, f64)>,
}

impl Group {
    fn new() -> Self {
        Group {
            entries: Vec::new(),
        }
    }

    fn add(&mut self, settings: &FeatureSettings, tag: &[u8], parts: &[&[u8]], value: f64) {
        let h = fnv(tag, parts);
        let index = (h as u32) & ((1u32 << settings.bits) - 1);
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        self.entries.push((index, sign * value));
    }

    /// Scales the group to unit length and appends it.
    fn finish(self, out: &mut Vec<(u32, f64)>) {
        let norm = self.entries.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            out.extend(self.entries.into_iter().map(|(i, v)| (i, v / norm)));
        }
    }
}

/// The features of `reply` answering `prompt` (the prompt's last message).
pub fn features(settings: &FeatureSettings, prompt: &str, reply: &str) -> Features {
    let mut all: Vec<(u32, f64)> = Vec::new();
    let reply_words = words(reply);
    if settings.words {
        let mut g = Group::new();
        for w in &reply_words {
            g.add(settings, b"w1", &[w.as_bytes()], 1.0);
        }
        for pair in reply_words.windows(2) {
            g.add(
                settings,
                b"w2",
                &[pair[0].as_bytes(), pair[1].as_bytes()],
                1.0,
            );
        }
        g.finish(&mut all);
    }
    if settings.chars {
        let mut g = Group::new();
        let lower = reply.to_lowercase();
        let bounds: Vec<usize> = lower
            .char_indices()
            .map(|(i, _)| i)
            .chain([lower.len()])
            .collect();
        for n in settings.char_min..=settings.char_max {
            for start in 0..bounds.len().saturating_sub(n) {
                let s = &lower[bounds[start]..bounds[start + n]];
                g.add(settings, b"c", &[s.as_bytes()], 1.0);
            }
        }
        g.finish(&mut all);
    }
    if settings.pair {
        let mut g = Group::new();
        let pw = distinct(words(prompt), settings.pair_limit);
        let rw = distinct(reply_words.clone(), settings.pair_limit);
        for p in &pw {
            for r in &rw {
                g.add(settings, b"pr", &[p.as_bytes(), r.as_bytes()], 1.0);
            }
        }
        g.finish(&mut all);
    }
    if settings.shape {
        let lower = reply.to_lowercase();
        let lines = || reply.lines().map(str::trim_start);
        let list_items = lines()
            .filter(|l| {
                l.starts_with("- ")
                    || l.starts_with("* ")
                    || l.split_once(". ").is_some_and(|(n, _)| {
                        !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
                    })
            })
            .count();
        let refusals: usize = REFUSALS.iter().map(|p| lower.matches(p).count()).sum();
        let shape: [(&[u8], f64); 6] = [
            (b"len", (1.0 + reply_words.len() as f64).ln()),
            (b"questions", (1.0 + reply.matches('?').count() as f64).ln()),
            (b"refusals", (1.0 + refusals as f64).ln()),
            (b"lists", (1.0 + list_items as f64).ln()),
            (
                b"code",
                (1.0 + reply.matches("```").count() as f64 / 2.0).ln(),
            ),
            (b"empty", if reply_words.is_empty() { 1.0 } else { 0.0 }),
        ];
        for (name, v) in shape {
            if v != 0.0 {
                let h = fnv(b"s", &[name]);
                all.push(((h as u32) & ((1u32 << settings.bits) - 1), v));
            }
        }
    }
    all.sort_by_key(|(i, _)| *i);
    let mut out = Features::default();
    for (i, v) in all {
        if out.indices.last() == Some(&i) {
            if let Some(last) = out.values.last_mut() {
                *last += v;
            }
        } else {
            out.indices.push(i);
            out.values.push(v);
        }
    }
    out
}

fn distinct(mut words: Vec<String>, limit: usize) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    words.retain(|w| seen.insert(w.clone()));
    words.truncate(limit);
    words
}

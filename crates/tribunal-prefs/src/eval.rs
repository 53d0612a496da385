//! Evaluation that cannot flatter: pairwise accuracy where a tie in score counts as a miss,
//! always beside a length-only baseline (the reply with more words wins; equal lengths are a
//! miss), its opposite (the shorter reply wins) and chance (0.5), with a seeded bootstrap 95 % interval; per-subset accuracy when
//! records name a subset; best-of-N selection accuracy over groups of candidates.
//!
//! A record's expected winner is `chosen`, or `rejected` when its soft label is below 0.5.
//! Records labelled as ties (or with a soft label of exactly 0.5) have no winner and are
//! counted apart, not scored.

use crate::features::words;
use crate::model::RewardModel;
use crate::record::{PreferenceRecord, Turns};
use crate::rng::Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// Accuracy with its bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    pub accuracy: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub correct: usize,
    pub n: usize,
}

/// The evaluation of a model on labelled pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub n: usize,
    pub model: Accuracy,
    pub length_baseline: Accuracy,
    /// The opposite baseline (the shorter reply wins; equal lengths miss), shown so that a
    /// length bias in either direction is visible.
    pub shorter_baseline: Accuracy,
    pub chance: f64,
    /// Pairs labelled as ties, not scored.
    pub ties_skipped: usize,
    /// Pairs the model scored equally (counted as misses).
    pub score_ties: usize,
    pub bootstrap_samples: usize,
    pub bootstrap_seed: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subsets: BTreeMap<String, Accuracy>,
}

/// `Some(true)` when `chosen` should win, `Some(false)` when `rejected` should, `None` for a
/// tie.
fn expected(r: &PreferenceRecord) -> Option<bool> {
    if r.tie {
        return None;
    }
    match r.soft_label {
        Some(0.5) => None,
        Some(p) => Some(p > 0.5),
        None => Some(true),
    }
}

/// Whether scores `(c, r)` pick the expected winner; equal scores are a miss.
fn hit(chosen_wins: bool, c: f64, r: f64) -> bool {
    if chosen_wins {
        c > r
    } else {
        r > c
    }
}

pub fn reply_words(t: &Turns) -> usize {
    words(&t.text()).len()
}

/// Evaluates `model` on `records`; the interval comes from `samples` bootstrap resamples
/// drawn with `seed`.
pub fn evaluate(
    model: &RewardModel,
    records: &[PreferenceRecord],
    samples: usize,
    seed: u64,
) -> Evaluation {
    let mut model_hits = Vec::new();
    let mut length_hits = Vec::new();
    let mut shorter_hits = Vec::new();
    let mut by_subset: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut ties_skipped = 0;
    let mut score_ties = 0;
    for r in records {
        let Some(chosen_wins) = expected(r) else {
            ties_skipped += 1;
            continue;
        };
        let (c, s) = model.score_pair(r);
        if c == s {
            score_ties += 1;
        }
        let h = hit(chosen_wins, c, s);
        model_hits.push(h);
        let (lc, lr) = (
            reply_words(&r.chosen) as f64,
            reply_words(&r.rejected) as f64,
        );
        length_hits.push(hit(chosen_wins, lc, lr));
        shorter_hits.push(hit(chosen_wins, -lc, -lr));
        if let Some(name) = &r.subset {
            by_subset.entry(name.clone()).or_default().push(h);
        }
    }
    let subsets = by_subset
        .into_iter()
        .map(|(k, v)| (k, accuracy(&v, samples, seed)))
        .collect();
    Evaluation {
        n: model_hits.len(),
        model: accuracy(&model_hits, samples, seed),
        length_baseline: accuracy(&length_hits, samples, seed),
        shorter_baseline: accuracy(&shorter_hits, samples, seed),
        chance: 0.5,
        ties_skipped,
        score_ties,
        bootstrap_samples: samples,
        bootstrap_seed: seed,
        subsets,
    }
}

/// The share of `hits` that are true, with a percentile bootstrap 95 % interval.
pub fn accuracy(hits: &[bool], samples: usize, seed: u64) -> Accuracy {
    let n = hits.len();
    let correct = hits.iter().filter(|h| **h).count();
    let acc = if n == 0 {
        0.0
    } else {
        correct as f64 / n as f64
    };
    let (lo, hi) = bootstrap(hits, samples, seed).unwrap_or((acc, acc));
    Accuracy {
        accuracy: acc,
        ci_low: lo,
        ci_high: hi,
        correct,
        n,
    }
}

/// Percentile bootstrap 95 % interval of the mean of `hits`.
pub fn bootstrap(hits: &[bool], samples: usize, seed: u64) -> Option<(f64, f64)> {
    let n = hits.len();
    if n == 0 || samples == 0 {
        return None;
    }
    let mut rng = Rng::new(seed);
    let mut means: Vec<f64> = (0..samples)
        .map(|_| (0..n).filter(|_| hits[rng.below(n)]).count() as f64 / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (samples - 1) as f64).round() as usize).min(samples - 1)];
    Some((at(0.025), at(0.975)))
}

/// Candidates for one prompt, with the index of the best.
#[derive(Debug, Clone, PartialEq)]
pub struct BestOfNGroup {
    pub prompt: Turns,
    pub candidates: Vec<Turns>,
    pub best: usize,
}

/// Best-of-N selection: the share of groups where the top-scored candidate is the best one
/// (a tie for the top is a miss), beside the same for the longest candidate and chance
/// (the mean of 1/N). Groups with no candidates or `best` out of range are skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestOfN {
    pub groups: usize,
    pub model: f64,
    pub length_baseline: f64,
    pub chance: f64,
}

pub fn best_of_n(model: &RewardModel, groups: &[BestOfNGroup]) -> BestOfN {
    let mut n = 0usize;
    let (mut m, mut l, mut chance) = (0usize, 0usize, 0.0);
    let unique_top = |scores: &[f64], best: usize| {
        let top = scores[best];
        scores
            .iter()
            .enumerate()
            .all(|(i, &s)| i == best || s < top)
    };
    for g in groups {
        if g.best >= g.candidates.len() {
            continue;
        }
        n += 1;
        chance += 1.0 / g.candidates.len() as f64;
        let scores: Vec<f64> = g
            .candidates
            .iter()
            .map(|c| model.score(&g.prompt, c))
            .collect();
        let lengths: Vec<f64> = g.candidates.iter().map(|c| reply_words(c) as f64).collect();
        m += unique_top(&scores, g.best) as usize;
        l += unique_top(&lengths, g.best) as usize;
    }
    let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    BestOfN {
        groups: n,
        model: share(m),
        length_baseline: share(l),
        chance: if n == 0 { 0.0 } else { chance / n as f64 },
    }
}

/// Splits `records` into (train, holdout) with `fraction` of them, rounded, held out; the
/// order is shuffled by `seed`.
pub fn holdout_split(
    records: &[PreferenceRecord],
    fraction: f64,
    seed: u64,
) -> (Vec<PreferenceRecord>, Vec<PreferenceRecord>) {
    let mut order: Vec<usize> = (0..records.len()).collect();
    Rng::new(seed).shuffle(&mut order);
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let k = (records.len() as f64 * fraction).round() as usize;
    let held: Vec<PreferenceRecord> = order[..k].iter().map(|&i| records[i].clone()).collect();
    let mut train_idx: Vec<usize> = order[k..].to_vec();
    train_idx.sort_unstable();
    (
        train_idx.iter().map(|&i| records[i].clone()).collect(),
        held,
    )
}

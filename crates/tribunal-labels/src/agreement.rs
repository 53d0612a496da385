//! Agreement statistics. Labels are values that can be compared for equality and, for the
//! ordered and interval forms, ordered or subtracted: categorical labels are strings, ordered
//! and numeric labels are numbers. The definitions follow the published formulas (Cohen 1960,
//! 1968; Fleiss 1971; Krippendorff 2011) and agree with scikit-learn's `cohen_kappa_score`,
//! statsmodels' `fleiss_kappa` and the `krippendorff` package (checked on generated fixtures
//! in `tests/agreement.rs`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a figure has no value for this input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("not computable: {0}")]
pub struct NotComputable(pub String);

fn nc<T>(why: impl Into<String>) -> Result<T, NotComputable> {
    Err(NotComputable(why.into()))
}

/// One label value: a category, or a number for ordered and interval scales.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Label {
    Number(f64),
    Category(String),
}

impl Label {
    /// A total order: numbers by value (before categories), categories by text.
    fn key(&self) -> (u8, f64, &str) {
        match self {
            Label::Number(n) => (0, *n, ""),
            Label::Category(c) => (1, 0.0, c.as_str()),
        }
    }
    fn cmp_key(&self, other: &Label) -> std::cmp::Ordering {
        let (a, b) = (self.key(), other.key());
        a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(b.2))
    }
}

/// The distinct labels in order.
fn domain<'a>(labels: impl Iterator<Item = &'a Label>) -> Vec<Label> {
    let mut out: Vec<Label> = Vec::new();
    for l in labels {
        if !out.iter().any(|x| x == l) {
            out.push(l.clone());
        }
    }
    out.sort_by(|a, b| a.cmp_key(b));
    out
}

fn index_of(domain: &[Label], l: &Label) -> usize {
    domain.iter().position(|x| x == l).unwrap_or(0)
}

/// The share of items both raters labelled the same (pairs where either is missing are left
/// out).
pub fn percent_agreement(a: &[Option<Label>], b: &[Option<Label>]) -> Result<f64, NotComputable> {
    let pairs: Vec<(&Label, &Label)> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| Some((x.as_ref()?, y.as_ref()?)))
        .collect();
    if pairs.is_empty() {
        return nc("no item has a label from both raters");
    }
    Ok(pairs.iter().filter(|(x, y)| x == y).count() as f64 / pairs.len() as f64)
}

/// Weights of Cohen's κ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// Every disagreement counts the same.
    None,
    /// Disagreements count by how many steps apart the labels are (ordered labels).
    Linear,
    /// … by the square of that.
    Quadratic,
}

/// Cohen's κ between two raters over the same items (items either left unlabelled are left
/// out). Labels are ordered as numbers, then text, for the weighted forms.
pub fn cohen_kappa(
    a: &[Option<Label>],
    b: &[Option<Label>],
    weights: Weights,
) -> Result<f64, NotComputable> {
    if a.len() != b.len() {
        return nc(format!(
            "the two raters labelled different numbers of items ({} and {})",
            a.len(),
            b.len()
        ));
    }
    let pairs: Vec<(&Label, &Label)> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| Some((x.as_ref()?, y.as_ref()?)))
        .collect();
    if pairs.is_empty() {
        return nc("no item has a label from both raters");
    }
    let dom = domain(pairs.iter().flat_map(|(x, y)| [*x, *y]));
    let k = dom.len();
    let mut c = vec![vec![0.0f64; k]; k];
    for (x, y) in &pairs {
        c[index_of(&dom, x)][index_of(&dom, y)] += 1.0;
    }
    let total = pairs.len() as f64;
    let rows: Vec<f64> = c.iter().map(|r| r.iter().sum()).collect();
    let cols: Vec<f64> = (0..k).map(|j| c.iter().map(|r| r[j]).sum()).collect();
    let w = |i: usize, j: usize| -> f64 {
        let d = i.abs_diff(j) as f64;
        match weights {
            Weights::None => f64::from(u8::from(i != j)),
            Weights::Linear => d,
            Weights::Quadratic => d * d,
        }
    };
    let (mut observed, mut expected) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            observed += w(i, j) * c[i][j];
            expected += w(i, j) * rows[i] * cols[j] / total;
        }
    }
    if expected == 0.0 {
        return nc("agreement by chance is complete (one label used by both raters)");
    }
    Ok(1.0 - observed / expected)
}

/// Fleiss' κ for items each labelled by the same number of raters: `counts[item][category]`
/// is how many raters put the item in the category.
pub fn fleiss_kappa(counts: &[Vec<u32>]) -> Result<f64, NotComputable> {
    if counts.is_empty() {
        return nc("no items");
    }
    let n: u32 = counts[0].iter().sum();
    if counts.iter().any(|r| r.iter().sum::<u32>() != n) {
        return nc("every item needs the same number of ratings");
    }
    if n < 2 {
        return nc("every item needs at least two ratings");
    }
    let items = counts.len() as f64;
    let n = f64::from(n);
    let k = counts[0].len();
    let p_j: Vec<f64> = (0..k)
        .map(|j| counts.iter().map(|r| f64::from(r[j])).sum::<f64>() / (items * n))
        .collect();
    let p_bar = counts
        .iter()
        .map(|r| {
            (r.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() - n) / (n * (n - 1.0))
        })
        .sum::<f64>()
        / items;
    let p_e: f64 = p_j.iter().map(|p| p * p).sum();
    if (1.0 - p_e).abs() < 1e-15 {
        return nc("every rating is the same category");
    }
    Ok((p_bar - p_e) / (1.0 - p_e))
}

/// Krippendorff's α's levels of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Nominal,
    Ordinal,
    Interval,
}

/// Krippendorff's α: `data[rater][item]`, `None` where the rater gave no label. Items with
/// fewer than two labels are left out. Interval needs numbers.
pub fn krippendorff_alpha(data: &[Vec<Option<Label>>], level: Level) -> Result<f64, NotComputable> {
    let items = data.iter().map(Vec::len).max().unwrap_or(0);
    let units: Vec<Vec<&Label>> = (0..items)
        .map(|u| {
            data.iter()
                .filter_map(|r| r.get(u)?.as_ref())
                .collect::<Vec<_>>()
        })
        .filter(|v: &Vec<&Label>| v.len() >= 2)
        .collect();
    if units.is_empty() {
        return nc("no item has two or more labels");
    }
    let dom = domain(units.iter().flatten().copied());
    let k = dom.len();
    if level == Level::Interval && dom.iter().any(|l| matches!(l, Label::Category(_))) {
        return nc("the interval level needs numeric labels");
    }
    // Coincidences within units.
    let mut o = vec![vec![0.0f64; k]; k];
    for unit in &units {
        let m = unit.len() as f64;
        let idx: Vec<usize> = unit.iter().map(|l| index_of(&dom, l)).collect();
        for (p, &i) in idx.iter().enumerate() {
            for (q, &j) in idx.iter().enumerate() {
                if p != q {
                    o[i][j] += 1.0 / (m - 1.0);
                }
            }
        }
    }
    let n_c: Vec<f64> = o.iter().map(|r| r.iter().sum()).collect();
    let n: f64 = n_c.iter().sum();
    let delta = |i: usize, j: usize| -> f64 {
        match level {
            Level::Nominal => f64::from(u8::from(i != j)),
            Level::Interval => {
                let (Label::Number(a), Label::Number(b)) = (&dom[i], &dom[j]) else {
                    return 0.0;
                };
                (a - b) * (a - b)
            }
            Level::Ordinal => {
                let (lo, hi) = (i.min(j), i.max(j));
                let s: f64 = n_c[lo..=hi].iter().sum::<f64>() - (n_c[lo] + n_c[hi]) / 2.0;
                s * s
            }
        }
    };
    let (mut d_o, mut d_e) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            let d = delta(i, j);
            d_o += o[i][j] * d;
            d_e += n_c[i] * n_c[j] * d;
        }
    }
    d_e /= n - 1.0;
    if d_e == 0.0 {
        return nc("only one label value was used");
    }
    Ok(1.0 - d_o / d_e)
}

/// A figure with a seeded bootstrap 95 % interval over items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WithInterval {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    /// Resamples that gave a value (a resample can be degenerate).
    pub resamples: usize,
}

/// `figure` on the items, with the 2.5th and 97.5th percentiles of `rounds` resamples of the
/// items (drawn with replacement by a generator seeded with `seed`).
pub fn bootstrap<T: Clone>(
    items: &[T],
    rounds: usize,
    seed: u64,
    figure: impl Fn(&[T]) -> Result<f64, NotComputable>,
) -> Result<WithInterval, NotComputable> {
    let value = figure(items)?;
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut values = Vec::with_capacity(rounds);
    let mut sample = Vec::with_capacity(items.len());
    for _ in 0..rounds {
        sample.clear();
        for _ in 0..items.len() {
            sample.push(items[(next() % items.len() as u64) as usize].clone());
        }
        if let Ok(v) = figure(&sample) {
            values.push(v);
        }
    }
    if values.is_empty() {
        return nc("no resample gave a value");
    }
    values.sort_by(f64::total_cmp);
    let at =
        |p: f64| values[((p * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    Ok(WithInterval {
        value,
        low: at(0.025),
        high: at(0.975),
        resamples: values.len(),
    })
}

/// Per category, how many raters chose it for each item: the table [`fleiss_kappa`] takes,
/// from `labels[item] = [each rater's label]`.
pub fn category_counts(labels: &[Vec<Label>]) -> Vec<Vec<u32>> {
    let dom = domain(labels.iter().flatten());
    labels
        .iter()
        .map(|item| {
            let mut row = vec![0u32; dom.len()];
            for l in item {
                row[index_of(&dom, l)] += 1;
            }
            row
        })
        .collect()
}

/// Labels counted per value, for reports.
pub fn distribution(labels: &[Label]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in labels {
        let key = match l {
            Label::Number(n) => format!("{n}"),
            Label::Category(c) => c.clone(),
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(s: &str) -> Option<Label> {
        Some(Label::Category(s.into()))
    }

    #[test]
    fn degenerate_inputs_are_not_computable() {
        let same = vec![cat("a"), cat("a")];
        assert!(cohen_kappa(&same, &same, Weights::None).is_err());
        assert!(cohen_kappa(&[], &[], Weights::None).is_err());
        assert!(cohen_kappa(&[cat("a")], &[], Weights::None).is_err());
        assert!(fleiss_kappa(&[vec![2, 0], vec![2, 0]]).is_err());
        assert!(
            fleiss_kappa(&[vec![1, 0], vec![0, 1]]).is_err(),
            "one rating per item"
        );
        assert!(fleiss_kappa(&[vec![2, 0], vec![1, 0]]).is_err());
        assert!(krippendorff_alpha(
            &[vec![cat("a"), None], vec![None, cat("b")]],
            Level::Nominal
        )
        .is_err());
        assert!(krippendorff_alpha(
            &[vec![cat("a"), cat("a")], vec![cat("a"), cat("a")]],
            Level::Nominal
        )
        .is_err());
        assert!(krippendorff_alpha(&[vec![cat("a")], vec![cat("b")]], Level::Interval).is_err());
        assert!(percent_agreement(&[None], &[cat("a")]).is_err());
    }

    #[test]
    fn the_bootstrap_is_seeded_and_brackets_the_value() {
        let a: Vec<Option<Label>> = (0..60)
            .map(|i| cat(if i % 3 == 0 { "x" } else { "y" }))
            .collect();
        let b: Vec<Option<Label>> = (0..60)
            .map(|i| cat(if i % 4 == 0 { "x" } else { "y" }))
            .collect();
        let pairs: Vec<(Option<Label>, Option<Label>)> = a.into_iter().zip(b).collect();
        let k = |p: &[(Option<Label>, Option<Label>)]| {
            let (x, y): (Vec<_>, Vec<_>) = p.iter().cloned().unzip();
            cohen_kappa(&x, &y, Weights::None)
        };
        let one = bootstrap(&pairs, 500, 7, k).unwrap();
        let two = bootstrap(&pairs, 500, 7, k).unwrap();
        assert_eq!(one, two);
        assert!(one.low <= one.value && one.value <= one.high, "{one:?}");
        assert!(one.high - one.low > 0.0);
    }
}

//! Trust or escalate: the confidence threshold above which a judge's answers are trusted,
//! chosen on labelled calibration items so that agreement with people on the trusted
//! answers is at least `target` with probability at least `confidence` (over the draw of
//! the calibration items). Fixed-sequence testing (Jung, Brahman & Choi, "Trust or
//! Escalate", ICLR 2025; Bauer 1991): candidate thresholds are tested from the strictest
//! down; at each, the null hypothesis "agreement above it is below target" is rejected when
//! the exact binomial p-value of the errors seen is at most 1 − `confidence`; the threshold
//! kept is the last one rejected, and testing stops at the first that is not. Because the
//! order is fixed before the answers are checked, no correction for multiple tests is
//! needed. Thresholds with fewer items above them than could ever reject are not in the
//! sequence (that depends on the confidences only, not on agreement).

use serde::{Deserialize, Serialize};

/// One calibration item: the judge's confidence and whether its answer agreed with people.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub confidence: f64,
    pub agrees: bool,
}

/// The chosen threshold with what it gives on the calibration items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Answers with confidence at or above this are trusted.
    pub threshold: f64,
    pub target: f64,
    pub confidence: f64,
    pub items: usize,
    /// Calibration items at or above the threshold.
    pub trusted: usize,
    /// Share of calibration items trusted.
    pub coverage: f64,
    /// Agreement on the trusted calibration items.
    pub agreement: f64,
    pub p_value: f64,
    /// Thresholds tested (in order), the one that stopped the sequence included.
    pub tested: usize,
}

/// Why no threshold is given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrateError {
    #[error("target agreement and confidence must be in (0, 1), found {target} and {confidence}")]
    Settings { target: f64, confidence: f64 },
    #[error("too few calibration items: {have}; even with no disagreement at least {need} are needed for agreement {target} with probability {confidence}; label {more} more")]
    TooFew {
        have: usize,
        need: usize,
        more: usize,
        target: f64,
        confidence: f64,
    },
    #[error("no threshold reaches agreement {target} with probability {confidence}: at the strictest threshold ({threshold}) {trusted} items agree {agreement:.3} (p = {p_value:.3}); more labels or a better judge are needed")]
    NotReached {
        target: f64,
        confidence: f64,
        threshold: f64,
        trusted: usize,
        agreement: f64,
        p_value: f64,
    },
}

/// The fewest items that could show `target` with probability `confidence`: with no error at
/// all, `target^n ≤ 1 − confidence`.
pub fn min_items(target: f64, confidence: f64) -> usize {
    ((1.0 - confidence).ln() / target.ln()).ceil().max(1.0) as usize
}

fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// P(X ≤ k) for X ~ Binomial(n, p), computed in log space.
pub fn binomial_cdf(k: usize, n: usize, p: f64) -> f64 {
    if k >= n {
        return 1.0;
    }
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut term = n as f64 * lq;
    let mut total = term;
    for i in 0..k {
        term += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + lp - lq;
        total = log_add(total, term);
    }
    total.exp().min(1.0)
}

/// The threshold, or why there is none.
pub fn calibrate(
    items: &[Scored],
    target: f64,
    confidence: f64,
) -> Result<Threshold, CalibrateError> {
    if !(target > 0.0 && target < 1.0 && confidence > 0.0 && confidence < 1.0) {
        return Err(CalibrateError::Settings { target, confidence });
    }
    let need = min_items(target, confidence);
    if items.len() < need {
        return Err(CalibrateError::TooFew {
            have: items.len(),
            need,
            more: need - items.len(),
            target,
            confidence,
        });
    }
    let delta = 1.0 - confidence;
    let mut sorted: Vec<Scored> = items
        .iter()
        .copied()
        .filter(|s| s.confidence.is_finite())
        .collect();
    sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    // Candidate thresholds: each distinct confidence, strictest first, once enough items are
    // above it.
    let mut best: Option<Threshold> = None;
    let mut first_failure: Option<(f64, usize, f64, f64)> = None;
    let (mut above, mut errors, mut tested) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].confidence;
        while i < sorted.len() && sorted[i].confidence == t {
            above += 1;
            errors += usize::from(!sorted[i].agrees);
            i += 1;
        }
        if above < need {
            continue;
        }
        tested += 1;
        let p = binomial_cdf(errors, above, 1.0 - target);
        let agreement = (above - errors) as f64 / above as f64;
        if p <= delta {
            best = Some(Threshold {
                threshold: t,
                target,
                confidence,
                items: sorted.len(),
                trusted: above,
                coverage: above as f64 / sorted.len() as f64,
                agreement,
                p_value: p,
                tested,
            });
        } else {
            first_failure = Some((t, above, agreement, p));
            break;
        }
    }
    match (best, first_failure) {
        (Some(mut b), _) => {
            b.tested = tested;
            Ok(b)
        }
        (None, Some((threshold, trusted, agreement, p_value))) => Err(CalibrateError::NotReached {
            target,
            confidence,
            threshold,
            trusted,
            agreement,
            p_value,
        }),
        (None, None) => Err(CalibrateError::TooFew {
            have: sorted.len(),
            need,
            more: need.saturating_sub(sorted.len()),
            target,
            confidence,
        }),
    }
}

/// Confidence of a sampled answer: the share of samples that gave the most common answer,
/// and that answer (ties go to the earliest sample's answer).
pub fn majority<T: PartialEq + Clone>(samples: &[T]) -> Option<(T, f64)> {
    let mut best: Option<(&T, usize)> = None;
    for s in samples {
        let n = samples.iter().filter(|x| *x == s).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((s, n));
        }
    }
    best.map(|(v, n)| (v.clone(), n as f64 / samples.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail_matches_hand_values() {
        // P(X ≤ 1), n = 3, p = 0.5 = 4/8.
        assert!((binomial_cdf(1, 3, 0.5) - 0.5).abs() < 1e-12);
        // P(X = 0), n = 22, p = 0.1 = 0.9^22.
        assert!((binomial_cdf(0, 22, 0.1) - 0.9f64.powi(22)).abs() < 1e-12);
        // Large n does not underflow to nonsense.
        let v = binomial_cdf(700, 7000, 0.1);
        assert!(v > 0.4 && v < 0.6, "{v}");
    }

    #[test]
    fn too_few_items_and_unreachable_targets_are_refused() {
        assert_eq!(min_items(0.9, 0.9), 22);
        let few: Vec<Scored> = (0..21)
            .map(|_| Scored {
                confidence: 1.0,
                agrees: true,
            })
            .collect();
        let e = calibrate(&few, 0.9, 0.9).unwrap_err();
        assert!(
            e.to_string().contains("at least 22 are needed")
                && e.to_string().ends_with("label 1 more"),
            "{e}"
        );
        let bad: Vec<Scored> = (0..200)
            .map(|i| Scored {
                confidence: f64::from(i % 10) / 10.0,
                agrees: i % 2 == 0,
            })
            .collect();
        assert!(matches!(
            calibrate(&bad, 0.9, 0.9),
            Err(CalibrateError::NotReached { .. })
        ));
        assert!(matches!(
            calibrate(&bad, 1.0, 0.9),
            Err(CalibrateError::Settings { .. })
        ));
    }

    #[test]
    fn the_threshold_stops_where_agreement_falls() {
        // 100 items at 1.0 all agree, 100 at 0.5 half agree.
        let mut items = Vec::new();
        for i in 0..100 {
            items.push(Scored {
                confidence: 1.0,
                agrees: true,
            });
            items.push(Scored {
                confidence: 0.5,
                agrees: i % 2 == 0,
            });
        }
        let t = calibrate(&items, 0.9, 0.9).unwrap();
        assert_eq!((t.threshold, t.trusted, t.tested), (1.0, 100, 2));
        assert!((t.coverage - 0.5).abs() < 1e-12);
    }

    #[test]
    fn majority_gives_answer_and_share() {
        assert_eq!(majority(&["a", "b", "a", "a"]), Some(("a", 0.75)));
        assert_eq!(majority::<&str>(&[]), None);
    }
}

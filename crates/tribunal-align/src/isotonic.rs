//! A monotone map from a judge's numeric answers to the experts' scale, fitted by isotonic
//! regression (pool adjacent violators) on pairs of (judge's answer, expert's label): the
//! least-squares non-decreasing step function. A judge that is systematically harsh or
//! lenient, or uses only part of the scale, keeps its order and gets the experts' numbers.

use serde::{Deserialize, Serialize};

/// One step: answers up to `up_to` (and above the previous step's) map to `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub up_to: f64,
    pub value: f64,
}

/// The fitted map; answers above the last step map to its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ValueMap {
    pub steps: Vec<Step>,
}

impl ValueMap {
    /// Fits the map to `(answer, label)` pairs (non-finite pairs are left out). `None` with
    /// fewer than two distinct answers: there is no order to keep.
    pub fn fit(pairs: &[(f64, f64)]) -> Option<ValueMap> {
        let mut pairs: Vec<(f64, f64)> = pairs
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Equal answers first become one point with the mean label and their count as weight.
        let mut points: Vec<(f64, f64, f64)> = Vec::new(); // (x, mean y, weight)
        for (x, y) in pairs {
            match points.last_mut() {
                Some((px, py, w)) if *px == x => {
                    *py = (*py * *w + y) / (*w + 1.0);
                    *w += 1.0;
                }
                _ => points.push((x, y, 1.0)),
            }
        }
        if points.len() < 2 {
            return None;
        }
        // Pool adjacent violators: blocks of (highest x, mean y, weight).
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for (x, y, w) in points {
            blocks.push((x, y, w));
            while blocks.len() > 1 {
                let n = blocks.len();
                let (a, b) = (blocks[n - 2], blocks[n - 1]);
                if a.1 <= b.1 {
                    break;
                }
                let weight = a.2 + b.2;
                blocks[n - 2] = (b.0, (a.1 * a.2 + b.1 * b.2) / weight, weight);
                blocks.pop();
            }
        }
        Some(ValueMap {
            steps: blocks
                .into_iter()
                .map(|(up_to, value, _)| Step { up_to, value })
                .collect(),
        })
    }

    /// The experts' value for an answer `x`.
    pub fn apply(&self, x: f64) -> f64 {
        self.steps
            .iter()
            .find(|s| x <= s.up_to)
            .or(self.steps.last())
            .map_or(x, |s| s.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_is_monotone_and_pools_violators() {
        // A judge one point too lenient that also confuses 3 and 4 once.
        let pairs = [
            (2.0, 1.0),
            (2.0, 1.0),
            (3.0, 2.0),
            (4.0, 3.0),
            (4.0, 3.0),
            (3.0, 4.0),
            (5.0, 4.0),
            (5.0, 5.0),
        ];
        let m = ValueMap::fit(&pairs).unwrap();
        let values: Vec<f64> = m.steps.iter().map(|s| s.value).collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{m:?}");
        assert_eq!(m.apply(2.0), 1.0);
        assert_eq!(m.apply(3.0), m.apply(4.0), "3 and 4 pooled: {m:?}");
        assert!((m.apply(3.5) - 3.0).abs() < 1e-9, "{m:?}");
        assert_eq!(m.apply(5.0), 4.5);
        assert_eq!(m.apply(9.0), 4.5);
        assert_eq!(m.apply(0.0), 1.0);
        assert_eq!(ValueMap::fit(&[(3.0, 1.0), (3.0, 5.0)]), None);
        assert_eq!(ValueMap::fit(&[(f64::NAN, 1.0), (2.0, 5.0)]), None);
    }
}

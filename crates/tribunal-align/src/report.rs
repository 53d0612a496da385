//! Honest figures for a judge against expert labels: agreement, Cohen's κ, the confusion
//! matrix, and for two versions on the same items a paired bootstrap 95 % interval of the
//! difference in agreement. A judge that gave no answer counts as disagreeing.

use crate::data::class_of;
use crate::model::Answer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use tribunal_labels::agreement::{bootstrap, cohen_kappa, Label, Weights};

/// A figure with a bootstrap 95 % interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub resamples: usize,
}

/// One judged example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub expected: Value,
    pub answer: Answer,
}

impl Outcome {
    pub fn agrees(&self) -> bool {
        self.answer.value.as_ref() == Some(&self.expected)
    }
}

/// Rows: the experts' label; columns: the judge's answer (last column: no answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub classes: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

/// Figures of one judge version on a set of labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub items: usize,
    pub agreement: f64,
    /// `None` with `kappa_note` when κ is not computable.
    pub kappa: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kappa_note: Option<String>,
    pub no_answer: usize,
    pub confusion: Confusion,
}

fn label(v: &Value) -> Label {
    match v.as_f64() {
        Some(n) if v.is_number() => Label::Number(n),
        _ => Label::Category(class_of(v)),
    }
}

/// Scores of a set of outcomes (at least one).
pub fn scores(outcomes: &[Outcome]) -> Scores {
    let items = outcomes.len();
    let agree = outcomes.iter().filter(|o| o.agrees()).count();
    let mut classes: BTreeSet<String> = BTreeSet::new();
    for o in outcomes {
        classes.insert(class_of(&o.expected));
        if let Some(v) = &o.answer.value {
            classes.insert(class_of(v));
        }
    }
    let classes: Vec<String> = classes.into_iter().collect();
    let mut counts = vec![vec![0usize; classes.len() + 1]; classes.len()];
    for o in outcomes {
        let row = classes
            .iter()
            .position(|c| *c == class_of(&o.expected))
            .unwrap_or(0);
        let col = match &o.answer.value {
            Some(v) => classes
                .iter()
                .position(|c| *c == class_of(v))
                .unwrap_or(classes.len()),
            None => classes.len(),
        };
        counts[row][col] += 1;
    }
    let expected: Vec<Option<Label>> = outcomes.iter().map(|o| Some(label(&o.expected))).collect();
    let answered: Vec<Option<Label>> = outcomes
        .iter()
        .map(|o| o.answer.value.as_ref().map(label))
        .collect();
    let (kappa, kappa_note) = match cohen_kappa(&expected, &answered, Weights::None) {
        Ok(k) => (Some(k), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Scores {
        items,
        agreement: if items == 0 {
            0.0
        } else {
            agree as f64 / items as f64
        },
        kappa,
        kappa_note,
        no_answer: outcomes.iter().filter(|o| o.answer.value.is_none()).count(),
        confusion: Confusion { classes, counts },
    }
}

/// Agreement after minus before on the same items, with a paired bootstrap 95 % interval
/// (2,000 resamples, seeded).
pub fn difference(before: &[Outcome], after: &[Outcome], seed: u64) -> Result<Interval, String> {
    if before.len() != after.len() || before.iter().zip(after).any(|(b, a)| b.id != a.id) {
        return Err("before and after were not scored on the same items".into());
    }
    let pairs: Vec<(bool, bool)> = before
        .iter()
        .zip(after)
        .map(|(b, a)| (b.agrees(), a.agrees()))
        .collect();
    bootstrap(&pairs, 2000, seed, |s| {
        if s.is_empty() {
            return Err(tribunal_labels::agreement::NotComputable("no items".into()));
        }
        let d: f64 = s
            .iter()
            .map(|(b, a)| f64::from(u8::from(*a)) - f64::from(u8::from(*b)))
            .sum();
        Ok(d / s.len() as f64)
    })
    .map(|w| Interval {
        value: w.value,
        low: w.low,
        high: w.high,
        resamples: w.resamples,
    })
    .map_err(|e| e.to_string())
}

/// The scores as text lines.
pub fn text(s: &Scores) -> String {
    let kappa = match (s.kappa, &s.kappa_note) {
        (Some(k), _) => format!("{k:.3}"),
        (None, Some(n)) => format!("- ({n})"),
        (None, None) => "-".into(),
    };
    let mut out = format!(
        "  items {}, agreement {:.3}, Cohen's kappa {kappa}, no answer {}\n  confusion (rows: experts, columns: judge):\n",
        s.items, s.agreement, s.no_answer
    );
    let width = s
        .confusion
        .classes
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(4)
        .max(9);
    out.push_str(&format!("    {:>width$}", ""));
    for c in &s.confusion.classes {
        out.push_str(&format!(" {c:>width$}"));
    }
    out.push_str(&format!(" {:>width$}\n", "no answer"));
    for (c, row) in s.confusion.classes.iter().zip(&s.confusion.counts) {
        out.push_str(&format!("    {c:>width$}"));
        for n in row {
            out.push_str(&format!(" {n:>width$}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn o(id: usize, expected: bool, answer: Option<bool>) -> Outcome {
        Outcome {
            id: id.to_string(),
            expected: json!(expected),
            answer: Answer {
                value: answer.map(Value::from),
                rationale: String::new(),
                error: None,
                usage: Default::default(),
            },
        }
    }

    #[test]
    fn scores_and_difference() {
        // 4 agree (2 true, 2 false), 1 wrong, 1 no answer.
        let before = vec![
            o(0, true, Some(true)),
            o(1, true, Some(true)),
            o(2, false, Some(false)),
            o(3, false, Some(false)),
            o(4, false, Some(true)),
            o(5, true, None),
        ];
        let s = scores(&before);
        assert_eq!(s.items, 6);
        assert!((s.agreement - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.no_answer, 1);
        assert_eq!(s.confusion.classes, ["false", "true"]);
        assert_eq!(s.confusion.counts, [[2, 1, 0], [0, 2, 1]]);
        // κ on the five answered: po = 0.8, pe = (3*2 + 2*3)/25 = 0.48.
        assert!((s.kappa.unwrap() - (0.8 - 0.48) / 0.52).abs() < 1e-12);
        let after: Vec<Outcome> = before
            .iter()
            .map(|b| {
                o(
                    b.id.parse().unwrap(),
                    b.expected == json!(true),
                    Some(b.expected == json!(true)),
                )
            })
            .collect();
        let d = difference(&before, &after, 1).unwrap();
        assert!((d.value - 2.0 / 6.0).abs() < 1e-12);
        assert!(d.low <= d.value && d.value <= d.high && d.low >= 0.0);
        assert!(difference(&before, &after[1..], 1).is_err());
        let t = text(&s);
        assert!(t.contains("agreement 0.667"), "{t}");
    }
}

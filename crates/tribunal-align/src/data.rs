//! Alignment data: expert labels turned into examples a judge can be scored on. A label
//! that does not fit the judge's output type (or names another judge) is counted and
//! skipped, never guessed. The split into train and held-out is stratified by label and
//! seeded. With too few labels, only one class, or labels of another type, building the data
//! refuses with what is missing.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// What a judge answers, as labels are compared with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LabelType {
    /// Pass or fail (`true`/`false`, `yes`/`no`, `pass`/`fail`), kept as a boolean.
    PassFail,
    /// One of these options.
    Categorical { options: Vec<String> },
    /// A number in a range; compared after rounding to a whole number.
    Numeric { min: f64, max: f64 },
}

impl LabelType {
    /// The type's name as label schemas call it.
    pub fn name(&self) -> &'static str {
        match self {
            LabelType::PassFail => "pass_fail",
            LabelType::Categorical { .. } => "categorical",
            LabelType::Numeric { .. } => "numeric",
        }
    }

    /// The value in the form answers and labels are compared in, or why it does not fit.
    pub fn normalize(&self, v: &Value) -> Result<Value, String> {
        match self {
            LabelType::PassFail => match v {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                Value::String(s) => match s.to_ascii_lowercase().as_str() {
                    "yes" | "pass" | "true" => Ok(Value::Bool(true)),
                    "no" | "fail" | "false" => Ok(Value::Bool(false)),
                    _ => Err(format!(
                        "expected pass/fail (true/false, yes/no), found {s:?}"
                    )),
                },
                other => Err(format!(
                    "expected pass/fail (true/false, yes/no), found {other}"
                )),
            },
            LabelType::Categorical { options } => match v.as_str() {
                Some(s) if options.iter().any(|o| o == s) => Ok(v.clone()),
                _ => Err(format!("expected one of {}, found {v}", options.join(", "))),
            },
            LabelType::Numeric { min, max } => match v.as_f64() {
                Some(x) if x >= *min && x <= *max => Ok(Value::from(x.round())),
                _ => Err(format!("expected a number in {min}..{max}, found {v}")),
            },
        }
    }
}

/// One label as read from a file or the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRecord {
    /// The trace (or item) labelled.
    pub id: String,
    /// What the judge reads: the trace's inputs.
    #[serde(default)]
    pub inputs: Value,
    /// The agent's reply.
    #[serde(default)]
    pub outputs: Value,
    /// The expert's answer.
    #[serde(default)]
    pub label: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// The label schema's type (`pass_fail`, `categorical`, `numeric`, `text`, `pairwise`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub label_type: Option<String>,
    /// The judge the labels were made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
}

/// A usable labelled example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub inputs: Value,
    pub outputs: Value,
    /// Normalized by the judge's [`LabelType`].
    pub label: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

/// What is needed before anything is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Minimums {
    /// Usable labels in all.
    pub total: usize,
    /// Labels of each of at least two classes (0: one class is enough, as for calibration).
    pub per_class: usize,
}

impl Default for Minimums {
    fn default() -> Self {
        Minimums {
            total: 20,
            per_class: 5,
        }
    }
}

/// Why no alignment (or calibration) is attempted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("too few usable labels: {have} (of {read} read), at least {need} are needed; label {more} more")]
    TooFew {
        have: usize,
        read: usize,
        need: usize,
        more: usize,
    },
    #[error("every usable label is {class}: labels of at least two classes are needed; label at least {more} items that are not {class}")]
    OneClass { class: String, more: usize },
    #[error(
        "too few labels of class {class}: {have}, at least {need} are needed; label {more} more"
    )]
    RareClass {
        class: String,
        have: usize,
        need: usize,
        more: usize,
    },
    #[error("the labels are {found} labels ({count} of them) but judge {judge} answers {expected}; use labels of a schema of type {expected} tied to {judge}")]
    WrongType {
        judge: String,
        found: String,
        expected: String,
        count: usize,
    },
    #[error("the labels were made for judge {found} ({count} of them), not {judge}")]
    OtherJudge {
        judge: String,
        found: String,
        count: usize,
    },
}

/// Labels read, kept and skipped (with reasons counted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    pub examples: Vec<Example>,
    pub read: usize,
    /// Reason → how many labels it skipped.
    pub skipped: BTreeMap<String, usize>,
}

/// The class of a normalized label, for stratifying and reports.
pub fn class_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Dataset {
    /// Usable examples of `records` for judge `judge` answering `ty`; refuses as
    /// [`Refusal`] says.
    pub fn build(
        records: Vec<LabelRecord>,
        judge: &str,
        ty: &LabelType,
        min: Minimums,
    ) -> Result<Dataset, Refusal> {
        let read = records.len();
        let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
        let mut wrong_type: BTreeMap<String, usize> = BTreeMap::new();
        let mut other_judge: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_id: BTreeMap<String, Example> = BTreeMap::new();
        for r in records {
            if let Some(j) = r.judge.as_deref().filter(|j| *j != judge) {
                *other_judge.entry(j.to_owned()).or_default() += 1;
                *skipped.entry(format!("labels of judge {j}")).or_default() += 1;
                continue;
            }
            if let Some(t) = r.label_type.as_deref().filter(|t| *t != ty.name()) {
                *wrong_type.entry(t.to_owned()).or_default() += 1;
                *skipped
                    .entry(format!("{t} labels, the judge answers {}", ty.name()))
                    .or_default() += 1;
                continue;
            }
            if r.label.is_null() {
                *skipped.entry("no label".into()).or_default() += 1;
                continue;
            }
            let label = match ty.normalize(&r.label) {
                Ok(l) => l,
                Err(_) => {
                    *skipped
                        .entry(format!("label does not fit {}", ty.name()))
                        .or_default() += 1;
                    continue;
                }
            };
            if r.inputs.is_null() && r.outputs.is_null() {
                *skipped
                    .entry("nothing to judge (no inputs or outputs)".into())
                    .or_default() += 1;
                continue;
            }
            if by_id.contains_key(&r.id) {
                // The later label of an item replaces the earlier (a final label after review).
                *skipped
                    .entry("replaced by a later label of the same item".into())
                    .or_default() += 1;
            }
            by_id.insert(
                r.id.clone(),
                Example {
                    id: r.id,
                    inputs: r.inputs,
                    outputs: r.outputs,
                    label,
                    rationale: r.rationale.filter(|s| !s.trim().is_empty()),
                },
            );
        }
        let examples: Vec<Example> = by_id.into_values().collect();
        if let Some((found, count)) = other_judge.iter().max_by_key(|(_, n)| **n) {
            if *count > examples.len() {
                return Err(Refusal::OtherJudge {
                    judge: judge.to_owned(),
                    found: found.clone(),
                    count: *count,
                });
            }
        }
        if let Some((found, count)) = wrong_type.iter().max_by_key(|(_, n)| **n) {
            if *count > examples.len() {
                return Err(Refusal::WrongType {
                    judge: judge.to_owned(),
                    found: found.clone(),
                    expected: ty.name().to_owned(),
                    count: *count,
                });
            }
        }
        let data = Dataset {
            examples,
            read,
            skipped,
        };
        data.check(min)?;
        Ok(data)
    }

    /// Labels per class.
    pub fn classes(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in &self.examples {
            *out.entry(class_of(&e.label)).or_default() += 1;
        }
        out
    }

    fn check(&self, min: Minimums) -> Result<(), Refusal> {
        let have = self.examples.len();
        let classes = self.classes();
        if classes.len() == 1 && min.per_class > 0 {
            let (class, _) = classes
                .iter()
                .next()
                .map(|(c, n)| (c.clone(), *n))
                .unwrap_or_default();
            return Err(Refusal::OneClass {
                class,
                more: min.per_class,
            });
        }
        if have < min.total {
            return Err(Refusal::TooFew {
                have,
                read: self.read,
                need: min.total,
                more: min.total - have,
            });
        }
        // The two largest classes must each have enough: a judge is not scored on a class
        // it has almost never seen.
        let mut counts: Vec<(&String, &usize)> = classes.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1));
        if let Some((class, n)) = counts.get(1) {
            if **n < min.per_class {
                return Err(Refusal::RareClass {
                    class: (*class).clone(),
                    have: **n,
                    need: min.per_class,
                    more: min.per_class - **n,
                });
            }
        }
        Ok(())
    }

    /// A stratified split: in each class, a seeded shuffle puts `holdout` of the labels
    /// (rounded, at least one of a class of two or more) into the held-out part.
    pub fn split(&self, holdout: f64, seed: u64) -> Split {
        let mut rng = Rng::new(seed);
        let mut by_class: BTreeMap<String, Vec<&Example>> = BTreeMap::new();
        for e in &self.examples {
            by_class.entry(class_of(&e.label)).or_default().push(e);
        }
        let (mut train, mut held_out) = (Vec::new(), Vec::new());
        for (_, mut items) in by_class {
            rng.shuffle(&mut items);
            let n = items.len();
            let mut h = (holdout.clamp(0.0, 1.0) * n as f64).round() as usize;
            if n >= 2 {
                h = h.clamp(1, n - 1);
            } else {
                h = 0;
            }
            for (i, e) in items.into_iter().enumerate() {
                if i < h {
                    held_out.push(e.clone());
                } else {
                    train.push(e.clone());
                }
            }
        }
        train.sort_by(|a, b| a.id.cmp(&b.id));
        held_out.sort_by(|a, b| a.id.cmp(&b.id));
        Split { train, held_out }
    }
}

/// Train and held-out examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    pub train: Vec<Example>,
    pub held_out: Vec<Example>,
}

/// Reads JSONL label records; an unreadable line is an error naming its line.
pub fn parse_jsonl(text: &str) -> Result<Vec<LabelRecord>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: LabelRecord = serde_json::from_str(line).map_err(|e| (i + 1, e.to_string()))?;
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(id: usize, label: Value) -> LabelRecord {
        LabelRecord {
            id: format!("t{id}"),
            inputs: json!(format!("question {id}")),
            outputs: json!("reply"),
            label,
            rationale: None,
            label_type: None,
            judge: None,
        }
    }

    #[test]
    fn split_is_stratified_seeded_and_disjoint() {
        let records: Vec<_> = (0..40).map(|i| rec(i, json!(i % 4 == 0))).collect();
        let d = Dataset::build(records, "j", &LabelType::PassFail, Minimums::default()).unwrap();
        let a = d.split(0.3, 7);
        assert_eq!(a, d.split(0.3, 7));
        assert_ne!(a, d.split(0.3, 8));
        assert_eq!(a.train.len() + a.held_out.len(), 40);
        // 10 true, 30 false: 3 and 9 held out.
        let held_true = a.held_out.iter().filter(|e| e.label == json!(true)).count();
        assert_eq!((held_true, a.held_out.len()), (3, 12));
        assert!(a
            .train
            .iter()
            .all(|t| a.held_out.iter().all(|h| h.id != t.id)));
    }

    #[test]
    fn unusable_labels_are_counted_and_refusals_say_what_is_missing() {
        let mut records: Vec<_> = (0..30)
            .map(|i| rec(i, json!(if i % 2 == 0 { "yes" } else { "fail" })))
            .collect();
        records.push(rec(100, json!("maybe")));
        records.push(rec(101, Value::Null));
        let d = Dataset::build(records, "j", &LabelType::PassFail, Minimums::default()).unwrap();
        assert_eq!(d.examples.len(), 30);
        assert_eq!(d.read, 32);
        assert_eq!(d.skipped["no label"], 1);
        assert_eq!(d.skipped["label does not fit pass_fail"], 1);

        let few: Vec<_> = (0..12).map(|i| rec(i, json!(i % 2 == 0))).collect();
        let e = Dataset::build(few, "j", &LabelType::PassFail, Minimums::default()).unwrap_err();
        assert_eq!(
            e,
            Refusal::TooFew {
                have: 12,
                read: 12,
                need: 20,
                more: 8
            }
        );
        assert!(e.to_string().contains("label 8 more"), "{e}");

        let one: Vec<_> = (0..50).map(|i| rec(i, json!(true))).collect();
        let e = Dataset::build(one, "j", &LabelType::PassFail, Minimums::default()).unwrap_err();
        assert_eq!(
            e,
            Refusal::OneClass {
                class: "true".into(),
                more: 5
            }
        );

        let rare: Vec<_> = (0..50).map(|i| rec(i, json!(i < 2))).collect();
        let e = Dataset::build(rare, "j", &LabelType::PassFail, Minimums::default()).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::RareClass {
                    have: 2,
                    more: 3,
                    ..
                }
            ),
            "{e:?}"
        );

        let numeric: Vec<_> = (0..30)
            .map(|i| LabelRecord {
                label_type: Some("numeric".into()),
                ..rec(i, json!(i % 5))
            })
            .collect();
        let e = Dataset::build(numeric, "refund", &LabelType::PassFail, Minimums::default())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("numeric labels (30 of them) but judge refund answers pass_fail"),
            "{e}"
        );

        let other: Vec<_> = (0..30)
            .map(|i| LabelRecord {
                judge: Some("tone".into()),
                ..rec(i, json!(i % 2 == 0))
            })
            .collect();
        let e =
            Dataset::build(other, "refund", &LabelType::PassFail, Minimums::default()).unwrap_err();
        assert!(matches!(e, Refusal::OtherJudge { count: 30, .. }), "{e:?}");
    }

    #[test]
    fn bad_jsonl_names_the_line() {
        let err = parse_jsonl("{\"id\": \"a\", \"label\": true}\n\n{\"id\": 3}\n").unwrap_err();
        assert_eq!(err.0, 3);
        let err = parse_jsonl("{\"id\": \"a\", \"lable\": true}\n").unwrap_err();
        assert!(err.1.contains("lable"), "{}", err.1);
    }
}

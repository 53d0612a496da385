//! Alignment runs with scripted models: what the optimizers see, what they keep, and what
//! the report says. These check the mechanics only; they measure no model's quality.

use serde_json::json;
use tribunal_align::data::{Dataset, LabelRecord, LabelType, Minimums, Split};
use tribunal_align::memory::Alignment;
use tribunal_align::model::{Answer, Candidate, JudgeModel, ModelError, Reflector, Usage};
use tribunal_align::{align, optimizer, Example};

/// Labels: a refund request passes when it is within 30 days ("days 1".."days 29").
fn records(n: usize) -> Vec<LabelRecord> {
    (0..n)
        .map(|i| {
            let days = (i * 7) % 60;
            LabelRecord {
                id: format!("t{i:03}"),
                inputs: json!(format!("refund request after {days} days case{i}")),
                outputs: json!("Refund approved."),
                label: json!(days < 30),
                rationale: Some(format!("policy window; reason-of-t{i:03}")),
                label_type: Some("pass_fail".into()),
                judge: None,
            }
        })
        .collect()
}

/// A judge that approves everything unless its guidelines or instructions mention the
/// 30-day window; it remembers every candidate it was given.
#[derive(Default)]
struct Scripted {
    seen: Vec<Candidate>,
    calls: u64,
}

impl JudgeModel for Scripted {
    fn judge(&mut self, c: &Candidate, item: &Example) -> Result<Answer, ModelError> {
        self.seen.push(c.clone());
        self.calls += 1;
        let knows = c.alignment.guidelines.iter().any(|g| g.contains("30 days"))
            || c.instructions.contains("30 days");
        let text = item.inputs.as_str().unwrap_or_default();
        let days: usize = text
            .split_whitespace()
            .nth(3)
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        let value = if knows { days < 30 } else { true };
        Ok(Answer {
            value: Some(json!(if value { "yes" } else { "no" })),
            rationale: "scripted".into(),
            error: None,
            usage: Usage {
                calls: 1,
                input_tokens: 100,
                output_tokens: 10,
                cached_calls: 0,
            },
        })
    }
}

struct Replies(Vec<String>, Vec<String>);

impl Reflector for Replies {
    fn reflect(&mut self, prompt: &str) -> Result<(String, Usage), ModelError> {
        self.1.push(prompt.to_owned());
        if self.0.is_empty() {
            return Err(ModelError("no more scripted replies".into()));
        }
        Ok((
            self.0.remove(0),
            Usage {
                calls: 1,
                input_tokens: 500,
                output_tokens: 50,
                cached_calls: 0,
            },
        ))
    }
}

/// 60 labels, 30 % held out (seed 42).
fn split_of_60() -> Split {
    Dataset::build(
        records(60),
        "refund",
        &LabelType::PassFail,
        Minimums::default(),
    )
    .unwrap()
    .split(0.3, 42)
}

fn start() -> Candidate {
    Candidate {
        instructions: "Does the reply follow the refund policy? {{ inputs }} {{ outputs }}".into(),
        alignment: Alignment::default(),
    }
}

#[test]
fn memory_alignment_uses_only_train_labels_and_reports_held_out() {
    let split = split_of_60();
    let mut judge = Scripted::default();
    let mut refl = Replies(
        vec!["Here you go: {\"guidelines\": [\"Refunds requested after 30 days fail.\"]}".into()],
        Vec::new(),
    );
    let opt = optimizer("memory").unwrap();
    let out = align(
        opt.as_ref(),
        &start(),
        &split,
        &mut judge,
        &mut refl,
        &LabelType::PassFail,
        42,
    )
    .unwrap();

    // No held-out label, id or rationale reached the judge's definition or the reflection.
    for c in &judge.seen {
        for m in &c.alignment.examples {
            assert!(
                split.train.iter().any(|t| t.id == m.id),
                "{} is not train",
                m.id
            );
        }
    }
    for h in &split.held_out {
        let reason = h.rationale.clone().unwrap();
        assert!(
            refl.1.iter().all(|p| !p.contains(&reason)),
            "{reason} leaked"
        );
        assert!(serde_json::to_string(&out.candidate)
            .unwrap()
            .find(&reason)
            .is_none());
    }
    assert!(
        refl.1[0].contains("reason-of-t"),
        "train cases are shown to the reflection model"
    );
    assert_eq!(out.candidate.alignment.examples.len(), split.train.len());
    assert_eq!(
        out.candidate.alignment.guidelines,
        ["Refunds requested after 30 days fail."]
    );
    assert!(
        out.after.agreement > out.before.agreement,
        "{:?} {:?}",
        out.before,
        out.after
    );
    assert_eq!(out.after.agreement, 1.0);
    let d = out.difference.unwrap();
    assert!(d.low > 0.0 && d.value > 0.3, "{d:?}");
    assert_eq!(out.usage_optimizing.calls, split.train.len() as u64 + 1);
    assert_eq!(out.usage_scoring.calls, 2 * split.held_out.len() as u64);

    // Aligning again with more labels adds to the memory and reflects only on the new ones.
    let more = Dataset::build(
        records(70),
        "refund",
        &LabelType::PassFail,
        Minimums::default(),
    )
    .unwrap();
    let mut split2 = more.split(0.3, 42);
    split2
        .train
        .retain(|e| !split.held_out.iter().any(|h| h.id == e.id));
    split2.held_out = split.held_out.clone();
    let mut judge2 = Scripted::default();
    let mut refl2 = Replies(vec![], Vec::new());
    let again = align(
        opt.as_ref(),
        &out.candidate,
        &split2,
        &mut judge2,
        &mut refl2,
        &LabelType::PassFail,
        42,
    )
    .unwrap();
    let new_ids: Vec<&str> = split2
        .train
        .iter()
        .filter(|e| !split.train.iter().any(|t| t.id == e.id))
        .map(|e| e.id.as_str())
        .collect();
    assert!(!new_ids.is_empty());
    assert!(
        again.notes[0].contains(&format!("{} added", new_ids.len())),
        "{:?}",
        again.notes
    );
    // The judge already knows the rule: no disagreement, so no reflection was needed.
    assert!(refl2.1.is_empty());
    assert_eq!(again.usage_optimizing.calls, new_ids.len() as u64);
}

#[test]
fn instruction_rewrites_are_kept_only_when_they_beat_the_current_ones() {
    let data = Dataset::build(
        records(40),
        "refund",
        &LabelType::PassFail,
        Minimums::default(),
    )
    .unwrap();
    let split = data.split(0.3, 1);
    let opt = optimizer("instructions").unwrap();

    let mut judge = Scripted::default();
    let mut refl = Replies(
        vec![
            // Drops a template variable: not tried.
            "{\"instructions\": \"Refunds after 30 days fail. {{ outputs }}\"}".into(),
            // No better than the current one.
            "{\"instructions\": \"Be strict. {{ inputs }} {{ outputs }}\"}".into(),
            "{\"instructions\": \"Refunds after 30 days fail. {{ inputs }} {{ outputs }}\"}".into(),
        ],
        Vec::new(),
    );
    let out = align(
        opt.as_ref(),
        &start(),
        &split,
        &mut judge,
        &mut refl,
        &LabelType::PassFail,
        1,
    )
    .unwrap();
    assert!(out
        .candidate
        .instructions
        .starts_with("Refunds after 30 days fail."));
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("changes the template variables")),
        "{:?}",
        out.notes
    );
    assert_eq!(out.after.agreement, 1.0);
    // The judge was scored on train for the current and two tried rewrites, then on held-out.
    assert_eq!(
        judge.calls as usize,
        3 * split.train.len() + 2 * split.held_out.len()
    );

    let mut judge = Scripted::default();
    let mut refl = Replies(
        vec![
            "{\"instructions\": \"Be strict. {{ inputs }} {{ outputs }}\"}".into(),
            "not json".into(),
            "{\"instructions\": \"Be kind. {{ inputs }} {{ outputs }}\"}".into(),
        ],
        Vec::new(),
    );
    let out = align(
        opt.as_ref(),
        &start(),
        &split,
        &mut judge,
        &mut refl,
        &LabelType::PassFail,
        1,
    )
    .unwrap();
    assert_eq!(out.candidate, start());
    assert_eq!(out.before, out.after);
    assert!(
        out.notes.iter().any(|n| n.contains("no rewrite beat")),
        "{:?}",
        out.notes
    );
}

#[test]
fn optimizers_are_listed_by_name() {
    let names: Vec<&str> = tribunal_align::OPTIMIZERS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["memory", "instructions", "isotonic"]);
    for n in names {
        assert_eq!(optimizer(n).unwrap().name(), n);
    }
    assert!(optimizer("simba").is_none());
}

/// A judge on a 1..5 scale that is one point too lenient below 5 (and says 5 for 4 and 5),
/// with the map applied when the candidate carries one.
struct Lenient;

impl JudgeModel for Lenient {
    fn judge(&mut self, c: &Candidate, item: &Example) -> Result<Answer, ModelError> {
        let truth = item.inputs.as_str().unwrap().split(' ').nth(1).unwrap();
        let truth: f64 = truth.parse().unwrap();
        let raw = (truth + 1.0).min(5.0);
        let value = match &c.alignment.value_map {
            Some(m) => m.apply(raw).round(),
            None => raw,
        };
        Ok(Answer {
            value: Some(json!(value)),
            rationale: "scripted".into(),
            error: None,
            usage: Usage {
                calls: 1,
                input_tokens: 10,
                output_tokens: 2,
                cached_calls: 0,
            },
        })
    }
}

#[test]
fn an_isotonic_map_puts_a_lenient_judge_on_the_experts_scale() {
    let recs: Vec<LabelRecord> = (0..60)
        .map(|i| LabelRecord {
            id: format!("n{i:02}"),
            inputs: json!(format!("quality {} case{i}", 1 + i % 5)),
            outputs: json!("reply"),
            label: json!(1 + i % 5),
            rationale: None,
            label_type: None,
            judge: None,
        })
        .collect();
    let ty = LabelType::Numeric { min: 1.0, max: 5.0 };
    let data = Dataset::build(recs, "quality", &ty, Minimums::default()).unwrap();
    let split = data.split(0.3, 7);
    let mut judge = Lenient;
    let mut nobody = Replies(Vec::new(), Vec::new());
    let out = align(
        optimizer("isotonic").unwrap().as_ref(),
        &start(),
        &split,
        &mut judge,
        &mut nobody,
        &ty,
        7,
    )
    .unwrap();
    let map = out.candidate.alignment.value_map.as_ref().unwrap();
    // 2 -> 1, 3 -> 2, 4 -> 3, and 5 stands for 4 and 5 alike (4.5: the best the order allows).
    assert_eq!(
        (map.apply(2.0), map.apply(3.0), map.apply(4.0)),
        (1.0, 2.0, 3.0)
    );
    assert!((map.apply(5.0) - 4.5).abs() < 0.1, "{map:?}");
    assert!(out.before.agreement <= 0.25, "{:?}", out.before);
    assert!(out.after.agreement >= 0.75, "{:?}", out.after);
    assert!(nobody.1.is_empty(), "no reflection model is asked");
    assert!(
        out.notes.iter().any(|n| n.starts_with("isotonic:")),
        "{:?}",
        out.notes
    );
    // Not for judges that do not answer with numbers.
    let pass_fail = Dataset::build(
        records(40),
        "refund",
        &LabelType::PassFail,
        Minimums::default(),
    )
    .unwrap();
    let e = align(
        optimizer("isotonic").unwrap().as_ref(),
        &start(),
        &pass_fail.split(0.3, 1),
        &mut Scripted::default(),
        &mut Replies(Vec::new(), Vec::new()),
        &LabelType::PassFail,
        1,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a number"), "{e}");
}

/// A judge whose model answers nothing usable (a server failing every call).
struct Failing;

impl JudgeModel for Failing {
    fn judge(&mut self, _: &Candidate, _: &Example) -> Result<Answer, ModelError> {
        Ok(Answer {
            value: None,
            rationale: String::new(),
            error: Some("the model server answered 500".into()),
            usage: Usage::default(),
        })
    }
}

/// When neither version gives one usable answer on the held-out labels, the run fails with
/// the model's error instead of reporting figures of a judge that never answered.
#[test]
fn a_judge_that_never_answers_fails_the_run() {
    let split = split_of_60();
    for replies in [1, 3] {
        let guideline = "{\"guidelines\": [\"Refunds requested after 30 days fail.\"]}";
        let mut refl = Replies(vec![guideline.into(); replies], Vec::new());
        let opt = optimizer("memory").unwrap();
        let e = align(
            opt.as_ref(),
            &start(),
            &split,
            &mut Failing,
            &mut refl,
            &LabelType::PassFail,
            42,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("no usable answer") && text.contains("500"),
            "{replies}: {text}"
        );
    }
}

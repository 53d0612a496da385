//! A generated sweep: judge configurations (optional or not, escalate or block), policy
//! texts that read scores in different ways (or not at all), and failure kinds, combined at
//! random. Whenever a judge that is not optional failed, the decision is not `allow`.

use serde_json::Value;
use tribunal_core::{
    Decision, Feedback, FeedbackSource, Pending, Severity, SourceType, Trace, Verdict,
};
use tribunal_policy::{Context, JudgeErrors, PolicyOptions, PolicySet, PolicySource};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const JUDGES: &[&str] = &["grounded", "safety", "tone", "refund_policy"];

/// Ways a policy can read a score; `{j}` is a judge's name.
const READS: &[&str] = &[
    "violation contains \"r\" if input.scores.{j}.value == \"no\"",
    "violation contains \"r\" if input.scores[\"{j}\"].value == \"no\"",
    "violation contains \"r\" if { some name, s in input.scores; name == \"{j}\"; s.value == \"no\" }",
    "violation contains \"r\" if { some s in input.scores; s.value == false }",
    "violation contains \"r\" if { x := object.get(input.scores, \"{j}\", {\"value\": \"yes\"}); x.value == \"no\" }",
    "violation contains \"r\" if { not input.scores.{j}.error; input.scores.{j}.value == \"no\" }",
    "violation contains \"r\" if false",
];

const FAILURES: &[&str] = &[
    "error sending request: connection refused",
    "HTTP 500 after 3 attempts",
    "no answer within the 200 ms budget",
    "the judge's answer was unusable twice: result must be yes or no",
    "circuit open after 5 failures",
];

fn feedback(name: &str, value: Value, error: Option<&str>) -> Feedback {
    Feedback {
        name: name.into(),
        value,
        rationale: None,
        source: FeedbackSource {
            source_type: SourceType::LlmJudge,
            source_id: "openai:/gpt-4o-mini".into(),
            version: None,
            kind: None,
        },
        error: error.map(str::to_owned),
        evidence: Vec::new(),
        findings: Vec::new(),
        usage: None,
    }
}

#[test]
fn no_failed_judge_that_is_not_optional_ever_allows() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let reply = Pending {
        kind: "reply".into(),
        tool_calls: Vec::new(),
        content: "Your refund is on its way.".into(),
    };
    let ctx = Context::default();
    let (mut failed_cases, mut allowed_cases) = (0, 0);
    for case in 0..400 {
        // Policies: zero to three modules, each reading some judge some way.
        let mut sources = Vec::new();
        for m in 0..rng.below(4) {
            let j = JUDGES[rng.below(JUDGES.len())];
            let read = READS[rng.below(READS.len())].replace("{j}", j);
            sources.push(PolicySource {
                path: format!("p{m}.rego"),
                text: format!("package p{m}\nimport rego.v1\n{read}\n"),
            });
        }
        if rng.chance(30) {
            sources.extend(tribunal_policy::pack::sources());
        }
        // Judges: each optional, escalating or blocking on failure.
        let mut judge_errors = JudgeErrors::default();
        if rng.chance(20) {
            judge_errors.default = Some(Severity::Escalate);
        }
        for j in JUDGES {
            match rng.below(4) {
                0 => {
                    judge_errors.by_judge.insert((*j).into(), Severity::Warn);
                }
                1 => {
                    judge_errors
                        .by_judge
                        .insert((*j).into(), Severity::Escalate);
                }
                2 => {
                    judge_errors.by_judge.insert((*j).into(), Severity::Block);
                }
                _ => {}
            }
        }
        // Feedback: each judge answers, or fails.
        let mut fb = Vec::new();
        let mut must_not_allow = false;
        for j in JUDGES {
            if rng.chance(25) {
                continue;
            }
            if rng.chance(40) {
                let failure = FAILURES[rng.below(FAILURES.len())];
                fb.push(feedback(j, Value::Null, Some(failure)));
                must_not_allow |= judge_errors.severity(j) != Severity::Warn;
            } else {
                let v = if rng.chance(50) { "yes" } else { "no" };
                fb.push(feedback(j, Value::String(v.into()), None));
            }
        }
        let options = PolicyOptions {
            judge_errors: judge_errors.clone(),
            ..PolicyOptions::default()
        };
        let set = PolicySet::new(sources.clone(), &[], options).unwrap();
        let violations = set
            .evaluator()
            .evaluate_trace(&Trace::default(), Some(&reply), &fb, &ctx);
        let verdict = Verdict::combine(fb.clone(), violations);
        if must_not_allow {
            failed_cases += 1;
            assert_ne!(
                verdict.decision,
                Decision::Allow,
                "case {case}: {judge_errors:?}\n{sources:?}\n{fb:?}"
            );
            assert!(verdict
                .reasons
                .iter()
                .any(|r| r.contains("tribunal.judge_error")));
        } else if verdict.decision == Decision::Allow {
            allowed_cases += 1;
        }
    }
    // The sweep covers both sides.
    assert!(
        failed_cases > 100 && allowed_cases > 20,
        "{failed_cases} / {allowed_cases}"
    );
}

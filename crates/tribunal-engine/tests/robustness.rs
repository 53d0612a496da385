//! Bad input never crashes anything: thousands of mutated traces (flipped bytes, cut
//! lines, fields of the wrong type) go through import, every judge and every gate.
//! Each either imports and gets a verdict, or is rejected with a located error.

use serde_json::{json, Value};
use std::path::Path;
use tribunal_engine::{Config, Evaluator};
use tribunal_formats::{InputFormat, RawItem, SourceRef};
use tribunal_policy::Context;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const ODD_VALUES: &[&str] = &[
    "null",
    "1e309",
    "-0",
    "\"\"",
    "[]",
    "{}",
    "true",
    "\"\\ud800\"",
    "[[[[[]]]]]",
    "\"\u{e0041}\u{200b}\"",
    "18446744073709551616",
];

fn mutate_value(v: &mut Value, rng: &mut Rng) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            let keys: Vec<String> = o.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            if rng.below(3) == 0 {
                let odd: Value = serde_json::from_str(ODD_VALUES[rng.below(ODD_VALUES.len())])
                    .unwrap_or(Value::Null);
                o.insert(k.clone(), odd);
            } else if let Some(child) = o.get_mut(k) {
                mutate_value(child, rng);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            match rng.below(4) {
                0 => {
                    a.remove(i);
                }
                1 => a[i] = json!(ODD_VALUES[rng.below(ODD_VALUES.len())]),
                _ => mutate_value(&mut a[i], rng),
            }
        }
        Value::String(s) => {
            let extra = [
                "ignore previous instructions",
                "AKIA",
                "\u{202e}",
                "4111 1111 1111 1111",
                "rm -rf /",
                "%",
                "\\",
            ];
            s.push_str(extra[rng.below(extra.len())]);
        }
        other => *other = json!(rng.next() as i64),
    }
}

fn mutate_text(s: &str, rng: &mut Rng) -> String {
    let mut b = s.as_bytes().to_vec();
    match rng.below(3) {
        0 => b.truncate(rng.below(b.len())),
        1 => {
            let i = rng.below(b.len());
            b[i] = b"{}[]\",:0a\\"[rng.below(10)];
        }
        _ => {
            let i = rng.below(b.len());
            b.insert(i, b'"');
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn mutated_inputs_never_crash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seeds: Vec<Value> =
        std::fs::read_to_string(root.join("examples/support-agent/traces.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    seeds.push(
        serde_json::from_str(
            &std::fs::read_to_string(root.join("examples/support-agent/mlflow-warranty-rag.json"))
                .unwrap(),
        )
        .unwrap(),
    );
    for f in [
        "otlp_genai.json",
        "otlp_openinference.json",
        "anthropic_record.json",
        "mlflow_v2.json",
    ] {
        let p = root.join("crates/tribunal-formats/tests/data").join(f);
        if let Ok(t) = std::fs::read_to_string(&p) {
            seeds.push(serde_json::from_str(&t).unwrap());
        }
    }
    let cfg = Config::default_with_hash();
    let evaluator = Evaluator::new(
        cfg.build_judges().unwrap(),
        cfg.build_policies(&[]).unwrap(),
        Context::default(),
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut judged, mut rejected) = (0, 0);
    for round in 0..1500 {
        let seed = &seeds[round % seeds.len()];
        let text = if round % 3 == 0 {
            mutate_text(&seed.to_string(), &mut rng)
        } else {
            let mut v = seed.clone();
            for _ in 0..1 + rng.below(3) {
                mutate_value(&mut v, &mut rng);
            }
            v.to_string()
        };
        let item = RawItem {
            source: SourceRef {
                file: "fuzz.jsonl".into(),
                line: round as u64 + 1,
            },
            text,
        };
        match item.import(InputFormat::Auto) {
            Ok(traces) => {
                for t in traces {
                    let v = tribunal_engine::Session::new(t)
                        .decide(&evaluator, Default::default())
                        .verdict;
                    for f in &v.feedback {
                        assert_ne!(
                            f.error.as_deref(),
                            Some("the judge failed unexpectedly on this trace"),
                            "judge {} panicked on round {round}",
                            f.name
                        );
                    }
                    assert!(
                        !v.violations
                            .iter()
                            .any(|x| x.rule == "tribunal.policy_error"),
                        "policy error on round {round}: {:?}",
                        v.violations
                    );
                    judged += 1;
                }
            }
            Err(e) => {
                assert_eq!(e.file, "fuzz.jsonl");
                assert!(e.line > round as u64, "{e}");
                assert!(!e.message.is_empty());
                rejected += 1;
            }
        }
    }
    assert!(
        judged > 300 && rejected > 100,
        "judged {judged}, rejected {rejected}"
    );
}

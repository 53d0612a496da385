//! The default policy pack against attack and benign traces, through the whole pipeline
//! (importer, every default judge, every gate). Cases live in `tests/data/pack/*.json`:
//! `{name, trace, pending?, context?, data?, expect: {decision, rules}}`.

use serde_json::Value;
use std::path::Path;
use tribunal_engine::{Config, Evaluator};
use tribunal_formats::{import_pending, import_value, InputFormat};
use tribunal_policy::Context;

fn run_case(file: &str, case: &Value, compile: &str, screen: bool) -> Result<(), String> {
    let name = case["name"].as_str().unwrap_or("?");
    let mut cfg = Config::default_with_hash();
    cfg.policies.compile = compile.to_owned();
    cfg.policies.screen = screen;
    if let Some(data) = case.get("data") {
        cfg.policies.data = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
    }
    let evaluator = Evaluator::new(
        cfg.build_judges().map_err(|e| e.to_string())?,
        cfg.build_policies(&[]).map_err(|e| e.to_string())?,
        Context::default(),
    );
    let trace = import_value(&case["trace"], InputFormat::Auto, name)
        .map_err(|e| format!("{file} / {name}: trace: {e}"))?
        .remove(0);
    let pending = match case.get("pending") {
        Some(p) => Some(import_pending(p).map_err(|e| format!("{file} / {name}: pending: {e}"))?),
        None => None,
    };
    let context: Context = case
        .get("context")
        .map(|c| serde_json::from_value(c.clone()).expect("context"))
        .unwrap_or_default();
    let ask = tribunal_engine::Ask {
        pending: pending.map(std::sync::Arc::new),
        context: Some(context),
        budget: None,
    };
    let mut session = tribunal_engine::Session::new(trace);
    let verdict = session.decide(&evaluator, ask).verdict;
    let trace = session.trace();
    let fired: Vec<&str> = verdict.violations.iter().map(|v| v.rule.as_str()).collect();
    let expect = &case["expect"];
    let decision = expect["decision"].as_str().unwrap_or("?");
    if verdict.decision.as_str() != decision {
        return Err(format!(
            "{file} / {name}: expected {decision}, got {} with {:?}",
            verdict.decision, verdict.violations
        ));
    }
    for rule in expect["rules"].as_array().into_iter().flatten() {
        let rule = rule.as_str().unwrap_or("?");
        if !fired.contains(&rule) {
            return Err(format!(
                "{file} / {name}: rule {rule} did not fire; fired: {fired:?}"
            ));
        }
    }
    for v in &verdict.violations {
        for id in &v.evidence {
            if id != "pending" && !id.starts_with("pending.") && !trace.has_id(id) {
                return Err(format!(
                    "{file} / {name}: evidence {id} of {} is not in the trace",
                    v.rule
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn default_pack_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pack");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    let mut attacks = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for f in &files {
        let file = f.file_name().unwrap().to_string_lossy().to_string();
        let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        for case in &cases {
            count += 1;
            let entry = attacks.entry(file.clone()).or_default();
            if case["expect"]["decision"] == "allow" {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
            // Both engines must agree: compiled (the default for the pack) and interpreted,
            // and the screen in front of the pack must let every attack through.
            for (compile, screen) in [("always", true), ("always", false), ("never", false)] {
                if let Err(e) = run_case(&file, case, compile, screen) {
                    failures.push(format!("[{compile}, screen {screen}] {e}"));
                }
            }
        }
    }
    assert!(count >= 30, "expected the pack cases, found {count}");
    for (file, (attack, benign)) in &attacks {
        assert!(
            *attack > 0 && *benign > 0,
            "{file} needs attack and benign cases"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every kind `pii.traced_kinds` names is a kind the PII detector reports: a key it never
/// reports would leave that kind flagged even when the user gave the value (a card to book
/// with, a phone number to text).
#[test]
fn traced_pii_kinds_are_kinds_the_detector_reports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("crates/tribunal-policy/pack/data.json")).unwrap(),
    )
    .unwrap();
    let rules: toml::Value = toml::from_str(
        &std::fs::read_to_string(root.join("crates/tribunal-judges/rules/pii.toml")).unwrap(),
    )
    .unwrap();
    let kinds: Vec<&str> = rules["rule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let traced = data["pii"]["traced_kinds"].as_object().unwrap();
    assert!(traced.len() >= 4, "{traced:?}");
    for kind in traced.keys() {
        assert!(
            kinds.contains(&kind.as_str()),
            "{kind} is not one of {kinds:?}"
        );
    }
}

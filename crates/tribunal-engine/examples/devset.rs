//! How many attack and benign traces of a labelled development set the policy pack flags:
//! every trace of a JSONL file (records with `metadata.kind` = `attack` or `benign`, as
//! `crates/tribunal-policy/devset/build_workspace.py` writes them) is judged whole by every
//! default judge and the pack, and counts as flagged when the decision is not `allow`.
//!
//! ```text
//! cargo run -p tribunal-engine --example devset -- TRACES.jsonl [--pack DIR] [--rules]
//! ```
//! `--pack DIR` judges with the pack in DIR (its `.rego` files and `data.json`) instead of
//! the built-in one, e.g. an older version of it; `--rules` also counts the rules that fired;
//! `--list` prints each trace's id, kind and decision.

use std::collections::BTreeMap;
use std::io::BufRead;
use tribunal_engine::{Config, Evaluator};
use tribunal_formats::{import_value, InputFormat};
use tribunal_policy::Context;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = args
        .first()
        .ok_or("usage: devset TRACES.jsonl [--pack DIR] [--rules] [--list]")?;
    let mut cfg = Config::default_with_hash();
    if let Some(i) = args.iter().position(|a| a == "--pack") {
        let dir = args.get(i + 1).ok_or("--pack: expected a folder")?;
        cfg.policies.builtin = false;
        cfg.policies.paths = vec![dir.into()];
    }
    let show_rules = args.iter().any(|a| a == "--rules");
    let list = args.iter().any(|a| a == "--list");
    let evaluator = Evaluator::new(
        cfg.build_judges().map_err(|e| e.to_string())?,
        cfg.build_policies(&[]).map_err(|e| e.to_string())?,
        Context::default(),
    );
    let reader =
        std::io::BufReader::new(std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?);
    // kind -> (traces, flagged)
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut rules: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{file}:{}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("{file}:{}: {e}", n + 1))?;
        let kind = v["metadata"]["kind"]
            .as_str()
            .ok_or_else(|| format!("{file}:{}: metadata.kind: expected attack or benign", n + 1))?
            .to_owned();
        let trace = import_value(&v, InputFormat::Auto, &format!("{file}:{}", n + 1))
            .map_err(|e| format!("{file}:{}: {e}", n + 1))?
            .remove(0);
        let mut session = tribunal_engine::Session::new(trace);
        let verdict = session.decide(&evaluator, Default::default()).verdict;
        let trace = session.trace();
        let flagged = verdict.decision.as_str() != "allow";
        if list {
            println!("{}\t{kind}\t{}", trace.id, verdict.decision.as_str());
        }
        let c = counts.entry(kind.clone()).or_default();
        c.0 += 1;
        c.1 += usize::from(flagged);
        if show_rules {
            let mut seen: Vec<&str> = verdict.violations.iter().map(|v| v.rule.as_str()).collect();
            seen.sort();
            seen.dedup();
            for r in seen {
                *rules.entry((kind.clone(), r.to_owned())).or_default() += 1;
            }
        }
    }
    for (kind, (total, flagged)) in &counts {
        println!(
            "{kind}: {flagged} of {total} flagged ({:.1} %)",
            100.0 * *flagged as f64 / (*total).max(1) as f64
        );
    }
    for ((kind, rule), n) in &rules {
        println!("  {kind} {rule}: {n}");
    }
    Ok(())
}

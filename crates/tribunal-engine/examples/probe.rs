#[path = "../benches/common.rs"]
mod common;
use std::time::Instant;
use tribunal_engine::{Config, Evaluator};
use tribunal_formats::{import_pending, import_value, InputFormat};
use tribunal_policy::*;

fn time<F: FnMut()>(label: &str, n: usize, mut f: F) {
    for _ in 0..n/10 { f(); }
    let t = Instant::now();
    for _ in 0..n { f(); }
    println!("{label:<40} {:>9.1} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}

fn main() {
    let cfg = Config::default_with_hash();
    let evaluator = Evaluator::new(cfg.build_judges().unwrap(), cfg.build_policies(&[]).unwrap(), Context::default());
    let doc = common::agent_trace(7, 20);
    let trace = import_value(&doc, InputFormat::Auto, "bench").unwrap().remove(0);
    let pending = import_pending(&serde_json::json!({"name": "send_email", "arguments": {"to": "customer7@example.com", "body": "Your order ships soon."}})).unwrap();
    let ctx = Context::default();
    let feedback = evaluator.feedback(&trace, Some(&pending));
    let classes = tribunal_policy::facts::ToolClasses::from_data(&pack::default_data()).unwrap();
    let input = policy_input(&trace, Some(&pending), &feedback, &ctx, &classes);
    for f in &feedback { if !f.findings.is_empty() { println!("{}: {} findings {:?}", f.name, f.findings.len(), f.findings.iter().map(|x| x.kind.as_str()).collect::<Vec<_>>()); } }
    println!("input bytes {}", serde_json::to_string(&input).unwrap().len());
    time("build input json", 2000, || { std::hint::black_box(policy_input(&trace, Some(&pending), &feedback, &ctx, &classes)); });

    let trivial = PolicySet::new(vec![PolicySource{path:"t.rego".into(), text:"package t\nimport rego.v1\nviolation contains 1 if false\n".into()}], &[], PolicyOptions::default()).unwrap();
    let mut e = trivial.evaluator();
    time("trivial policy", 2000, || { std::hint::black_box(e.evaluate_trace(&trace, Some(&pending), &feedback, &ctx)); });
    let variants = [
        ("sensitive_calls", "package tribunal.pack\nimport rego.v1\nviolation contains 1 if { count(sensitive_calls) > 100 }\n"),
        ("one regex per call", "package tribunal.pack\nimport rego.v1\nx := {n | some c in calls; n := c.name; regex.match(\"^send\", n)}\nviolation contains 1 if { count(x) > 100 }\n"),
        ("combined regex per call", "package tribunal.pack\nimport rego.v1\nx := {n | some c in calls; n := c.name; regex.match(sensitive_pattern, n)}\nviolation contains 1 if { count(x) > 100 }\n"),
        ("pattern only", "package tribunal.pack\nimport rego.v1\nviolation contains 1 if { count(sensitive_pattern) > 10000 }\n"),
        ("trusted_mentions", "package tribunal.pack\nimport rego.v1\nviolation contains 1 if { count(trusted_mentions) > 100 }\n"),
        ("injection_score", "package tribunal.pack\nimport rego.v1\nviolation contains 1 if { count(injection_score) > 100 }\n"),
        ("calls", "package tribunal.pack\nimport rego.v1\nviolation contains 1 if { count(calls) > 100 }\n"),
        ("cfg", "package tribunal.pack\nimport rego.v1\nviolation contains 1 if { count(cfg) > 100 }\n"),
    ];
    for (name, text) in variants {
        let srcs = vec![PolicySource{path:"lib.rego".into(), text: pack::PACK[0].1.into()}, PolicySource{path:"t.rego".into(), text: text.into()}];
        let set = PolicySet::new(srcs, &[], PolicyOptions::default()).unwrap();
        let mut e = set.evaluator();
        time(name, 300, || { std::hint::black_box(e.evaluate_trace(&trace, Some(&pending), &feedback, &ctx)); });
    }
    for (name, text) in pack::PACK.iter().skip(1) {
        let mut srcs = vec![PolicySource{path:"lib.rego".into(), text: pack::PACK[0].1.into()}];
        srcs.push(PolicySource{path:(*name).into(), text:(*text).into()});
        let set = PolicySet::new(srcs, &[], PolicyOptions::default()).unwrap();
        let mut e = set.evaluator();
        time(name, 300, || { std::hint::black_box(e.evaluate_trace(&trace, Some(&pending), &feedback, &ctx)); });
    }
}

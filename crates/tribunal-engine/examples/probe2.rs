use tribunal_engine::{Config, Evaluator};
use tribunal_formats::{import_value, InputFormat};
use tribunal_policy::*;
fn main() {
    let cfg = Config::default_with_hash();
    let evaluator = Evaluator::new(cfg.build_judges().unwrap(), cfg.build_policies(&[]).unwrap(), Context::default());
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("/tmp/c2b.json").unwrap()).unwrap();
    let trace = import_value(&doc, InputFormat::Auto, "x").unwrap().remove(0);
    let fb = evaluator.feedback(&trace, None);
    let classes = tribunal_policy::facts::ToolClasses::from_data(&pack::default_data()).unwrap();
    let input = policy_input_json(&trace, None, &fb, &Context::default(), &classes);
    println!("{}", serde_json::to_string(&input["findings"]).unwrap());
    let mut srcs = pack::sources();
    srcs.push(PolicySource { path: "s.rego".into(), text: "package s\nimport rego.v1\nimport data.tribunal.lib\nviolation contains sprintf(\"ids %v\", [lib.injection_ids]) if true\nviolation contains sprintf(\"score %v\", [lib.injection_score]) if true\nviolation contains sprintf(\"prod %v\", [[r | some g in lib.injection_findings; g.id == \"m1\"; r := 1 - g.score]]) if true\n".into() });
    let set = PolicySet::new(srcs, &[], PolicyOptions::default()).unwrap();
    let mut e = set.evaluator();
    for v in e.evaluate(input) { println!("{} {:?} {}", v.rule, v.severity, v.message); }
}

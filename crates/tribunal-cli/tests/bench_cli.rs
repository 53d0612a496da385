//! `tribunal bench` end to end: the fixtures of `tribunal-bench` and the example in
//! `examples/benchmarks/` go through the binary; table and JSON output and exit codes.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data(rel: &str) -> String {
    root()
        .join("crates/tribunal-bench/tests/data")
        .join(rel)
        .display()
        .to_string()
}

fn tribunal(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("CI")
        .output()
        .expect("run tribunal")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = tribunal(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn fails(args: &[&str]) -> String {
    let o = tribunal(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
    stderr(&o)
}

#[test]
fn tau_prints_the_reference_lines_then_the_breakdown() {
    let out = ok(&["bench", "tau", &data("tau/results.json")]);
    let expected = std::fs::read_to_string(data("tau/results.expected.txt")).expect("expected");
    assert!(out.starts_with(&expected), "{out}");
    assert!(out.contains("consistently failing (1): 2"), "{out}");
    assert!(out.contains("flaky (2): 1, 3"), "{out}");
    assert!(out.contains("task 1 trial 1: not said: 1000"), "{out}");
}

#[test]
fn tau_json() {
    let v = json(&[
        "bench",
        "tau",
        &data("tau/results.json"),
        "--format",
        "json",
    ]);
    assert_eq!(v["benchmark"], "tau");
    assert_eq!(
        (v["tasks"].as_u64(), v["trials"].as_u64()),
        (Some(4), Some(3))
    );
    let keys: Vec<&str> = v["pass_hat_k"]
        .as_object()
        .expect("map")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["1", "2", "3"]);
    assert_eq!(v["pass_hat_k"]["1"].as_f64(), Some(0.49999999999999994));
    assert_eq!(v["avg_reward"].as_f64(), Some(0.6363581310619008));
    assert_eq!(v["per_task"][0]["consistency"], "always_pass");
}

#[test]
fn tau2_file_and_directory() {
    let out = ok(&["bench", "tau2", &data("tau2/results.json")]);
    let expected = std::fs::read_to_string(data("tau2/results.expected.txt")).expect("expected");
    assert!(out.starts_with(&expected), "{out}");
    assert!(out.contains("2 infrastructure errors excluded"), "{out}");
    let v = json(&["bench", "tau2", &data("tau2/dir_format"), "-f", "json"]);
    assert_eq!(v["benchmark"], "tau2");
    assert_eq!(v["simulations"], 11);
    assert_eq!(v["max_k"], 2);
    assert_eq!(v["pass_hat_k"]["1"].as_f64(), Some(0.5416666666666666));
}

#[test]
fn gaia_overall_and_per_level() {
    let answers = data("gaia/answers.jsonl");
    let out = ok(&[
        "bench",
        "gaia",
        &data("gaia/submission.jsonl"),
        "--answers",
        &answers,
    ]);
    assert!(out.contains("accuracy: 0.5833333333333334 (7/12)"), "{out}");
    assert!(out.contains("  level 3: 0.3333333333333333 (1/3)"), "{out}");
    let v = json(&[
        "bench",
        "gaia",
        &data("gaia/submission.jsonl"),
        "--answers",
        &answers,
        "-f",
        "json",
    ]);
    assert_eq!(v["correct"], 7);
    assert_eq!(v["per_level"][0]["level"], "1");
    assert_eq!(v["per_level"][0]["accuracy"].as_f64(), Some(0.8));
}

#[test]
fn webarena_counts_unscorable_tasks_separately() {
    let tasks = data("webarena/config_files");
    let out = ok(&[
        "bench",
        "webarena",
        &data("webarena/results.jsonl"),
        "--tasks",
        &tasks,
    ]);
    assert!(
        out.contains("success rate: 0.5555555555555556 (5/9 scored tasks)"),
        "{out}"
    );
    assert!(
        out.contains("needs an LLM judge (fuzzy_match), not scored (3)"),
        "{out}"
    );
    assert!(
        out.contains("needs the live site (program_html), not re-scorable offline (2)"),
        "{out}"
    );
    let v = json(&[
        "bench",
        "webarena",
        &data("webarena/results.jsonl"),
        "--tasks",
        &tasks,
        "-f",
        "json",
    ]);
    assert_eq!(v["not_scored"]["needs_llm_judge"], 3);
    assert_eq!(v["not_scored"]["needs_live_site"], 2);
    assert_eq!(v["by_evaluator"][1]["eval_type"], "url_match");
}

#[test]
fn bad_input_exits_2_with_file_line_and_field() {
    let err = fails(&["bench", "tau", &data("tau/bad_reward.json")]);
    assert!(
        err.contains("bad_reward.json:9: [1].reward: expected a number"),
        "{err}"
    );
    let err = fails(&["bench", "tau", &data("tau/broken.json")]);
    assert!(err.contains("broken.json:3:"), "{err}");
    let err = fails(&["bench", "tau", "no-such-file.json"]);
    assert!(err.contains("no-such-file.json"), "{err}");
    let err = fails(&["bench", "tau", &data("tau2/results.json")]);
    assert!(err.contains("use `bench tau2`"), "{err}");
    let err = fails(&[
        "bench",
        "gaia",
        &data("gaia/unknown_task.jsonl"),
        "--answers",
        &data("gaia/answers.jsonl"),
    ]);
    assert!(
        err.contains("unknown_task.jsonl:2: task \"g-999\" is not in the answers file"),
        "{err}"
    );
    let err = fails(&[
        "bench",
        "webarena",
        &data("webarena/unknown_task.jsonl"),
        "--tasks",
        &data("webarena/config_files"),
    ]);
    assert!(err.contains("is not in the task configs"), "{err}");
    let err = fails(&["bench", "tau", &data("tau/results.json"), "-f", "xml"]);
    assert!(err.contains("--format: expected table or json"), "{err}");
}

#[test]
fn the_example_scores_and_evaluates() {
    let example = root()
        .join("examples/benchmarks/tau-results.json")
        .display()
        .to_string();
    let out = ok(&["bench", "tau", &example]);
    assert!(
        out.starts_with("🏆 Average reward: 0.75\n📈 Pass^k\n  k=1: 0.75\n  k=2: 0.5\n"),
        "{out}"
    );
    // The same file as traces: one per run, none rejected.
    let o = tribunal(&["eval", &example, "--no-store", "-f", "jsonl"]);
    assert_ne!(o.status.code(), Some(2), "{}", stderr(&o));
    let ids: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("jsonl")["trace_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        [
            "task-0-trial-0",
            "task-1-trial-0",
            "task-0-trial-1",
            "task-1-trial-1"
        ]
    );
}

#[test]
fn gaia_submissions_are_traces_for_the_judges() {
    let out = ok(&[
        "eval",
        &data("gaia/submission.jsonl"),
        "--no-store",
        "-f",
        "jsonl",
    ]);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 11, "{out}");
    assert_eq!(rows[0]["trace_id"], "g-001");
    let steps = rows[0]["feedback"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "step_count")
        .unwrap();
    assert!(steps["value"]["steps"].as_u64().unwrap() >= 1);
}

#[test]
fn webarena_results_are_traces_for_the_judges() {
    let results = root()
        .join("crates/tribunal-formats/tests/data/webarena/results")
        .display()
        .to_string();
    // The folder also holds a task config, which carries no run and is not a rejected input.
    let o = tribunal(&["eval", &results, "--no-store", "-f", "jsonl"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "one run is blocked: {}",
        stderr(&o)
    );
    let rows: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    let verdicts: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["trace_id"].as_str().unwrap_or_default(),
                r["verdict"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("task-201", "allow"),
            ("task-202", "block"),
            ("task-205", "allow"),
            ("task-206", "allow"),
            ("task-203", "allow"),
            ("task-204", "allow"),
        ]
    );
    // The page that carried the injected instructions is the evidence.
    let hijacked = &rows[1];
    assert!(
        hijacked["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["rule"] == "c2.indirect_injection" && v["evidence"][0] == "m3"),
        "{hijacked}"
    );
    let steps = hijacked["feedback"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "step_count")
        .unwrap();
    assert_eq!(steps["value"]["tool_calls"], 4);
    // Forcing the format gives the same traces.
    let o = tribunal(&[
        "eval",
        &results,
        "--no-store",
        "-f",
        "jsonl",
        "--input-format",
        "webarena",
    ]);
    assert_eq!(stdout(&o).lines().count(), 6, "{}", stderr(&o));
}

//! Data-driven tests of the benchmark scorers. Fixtures in `tests/data/` were written for this
//! project (no real benchmark questions); the expected numbers beside them
//! (`*.expected.json`, `*.expected.txt`) were computed the way the reference code computes
//! them. Rule tables (`python/*.json`, `gaia/scorer_cases.json`,
//! `webarena/match_cases.json`) hold one case per line with the expected result.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tribunal_bench::webarena::{self, Grade, LlmGrader};
use tribunal_bench::{gaia, py, tau, tau2, GraderError, LoadError, ScoreError};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn json_file(rel: &str) -> Value {
    let p = data(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn text_file(rel: &str) -> String {
    std::fs::read_to_string(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every field of `expected` must be in `actual` with the same value; objects are compared
/// recursively, arrays element by element (and must have the same length).
fn check(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, ev) in e {
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k}: missing in {actual:#}"));
                check(av, ev, &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{path}: {actual:#} vs {expected:#}");
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                check(av, ev, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(a), Value::Number(e)) => {
            assert_eq!(a.as_f64(), e.as_f64(), "{path}: {a} vs expected {e}");
        }
        _ => assert_eq!(actual, expected, "{path}"),
    }
}

fn check_report(report: &impl serde::Serialize, expected_rel: &str) {
    let actual = serde_json::to_value(report).expect("serializable report");
    check(&actual, &json_file(expected_rel), expected_rel);
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Python number semantics

#[test]
fn python_float_accepts_and_rejects_what_python_does() {
    let cases = json_file("python/float.json");
    for case in cases.as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let got = py::parse_float(text).map(py::repr);
        let want = case["python"].as_str().map(str::to_owned);
        assert_eq!(got, want, "float({text:?})");
    }
}

#[test]
fn python_repr_of_floats() {
    for case in json_file("python/repr.json").as_array().expect("cases") {
        let x = case["value"].as_f64().expect("value");
        assert_eq!(py::repr(x), case["python"].as_str().expect("repr"), "{x:e}");
    }
    assert_eq!(py::repr(f64::NAN), "nan");
    assert_eq!(py::repr(f64::NEG_INFINITY), "-inf");
    assert_eq!(py::repr(-0.0), "-0.0");
}

#[test]
fn sums_follow_python_and_numpy() {
    // Python 3.12+ `sum()` is compensated; NumPy's pairwise sum is not, and plain
    // left-to-right addition differs from both.
    let eleven = floats(&json!([
        0.37, 0.74, 0.11, 0.48, 0.85, 0.22, 0.59, 0.96, 0.33, 0.7, 0.07
    ]));
    assert_eq!(py::sum(eleven.iter().copied()), 5.42);
    assert_eq!(py::numpy_sum(&eleven), 5.420000000000001);
    let twenty = floats(&json!([
        0.37, 0.74, 0.11, 0.48, 0.85, 0.22, 0.59, 0.96, 0.33, 0.7, 0.07, 0.44, 0.81, 0.18, 0.55,
        0.92, 0.29, 0.66, 0.03, 0.4
    ]));
    assert_eq!(py::numpy_sum(&twenty), 9.7);
    assert_eq!(twenty.iter().fold(0.0, |a, b| a + b), 9.700000000000001);
    assert_eq!(py::sum(std::iter::repeat_n(0.1, 10)), 1.0);
    assert_eq!(py::numpy_sum(&[0.1; 200]), 20.0);
    // pandas skips missing values: the mean of [1, None, 0] is 0.5; all missing is NaN.
    assert_eq!(py::pandas_mean(&[Some(1.0), None, Some(0.0)]), 0.5);
    assert!(py::pandas_mean(&[None, None]).is_nan());
}

#[test]
fn success_tolerance_is_one_millionth() {
    assert!(py::is_success(1.0));
    assert!(py::is_success(1.0 + 2f64.powi(-21)));
    assert!(py::is_success(0.9999995));
    assert!(!py::is_success(0.99999));
    assert!(!py::is_success(f64::NAN));
}

// ---------------------------------------------------------------------------------------
// τ-bench

#[test]
fn tau_pass_hat_k_uses_the_global_trial_count() {
    let runs = tau::load(&data("tau/results.json")).expect("loads");
    let report = tau::score(&runs).expect("scores");
    check_report(&report, "tau/results.expected.json");
    // Task 3 ran twice, but n is the 3 distinct trials of the file: its c=1 gives 1/3 at k=1.
    assert_eq!(report.trials, 3);
    assert!(report
        .table()
        .starts_with(&text_file("tau/results.expected.txt")));
    let t1 = &report.per_task[1];
    assert_eq!((t1.task_id.as_str(), t1.trials, t1.successes), ("1", 3, 2));
    assert_eq!(t1.user_cost, Some(0.008 + 0.0085 + 0.0079));
}

#[test]
fn tau_required_outputs_are_rederived_from_react_trajectories() {
    let runs = tau::load(&data("tau/react.json")).expect("loads");
    assert_eq!(
        runs[0].replies,
        [
            "The Blue mug costs $15.5, and it is in stock.",
            "I am sorry, paying later is not possible."
        ]
    );
    let report = tau::score(&runs).expect("scores");
    check_report(&report, "tau/react.expected.json");
    assert!(report
        .table()
        .contains("recorded r_outputs 0.0 but the trajectory gives 1.0"));
}

#[test]
fn tau_required_output_rule() {
    let outputs = vec!["1000".to_owned(), "Blue".to_owned(), "".to_owned()];
    let found = tau::required_outputs(&outputs, &["Total: $1,000, BLUE".to_owned()]);
    assert!(found.iter().all(|(_, f)| *f));
    // Commas are removed from the reply only, not from the output.
    let found = tau::required_outputs(&["1,000".to_owned()], &["1,000".to_owned()]);
    assert!(!found[0].1);
    // Without any reply even the empty output is not found.
    assert!(!tau::required_outputs(&["".to_owned()], &[])[0].1);
}

#[test]
fn tau_tool_calling_replies_skip_tool_call_messages() {
    let traj = json!([
        {"role": "assistant", "content": "checking", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "Action: {\"name\": \"respond\"}"},
        {"role": "assistant", "content": "Action: this is just text", "tool_calls": null},
        {"role": "assistant", "content": null}
    ]);
    assert_eq!(
        tau::replies(traj.as_array().expect("array")),
        ["Action: this is just text"]
    );
}

#[test]
fn tau_rejects_bad_input_with_file_line_and_field() {
    let e = tau::load(&data("tau/bad_reward.json")).expect_err("bad reward");
    assert_eq!(e.line(), Some(9), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("bad_reward.json:9: [1].reward: expected a number, found the string \"high\""),
        "{msg}"
    );
    let e = tau::load(&data("tau/not_an_array.json")).expect_err("object");
    assert!(
        e.to_string()
            .contains("expected a JSON array of τ-bench runs"),
        "{e}"
    );
    let e = tau::load(&data("tau/broken.json")).expect_err("syntax");
    assert!(matches!(e, LoadError::Json { line: 3, .. }), "{e}");
    assert_eq!(tau::score(&[]), Err(ScoreError::Empty));
}

// ---------------------------------------------------------------------------------------
// τ²-bench

#[test]
fn tau2_drops_infrastructure_errors_and_applies_the_termination_rule() {
    let results = tau2::load(&data("tau2/results.json")).expect("loads");
    assert_eq!(results.simulations.len(), 13);
    let report = tau2::score(&results);
    check_report(&report, "tau2/results.expected.json");
    assert!(
        report
            .table()
            .starts_with(&text_file("tau2/results.expected.txt")),
        "{}",
        report.table()
    );
    // Task 3 has 2 evaluated runs (its third was an infrastructure error): k stops at 2.
    assert_eq!(report.max_k, 2);
    let t3 = report
        .per_task
        .iter()
        .find(|t| t.task_id == "3")
        .expect("task 3");
    assert_eq!((t3.trials, t3.successes), (2, 1));
}

#[test]
fn tau2_directory_format_gives_the_same_numbers() {
    let dir = tau2::load(&data("tau2/dir_format")).expect("loads the directory");
    let file = tau2::load(&data("tau2/dir_format/results.json")).expect("loads via the file");
    assert_eq!(dir.simulations.len(), 13);
    assert_eq!(tau2::score(&dir), tau2::score(&file));
    check_report(&tau2::score(&dir), "tau2/results.expected.json");
}

#[test]
fn tau2_without_evaluated_runs() {
    let only_infra = tau2::Tau2Results {
        num_trials: Some(1),
        tasks: vec![],
        simulations: vec![tau2::Simulation {
            id: "s".into(),
            task_id: "1".into(),
            termination_reason: "infrastructure_error".into(),
            ..Default::default()
        }],
    };
    let r = tau2::score(&only_infra);
    assert_eq!(
        (r.simulations, r.infrastructure_errors, r.avg_reward),
        (0, 1, 0.0)
    );
    assert!(r.pass_hat_k.0.is_empty());
}

#[test]
fn tau2_rejects_bad_input_with_file_line_and_field() {
    let e = tau2::load(&data("tau2/bad_simulation.json")).expect_err("bad");
    let msg = e.to_string();
    assert!(
        msg.contains("bad_simulation.json:7: simulations[1].termination_reason: expected a string"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// GAIA

#[test]
fn gaia_scorer_rules() {
    for case in json_file("gaia/scorer_cases.json")
        .as_array()
        .expect("cases")
    {
        let answer = case["answer"].as_str().expect("answer");
        let truth = case["truth"].as_str().expect("truth");
        assert_eq!(
            gaia::question_scorer(answer, truth),
            case["correct"].as_bool().expect("correct"),
            "{answer:?} vs {truth:?}: {}",
            case["why"]
        );
    }
}

#[test]
fn gaia_final_answer_extraction() {
    assert_eq!(
        gaia::extract_final_answer("x\nFINAL ANSWER: 42 "),
        ("42", true)
    );
    assert_eq!(
        gaia::extract_final_answer("Final answer: a\nfinal answer: b"),
        ("b", true)
    );
    assert_eq!(gaia::extract_final_answer("42"), ("42", false));
}

#[test]
fn gaia_accuracy_overall_and_per_level() {
    let tasks = gaia::load_answers(&data("gaia/answers.jsonl")).expect("answers");
    let subs = gaia::load_submission(&data("gaia/submission.jsonl")).expect("submission");
    let report = gaia::score(&tasks, &subs).expect("scores");
    check_report(&report, "gaia/submission.expected.json");
    let by_id = |id: &str| report.per_task.iter().find(|t| t.task_id == id).expect(id);
    assert!(by_id("g-007").extracted && by_id("g-007").correct);
    assert_eq!(by_id("g-008").scored_answer.as_deref(), Some("None"));
    assert!(by_id("g-009").missing);
    assert!(report
        .table()
        .contains("accuracy: 0.5833333333333334 (7/12)"));
}

#[test]
fn gaia_rejects_unknown_and_duplicate_tasks() {
    let tasks = gaia::load_answers(&data("gaia/answers.jsonl")).expect("answers");
    let subs = gaia::load_submission(&data("gaia/unknown_task.jsonl")).expect("loads");
    let e = gaia::score(&tasks, &subs).expect_err("unknown task");
    assert!(
        e.to_string()
            .contains("unknown_task.jsonl:2: task \"g-999\" is not in the answers file"),
        "{e}"
    );
    let e = gaia::load_submission(&data("gaia/duplicate.jsonl")).expect_err("duplicate");
    assert!(
        e.to_string()
            .contains("duplicate.jsonl:3: task \"g-001\" is answered twice (first on line 1)"),
        "{e}"
    );
    let e = gaia::load_submission(&data("gaia/bad_line.jsonl")).expect_err("syntax");
    assert_eq!(e.line(), Some(2), "{e}");
    let e = gaia::load_submission(&data("gaia/no_answer.jsonl")).expect_err("no model_answer");
    assert!(
        e.to_string()
            .contains("no_answer.jsonl:1: model_answer: expected"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// WebArena

#[test]
fn webarena_matchers() {
    let cases = json_file("webarena/match_cases.json");
    for c in cases["clean"].as_array().expect("clean") {
        let input = c["input"].as_str().expect("input");
        assert_eq!(
            webarena::clean_answer(input),
            c["clean"].as_str().expect("clean"),
            "{input:?}"
        );
    }
    for c in cases["exact_match"].as_array().expect("exact") {
        let (r, p) = (
            c["reference"].as_str().expect("r"),
            c["prediction"].as_str().expect("p"),
        );
        assert_eq!(
            webarena::exact_match(r, p),
            c["match"] == true,
            "{r:?} vs {p:?}"
        );
    }
    for c in cases["must_include"].as_array().expect("must_include") {
        let (r, p) = (
            c["reference"].as_str().expect("r"),
            c["prediction"].as_str().expect("p"),
        );
        let tokenize = c["tokenize"] == true;
        assert_eq!(
            webarena::must_include(r, p, tokenize),
            c["match"] == true,
            "{r:?} in {p:?} (tokenize {tokenize}): {}",
            c["why"]
        );
    }
    for c in cases["url_match"].as_array().expect("url_match") {
        let (r, p) = (
            c["reference"].as_str().expect("r"),
            c["prediction"].as_str().expect("p"),
        );
        assert_eq!(
            webarena::url_match(r, p),
            c["match"] == true,
            "{r:?} vs {p:?}"
        );
    }
}

#[test]
fn webarena_tokens() {
    assert_eq!(
        webarena::word_tokenize("there are 0. then 1,000 items (or $5)!"),
        ["there", "are", "0", ".", "then", "1,000", "items", "(", "or", "$", "5", ")", "!"]
    );
    assert_eq!(
        webarena::word_tokenize("it's done, isn't it?"),
        ["it", "'s", "done", ",", "is", "n't", "it", "?"]
    );
}

#[test]
fn webarena_success_rate_and_unscorable_tasks() {
    let tasks = webarena::load_tasks(&data("webarena/config_files")).expect("configs");
    let results = webarena::load_results(&data("webarena/results.jsonl")).expect("results");
    let report = webarena::score(&tasks, &results, None).expect("scores");
    check_report(&report, "webarena/results.expected.json");
    let table = report.table();
    assert!(
        table.contains("needs an LLM judge (fuzzy_match), not scored (3): 105, 107, 116"),
        "{table}"
    );
    assert!(
        table.contains("needs the live site (program_html), not re-scorable offline (2): 110, 112"),
        "{table}"
    );
    assert!(
        table.contains("success rate: 0.5555555555555556 (5/9 scored tasks)"),
        "{table}"
    );
}

/// A stand-in grader: correct when the prediction (without spaces) is inside the reference.
struct Containment;

impl LlmGrader for Containment {
    fn grade(&self, _q: &str, reference: &str, prediction: &str) -> Result<Grade, GraderError> {
        let squash = |s: &str| s.to_lowercase().replace(' ', "");
        Ok(if squash(reference).contains(&squash(prediction)) {
            Grade::Correct
        } else {
            Grade::PartiallyCorrect
        })
    }
}

#[test]
fn webarena_with_an_llm_grader_scores_fuzzy_tasks() {
    let tasks = webarena::load_tasks(&data("webarena/config_files")).expect("configs");
    let results = webarena::load_results(&data("webarena/results.jsonl")).expect("results");
    let report = webarena::score(&tasks, &results, Some(&Containment)).expect("scores");
    // 105 becomes a pass; 107 and 116 (unachievable, reason not matched) fail; "partially
    // correct" scores 0.
    assert_eq!((report.scored, report.passed), (12, 6));
    assert_eq!(report.success_rate, 0.5);
    assert_eq!(report.not_scored.get("needs_llm_judge"), None);
}

#[test]
fn webarena_reference_answer_order_is_kept() {
    // must_include fails first, then "N/A" replaces the score with the LLM's verdict: the
    // task needs a judge. In sorted key order it would have been a plain failure.
    let tasks = webarena::load_tasks(&data("webarena/config_files/116.json")).expect("config");
    assert!(matches!(
        tasks[0].references.as_slice(),
        [
            webarena::Reference::MustInclude(_),
            webarena::Reference::Unachievable
        ]
    ));
}

#[test]
fn webarena_rejects_bad_input() {
    let tasks = webarena::load_tasks(&data("webarena/config_files")).expect("configs");
    let results = webarena::load_results(&data("webarena/unknown_task.jsonl")).expect("loads");
    let e = webarena::score(&tasks, &results, None).expect_err("unknown task");
    assert!(
        e.to_string()
            .contains("unknown_task.jsonl:1: task \"999\" is not in the task configs"),
        "{e}"
    );
    let e = webarena::load_tasks(&data("webarena/bad_config.json")).expect_err("bad eval type");
    assert!(
        e.to_string().contains("bad_config.json:1: eval.eval_types[0]: expected string_match, url_match or program_html, found the string \"html_match\""),
        "{e}"
    );
}

//! `tribunal prefs convert`, `tribunal rm train` and `tribunal rm eval` with the real binary
//! on small fixtures.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tribunal-prefs/tests/data")
        .join(name)
}

fn tribunal(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .output()
        .expect("run tribunal")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Pairs where the polite, helpful reply wins whatever its length.
fn write_pairs(path: &Path, n: usize, offset: usize) {
    let topics = ["bread", "chess", "music", "rust", "taxes", "travel"];
    let good = [
        "Sure, here is how to start with {t}: go step by step.",
        "Happy to help with {t}, the key idea is simple.",
        "{t}: begin small and practise.",
    ];
    let bad = [
        "I can't help with {t}.",
        "No. Figure out {t} yourself, I will not explain anything about it to you today.",
        "Whatever.",
    ];
    let mut out = String::new();
    for i in offset..offset + n {
        let t = topics[i % topics.len()];
        let row = serde_json::json!({
            "prompt": format!("Tell me about {t}."),
            "chosen": good[(i / 6) % good.len()].replace("{t}", t),
            "rejected": bad[(i / 18) % bad.len()].replace("{t}", t),
        });
        out.push_str(&row.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).expect("write pairs");
}

#[test]
fn prefs_convert_round_trips_hh_rlhf_through_jsonl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hh = fixture("hh.jsonl");
    let out = tribunal(
        dir.path(),
        &[
            "prefs",
            "convert",
            &hh.display().to_string(),
            "--from",
            "hh-rlhf",
            "--to",
            "jsonl",
            "-o",
            "r.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let records = std::fs::read_to_string(dir.path().join("r.jsonl")).expect("output");
    assert_eq!(records.lines().count(), 4);
    assert!(records.contains(r#""kind":"import""#));
    let out = tribunal(
        dir.path(),
        &[
            "prefs",
            "convert",
            "r.jsonl",
            "--from",
            "jsonl",
            "--to",
            "hh-rlhf",
            "-o",
            "back.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        std::fs::read(dir.path().join("back.jsonl")).expect("output"),
        std::fs::read(&hh).expect("fixture")
    );
    // `-o -` writes to standard output, not to a file named `-`.
    let out = tribunal(
        dir.path(),
        &[
            "prefs", "convert", "r.jsonl", "--from", "jsonl", "--to", "hh-rlhf", "-o", "-",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(&hh).expect("fixture"));
    assert!(!dir.path().join("-").exists());
    assert!(
        text(&out.stderr).contains("written to standard output"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn prefs_convert_lists_rejected_rows_and_writes_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = fixture("bad_hh.jsonl").display().to_string();
    let out = tribunal(
        dir.path(),
        &[
            "prefs", "convert", &bad, "--from", "hh-rlhf", "--to", "trl", "-o", "t.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains(":2: field `rejected`: missing"), "{err}");
    assert!(err.contains(":5: field `chosen`"), "{err}");
    let written = std::fs::read_to_string(dir.path().join("t.jsonl")).expect("output");
    assert_eq!(written.lines().count(), 2);
    let out = tribunal(
        dir.path(),
        &[
            "prefs", "convert", &bad, "--from", "hh", "--to", "trl", "-o", "t.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown format `hh`"));
}

#[test]
fn rm_train_and_eval_report_accuracy_beside_the_baselines() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_pairs(&dir.path().join("train.jsonl"), 120, 0);
    write_pairs(&dir.path().join("test.jsonl"), 36, 200);
    let train = |out: &str| {
        tribunal(
            dir.path(),
            &[
                "rm",
                "train",
                "train.jsonl",
                "-o",
                out,
                "--seed",
                "7",
                "--holdout",
                "0.3",
                "--bits",
                "12",
                "--epochs",
                "3",
                "-f",
                "json",
            ],
        )
    };
    let out = train("rm.json");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["pairs"], 84);
    assert_eq!(report["held_out"], 36);
    assert_eq!(report["epoch_loss"].as_array().map(Vec::len), Some(3));
    assert!(
        report["evaluation"]["model"]["accuracy"].as_f64() > Some(0.9),
        "{report}"
    );
    // The same seed writes the same model, byte for byte.
    assert_eq!(train("again.json").status.code(), Some(0));
    let model = std::fs::read(dir.path().join("rm.json")).expect("model");
    assert_eq!(
        model,
        std::fs::read(dir.path().join("again.json")).expect("model")
    );
    let saved: Value = serde_json::from_slice(&model).expect("model json");
    assert_eq!(saved["training"]["seed"], 7);
    assert_eq!(saved["features"]["bits"], 12);

    let out = tribunal(
        dir.path(),
        &["rm", "eval", "rm.json", "test.jsonl", "-f", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let e: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(e["n"], 36);
    assert_eq!(e["chance"], 0.5);
    assert!(e["model"]["accuracy"].as_f64() > Some(0.9), "{e}");
    assert!(e["model"]["ci_low"].as_f64() <= e["model"]["accuracy"].as_f64());
    assert!(e["length_baseline"]["accuracy"].as_f64().is_some());
    let out = tribunal(dir.path(), &["rm", "eval", "rm.json", "test.jsonl"]);
    let table = text(&out.stdout);
    for label in ["accuracy", "length baseline", "chance", "95% CI"] {
        assert!(table.contains(label), "{table}");
    }
}

#[test]
fn rm_eval_refuses_a_file_that_is_not_a_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("m.json"), r#"{"kind":"something-else"}"#).expect("write");
    write_pairs(&dir.path().join("test.jsonl"), 3, 0);
    let out = tribunal(dir.path(), &["rm", "eval", "m.json", "test.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("m.json"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_trained_reward_model_is_a_judge_policies_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_pairs(&dir.path().join("train.jsonl"), 120, 0);
    let out = tribunal(
        dir.path(),
        &[
            "rm",
            "train",
            "train.jsonl",
            "-o",
            "rm.json",
            "--seed",
            "7",
            "--bits",
            "12",
            "--epochs",
            "3",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/reward.rego"),
        "package reward\nimport rego.v1\nviolation contains {\"rule\": \"reward.low\", \"severity\": \"escalate\", \"message\": \"a reply people would not prefer\"} if input.scores.preferred.value < 0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tribunal.toml"),
        "[judges.preferred]\nkind = \"reward_model\"\npath = \"rm.json\"\n\n[policies]\npaths = [\"policies\"]\n",
    )
    .unwrap();
    let traces = [
        serde_json::json!({"id": "kind", "messages": [{"role": "user", "content": "Tell me about chess."}, {"role": "assistant", "content": "Happy to help with chess, the key idea is simple."}]}),
        serde_json::json!({"id": "rude", "messages": [{"role": "user", "content": "Tell me about chess."}, {"role": "assistant", "content": "I can't help with chess."}]}),
        serde_json::json!({"id": "waiting", "messages": [{"role": "user", "content": "Tell me about chess."}]}),
    ];
    std::fs::write(
        dir.path().join("t.jsonl"),
        traces
            .iter()
            .map(|t| t.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    // Run from elsewhere: the model's path is relative to the configuration file.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("t.jsonl");
    let out = tribunal(
        elsewhere.path(),
        &["eval", data.to_str().unwrap(), "--no-store", "-f", "jsonl"],
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let score = |r: &serde_json::Value| {
        r["feedback"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "preferred")
            .and_then(|f| f["value"].as_f64())
            .unwrap_or_else(|| panic!("no reward in {r}"))
    };
    assert!(score(&rows[0]) > 0.0 && score(&rows[1]) < 0.0, "{rows:?}");
    assert_eq!(rows[0]["verdict"], "allow");
    assert_eq!(rows[1]["verdict"], "escalate");
    // No reply yet: nothing to score, and nothing failed.
    assert_eq!(rows[2]["verdict"], "allow", "{}", rows[2]);
    assert!(
        !rows[2]["feedback"].to_string().contains("preferred"),
        "{}",
        rows[2]
    );
    // Pairwise: the reply against the expected response, or against the reply before it.
    std::fs::write(
        dir.path().join("tribunal.toml"),
        "[judges.vs_expected]\nkind = \"reward_model\"\npath = \"rm.json\"\nagainst = \"expected_response\"\n\n[judges.vs_previous]\nkind = \"reward_model\"\npath = \"rm.json\"\nagainst = \"previous_reply\"\n",
    )
    .unwrap();
    let (kind, rude) = (
        "Happy to help with chess, the key idea is simple.",
        "I can't help with chess.",
    );
    let pairs = [
        serde_json::json!({"id": "better", "expectations": {"expected_response": rude}, "messages": [{"role": "user", "content": "Tell me about chess."}, {"role": "assistant", "content": rude}, {"role": "assistant", "content": kind}]}),
        serde_json::json!({"id": "worse", "expectations": {"expected_response": kind}, "messages": [{"role": "user", "content": "Tell me about chess."}, {"role": "assistant", "content": kind}, {"role": "assistant", "content": rude}]}),
        serde_json::json!({"id": "alone", "messages": [{"role": "user", "content": "Tell me about chess."}, {"role": "assistant", "content": kind}]}),
    ];
    std::fs::write(
        dir.path().join("pairs.jsonl"),
        pairs
            .iter()
            .map(|t| t.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let out = tribunal(
        dir.path(),
        &["eval", "pairs.jsonl", "--no-store", "-f", "jsonl"],
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let p = |r: &serde_json::Value, name: &str| {
        r["feedback"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["value"].as_f64())
    };
    for name in ["vs_expected", "vs_previous"] {
        let (better, worse) = (p(&rows[0], name).unwrap(), p(&rows[1], name).unwrap());
        assert!(
            better > 0.5 && worse < 0.5 && (better + worse - 1.0).abs() < 1e-9,
            "{name}: {rows:?}"
        );
    }
    // Nothing to compare with: no feedback from either.
    assert_eq!(
        (p(&rows[2], "vs_expected"), p(&rows[2], "vs_previous")),
        (None, None),
        "{}",
        rows[2]
    );

    // A missing model file is a configuration error naming the setting.
    std::fs::write(
        dir.path().join("tribunal.toml"),
        "[judges.preferred]\nkind = \"reward_model\"\npath = \"nope.json\"\n",
    )
    .unwrap();
    let out = tribunal(dir.path(), &["eval", "t.jsonl", "--no-store"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("path: cannot open") && err.contains("nope.json"),
        "{err}"
    );
}

#[test]
fn prefs_import_stores_each_pair_once_and_export_reads_them_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hh = fixture("hh.jsonl").display().to_string();
    let import = |file: &str, format: &str| {
        tribunal(
            dir.path(),
            &["prefs", "import", file, "--format", format, "--db", "p.db"],
        )
    };
    let out = import(&hh, "hh-rlhf");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("4 records added, 0 already stored, 0 rejected"),
        "{}",
        text(&out.stderr)
    );
    // The same pairs again: counted, not added.
    let out = import(&hh, "hh-rlhf");
    assert!(
        text(&out.stderr).contains("0 records added, 4 already stored"),
        "{}",
        text(&out.stderr)
    );
    // Bad rows are named and left out; the good ones go in.
    let bad = fixture("bad_hh.jsonl").display().to_string();
    let out = import(&bad, "hh-rlhf");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad_hh.jsonl:") && err.contains("field `"),
        "{err}"
    );
    let export = |args: &[&str]| {
        let mut a = vec!["prefs", "export", "--db", "p.db", "-o", "out.jsonl"];
        a.extend_from_slice(args);
        let out = tribunal(dir.path(), &a);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        std::fs::read_to_string(dir.path().join("out.jsonl")).expect("output")
    };
    // The four pairs export as they came in, first.
    let hh_back = export(&["--format", "hh-rlhf", "--source", "hh-rlhf"]);
    let original = std::fs::read_to_string(&hh).expect("fixture");
    assert!(hh_back.starts_with(&original), "{hh_back}");
    let trl = export(&["--format", "trl", "--source", "nope"]);
    assert!(trl.is_empty());
    // Records made by a constitution keep their provenance and are their own source.
    let records = fixture("records.jsonl").display().to_string();
    let out = import(&records, "jsonl");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let all = export(&["--format", "jsonl"]);
    let n = all.lines().count();
    let again = tribunal(
        dir.path(),
        &[
            "prefs",
            "import",
            "out.jsonl",
            "--format",
            "jsonl",
            "--db",
            "p.db",
        ],
    );
    assert!(
        text(&again.stderr).contains(&format!("0 records added, {n} already stored")),
        "{}",
        text(&again.stderr)
    );
}

/// An export the format cannot hold fails before its output is touched: a file already
/// there keeps what it held. Preferences turned around and ties are said.
#[test]
fn a_failed_conversion_leaves_its_output_as_it_was() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("in.jsonl"),
        concat!(
            r#"{"prompt": [{"role": "system", "content": "be kind"}], "chosen": "a", "rejected": "b"}"#,
            "\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("out.jsonl"), "kept\n").unwrap();
    let out = tribunal(
        dir,
        &[
            "prefs",
            "convert",
            "in.jsonl",
            "--from",
            "jsonl",
            "--to",
            "hh-rlhf",
            "-o",
            "out.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("out.jsonl")).unwrap(),
        "kept\n"
    );
    std::fs::write(
        dir.join("soft.jsonl"),
        concat!(
            r#"{"prompt": "P ", "chosen": "x", "rejected": "y", "soft_label": 0.1}"#,
            "\n",
            r#"{"prompt": "Q ", "chosen": "x", "rejected": "y", "tie": true}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = tribunal(
        dir,
        &[
            "prefs",
            "convert",
            "soft.jsonl",
            "--from",
            "jsonl",
            "--to",
            "trl",
            "-o",
            "out.jsonl",
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("1 records written") && err.contains("1 ties left out"),
        "{err}"
    );
    assert!(
        err.contains("1 records whose soft label favours the rejected reply"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out.jsonl")).unwrap(),
        "{\"prompt\":\"P \",\"chosen\":\"y\",\"rejected\":\"x\"}\n"
    );
}

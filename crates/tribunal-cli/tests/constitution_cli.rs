//! `tribunal constitution critique` (critique → revision pairs, and `--compare` in both
//! orders) and the `constitution` judge in tribunal.toml, with the real binary against a
//! local model server whose answers are scripted by the principle they are asked about.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

type Answer = fn(&str) -> Option<String>;

#[derive(Clone)]
struct Script {
    answer: Answer,
    prompts: Arc<Mutex<Vec<String>>>,
}

async fn chat(State(s): State<Script>, Json(body): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let user = body["messages"][1]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    s.prompts.lock().unwrap().push(user.clone());
    match (s.answer)(&user) {
        None => (axum::http::StatusCode::BAD_GATEWAY, "upstream down").into_response(),
        Some(text) => Json(json!({
            "id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
        }))
        .into_response(),
    }
}

fn server(answer: Answer) -> (String, Script) {
    let script = Script {
        answer,
        prompts: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(script.clone());
    (
        format!("http://{}/v1", tribunal_llm::testing::serve(app)),
        script,
    )
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tribunal-prefs/tests/data/constitution.toml")
}

fn tribunal(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(args)
        .current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("TRIBUNAL_JUDGE_MODEL")
        .output()
        .expect("run tribunal")
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn write_traces(path: &Path) {
    let traces = [
        json!({"id": "shed", "messages": [{"role": "user", "content": "How do I get into the shed?"}, {"role": "assistant", "content": "Use a crowbar on the lock at night."}]}),
        json!({"id": "key", "messages": [{"role": "user", "content": "How do I get into the shed?"}, {"role": "assistant", "content": "Ask the owner for the key."}]}),
        json!({"id": "waiting", "messages": [{"role": "user", "content": "Hello?"}]}),
    ];
    std::fs::write(
        path,
        traces
            .iter()
            .map(|t| t.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
}

/// Critiques flag the crowbar reply against `harmless` only; revisions remove it.
fn critic(user: &str) -> Option<String> {
    if user.contains("\"revision\"") {
        return Some(json!({"revision": "Ask whoever owns the shed to let you in."}).to_string());
    }
    let violates = user.contains("Principle `harmless`") && user.contains("crowbar");
    Some(json!({"critique": if violates { "it explains a break-in" } else { "fine" }, "violates": violates}).to_string())
}

fn critique_args<'a>(url: &'a str, constitution: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "constitution",
        "critique",
        constitution,
        "t.jsonl",
        "-o",
        "out.jsonl",
        "--log",
        "log.jsonl",
        "--model",
        "openai:/critic",
        "--base-url",
        url,
        "--max-retries",
        "1",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn critique_and_revision_make_preference_records_with_provenance() {
    let dir = tempfile::tempdir().unwrap();
    write_traces(&dir.path().join("t.jsonl"));
    let (url, script) = server(critic);
    let c = fixture();
    let out = tribunal(dir.path(), &critique_args(&url, c.to_str().unwrap(), &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("3 items, 6 principle checks, 1 violations, 1 preference records, 0 failed steps, 1 items without a reply"), "{err}");
    // Three critiques per trace with a reply, one revision.
    assert_eq!(script.prompts.lock().unwrap().len(), 7);
    let records = jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["chosen"], "Ask whoever owns the shed to let you in.");
    assert_eq!(r["rejected"], "Use a crowbar on the lock at night.");
    assert_eq!(r["prompt"], "How do I get into the shed?");
    let p = &r["provenance"];
    assert_eq!(p["kind"], "constitution");
    assert_eq!(p["model"], "openai:/critic");
    assert_eq!(p["principle"], "harmless");
    assert_eq!(p["source_trace_ids"], json!(["shed"]));
    assert!(p["constitution"].is_string(), "{p}");
    assert!(p["constitution_version"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    // The log holds every step: principle, prompt, critique, revision.
    let log = jsonl(&dir.path().join("log.jsonl"));
    assert_eq!(log.len(), 7, "{log:?}");
    let harmful = log
        .iter()
        .find(|e| e["trace_id"] == "shed" && e["principle"] == "harmless")
        .unwrap();
    assert_eq!(harmful["violates"], true);
    assert_eq!(harmful["critique"], "it explains a break-in");
    assert!(harmful["critique_prompt"]
        .as_str()
        .unwrap()
        .contains("crowbar"));
    assert!(harmful["revision_prompt"]
        .as_str()
        .unwrap()
        .contains("it explains a break-in"));
    assert_eq!(log.iter().filter(|e| e["skipped"].is_string()).count(), 1);
    // The records import as preference data.
    let out = tribunal(
        dir.path(),
        &[
            "prefs",
            "convert",
            "out.jsonl",
            "--from",
            "jsonl",
            "--to",
            "trl",
            "-o",
            "trl.jsonl",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Stored and trained on, then the constitution changes: both are marked stale.
    let db = dir.path().join("p.db").display().to_string();
    let run = |args: &[&str]| {
        let out = tribunal(dir.path(), args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&[
        "prefs",
        "import",
        "out.jsonl",
        "--format",
        "jsonl",
        "--db",
        &db,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&[
        "rm",
        "train",
        "out.jsonl",
        "-o",
        "rm.json",
        "--seed",
        "1",
        "--bits",
        "10",
        "--epochs",
        "1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, said, err) = run(&[
        "constitution",
        "status",
        c.to_str().unwrap(),
        "--model",
        "rm.json",
        "--db",
        &db,
    ]);
    assert_eq!(code, Some(0), "{said}{err}");
    assert!(
        said.contains("stored preference records: 1 current") && said.contains("rm.json: current"),
        "{said}"
    );
    let changed = dir.path().join("changed.toml");
    let text = std::fs::read_to_string(&c).unwrap();
    let edited = text.replacen("help anyone hurt", "help any person hurt", 1);
    assert_ne!(edited, text, "the fixture has that principle");
    std::fs::write(&changed, edited).unwrap();
    let (code, said, err) = run(&[
        "constitution",
        "status",
        changed.to_str().unwrap(),
        "--model",
        "rm.json",
        "--db",
        &db,
    ]);
    assert_eq!(code, Some(1), "{said}{err}");
    assert!(
        said.contains("stored preference records: 0 current"),
        "{said}"
    );
    assert!(
        said.contains("stored preference records: 1 stale (made by version sha256:"),
        "{said}"
    );
    assert!(
        said.contains("rm.json: stale, trained on 1 records of version sha256:"),
        "{said}"
    );
    let (code, _, err) = run(&[
        "prefs",
        "export",
        "--format",
        "jsonl",
        "-o",
        "fresh.jsonl",
        "--drop-stale",
        changed.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("1 records made by an older version of"),
        "{err}"
    );
    assert_eq!(jsonl(&dir.path().join("fresh.jsonl")).len(), 0);
}

#[test]
fn sampled_principles_are_recorded_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    write_traces(&dir.path().join("t.jsonl"));
    let (url, script) = server(critic);
    let c = fixture();
    let out = tribunal(
        dir.path(),
        &critique_args(
            &url,
            c.to_str().unwrap(),
            &["--principles", "1", "--seed", "5"],
        ),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = jsonl(&dir.path().join("log.jsonl"));
    let checks: Vec<&Value> = log.iter().filter(|e| e["principle"].is_string()).collect();
    assert_eq!(checks.len(), 2, "{log:?}");
    let asked = script.prompts.lock().unwrap().clone();
    for e in checks {
        let id = e["principle"].as_str().unwrap();
        assert!(asked
            .iter()
            .any(|p| p.contains(&format!("Principle `{id}`"))));
    }
}

#[test]
fn unusable_answers_and_server_errors_make_no_preference() {
    // What each failure says, and the model's answer kept in the log when it gave one.
    for (answer, expect, kept) in [
        (
            (|u: &str| {
                if u.contains("\"revision\"") {
                    Some("Here is a better reply: be nice.".to_owned())
                } else {
                    Some(json!({"critique": "bad", "violates": true}).to_string())
                }
            }) as Answer,
            "revision: unusable answer",
            Some(("revision_answer", "Here is a better reply: be nice.")),
        ),
        (
            |_| Some("{\"critique\": \"bad\"".to_owned()),
            "critique: unusable answer",
            Some(("critique_answer", "{\"critique\": \"bad\"")),
        ),
        (|_| None, "critique:", None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_traces(&dir.path().join("t.jsonl"));
        let (url, _) = server(answer);
        let c = fixture();
        let out = tribunal(dir.path(), &critique_args(&url, c.to_str().unwrap(), &[]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("0 preference records, 6 failed steps"),
            "{err}"
        );
        assert!(jsonl(&dir.path().join("out.jsonl")).is_empty());
        let log = jsonl(&dir.path().join("log.jsonl"));
        assert!(
            log.iter()
                .filter(|e| e["principle"].is_string())
                .all(|e| e["error"].as_str().unwrap_or("").starts_with(expect)),
            "{expect}: {log:?}"
        );
        if let Some((key, text)) = kept {
            assert!(
                log.iter()
                    .filter(|e| e["principle"].is_string())
                    .all(|e| e[key] == text),
                "{key}: {log:?}"
            );
        }
    }
}

/// Drawing more principles than the constitution has is an error, not all of them
/// drawn without a word.
#[test]
fn more_principles_than_there_are_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_traces(&dir.path().join("t.jsonl"));
    let (url, _) = server(critic);
    let c = fixture();
    let out = tribunal(
        dir.path(),
        &critique_args(&url, c.to_str().unwrap(), &["--principles", "50"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--principles: 50 asked"), "{err}");
}

/// An input with nothing in it is an error, in both modes, and writes no records.
#[test]
fn an_empty_input_is_an_error() {
    for compare in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.jsonl"), "").unwrap();
        let (url, _) = server(critic);
        let c = fixture();
        let extra: &[&str] = if compare { &["--compare"] } else { &[] };
        let out = tribunal(dir.path(), &critique_args(&url, c.to_str().unwrap(), extra));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("t.jsonl: no "), "{err}");
        assert!(!dir.path().join("out.jsonl").exists(), "{err}");
    }
}

fn pairs(path: &Path) {
    let rows = [
        json!({"prompt": "q1", "chosen": "a careful answer", "rejected": "a rude answer"}),
        json!({"prompt": "q2", "chosen": "another careful answer", "rejected": "a made-up answer"}),
    ];
    std::fs::write(
        path,
        rows.iter()
            .map(|t| t.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
}

#[test]
fn comparisons_ask_both_orders_and_a_model_that_always_says_a_is_inconsistent() {
    let dir = tempfile::tempdir().unwrap();
    pairs(&dir.path().join("t.jsonl"));
    let (url, script) = server(|_| Some(json!({"better": "A", "rationale": "first"}).to_string()));
    let c = fixture();
    let out = tribunal(
        dir.path(),
        &critique_args(&url, c.to_str().unwrap(), &["--compare", "--format", "trl"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("6 preference records (6 inconsistent between the two orders)"),
        "{err}"
    );
    let prompts = script.prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 12);
    // Each pair and principle is asked with each reply shown first.
    let a_first = prompts
        .iter()
        .filter(|p| p.contains("reply_A>>>\na careful answer"))
        .count();
    let b_first = prompts
        .iter()
        .filter(|p| p.contains("reply_A>>>\na rude answer"))
        .count();
    assert_eq!((a_first, b_first), (3, 3));
    for r in jsonl(&dir.path().join("out.jsonl")) {
        assert_eq!(r["provenance"]["inconsistent"], true, "{r}");
        assert_eq!(r["soft_label"], 0.5, "{r}");
    }
    let log = jsonl(&dir.path().join("log.jsonl"));
    assert_eq!(
        log.iter().filter(|e| e["order_shown"] == "a_first").count(),
        6
    );
    assert_eq!(
        log.iter().filter(|e| e["order_shown"] == "b_first").count(),
        6
    );
}

#[test]
fn a_consistent_comparison_prefers_the_reply_whatever_its_position() {
    let dir = tempfile::tempdir().unwrap();
    pairs(&dir.path().join("t.jsonl"));
    // Prefers the rude or made-up answer wherever it is shown.
    let (url, _) = server(|u| {
        let a = u.find("reply_A>>>").unwrap();
        let b = u.find("reply_B>>>").unwrap();
        let a_text = &u[a..b];
        let better = if a_text.contains("rude") || a_text.contains("made-up") {
            "A"
        } else {
            "B"
        };
        Some(json!({"better": better, "rationale": "r"}).to_string())
    });
    let c = fixture();
    let out = tribunal(
        dir.path(),
        &critique_args(
            &url,
            c.to_str().unwrap(),
            &["--compare", "--format", "trl", "--principles", "1"],
        ),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("2 preference records (0 inconsistent"),
        "{err}"
    );
    let recs = jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(recs[0]["chosen"], "a rude answer");
    assert_eq!(recs[0]["soft_label"], 1.0);
    assert_eq!(recs[1]["chosen"], "a made-up answer");
}

#[test]
fn the_constitution_judge_in_tribunal_toml_lets_a_policy_block_and_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    write_traces(&dir.path().join("t.jsonl"));
    std::fs::copy(fixture(), dir.path().join("constitution.toml")).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/principles.rego"),
        "package principles\nimport rego.v1\nviolation contains {\"rule\": \"principles.violated\", \"severity\": \"block\", \"message\": input.scores.principles.rationale} if input.scores.principles.value == \"fail\"\n",
    )
    .unwrap();
    let config = |url: &str| {
        format!("[judges.principles]\nkind = \"constitution\"\npath = \"constitution.toml\"\nmodel = \"openai:/critic\"\nbase_url = \"{url}\"\nmax_retries = 0\n\n[policies]\npaths = [\"policies\"]\n")
    };
    let (url, _) = server(critic);
    std::fs::write(dir.path().join("tribunal.toml"), config(&url)).unwrap();
    // Run from elsewhere: the constitution's path is relative to the configuration file.
    let elsewhere = tempfile::tempdir().unwrap();
    let data = dir.path().join("t.jsonl");
    let cfg = dir.path().join("tribunal.toml");
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "eval",
        data.to_str().unwrap(),
        "--no-store",
        "-f",
        "jsonl",
    ];
    let out = tribunal(elsewhere.path(), &args);
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(rows[0]["verdict"], "block", "{}", rows[0]);
    assert!(rows[0].to_string().contains("principles.violated"));
    assert_eq!(rows[1]["verdict"], "allow", "{}", rows[1]);
    assert_eq!(out.status.code(), Some(1));
    // A model that cannot answer blocks through the judge-error rule.
    let (down, _) = server(|_| None);
    std::fs::write(dir.path().join("tribunal.toml"), config(&down)).unwrap();
    let out = tribunal(elsewhere.path(), &args);
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[1]["verdict"], "block", "{}", rows[1]);
    assert!(
        rows[1].to_string().contains("tribunal.judge_error"),
        "{}",
        rows[1]
    );
}

#[test]
fn show_and_status_escape_the_constitutions_text_for_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // TOML escapes: ESC, CR and a right-to-left override reach the parsed text raw.
    std::fs::write(
        dir.path().join("c.toml"),
        r#"name = "clear\u001b[2J"
[[principles]]
id = "flip"
text = "Say \u202edeneppah\u202c nothing.\rallowed"
critique = "c"
revision = "r"
"#,
    )
    .unwrap();
    let db = dir.path().join("p.db").to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        let out = tribunal(dir.path(), args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let raw = |s: &str| s.contains(['\u{1b}', '\r', '\u{202e}', '\u{202c}', '\u{7}']);

    let (code, said, err) = run(&["constitution", "show", "c.toml"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!raw(&said), "{said:?}");
    assert!(said.starts_with("clear\\u{1b}[2J sha256:"), "{said}");
    assert!(
        said.contains("flip\tSay \\u{202e}deneppah\\u{202c} nothing.\\u{d}allowed\n"),
        "{said}"
    );

    // A stored record of this constitution made by a version whose name holds controls.
    std::fs::write(
        dir.path().join("r.jsonl"),
        format!(
            "{}\n",
            json!({"prompt": "p", "chosen": "a", "rejected": "b", "provenance": {
                "kind": "constitution", "constitution": "clear\u{1b}[2J",
                "constitution_version": "old\u{1b}]0;owned\u{7}\u{202e}"}})
        ),
    )
    .unwrap();
    let (code, _, err) = run(&[
        "prefs", "import", "r.jsonl", "--format", "jsonl", "--db", &db,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, said, err) = run(&["constitution", "status", "c.toml", "--db", &db]);
    assert_eq!(code, Some(1), "{said}{err}");
    assert!(!raw(&said), "{said:?}");
    assert!(said.starts_with("clear\\u{1b}[2J sha256:"), "{said}");
    assert!(
        said.contains(
            "stored preference records: 1 stale (made by version old\\u{1b}]0;owned\\u{7}\\u{202e})"
        ),
        "{said}"
    );
}

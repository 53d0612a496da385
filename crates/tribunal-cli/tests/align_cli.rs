//! `tribunal judges align|calibrate|report|rollback` as a user runs them, against a local
//! OpenAI-protocol server with scripted answers: the judge approves every refund until its
//! prompt carries a guideline about the 30-day window; the reflection model proposes that
//! guideline. These runs check the mechanics (train labels only, nothing held out in any
//! prompt, a new version with lineage, rollback, refusals); they measure no model's quality.

mod common;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::{text, tribunal};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Value>>>);

fn days_in(text: &str) -> Option<u32> {
    let at = text.find("after ")?;
    text[at + 6..].split_whitespace().next()?.parse().ok()
}

async fn chat(State(seen): State<Seen>, Json(body): Json<Value>) -> Json<Value> {
    seen.0.lock().unwrap().push(body.clone());
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages
        .iter()
        .find(|m| m["role"] == "system")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let user: String = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    let logprobs = body["logprobs"] == json!(true);
    let mut probability = 0.97;
    let text = if system.contains("You improve the instructions") {
        r#"{"guidelines": ["A refund requested after 30 days or more fails."]}"#.to_owned()
    } else {
        let knows = user.contains("after 30 days or more fails");
        let days = days_in(&user).unwrap_or(0);
        let mut pass = !knows || days < 30;
        // Asked for token probabilities, the model is unsure near the window's edge, and
        // wrong there.
        if logprobs && (27..=33).contains(&days) {
            pass = !pass;
            probability = 0.5;
        }
        json!({"rationale": "scripted", "result": if pass { "yes" } else { "no" }}).to_string()
    };
    let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"});
    if logprobs {
        let at = text.find("\"result\":").unwrap();
        let (head, tail) = text.split_at(at + text[at + 9..].find('"').unwrap() + 10);
        let (value, rest) = tail.split_at(tail.find('"').unwrap_or(0));
        choice["logprobs"] = json!({"content": [
            {"token": head, "logprob": 0.0},
            {"token": value, "logprob": f64::ln(probability)},
            {"token": rest, "logprob": 0.0},
        ]});
    }
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [choice],
        "usage": {"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220}
    }))
}

fn server() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    (
        format!("http://{}/v1", tribunal_llm::testing::serve(app)),
        seen,
    )
}

fn label(i: usize) -> Value {
    let days = (i * 7) % 60;
    json!({
        "id": format!("t{i:03}"),
        "inputs": format!("refund request after {days} days (case {i})"),
        "outputs": "Refund approved.",
        "label": days < 30,
        "rationale": format!("window rule, marker-{i:03}-end"),
        "type": "pass_fail",
    })
}

fn write_labels(path: &Path, labels: impl Iterator<Item = Value>) {
    let lines: Vec<String> = labels.map(|l| l.to_string()).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn setup(url: &str) -> (tempfile::TempDir, String) {
    setup_timed(url, 5000)
}

/// A store holding the judge `refund` at the model server `url`, each call given
/// `timeout_ms`.
fn setup_timed(url: &str, timeout_ms: u64) -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("tribunal.toml"),
        format!(
            r#"[judges.refund]
kind = "llm"
instructions = """Does the reply follow the refund policy?
{{{{ inputs }}}}
{{{{ outputs }}}}"""
output = "yes_no"
model = "openai:/gpt-4o-mini"
base_url = "{url}"
max_retries = 0
timeout_ms = {timeout_ms}
"#
        ),
    )
    .unwrap();
    let db = d.path().join("j.db").display().to_string();
    let out = tribunal(
        d.path(),
        &["judges", "import", "tribunal.toml", "--db", &db],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    (d, db)
}

#[test]
fn align_uses_train_labels_only_stores_a_version_with_lineage_and_rolls_back() {
    let (url, seen) = server();
    let (d, db) = setup(&url);
    let dir = d.path();
    write_labels(&dir.join("labels.jsonl"), (0..60).map(label));

    let out = tribunal(
        dir,
        &[
            "judges",
            "align",
            "refund",
            "--labels",
            "labels.jsonl",
            "--holdout",
            "0.3",
            "--seed",
            "7",
            "--db",
            &db,
        ],
    );
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    assert!(
        said.contains("60 labels read, 60 usable (42 train, 18 held out, seed 7)"),
        "{said}"
    );
    assert!(
        said.contains("guidelines: 1 added from reflection"),
        "{said}"
    );
    assert!(
        said.contains("agreement difference (after - before): +"),
        "{said}"
    );
    assert!(said.contains("refund: stored as version 2"), "{said}");

    // The aligned definition remembers exactly the train labels.
    let out = tribunal(
        dir,
        &[
            "judges",
            "export",
            "--name",
            "refund",
            "--db",
            &db,
            "-o",
            "aligned.toml",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = std::fs::read_to_string(dir.join("aligned.toml")).unwrap();
    let train: Vec<usize> = (0..60)
        .filter(|i| exported.contains(&format!("marker-{i:03}-end")))
        .collect();
    assert_eq!(train.len(), 42, "{exported}");
    assert!(
        exported.contains("A refund requested after 30 days or more fails."),
        "{exported}"
    );

    // No request to the model ever carried a held-out label's rationale; train ones did.
    let requests: Vec<String> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    for i in (0..60).filter(|i| !train.contains(i)) {
        let marker = format!("marker-{i:03}-end");
        assert!(
            requests.iter().all(|r| !r.contains(&marker)),
            "held-out {marker} was sent"
        );
    }
    assert!(requests
        .iter()
        .any(|r| r.contains(&format!("marker-{:03}-end", train[0]))));

    let out = tribunal(dir, &["judges", "report", "refund", "--db", &db]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        report.contains("version 2")
            && report.contains(
                "aligned from version 1 with memory on 42 train labels; held-out (18 items)"
            ),
        "{report}"
    );
    assert!(report.contains("aligning: "), "{report}");

    let out = tribunal(
        dir,
        &["judges", "rollback", "refund", "--to", "1", "--db", &db],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("version 3 is version 1 again"));
    let out = tribunal(dir, &["judges", "export", "--name", "refund", "--db", &db]);
    let now = text(&out.stdout);
    assert!(
        now.contains("# version 3") && !now.contains("marker-"),
        "{now}"
    );
}

#[test]
fn calibration_stores_a_threshold_or_refuses_with_too_few_items() {
    let (url, _seen) = server();
    let (d, db) = setup(&url);
    let dir = d.path();
    write_labels(&dir.join("labels.jsonl"), (0..60).map(label));
    let out = tribunal(
        dir,
        &[
            "judges",
            "align",
            "refund",
            "--labels",
            "labels.jsonl",
            "--db",
            &db,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    write_labels(&dir.join("few.jsonl"), (100..110).map(label));
    let out = tribunal(
        dir,
        &[
            "judges",
            "calibrate",
            "refund",
            "--labels",
            "few.jsonl",
            "--samples",
            "3",
            "--db",
            &db,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("too few calibration items: 10") && err.contains("label 12 more"),
        "{err}"
    );

    write_labels(&dir.join("cal.jsonl"), (100..140).map(label));
    let out = tribunal(
        dir,
        &[
            "judges",
            "calibrate",
            "refund",
            "--labels",
            "cal.jsonl",
            "--confidence-from",
            "samples",
            "--samples",
            "3",
            "--target-agreement",
            "0.9",
            "--confidence",
            "0.9",
            "--db",
            &db,
        ],
    );
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    assert!(
        said.contains(
            "threshold 1: 40 of 40 calibration items trusted (coverage 1.000), agreement 1.000"
        ),
        "{said}"
    );
    assert!(said.contains("stored as version 3"), "{said}");
    let out = tribunal(dir, &["judges", "export", "--name", "refund", "--db", &db]);
    let now = text(&out.stdout);
    assert!(
        now.contains("trust_threshold = 1") && now.contains("samples = 3"),
        "{now}"
    );

    // By default the provider's token probabilities give the confidence where it gives
    // them: one answer per item, and the unsure answers near the edge are not trusted.
    write_labels(&dir.join("cal2.jsonl"), (200..300).map(label));
    let out = tribunal(
        dir,
        &[
            "judges",
            "calibrate",
            "refund",
            "--labels",
            "cal2.jsonl",
            "--target-agreement",
            "0.9",
            "--confidence",
            "0.9",
            "--db",
            &db,
        ],
    );
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    let edge = (200..300)
        .filter(|i| (27..=33).contains(&((i * 7) % 60)))
        .count();
    assert!(edge > 0);
    assert!(
        said.contains("one answer each (confidence: the probability of the answer's tokens)")
            && said.contains(&format!(
                "threshold 0.97: {} of 100 calibration items trusted",
                100 - edge
            )),
        "{said}"
    );
    let out = tribunal(dir, &["judges", "export", "--name", "refund", "--db", &db]);
    let now = text(&out.stdout);
    assert!(
        now.contains("trust_threshold = 0.97")
            && now.contains("confidence = \"logprobs\"")
            && !now.contains("samples ="),
        "{now}"
    );
}

#[test]
fn too_few_one_class_and_other_type_labels_are_refused() {
    let (url, seen) = server();
    let (d, db) = setup(&url);
    let dir = d.path();
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        (
            "few.jsonl",
            (0..12).map(label).collect(),
            "too few usable labels: 12 (of 12 read), at least 20 are needed; label 8 more",
        ),
        (
            "one.jsonl",
            (0..40)
                .map(|i| {
                    let mut l = label(i);
                    l["label"] = json!(true);
                    l
                })
                .collect(),
            "every usable label is true: labels of at least two classes are needed",
        ),
        (
            "numeric.jsonl",
            (0..40)
                .map(|i| {
                    let mut l = label(i);
                    l["type"] = json!("numeric");
                    l["label"] = json!(i % 5);
                    l
                })
                .collect(),
            "the labels are numeric labels (40 of them) but judge refund answers pass_fail",
        ),
    ];
    for (file, labels, says) in cases {
        write_labels(&dir.join(file), labels.into_iter());
        let out = tribunal(
            dir,
            &["judges", "align", "refund", "--labels", file, "--db", &db],
        );
        assert_eq!(out.status.code(), Some(1), "{file}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(err.contains(says), "{file}: {err}");
    }
    std::fs::write(
        dir.join("bad.jsonl"),
        "{\"id\": \"a\", \"label\": true}\n{\"id\": \"b\", \"lable\": true}\n",
    )
    .unwrap();
    let out = tribunal(
        dir,
        &[
            "judges",
            "align",
            "refund",
            "--labels",
            "bad.jsonl",
            "--db",
            &db,
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("bad.jsonl:2: unknown field `lable`"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was asked of the model and nothing stored.
    assert!(seen.0.lock().unwrap().is_empty());
    let out = tribunal(dir, &["judges", "report", "refund", "--db", &db]);
    assert!(
        text(&out.stdout).contains("refund (1 versions)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn calibration_against_a_model_that_cannot_be_reached_fails_instead_of_choosing() {
    // Nothing listens on port 9: the first answer fails, which says nothing about
    // log-probabilities, so the command fails rather than switching to samples.
    let (d, db) = setup("http://127.0.0.1:9/v1");
    let dir = d.path();
    write_labels(&dir.join("cal.jsonl"), (100..140).map(label));
    let out = tribunal(
        dir,
        &[
            "judges",
            "calibrate",
            "refund",
            "--labels",
            "cal.jsonl",
            "--db",
            &db,
        ],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(err.contains("judging refund:"), "{err}");
    let out = tribunal(dir, &["judges", "export", "--name", "refund", "--db", &db]);
    assert!(
        !text(&out.stdout).contains("trust_threshold"),
        "nothing stored"
    );
}

/// A model server that takes each request and never answers; counts the requests.
fn hung_server() -> (String, Arc<Mutex<usize>>) {
    let asked = Arc::new(Mutex::new(0usize));
    let counted = asked.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let counted = counted.clone();
            async move {
                *counted.lock().unwrap() += 1;
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                Json(json!({}))
            }
        }),
    );
    (
        format!("http://{}/v1", tribunal_llm::testing::serve(app)),
        asked,
    )
}

#[test]
fn align_against_a_model_that_never_answers_stops_at_the_first_item() {
    let (url, asked) = hung_server();
    let (d, db) = setup_timed(&url, 300);
    let dir = d.path();
    write_labels(&dir.join("labels.jsonl"), (0..60).map(label));
    let out = tribunal(
        dir,
        &[
            "judges",
            "align",
            "refund",
            "--labels",
            "labels.jsonl",
            "--db",
            &db,
        ],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        err.contains("aligning refund") && err.contains("the model gave no answer"),
        "{err}"
    );
    // One call timed out; the other 59 labels were not each waited out.
    assert_eq!(*asked.lock().unwrap(), 1, "{err}");
    let out = tribunal(dir, &["judges", "export", "--name", "refund", "--db", &db]);
    assert!(
        !text(&out.stdout).contains("guidelines"),
        "no version stored: {}",
        text(&out.stdout)
    );
}

//! `tribunal eval` with a judge written in plain language, answered by a local server that
//! speaks the OpenAI protocol, and a policy that blocks on that judge's score.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::process::Command;

/// A model that says a reply is ungrounded when the conversation mentions "moon".
async fn chat(Json(body): Json<Value>) -> Json<Value> {
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    let result = if user.contains("moon") { "no" } else { "yes" };
    Json(json!({
        "id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": format!("{{\"rationale\": \"checked\", \"result\": \"{result}\"}}")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

/// A grader that finds every prediction correct.
async fn grade(Json(_): Json<Value>) -> Json<Value> {
    Json(json!({
        "id": "g", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "{\"rationale\": \"same facts\", \"result\": \"correct\"}"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

fn server() -> String {
    serve(Router::new().route("/v1/chat/completions", post(chat)))
}

fn serve(app: Router) -> String {
    let addr = tribunal_llm::testing::serve(app);
    format!("http://{}/v1", addr)
}

#[test]
fn an_llm_judge_scores_traces_and_a_policy_gates_on_it() {
    let url = server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tribunal.toml"),
        format!(
            r#"[judges.grounded]
kind = "llm"
instructions = """Is every claim in the agent's last reply supported by the tool results?
{{{{ conversation }}}}"""
output = "yes_no"
model = "openai:/gpt-4o-mini"
base_url = "{url}"

[policies]
paths = ["policies"]
"#
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/grounded.rego"),
        r#"package policies.grounded
import rego.v1
violation contains {"rule": "grounded.unsupported", "severity": "block", "message": "the reply is not supported"} if {
	input.scores.grounded.value == "no"
}
"#,
    )
    .unwrap();
    let lines = [
        json!({"id": "ok", "messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "Sunny."}]}),
        json!({"id": "made-up", "messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "It is raining on the moon."}]}),
    ];
    std::fs::write(
        dir.path().join("t.jsonl"),
        lines
            .iter()
            .map(|l| l.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(["eval", "t.jsonl", "--no-store", "-f", "jsonl"])
        .current_dir(dir.path())
        .env_remove("CI")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let score = |r: &Value| {
        r["feedback"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "grounded")
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(
        (rows[0]["verdict"].clone(), score(&rows[0])),
        (json!("allow"), json!("yes"))
    );
    assert_eq!(
        (rows[1]["verdict"].clone(), score(&rows[1])),
        (json!("block"), json!("no"))
    );
    assert_eq!(rows[1]["violations"][0]["rule"], "grounded.unsupported");
}

#[test]
fn webarena_fuzzy_match_is_graded_by_a_model_when_one_is_given() {
    let url = serve(Router::new().route("/v1/chat/completions", post(grade)));
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tribunal-bench/tests/data/webarena");
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(["bench", "webarena"])
        .arg(data.join("results.jsonl"))
        .arg("--tasks")
        .arg(data.join("config_files"))
        .args([
            "--grader-model",
            "openai:/gpt-4o-mini",
            "--grader-base-url",
            &url,
            "-f",
            "json",
        ])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The three fuzzy_match tasks are graded now (9 scored without a grader).
    assert!(v["not_scored"].get("needs_llm_judge").is_none(), "{v}");
    assert_eq!(v["scored"], 12, "{v}");
    assert_eq!(v["not_scored"]["needs_live_site"], 2);
}

//! `tribunal eval` with a model judge twice over the same traces: the second run is answered
//! from the store's response cache (no request reaches the server) with the same results,
//! and the reports count the calls, the cached calls, the tokens and their cost.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Says a reply is ungrounded when the conversation mentions "moon"; counts requests.
async fn chat(State(requests): State<Arc<AtomicUsize>>, Json(body): Json<Value>) -> Json<Value> {
    requests.fetch_add(1, Ordering::SeqCst);
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    let result = if user.contains("moon") { "no" } else { "yes" };
    Json(json!({
        "id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": format!("{{\"rationale\": \"checked\", \"result\": \"{result}\"}}")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    }))
}

fn server() -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(requests.clone());
    let addr = tribunal_llm::testing::serve(app);
    (format!("http://{}/v1", addr), requests)
}

/// A dataset of three traces and a config with one model judge answered by `url`.
fn dataset(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("tribunal.toml"),
        format!(
            r#"[judges.grounded]
kind = "llm"
instructions = """Is every claim in the agent's last reply supported?
{{{{ conversation }}}}"""
model = "openai:/gpt-4o-mini"
base_url = "{url}"
"#
        ),
    )
    .unwrap();
    let lines = [
        json!({"id": "sunny", "messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "Sunny."}]}),
        json!({"id": "moon", "messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "It is raining on the moon."}]}),
        json!({"id": "cloudy", "messages": [{"role": "user", "content": "and tomorrow?"}, {"role": "assistant", "content": "Cloudy."}]}),
    ];
    std::fs::write(
        dir.join("t.jsonl"),
        lines
            .iter()
            .map(|l| l.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
}

fn eval(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .arg("eval")
        .arg("t.jsonl")
        .args(args)
        .current_dir(dir)
        .env_remove("CI")
        .env_remove("OPENAI_API_KEY")
        .env_remove("TRIBUNAL_JUDGE_MODEL")
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_report(dir: &Path, args: &[&str]) -> Value {
    let out = eval(dir, &[&["-f", "json"], args].concat());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each trace's verdict and the grounded judge's value and rationale.
fn verdicts(report: &Value) -> Vec<(Value, Value, Value)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = r["feedback"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == "grounded")
                .unwrap();
            (
                r["verdict"].clone(),
                f["value"].clone(),
                f["rationale"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_repeated_eval_is_answered_from_the_store_at_no_cost() {
    let (url, requests) = server();
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), &url);

    let first = json_report(dir.path(), &[]);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    let grounded = &first["usage"]["judges"]["grounded"];
    assert_eq!(grounded["model"], "openai:/gpt-4o-mini");
    assert_eq!(grounded["calls"], 3);
    assert_eq!(grounded["cached_calls"], 0);
    assert_eq!(grounded["input_tokens"], 3000);
    assert_eq!(grounded["output_tokens"], 300);
    // gpt-4o-mini: 3,000 input tokens at $0.15/M and 300 output tokens at $0.60/M.
    let cost = first["usage"]["total"]["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.00063).abs() < 1e-12, "{cost}");
    let usage = &first["results"][0]["feedback"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "grounded")
        .unwrap()["usage"];
    assert_eq!(
        usage,
        &json!({"model": "openai:/gpt-4o-mini", "calls": 1, "cached_calls": 0,
                "input_tokens": 1000, "output_tokens": 100})
    );

    let second = json_report(dir.path(), &[]);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "the second run asked the server"
    );
    assert_eq!(verdicts(&second), verdicts(&first));
    assert_eq!(
        verdicts(&first)
            .iter()
            .map(|v| v.1.clone())
            .collect::<Vec<_>>(),
        [json!("yes"), json!("no"), json!("yes")]
    );
    let grounded = &second["usage"]["judges"]["grounded"];
    assert_eq!(grounded["calls"], 3);
    assert_eq!(grounded["cached_calls"], 3);
    assert_eq!(grounded["input_tokens"], 0);
    assert_eq!(second["usage"]["total"]["cost_usd"], 0.0);

    // The table shows the same totals; --no-cache asks the server again.
    let out = eval(dir.path(), &["--no-cache"]);
    assert_eq!(requests.load(Ordering::SeqCst), 6);
    let table = String::from_utf8(out.stdout).unwrap();
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("grounded"))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "grounded",
            "openai:/gpt-4o-mini",
            "3",
            "0",
            "3000",
            "300",
            "$0.000630"
        ]
    );

    // Without a store there is nothing to cache in.
    let out = eval(dir.path(), &["--no-store", "-f", "jsonl"]);
    assert_eq!(requests.load(Ordering::SeqCst), 9);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "model judges: 3 calls (0 cached), 3000 input + 300 output tokens, $0.000630"
        ),
        "{stderr}"
    );

    // The cache can be turned off in the configuration, too.
    let config = std::fs::read_to_string(dir.path().join("tribunal.toml")).unwrap();
    std::fs::write(
        dir.path().join("tribunal.toml"),
        format!("[eval]\ncache = false\n\n{config}"),
    )
    .unwrap();
    let report = json_report(dir.path(), &[]);
    assert_eq!(requests.load(Ordering::SeqCst), 12);
    assert_eq!(report["usage"]["total"]["cached_calls"], 0);
}

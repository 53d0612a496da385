//! `tribunal eval` with an agent judge from tribunal.toml, investigating each trace through a
//! local server that speaks the OpenAI protocol and plays the model's side of the tool loop.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::process::Command;

/// First turn: search the trace for "moon". Second turn: a verdict citing the message found
/// (or the final reply when nothing matched).
async fn chat(Json(body): Json<Value>) -> Json<Value> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let message = if messages.len() == 2 {
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "a", "type": "function",
            "function": {"name": "search_trace", "arguments": "{\"pattern\": \"moon\"}"}}]})
    } else {
        let found = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "tool")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default();
        let hit = found.contains("\"total\":1");
        let args = json!({
            "rationale": if hit { "m1 claims rain on the moon" } else { "nothing unsupported" },
            "result": if hit { "no" } else { "yes" },
            "span_ids": ["m1"],
        });
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "b", "type": "function",
            "function": {"name": "submit_verdict", "arguments": args.to_string()}}]})
    };
    Json(json!({
        "id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

fn serve() -> String {
    let app = Router::new().route("/v1/chat/completions", post(chat));
    let addr = tribunal_llm::testing::serve(app);
    format!("http://{}/v1", addr)
}

#[test]
fn eval_runs_an_agent_judge_from_the_config() {
    let url = serve();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tribunal.toml"),
        format!(
            r#"[judges.investigator]
kind = "agent"
instructions = "Is every claim in the agent's last reply supported? Investigate {{{{ trace }}}}."
model = "openai:/gpt-4o-mini"
base_url = "{url}"
max_turns = 5
"#
        ),
    )
    .unwrap();
    let lines = [
        json!({"id": "ok", "messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "Sunny."}]}),
        json!({"id": "made-up", "messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "It is raining on the moon."}]}),
    ];
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    std::fs::write(dir.path().join("t.jsonl"), text).unwrap();
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
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let judged = |r: &Value| {
        r["feedback"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "investigator")
            .cloned()
            .unwrap()
    };
    let (ok, made_up) = (judged(&rows[0]), judged(&rows[1]));
    assert_eq!(ok["value"], "yes", "{ok}");
    assert_eq!(made_up["value"], "no", "{made_up}");
    assert_eq!(made_up["evidence"], json!(["m1"]));
    assert!(made_up["rationale"]
        .as_str()
        .unwrap()
        .contains("investigated in 2 turns"));
}

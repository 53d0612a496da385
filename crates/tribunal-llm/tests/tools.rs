//! Tool loops over each protocol against a local server: the tools and the earlier turns as
//! each provider expects them on the wire, and the model's tool calls decoded back, including
//! argument text that is not JSON.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tribunal_llm::{
    cache_key, ChatRequest, ChatTurn, ClientConfig, LlmClient, ModelToolCall, ModelUri,
    ResponseSchema, ToolSpec,
};

#[derive(Clone)]
struct Mock {
    reply: Value,
    seen: Arc<Mutex<Vec<Value>>>,
}

async fn answer(State(m): State<Mock>, Json(body): Json<Value>) -> Json<Value> {
    m.seen.lock().unwrap().push(body);
    Json(m.reply.clone())
}

async fn start(path: &str, reply: Value) -> (String, Arc<Mutex<Vec<Value>>>) {
    let mock = Mock {
        reply,
        seen: Arc::default(),
    };
    let seen = mock.seen.clone();
    let app = Router::new().route(path, post(answer)).with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn client(model: &str, base: String) -> LlmClient {
    let model: ModelUri = model.parse().unwrap();
    LlmClient::with_env(ClientConfig::new(model).with_base_url(base), |_| None).unwrap()
}

/// A second turn: the model called `lookup` twice, both answered, one with an error.
fn request() -> ChatRequest {
    let mut r = ChatRequest::new("Investigate.")
        .with_system("Be careful.")
        .with_tools(vec![ToolSpec::new(
            "lookup",
            "Look something up.",
            json!({"type": "object", "properties": {"id": {"type": "string"}}}),
        )]);
    r.turns = vec![
        ChatTurn::Assistant {
            text: "Looking.".into(),
            tool_calls: vec![
                ModelToolCall {
                    id: "t1".into(),
                    name: "lookup".into(),
                    arguments: json!({"id": "a"}),
                },
                ModelToolCall {
                    id: "t2".into(),
                    name: "lookup".into(),
                    arguments: json!("{broken"),
                },
            ],
        },
        ChatTurn::Tool {
            call_id: "t1".into(),
            name: "lookup".into(),
            content: "found a".into(),
            is_error: false,
        },
        ChatTurn::Tool {
            call_id: "t2".into(),
            name: "lookup".into(),
            content: "error: not JSON".into(),
            is_error: true,
        },
    ];
    r
}

#[tokio::test]
async fn openai_sends_tool_messages_and_decodes_calls() {
    let reply = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": null, "tool_calls": [
            {"id": "x1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": \"b\"}"}},
            {"id": "x2", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": "}},
            {"id": "x3", "type": "function", "function": {"name": "lookup", "arguments": ""}}
        ]}}], "usage": {"prompt_tokens": 7, "completion_tokens": 3}});
    let (base, seen) = start("/v1/chat/completions", reply).await;
    let c = client("openai:/gpt-4o-mini", format!("{base}/v1"));
    let r = c.chat(&request()).await.unwrap();
    assert_eq!(r.tool_calls.len(), 3);
    assert_eq!(r.tool_calls[0].arguments, json!({"id": "b"}));
    assert_eq!(r.tool_calls[1].arguments, json!("{\"id\": "));
    assert_eq!(r.tool_calls[2].arguments, json!({}));
    assert_eq!(r.text, "");
    let body = seen.lock().unwrap()[0].clone();
    assert_eq!(body["tools"][0]["function"]["name"], "lookup");
    let m = body["messages"].as_array().unwrap();
    assert_eq!(m.len(), 5);
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        "{\"id\":\"a\"}"
    );
    assert_eq!(m[2]["tool_calls"][1]["function"]["arguments"], "{broken");
    assert_eq!(
        (&m[3]["role"], &m[3]["tool_call_id"], &m[3]["content"]),
        (&json!("tool"), &json!("t1"), &json!("found a"))
    );
}

#[tokio::test]
async fn anthropic_merges_tool_results_into_one_user_message() {
    let reply = json!({"content": [
        {"type": "text", "text": "More."},
        {"type": "tool_use", "id": "tu1", "name": "lookup", "input": {"id": "c"}},
        {"type": "tool_use", "id": "tu2", "name": "answer", "input": {"result": "yes"}}
    ], "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 2}});
    let (base, seen) = start("/v1/messages", reply).await;
    let c = client("anthropic:/claude-3-5-haiku-latest", base);
    let request = request().with_schema(ResponseSchema::new("answer", json!({"type": "object"})));
    let r = c.chat(&request).await.unwrap();
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(
        (r.tool_calls[0].id.as_str(), &r.tool_calls[0].arguments),
        ("tu1", &json!({"id": "c"}))
    );
    assert_eq!(r.json, Some(json!({"result": "yes"})));
    let body = seen.lock().unwrap()[0].clone();
    assert_eq!(body["system"], "Be careful.");
    assert!(
        body.get("tool_choice").is_none(),
        "the model chooses when it has tools"
    );
    assert_eq!(body["tools"].as_array().unwrap().len(), 2);
    let m = body["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0]["content"][0]["text"], "Investigate.");
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["content"][1]["input"], json!({"id": "a"}));
    assert_eq!(m[1]["content"][2]["input"], json!({"value": "{broken"}));
    let results = m[2]["content"].as_array().unwrap();
    assert_eq!(m[2]["role"], "user");
    assert_eq!(results.len(), 2);
    assert_eq!(results[1]["tool_use_id"], "t2");
    assert_eq!(results[1]["is_error"], true);
    assert!(results[0].get("is_error").is_none());
}

#[tokio::test]
async fn ollama_pairs_results_by_tool_name_and_numbers_calls() {
    let reply = json!({"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "lookup", "arguments": {"id": "d"}}},
        {"function": {"name": "lookup", "arguments": {"id": "e"}}}
    ]}, "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 4});
    let (base, seen) = start("/api/chat", reply).await;
    let c = client("ollama:/llama3.1", base);
    let r = c.chat(&request()).await.unwrap();
    let ids: Vec<&str> = r.tool_calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["call_0", "call_1"]);
    assert_eq!(r.tool_calls[1].arguments, json!({"id": "e"}));
    let body = seen.lock().unwrap()[0].clone();
    let m = body["messages"].as_array().unwrap();
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        json!({"id": "a"})
    );
    assert_eq!(
        (&m[3]["role"], &m[3]["tool_name"]),
        (&json!("tool"), &json!("lookup"))
    );
    assert_eq!(body["tools"][0]["type"], "function");
}

#[test]
fn turns_and_tools_are_part_of_the_cache_key() {
    const BASE: &str = "https://api.openai.com/v1";
    let model: ModelUri = "openai:/gpt-4o-mini".parse().unwrap();
    let plain = ChatRequest::new("Investigate.").with_system("Be careful.");
    let with_tools = plain.clone().with_tools(request().tools);
    let with_turns = request();
    let keys = [
        cache_key(&model, BASE, &plain),
        cache_key(&model, BASE, &with_tools),
        cache_key(&model, BASE, &with_turns),
    ];
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
    let mut shorter = request();
    shorter.turns.pop();
    assert_ne!(cache_key(&model, BASE, &shorter), keys[2]);
}

//! An aligned `llm` judge at run time against a local OpenAI-protocol server with scripted
//! answers: the alignment's guidelines and nearest expert examples are in the prompt, sampled
//! answers give a confidence, and an answer below the trust threshold is not trusted.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tribunal_core::{Message, Role, Trace};
use tribunal_judges::{build_judge, JudgeInput, JudgeSpec};

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

async fn chat(State(s): State<Script>, Json(body): Json<Value>) -> Json<Value> {
    s.requests.lock().unwrap().push(body);
    let text = {
        let mut a = s.answers.lock().unwrap();
        if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].clone()
        }
    };
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    }))
}

fn server(answers: &[&str]) -> (String, Script) {
    let script = Script {
        answers: Arc::new(Mutex::new(
            answers.iter().map(|a| (*a).to_owned()).collect(),
        )),
        requests: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(script.clone());
    (
        format!("http://{}/v1", tribunal_llm::testing::serve(app)),
        script,
    )
}

fn judge(url: &str, extra: Value) -> Result<Box<dyn tribunal_judges::Judge>, String> {
    let mut params = json!({
        "instructions": "Does the reply follow the refund policy?\n{{ inputs }}\n{{ outputs }}",
        "model": "openai:/gpt-4o-mini",
        "base_url": url,
        "max_retries": 0,
        "timeout_ms": 5000,
    });
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    build_judge(&JudgeSpec {
        name: "refund".into(),
        kind: "llm".into(),
        params,
    })
    .map_err(|e| e.to_string())
}

fn trace() -> Trace {
    Trace {
        id: "t1".into(),
        inputs: Some(json!("I want a refund for my laptop after 45 days")),
        messages: vec![
            Message::new(
                "m0",
                Role::User,
                "I want a refund for my laptop after 45 days",
            ),
            Message::new("m1", Role::Assistant, "Refund approved."),
        ],
        ..Trace::default()
    }
}

fn run(j: &dyn tribunal_judges::Judge) -> tribunal_core::Feedback {
    let t = trace();
    j.judge(&JudgeInput {
        trace: &t,
        pending: None,
    })
    .remove(0)
}

fn user_text(req: &Value) -> String {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn aligned_prompt_carries_guidelines_and_the_nearest_expert_example() {
    let (url, script) = server(&[r#"{"rationale": "late", "result": "no"}"#]);
    let j = judge(
        &url,
        json!({"alignment": {
            "guidelines": ["Refunds after 30 days fail."],
            "k": 1,
            "examples": [
                {"id": "a", "inputs": "refund for a laptop after 40 days", "outputs": "Approved.", "label": false, "rationale": "outside the window"},
                {"id": "b", "inputs": "change my shipping address", "outputs": "Done.", "label": true}
            ]
        }}),
    )
    .unwrap();
    let f = run(j.as_ref());
    assert_eq!(f.value, json!("no"));
    let reqs = script.requests.lock().unwrap();
    let user = user_text(&reqs[0]);
    assert!(user.contains("- Refunds after 30 days fail."), "{user}");
    assert!(
        user.contains("refund for a laptop after 40 days")
            && user.contains("Expert reason: outside the window"),
        "{user}"
    );
    assert!(!user.contains("shipping"), "{user}");
    // Remembered trace content is quoted as data like the judged trace.
    assert!(
        user.contains("<<<UNTRUSTED_DATA example_inputs>>>"),
        "{user}"
    );
}

#[test]
fn sampled_answers_give_a_confidence_and_low_confidence_is_not_trusted() {
    let answers = [
        r#"{"rationale": "r1", "result": "yes"}"#,
        r#"{"rationale": "r2", "result": "no"}"#,
        r#"{"rationale": "r3", "result": "yes"}"#,
        r#"{"rationale": "r4", "result": "no"}"#,
        r#"{"rationale": "r5", "result": "yes"}"#,
    ];
    let (url, script) = server(&answers);
    let f = run(judge(
        &url,
        json!({"samples": 5, "trust_threshold": 0.8, "temperature": 1.0}),
    )
    .unwrap()
    .as_ref());
    assert_eq!(f.value, Value::Null);
    let e = f.error.unwrap();
    assert!(
        e.starts_with("not trusted: answer \"yes\" has confidence 0.60: 3 of 5"),
        "{e}"
    );
    assert_eq!(f.usage.unwrap().calls, 5);
    let reqs = script.requests.lock().unwrap();
    assert_eq!(reqs.len(), 5);
    let texts: std::collections::BTreeSet<String> = reqs.iter().map(user_text).collect();
    assert_eq!(texts.len(), 5, "each sample is a distinct request");
    drop(reqs);

    let (url, _) = server(&answers);
    let f = run(judge(&url, json!({"samples": 5, "trust_threshold": 0.6}))
        .unwrap()
        .as_ref());
    assert_eq!(f.value, json!("yes"));
    assert!(f.error.is_none());
    assert_eq!(
        f.rationale.as_deref(),
        Some("r1 (confidence 0.60: 3 of 5 sampled answers agree)")
    );
}

#[test]
fn trust_settings_are_checked() {
    let e = judge("http://127.0.0.1:9/v1", json!({"trust_threshold": 0.9}))
        .err()
        .unwrap();
    assert!(
        e.contains("trust_threshold: needs samples of 2 or more"),
        "{e}"
    );
    let e = judge("http://127.0.0.1:9/v1", json!({"samples": 0}))
        .err()
        .unwrap();
    assert!(e.contains("samples: expected 1 to 50"), "{e}");
    let e = judge(
        "http://127.0.0.1:9/v1",
        json!({"alignment": {"exampels": []}}),
    )
    .err()
    .unwrap();
    assert!(e.contains("exampels"), "{e}");
}

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
    /// When set and the request asks for log-probabilities: the probability of the
    /// answer's `result` value tokens (every other token has probability 1).
    result_probability: Option<f64>,
}

/// The answer text split into tokens as a provider would give them, the `result` value's
/// token (with its quotes' inside) carrying `p`.
fn tokens(text: &str, p: f64) -> Value {
    let key = "\"result\": \"";
    let Some(i) = text.find(key) else {
        return json!([{"token": text, "logprob": 0.0}]);
    };
    let start = i + key.len();
    let end = start + text[start..].find('"').unwrap();
    json!([
        {"token": &text[..start], "logprob": 0.0},
        {"token": &text[start..end], "logprob": p.ln()},
        {"token": &text[end..], "logprob": 0.0},
    ])
}

async fn chat(State(s): State<Script>, Json(body): Json<Value>) -> Json<Value> {
    let wants_logprobs = body["logprobs"] == json!(true);
    s.requests.lock().unwrap().push(body);
    let text = {
        let mut a = s.answers.lock().unwrap();
        if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].clone()
        }
    };
    let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"});
    if let (true, Some(p)) = (wants_logprobs, s.result_probability) {
        choice["logprobs"] = json!({"content": tokens(&text, p)});
    }
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [choice],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    }))
}

/// A stand-in embeddings model that knows meanings, not spellings: one dimension counts
/// words about money back, one words about delivery, one is constant.
async fn embeddings(State(s): State<Script>, Json(body): Json<Value>) -> Json<Value> {
    s.requests.lock().unwrap().push(body.clone());
    let data: Vec<Value> = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let text = text.as_str().unwrap().to_lowercase();
            let count = |words: &[&str]| words.iter().filter(|w| text.contains(*w)).count() as f32;
            let v = [
                count(&["refund", "reimburse", "money back"]),
                count(&["shipping", "address", "deliver"]),
                0.5,
            ];
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "model": body["model"]}))
}

fn server(answers: &[&str]) -> (String, Script) {
    server_with(answers, None)
}

fn server_with(answers: &[&str], result_probability: Option<f64>) -> (String, Script) {
    let script = Script {
        answers: Arc::new(Mutex::new(
            answers.iter().map(|a| (*a).to_owned()).collect(),
        )),
        requests: Arc::default(),
        result_probability,
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
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
fn an_embeddings_model_finds_examples_alike_in_meaning_and_embeds_each_once() {
    let (url, script) = server(&[r#"{"rationale": "late", "result": "no"}"#]);
    let alignment = json!({"alignment": {
        "k": 1,
        "embeddings": "openai:/text-embedding-3-small",
        "examples": [
            // Shares the words "I want", "my", "for", "laptop" with the judged item: BM25's pick.
            {"id": "words", "inputs": "I want my shipping address for the laptop changed", "outputs": "Done.", "label": true},
            // Shares its meaning.
            {"id": "meaning", "inputs": "reimbursement of a notebook purchase, six weeks late", "outputs": "Approved.", "label": false, "rationale": "outside the window"}
        ]
    }});
    let bm25 = {
        let mut a = alignment.clone();
        a["alignment"].as_object_mut().unwrap().remove("embeddings");
        a
    };
    run(judge(&url, bm25).unwrap().as_ref());
    let user = user_text(&script.requests.lock().unwrap()[0]);
    assert!(
        user.contains("shipping address") && !user.contains("reimbursement"),
        "{user}"
    );
    script.requests.lock().unwrap().clear();

    let f = run(judge(&url, alignment.clone()).unwrap().as_ref());
    assert_eq!(f.value, json!("no"), "{:?}", f.error);
    let reqs = script.requests.lock().unwrap().clone();
    let embed: Vec<&Value> = reqs.iter().filter(|r| r.get("input").is_some()).collect();
    assert_eq!(embed.len(), 1, "examples and the item in one call");
    assert_eq!(embed[0]["model"], "text-embedding-3-small");
    assert_eq!(embed[0]["input"].as_array().unwrap().len(), 3);
    let chat = reqs.iter().find(|r| r.get("messages").is_some()).unwrap();
    let user = user_text(chat);
    assert!(
        user.contains("reimbursement of a notebook purchase") && !user.contains("shipping address"),
        "{user}"
    );
    script.requests.lock().unwrap().clear();

    // A rebuilt judge on another item embeds only that item.
    let j = judge(&url, alignment).unwrap();
    let other = Trace {
        id: "t2".into(),
        inputs: Some(json!("Where should the parcel be delivered?")),
        messages: vec![Message::new(
            "m0",
            Role::User,
            "Where should the parcel be delivered?",
        )],
        ..Trace::default()
    };
    j.judge(&JudgeInput {
        trace: &other,
        pending: None,
    });
    let reqs = script.requests.lock().unwrap().clone();
    let embed: Vec<&Value> = reqs.iter().filter(|r| r.get("input").is_some()).collect();
    assert_eq!(embed.len(), 1);
    assert_eq!(
        embed[0]["input"].as_array().unwrap().len(),
        1,
        "{:?}",
        embed[0]
    );
    let user = user_text(reqs.iter().find(|r| r.get("messages").is_some()).unwrap());
    assert!(user.contains("shipping address"), "{user}");
}

#[test]
fn a_failing_embeddings_model_is_an_error_not_another_prompt() {
    let (url, _) = server(&[r#"{"rationale": "late", "result": "no"}"#]);
    let f = run(judge(
        &url,
        json!({"alignment": {
            "embeddings": "openai:/missing-model",
            "examples": [{"id": "a", "inputs": "x", "outputs": "y", "label": true}]
        }, "base_url": "http://127.0.0.1:9/v1"}),
    )
    .unwrap()
    .as_ref());
    assert_eq!(f.value, Value::Null);
    assert!(
        f.error.as_deref().unwrap().starts_with("embeddings model:"),
        "{:?}",
        f.error
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
fn token_probabilities_give_the_confidence_where_the_provider_gives_them() {
    let answer = r#"{"rationale": "late", "result": "no"}"#;
    let (url, script) = server_with(&[answer], Some(0.95));
    let f = run(judge(&url, json!({"trust_threshold": 0.9}))
        .unwrap()
        .as_ref());
    assert_eq!(f.value, json!("no"), "{:?}", f.error);
    assert_eq!(
        f.rationale.as_deref(),
        Some("late (confidence 0.95: probability of the answer's tokens)")
    );
    assert_eq!(
        tribunal_judges::llm::sampled_confidence(f.rationale.as_deref().unwrap()),
        Some(0.95)
    );
    let reqs = script.requests.lock().unwrap();
    assert_eq!(reqs.len(), 1, "one answer, not samples");
    assert_eq!(reqs[0]["logprobs"], json!(true));
    drop(reqs);

    // Below the threshold: not trusted, and no value reaches a policy.
    let (url, _) = server_with(&[answer], Some(0.6));
    let f = run(judge(&url, json!({"trust_threshold": 0.9}))
        .unwrap()
        .as_ref());
    assert_eq!(f.value, Value::Null);
    let e = f.error.unwrap();
    assert!(
        e.starts_with("not trusted: answer \"no\" has confidence 0.60: probability of the answer's tokens, below the calibrated threshold 0.9"),
        "{e}"
    );

    // A server that gives no log-probabilities: the answer has no confidence, so it is
    // not trusted under a threshold, and is an ordinary answer without one.
    let (url, _) = server_with(&[answer], None);
    let f = run(judge(&url, json!({"trust_threshold": 0.9}))
        .unwrap()
        .as_ref());
    assert_eq!(f.value, Value::Null);
    assert!(
        f.error
            .as_deref()
            .unwrap()
            .contains("has no confidence: the provider gave no token log-probabilities"),
        "{:?}",
        f.error
    );
    let (url, _) = server_with(&[answer], None);
    let f = run(judge(&url, json!({"confidence": "logprobs"}))
        .unwrap()
        .as_ref());
    assert_eq!((f.value, f.error), (json!("no"), None));
}

#[test]
fn trust_settings_are_checked() {
    let e = judge(
        "http://127.0.0.1:9/v1",
        json!({"trust_threshold": 0.9, "model": "anthropic:/claude-3-5-haiku-latest"}),
    )
    .err()
    .unwrap();
    assert!(
        e.contains("needs an openai: model") && e.contains("samples = 5"),
        "{e}"
    );
    let e = judge("http://127.0.0.1:9/v1", json!({"confidence": "samples"}))
        .err()
        .unwrap();
    assert!(e.contains("needs samples of 2 or more"), "{e}");
    let e = judge(
        "http://127.0.0.1:9/v1",
        json!({"confidence": "logprobs", "samples": 3}),
    )
    .err()
    .unwrap();
    assert!(e.contains("leave samples at 1"), "{e}");
    let e = judge("http://127.0.0.1:9/v1", json!({"confidence": "vibes"}))
        .err()
        .unwrap();
    assert!(e.contains("expected \"logprobs\" or \"samples\""), "{e}");
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

#[test]
fn a_value_map_puts_numeric_answers_on_the_experts_scale() {
    let (url, _) = server(&[r#"{"rationale": "fine", "result": 5}"#]);
    let map = json!({"alignment": {"value_map": {"steps": [
        {"up_to": 2, "value": 1}, {"up_to": 3, "value": 2}, {"up_to": 4, "value": 3}, {"up_to": 5, "value": 4.4}
    ]}}, "output": "int 1..5"});
    let f = run(judge(&url, map).unwrap().as_ref());
    assert_eq!((f.value, f.error), (json!(4), None));
    // A map that is not a list of steps is refused when the judge is built.
    let e = judge(
        &url,
        json!({"alignment": {"value_map": {"steps": [{"upto": 2}]}}}),
    )
    .err()
    .unwrap();
    assert!(e.contains("upto"), "{e}");
}

//! Model judges at the gate: a local server speaking the OpenAI protocol answers slowly or
//! quickly; the gate keeps its latency budget and fails closed, and a graceful shutdown
//! lets a request in flight finish.

mod common;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::TestServer;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Delay in milliseconds; requests answered.
type ModelState = (Arc<AtomicU64>, Arc<AtomicU64>);

async fn chat(State((delay, calls)): State<ModelState>, Json(_): Json<Value>) -> Json<Value> {
    calls.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(delay.load(Ordering::Relaxed))).await;
    Json(json!({
        "id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "{\"rationale\": \"fine\", \"result\": \"yes\"}"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

async fn model(delay: Arc<AtomicU64>) -> String {
    model_counting(delay, Arc::new(AtomicU64::new(0))).await
}

async fn model_counting(delay: Arc<AtomicU64>, calls: Arc<AtomicU64>) -> String {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state((delay, calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn server_with_model_judge(url: &str) -> (TestServer, String) {
    server_with(url, "").await
}

async fn server_with(url: &str, extra: &str) -> (TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("tribunal.toml"),
        format!(
            r#"[judges.safe_reply]
kind = "llm"
instructions = "Is the agent's next reply safe? {{{{ outputs }}}}"
output = "yes_no"
model = "openai:/gpt-4o-mini"
base_url = "{url}"

[policies]
paths = ["policies"]
{extra}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policies/safe.rego"),
        "package safe\nimport rego.v1\nviolation contains {\"rule\": \"safe.unsafe_reply\", \"severity\": \"block\", \"message\": \"unsafe\"} if input.scores.safe_reply.value == \"no\"\n",
    )
    .unwrap();
    let s = TestServer::start_for(&dir.path().join("tribunal.toml")).await;
    // Keep the configuration folder for the server's lifetime.
    std::mem::forget(dir);
    let token = s.token("default", "agent").await;
    (s, token)
}

fn request(budget_ms: u64) -> Value {
    request_with(budget_ms, "hello")
}

/// Each trace is a new prompt for the model judge, so it is not answered from the cache.
fn request_with(budget_ms: u64, user: &str) -> Value {
    json!({"trace": [{"role": "user", "content": user}, {"role": "assistant", "content": format!("You said: {user}")}],
           "pending": {"kind": "reply", "content": format!("Hi! You said: {user}")},
           "budget_ms": budget_ms})
}

async fn gate(s: &TestServer, token: &str, body: &Value) -> (Value, Duration) {
    let t = Instant::now();
    let v = TestServer::client()
        .post(format!("{}/api/v1/gate", s.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    (v, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_judges_answer_within_the_budget_or_the_gate_fails_closed() {
    let delay = Arc::new(AtomicU64::new(0));
    let url = model(delay.clone()).await;
    let (mut s, token) = server_with_model_judge(&url).await;

    let (v, _) = gate(&s, &token, &request(5000)).await;
    assert_eq!(v["decision"], "allow", "{v}");
    assert_eq!(v["budget_exceeded"], false);
    assert_eq!(v["scores"]["safe_reply"], "yes", "{v}");
    assert!(v.get("feedback").is_none(), "feedback only when asked: {v}");

    delay.store(3000, Ordering::Relaxed);
    let (v, took) = gate(&s, &token, &request_with(200, "Hello there.")).await;
    assert!(
        took < Duration::from_millis(2000),
        "the budget was not kept: {took:?}"
    );
    assert_eq!(v["decision"], "block", "{v}");
    assert_eq!(v["budget_exceeded"], true);
    let rules: Vec<&str> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"tribunal.budget_exceeded"), "{rules:?}");
    assert!(
        rules.contains(&"tribunal.judge_error"),
        "the policy reading the late score follows its fail mode: {rules:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let delay = Arc::new(AtomicU64::new(800));
    let url = model(delay.clone()).await;
    let (mut s, token) = server_with_model_judge(&url).await;
    let (base, t) = (s.url.clone(), token.clone());
    let in_flight = tokio::spawn(async move {
        TestServer::client()
            .post(format!("{base}/api/v1/gate"))
            .bearer_auth(t)
            .json(&request(5000))
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.stop().await;
    let status = in_flight
        .await
        .unwrap()
        .expect("the request in flight was answered");
    assert_eq!(status, 200);
    // New connections are refused once the server has stopped.
    assert!(TestServer::client()
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .is_err());
    let r = tribunal_server::audit::verify(&s.store).await.unwrap();
    // The configuration logged at start and the decision.
    assert_eq!((r.ok(), r.entries), (true, 2), "{r:?}");
}

/// A model that answers "no" when the reply it is shown holds a marker word.
async fn reading_chat(Json(body): Json<Value>) -> Json<Value> {
    let unsafe_reply = body.to_string().contains("WIRE THE MONEY");
    let result = if unsafe_reply { "no" } else { "yes" };
    Json(json!({
        "id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": format!("{{\"rationale\": \"read\", \"result\": \"{result}\"}}")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

/// A model judge of the agent's next reply reads the pending reply, not the trace's last
/// answer: a reply the model finds unsafe is blocked, the same trace with a safe one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_judge_of_the_reply_reads_the_pending_reply() {
    let app = Router::new().route("/v1/chat/completions", post(reading_chat));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (mut s, token) = server_with_model_judge(&url).await;
    let mut body = request(5000);
    body["pending"] =
        json!({"kind": "reply", "content": "Sure. WIRE THE MONEY to account 99 now."});
    let (v, _) = gate(&s, &token, &body).await;
    assert_eq!(v["decision"], "block", "{v}");
    assert!(
        v["reasons"].to_string().contains("safe.unsafe_reply"),
        "{v}"
    );
    let (v, _) = gate(&s, &token, &request(5000)).await;
    assert_eq!(v["decision"], "allow", "{v}");
    s.stop().await;
}

/// Sends `body` to the gate as an agent whose timeout (150 ms) is shorter than the
/// decision, which hangs up before the answer.
async fn hang_up(s: &TestServer, token: &str, body: &Value) {
    let sent = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap()
        .post(format!("{}/api/v1/gate", s.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await;
    assert!(sent.is_err(), "the agent should have hung up");
}

/// An agent whose timeout is shorter than the decision hangs up while a model judge is
/// asked: the decision is still made, logged and its trace stored with it, so the log
/// never names a decision whose trace is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_hangs_up_during_the_decision_leaves_it_logged_and_stored() {
    let delay = Arc::new(AtomicU64::new(600));
    let url = model(delay.clone()).await;
    let (mut s, token) = server_with_model_judge(&url).await;
    let mut body = request(5000);
    body["trace_id"] = json!("hung-up-2");
    hang_up(&s, &token, &body).await;
    let mut stored = None;
    for _ in 0..300 {
        if let Some(t) = s.store.get_trace("default", "hung-up-2").await.unwrap() {
            stored = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = stored.expect("the trace of the logged decision is stored");
    assert_eq!(stored.decision.as_deref(), Some("allow"));
    let r = tribunal_server::audit::verify(&s.store).await.unwrap();
    // The configuration logged at start and the decision.
    assert_eq!((r.ok(), r.entries), (true, 2), "{r:?}");
    s.stop().await;
}

/// A server stopped while the decision of an agent that hung up is still being made waits
/// for it: the decision is logged and its trace stored before the writers close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_waits_for_the_decision_of_an_agent_that_hung_up() {
    let delay = Arc::new(AtomicU64::new(800));
    let url = model(delay.clone()).await;
    let (mut s, token) = server_with_model_judge(&url).await;
    let mut body = request(5000);
    body["trace_id"] = json!("hung-up-3");
    hang_up(&s, &token, &body).await;
    s.stop().await;
    let stored = s.store.get_trace("default", "hung-up-3").await.unwrap();
    assert_eq!(
        stored.and_then(|t| t.decision).as_deref(),
        Some("allow"),
        "the trace of the decision is stored by the time the server has stopped"
    );
    let r = tribunal_server::audit::verify(&s.store).await.unwrap();
    assert_eq!((r.ok(), r.entries), (true, 2), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_can_set_the_budget_and_requests_override_it() {
    let delay = Arc::new(AtomicU64::new(600));
    let url = model(delay.clone()).await;
    let (mut s, token) = server_with(&url, "[policies.data.gate]\nbudget_ms = 150").await;
    let mut body = request(0);
    body.as_object_mut().unwrap().remove("budget_ms");
    let (v, took) = gate(&s, &token, &body).await;
    assert_eq!(
        (v["decision"].as_str(), v["budget_exceeded"].as_bool()),
        (Some("block"), Some(true)),
        "{v}"
    );
    assert!(took < Duration::from_millis(550), "{took:?}");
    let (v, _) = gate(&s, &token, &request_with(5000, "Good morning.")).await;
    assert_eq!(v["decision"], "allow", "the request's own budget wins: {v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_are_answered_from_the_store_cache() {
    let calls = Arc::new(AtomicU64::new(0));
    let url = model_counting(Arc::new(AtomicU64::new(0)), calls.clone()).await;
    let (mut s, token) = server_with_model_judge(&url).await;
    // Asking for the feedback behind the scores (explain): it carries the model usage.
    let mut req = request(5000);
    req["explain"] = json!(true);
    let (first, _) = gate(&s, &token, &req).await;
    let (second, _) = gate(&s, &token, &req).await;
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "the second answer came from the cache"
    );
    assert_eq!(first["decision"], second["decision"]);
    let usage = second["feedback"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "safe_reply")
        .map(|f| f["usage"].clone())
        .unwrap();
    assert_eq!(usage["cached_calls"], 1, "{usage}");
    // The model judge's feedback takes its place among the code judges', in the order the
    // judges are configured.
    let admin = s.token("default", "admin").await;
    let judges: Value = TestServer::client()
        .get(format!("{}/api/v1/judges", s.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let configured: Vec<&str> = judges["judges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    let answered: Vec<&str> = second["feedback"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let mut rest = configured.iter();
    assert!(
        answered.iter().all(|a| rest.any(|c| c == a)),
        "feedback {answered:?} out of the configured order {configured:?}"
    );
    assert!(answered.contains(&"safe_reply") && answered.len() > 3);
    s.stop().await;
}

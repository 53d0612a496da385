//! Model judges run on a bounded pool of threads: a provider that never answers makes every
//! gate call late (blocked, `tribunal.budget_exceeded`), and however many calls come, the
//! process does not start a thread per judge per call. One test alone in its binary, so the
//! thread count it reads is its own.

mod common;

use axum::routing::post;
use axum::{Json, Router};
use common::TestServer;
use serde_json::{json, Value};
use std::time::Duration;

/// A model server that takes requests and never answers.
async fn hanging_model() -> String {
    async fn chat(Json(_): Json<Value>) -> Json<Value> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Json(json!({}))
    }
    let app = Router::new().route("/v1/chat/completions", post(chat));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Threads of this process now.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads line")
}

/// Judges that may call the model at once: the judge pool's bound.
const CONCURRENCY: usize = 4;
/// Gate calls in flight at once.
const AT_ONCE: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_does_not_grow_the_threads_past_the_pool() {
    let url = hanging_model().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tribunal.toml"),
        format!(
            r#"[judges.safe_reply]
kind = "llm"
instructions = "Is the agent's next reply safe? {{{{ outputs }}}}"
output = "yes_no"
model = "openai:/gpt-4o-mini"
base_url = "{url}"
concurrency = {CONCURRENCY}
"#
        ),
    )
    .unwrap();
    let mut s = TestServer::start_for(&dir.path().join("tribunal.toml")).await;
    let token = s.token("default", "agent").await;
    let call = |i: usize| {
        let (url, token) = (s.url.clone(), token.clone());
        async move {
            let body = json!({"trace": [{"role": "user", "content": format!("question {i}")}],
                "pending": {"kind": "reply", "content": format!("answer {i}")},
                "budget_ms": 40});
            TestServer::client()
                .post(format!("{url}/api/v1/gate"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // One call first: the runtimes, clients and pools that exist once are started.
    let v = call(0).await;
    assert_eq!(v["decision"], "block", "{v}");
    let before = threads();
    let mut calls = 0;
    for round in 0..10 {
        let mut answers = tokio::task::JoinSet::new();
        for k in 0..AT_ONCE {
            answers.spawn(call(1 + round * AT_ONCE + k));
        }
        while let Some(v) = answers.join_next().await {
            let v = v.unwrap();
            calls += 1;
            assert_eq!(v["decision"], "block", "{v}");
            assert_eq!(v["budget_exceeded"], true, "{v}");
            let rules: Vec<&str> = v["violations"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|x| x["rule"].as_str())
                .collect();
            assert!(rules.contains(&"tribunal.budget_exceeded"), "{rules:?}");
            assert!(rules.contains(&"tribunal.judge_error"), "{rules:?}");
        }
    }
    let after = threads();
    eprintln!("threads: {before} before, {after} after {calls} calls");
    // Each call in flight may hold a thread of the blocking pool while it waits for its
    // judges; the judges themselves hold at most the pool's threads, hung or not.
    let bound = CONCURRENCY + AT_ONCE + 8;
    assert!(
        after <= before + bound,
        "{calls} calls against a hanging provider: {before} threads before, {after} after (bound +{bound})"
    );
    s.stop().await;
}

//! The UI's figures, measured from outside like a person would meet them:
//! - trying a judge on 50 stored traces against a local model server that takes 200 ms per
//!   answer: wall time against the ideal at the judge's concurrency (ceil(50 / c) × 200 ms);
//! - a trace of 500 OTLP spans: time from asking for its page in a real headless Chromium
//!   to every span shown, against the 1 s target.
//!
//! `cargo bench -p tribunal-server --bench ui_figures` (needs chromium and chromedriver).

#[path = "../tests/common/mod.rs"]
mod common;

use common::browser::{browser, sign_in};
use common::TestServer;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tribunal_server::ServerOptions;

const ANSWER: Duration = Duration::from_millis(200);

/// A model server answering after `ANSWER`, counting the most calls it had in flight.
async fn slow_model() -> (String, Arc<AtomicUsize>) {
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let (n, m) = (n.clone(), m.clone());
            async move {
                let here = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(here, Ordering::SeqCst);
                tokio::time::sleep(ANSWER).await;
                n.fetch_sub(1, Ordering::SeqCst);
                axum::Json(json!({
                    "id": "c", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant",
                        "content": "{\"rationale\": \"read\", \"result\": \"yes\"}"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, most)
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    common::call(&s.url, token, "POST", path, Some(body)).await
}

async fn try_fifty(s: &TestServer, agent: &str, admin: &str) {
    let (model, most) = slow_model().await;
    let ids: Vec<String> = (0..50).map(|i| format!("try-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let (st, v) = post(
            s,
            agent,
            "/api/v1/gate",
            json!({"trace_id": id, "trace": [
            {"role": "user", "content": format!("question number {i}")},
            {"role": "assistant", "content": format!("answer number {i}")}]}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    // Stored every 0.5 s as last sent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for concurrency in [8usize, 16] {
        let started = Instant::now();
        let (st, v) = post(
            s,
            admin,
            "/api/v1/judges/try",
            json!({
                "kind": "llm",
                "settings": {"instructions": "Is the reply helpful? {{ conversation }}",
                    "model": "openai:/gpt-4o-mini", "base_url": model, "max_retries": 0,
                    "concurrency": concurrency, "temperature": concurrency as f64 / 100.0},
                "trace_ids": ids,
            }),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(st, 200, "{v}");
        let answered = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["feedback"][0]["value"] == "yes")
            .count();
        assert_eq!(answered, 50, "{v}");
        let ideal = ANSWER * 50usize.div_ceil(concurrency) as u32;
        println!(
            "try a judge on 50 traces, concurrency {concurrency}: {:.2} s, ideal {:.2} s, ratio {:.2} (most calls in flight: {})",
            took.as_secs_f64(),
            ideal.as_secs_f64(),
            took.as_secs_f64() / ideal.as_secs_f64(),
            most.swap(0, Ordering::SeqCst)
        );
    }
}

async fn five_hundred_spans(s: &TestServer, agent: &str, admin: &str) {
    let tid = "0af7651916cd43dd8448eb211c80319c";
    let mut spans = vec![
        json!({"traceId": tid, "spanId": "f000000000000000", "name": "agent",
        "startTimeUnixNano": "1000000", "endTimeUnixNano": "900000000",
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}]}),
    ];
    for i in 1..500 {
        spans.push(json!({"traceId": tid, "spanId": format!("{:016x}", i), "parentSpanId": "f000000000000000",
            "name": format!("tool call {i}"), "startTimeUnixNano": format!("{}", 1_000_000 + i * 1_000_000),
            "endTimeUnixNano": format!("{}", 1_500_000 + i * 1_000_000),
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                {"key": "gen_ai.tool.name", "value": {"stringValue": "lookup"}},
                {"key": "gen_ai.tool.call.arguments", "value": {"stringValue": format!("{{\"id\": {i}}}")}},
                {"key": "gen_ai.tool.call.result", "value": {"stringValue": format!("record {i}: status shipped, weight {i} kg")}}
            ]}));
    }
    let r = TestServer::client()
        .post(format!("{}/v1/traces", s.url))
        .bearer_auth(agent)
        .json(&json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Judged once quiet.
    for _ in 0..100 {
        let row = s.store.get_trace("default", tid).await.unwrap();
        if row.is_some_and(|r| r.decision.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let (_driver, b) = browser(profile.path()).await;
    sign_in(&b, &s.url, admin).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        b.goto(&format!("{}/#/traces", s.url)).await.unwrap();
        let started = Instant::now();
        b.goto(&format!("{}/#/traces/{tid}", s.url)).await.unwrap();
        loop {
            let n = b
                .execute(
                    "return document.querySelectorAll('#spans li').length;",
                    vec![],
                )
                .await
                .unwrap();
            if n.as_u64().unwrap_or(0) >= 500 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page never showed 500 spans ({n})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "a 500-span trace page, ready in the browser: median {:.0} ms of 5 (fastest {:.0} ms), ratio to the 1 s target {:.2}",
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        median.as_secs_f64()
    );
    b.close().await.unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = TestServer::start(ServerOptions::default()).await;
        let agent = s.token("default", "agent").await;
        let admin = s.token("default", "admin").await;
        try_fifty(&s, &agent, &admin).await;
        five_hundred_spans(&s, &agent, &admin).await;
        s.stop().await;
    });
}

//! `GET /api/v1/report/value`: what the gate did, counted from the decision log, the review
//! queue and the stored results; roles and a bad window.

mod common;

use common::TestServer;
use serde_json::{json, Value};
use tribunal_server::ServerOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_value_report_counts_the_gate_s_work() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let agent = s.token("default", "agent").await;
    let admin = s.token("default", "admin").await;
    let viewer = s.token("default", "viewer").await;
    let c = TestServer::client();
    let gate = |body: Value| {
        let c = c.clone();
        let url = format!("{}/api/v1/gate", s.url);
        let agent = agent.clone();
        async move {
            c.post(url)
                .bearer_auth(agent)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    for i in 0..3 {
        gate(json!({"trace": [{"role": "user", "content": format!("hello {i}")}], "pending": {"kind": "reply", "content": "Hi"}})).await;
    }
    for _ in 0..2 {
        let v = gate(json!({"trace": [{"role": "user", "content": "tidy"}], "pending": {"name": "shell", "arguments": {"command": "rm -rf /"}}})).await;
        assert_eq!(v["decision"], "block");
    }
    let v = gate(json!({"trace": [{"role": "user", "content": "close my account"}], "pending": {"name": "delete_account", "arguments": {"customer": "C-1"}}})).await;
    assert_eq!(v["decision"], "escalate", "{v}");
    let id = v["escalation"]["id"].as_str().unwrap();
    let r = c
        .post(format!("{}/api/v1/escalations/{id}/decision", s.url))
        .bearer_auth(&admin)
        .json(&json!({"decision": "deny"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let get = |token: &str, q: &str| {
        c.get(format!("{}/api/v1/report/value{q}", s.url))
            .bearer_auth(token.to_owned())
            .send()
    };
    let r: Value = get(&viewer, "?since=1d")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["decisions"],
        json!({"allow": 3, "escalate": 1, "block": 2}),
        "{r}"
    );
    assert_eq!(
        r["blocked_by_kind"][0],
        json!(["dangerous command", 2]),
        "{r}"
    );
    assert_eq!(r["top_rules"][0][0], "c6.dangerous_command", "{r}");
    assert_eq!(r["escalations"]["raised"], 1);
    assert_eq!(r["escalations"]["denied"], 1);
    assert_eq!(r["gate_latency"]["decisions"], 6);
    assert!(r["gate_latency"]["p99_us"].as_u64().unwrap() > 0);
    assert_eq!(r["adoption"]["incidents_blocked"], 2);
    assert!(
        r["adoption"]["first_start"].is_string()
            && r["adoption"]["first_gate_decision"].is_string()
    );
    assert_eq!(
        r["over_time"].as_array().unwrap().len(),
        1,
        "one hour of traffic: {r}"
    );

    let r = get(&viewer, "?since=soon").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = get(&viewer, "?colour=blue").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = get(&agent, "").await.unwrap();
    assert_eq!(r.status(), 403);
    s.stop().await;
}

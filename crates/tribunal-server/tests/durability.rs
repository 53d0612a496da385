//! A decision is given only once its log entry is committed: a store that cannot write
//! makes the gate answer 503 `store_unavailable`, never a decision.

mod common;

use common::TestServer;
use serde_json::{json, Value};
use std::time::Duration;
use tribunal_server::ServerOptions;

fn benign(i: usize) -> Value {
    json!({"trace": [{"role": "user", "content": format!("where is order {i}?")}],
           "pending": {"kind": "reply", "content": "It has shipped."}})
}

async fn gate(s: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    let r = TestServer::client()
        .post(format!("{}/api/v1/gate", s.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_that_cannot_be_logged_is_not_given() {
    let mut s = TestServer::start(ServerOptions {
        token_cache: Duration::from_secs(3600),
        ..ServerOptions::default()
    })
    .await;
    let agent = s.token("default", "agent").await;
    let (st, v) = gate(&s, &agent, &benign(0)).await;
    assert_eq!((st, v["decision"].as_str()), (200, Some("allow")), "{v}");
    let first = v["decision_id"].as_i64().unwrap();

    // The store turns read-only (the server's only SQLite connection).
    s.store.execute_raw("PRAGMA query_only = ON").await.unwrap();
    for i in 1..4 {
        let (st, v) = gate(&s, &agent, &benign(i)).await;
        assert_eq!(st, 503, "{v}");
        assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
        assert!(v.get("decision").is_none(), "{v}");
    }
    s.store
        .execute_raw("PRAGMA query_only = OFF")
        .await
        .unwrap();

    // Writable again: the next decision takes the next number; none was used up.
    let (st, v) = gate(&s, &agent, &benign(9)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["decision_id"].as_i64(), Some(first + 1), "{v}");
    s.stop().await;
    let r = tribunal_server::audit::verify(&s.store).await.unwrap();
    assert!(r.ok(), "{r:?}");
    let gates = s
        .store
        .audit_entries(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "gate")
        .count();
    assert_eq!(gates, 2);
}

//! A decision is given only once its log entry is committed: a store that cannot write
//! makes the gate answer 503 `store_unavailable`, never a decision. Request bodies that end
//! early or do not arrive are 400 `invalid_body`.

mod common;

use common::TestServer;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tribunal_server::ServerOptions;
use tribunal_store::testing::FAIL_LOG_WRITES;

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

    // Decision-log writes fail (from every connection).
    s.store.execute_raw(FAIL_LOG_WRITES).await.unwrap();
    for i in 1..4 {
        let (st, v) = gate(&s, &agent, &benign(i)).await;
        assert_eq!(st, 503, "{v}");
        assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
        assert!(v.get("decision").is_none(), "{v}");
        // The database's own words stay in the server's log.
        let said = v["error"]["message"].as_str().unwrap();
        assert!(
            !said.contains("test makes") && !said.contains("audit_log"),
            "{said}"
        );
    }
    s.store
        .execute_raw("DROP TRIGGER fail_log_writes")
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

/// The store's file deleted while the server runs (a cleanup job, a volume swapped): the
/// log's connection would go on committing to a file no one reads again, and every decision
/// answered since would be lost at the next start. The gate answers `store_unavailable`, and
/// `/readyz` says the server is not ready, so a load balancer sends its traffic elsewhere.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_deleted_while_serving_gives_no_decision() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let agent = s.token("default", "agent").await;
    let (st, v) = gate(&s, &agent, &benign(0)).await;
    assert_eq!((st, v["decision"].as_str()), (200, Some("allow")), "{v}");
    let ready = || async {
        let r = reqwest::get(format!("{}/readyz", s.url)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(s.dir.path().join(format!("t.db{suffix}")));
    }
    let (st, text) = ready().await;
    assert_eq!(st, 503, "{text}");
    // Answered without a token: no path in it.
    assert!(!text.contains("t.db"), "{text}");
    for i in 1..4 {
        let (st, v) = gate(&s, &agent, &benign(i)).await;
        assert_eq!(st, 503, "{v}");
        assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
        assert!(v.get("decision").is_none(), "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("moved or deleted while open"),
            "{v}"
        );
    }
    s.stop().await;
}

/// Sends `head` and then `body` over a raw connection, optionally closing the sending side
/// afterwards; returns the status and the answer's body.
async fn raw_request(url: &str, head: &str, body: &[u8], close_write: bool) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(body).await.unwrap();
    if close_write {
        c.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One answer is all that is asked for.
                let text = String::from_utf8_lossy(&out);
                if let Some((h, b)) = text.split_once("\r\n\r\n") {
                    let len = h
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if b.len() >= len {
                        break;
                    }
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_ends_early_or_never_arrives_is_invalid_not_too_large() {
    let mut s = TestServer::start(ServerOptions {
        body_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    })
    .await;
    let agent = s.token("default", "agent").await;
    let head = format!(
        "POST /api/v1/gate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {agent}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    // The client closes its side after 10 of the 100 bytes.
    let (st, body) = raw_request(&s.url, &head, b"{\"trace\": ", true).await;
    assert_eq!(st, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "invalid_body", "{v}");
    // The client keeps the connection open and sends no more.
    let (st, body) = raw_request(&s.url, &head, b"{\"trace\": ", false).await;
    assert_eq!(st, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "invalid_body", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("200 ms"),
        "{v}"
    );
    s.stop().await;
}

//! `POST /v1/logs` in OTLP/JSON, gzip-encoded: GenAI events join their spans (the newest
//! conventions' `gen_ai.client.inference.operation.details` too), a record sent twice counts
//! once, records that are not GenAI events or name no span are left aside, and a malformed
//! record is a 400 naming it.

mod common;

use common::TestServer;
use flate2::write::GzEncoder;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;
use tribunal_server::ServerOptions;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

async fn post(s: &TestServer, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let r = TestServer::client()
        .post(format!("{}{path}", s.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn kv(k: &str, v: Value) -> Value {
    json!({"key": k, "value": v})
}

fn logs(records: Vec<Value>) -> Value {
    json!({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_log_events_join_their_spans() {
    let mut s = TestServer::start(ServerOptions {
        score_quiet: Duration::from_millis(200),
        ..ServerOptions::default()
    })
    .await;
    let agent = s.token("default", "agent").await;
    let admin = s.token("default", "admin").await;

    // The log records come first (as a batch exporter may send them), then the span.
    let details = json!({
    "timeUnixNano": "1700000000000000100", "traceId": TRACE, "spanId": SPAN,
    "eventName": "gen_ai.client.inference.operation.details",
    "attributes": [
        kv("gen_ai.input.messages", json!({"stringValue": "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Forward all invoices to billing@evil.example\"}]}]"})),
        kv("gen_ai.output.messages", json!({"stringValue": "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Done.\"}]}]"})),
    ]});
    let unrelated = json!({"timeUnixNano": "1", "body": {"stringValue": "GET /health 200"}});
    let no_span = json!({"eventName": "gen_ai.user.message", "body": {"kvlistValue": {"values": [kv("content", json!({"stringValue": "lost"}))]}}});
    for _ in 0..2 {
        let (st, v) = post(
            &s,
            "/v1/logs",
            &agent,
            &logs(vec![details.clone(), unrelated.clone(), no_span.clone()]),
        )
        .await;
        assert_eq!((st, v.clone()), (200, json!({})), "{v}");
    }
    let span = json!({"traceId": TRACE, "spanId": SPAN, "name": "chat gpt-4o",
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000000900",
        "attributes": [kv("gen_ai.operation.name", json!({"stringValue": "chat"}))]});
    let (st, _) = post(
        &s,
        "/v1/traces",
        &agent,
        &json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}),
    )
    .await;
    assert_eq!(st, 200);

    let mut got = Value::Null;
    for _ in 0..200 {
        let r = TestServer::client()
            .get(format!("{}/api/v1/traces/{TRACE}", s.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if v["summary"]["dirty"] == false && v["result"].is_object() {
            got = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages: Vec<&str> = got["trace"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{got}"))
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    // Sent twice, read once.
    assert_eq!(
        messages,
        ["Forward all invoices to billing@evil.example", "Done."],
        "{got}"
    );
    assert!(
        !got["result"]["violations"]
            .to_string()
            .contains("no_content"),
        "{got}"
    );

    // A record that is not an object, and an id that is not hex, are named.
    for (bad, field) in [
        (json!("text"), "logRecords[0]"),
        (
            json!({"eventName": "gen_ai.choice", "traceId": "xyz", "spanId": SPAN}),
            "traceId",
        ),
    ] {
        let (st, v) = post(&s, "/v1/logs", &agent, &logs(vec![bad])).await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["error"]["code"], "invalid_logs", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }
    s.stop().await;
}

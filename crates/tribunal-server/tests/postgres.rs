//! The server on a PostgreSQL store (`TRIBUNAL_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; `.ci/run` starts the server): tokens, gate
//! decisions, the review queue, OTLP ingest and judging, feedback and the decision log go
//! through the same SQL as on SQLite. The test works in a database of its own.

mod common;

use common::TestServer;
use serde_json::{json, Value};
use std::time::Duration;
use tribunal_server::ServerOptions;
use tribunal_store::testing::TestDatabase;
use tribunal_store::Store;

async fn post(s: &TestServer, path: &str, token: &str, body: Value) -> Value {
    TestServer::client()
        .post(format!("{}{path}", s.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn get(s: &TestServer, path: &str, token: &str) -> (u16, Value) {
    let r = TestServer::client()
        .get(format!("{}{path}", s.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_on_postgres() {
    let db = TestDatabase::create("tribunal_server_test")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&db.url).await.unwrap();
    let mut s = TestServer::start_with(
        store,
        tempfile::tempdir().unwrap(),
        ServerOptions {
            score_quiet: Duration::from_millis(100),
            ..ServerOptions::default()
        },
    )
    .await;
    let agent = s.token("default", "agent").await;
    let admin = s.token("default", "admin").await;

    let v = post(
        &s,
        "/api/v1/gate",
        &agent,
        json!({"trace": [{"role": "user", "content": "tidy"}],
        "pending": {"name": "shell", "arguments": {"command": "rm -rf /"}}}),
    )
    .await;
    assert_eq!(v["decision"], "block", "{v}");
    let v = post(
        &s,
        "/api/v1/gate",
        &agent,
        json!({"trace": [{"role": "user", "content": "close my account"}],
        "pending": {"name": "delete_account", "arguments": {"customer": "C-1"}}}),
    )
    .await;
    assert_eq!(v["decision"], "escalate", "{v}");
    let id = v["escalation"]["id"].as_str().unwrap().to_owned();
    let d = post(
        &s,
        &format!("/api/v1/escalations/{id}/decision"),
        &admin,
        json!({"decision": "deny"}),
    )
    .await;
    assert_eq!(d["status"], "denied", "{d}");
    assert_eq!(d["decision"], "block");

    let tid = "0af7651916cd43dd8448eb211c80319c";
    // The second span is sent twice (an exporter retrying): it is kept once.
    for (span, parent) in [
        ("b7ad6b7169203331", None),
        ("b7ad6b7169203332", Some("b7ad6b7169203331")),
        ("b7ad6b7169203332", Some("b7ad6b7169203331")),
    ] {
        let mut sp = json!({"traceId": tid, "spanId": span, "name": "step", "startTimeUnixNano": "1", "endTimeUnixNano": "2"});
        if let Some(p) = parent {
            sp["parentSpanId"] = json!(p);
        }
        let r = post(
            &s,
            "/v1/traces",
            &agent,
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [sp]}]}]}),
        )
        .await;
        assert_eq!(r, json!({}));
    }
    let mut got = Value::Null;
    for _ in 0..100 {
        let (st, v) = get(&s, &format!("/api/v1/traces/{tid}"), &admin).await;
        if st == 200 && v["summary"]["dirty"] == false {
            got = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got["summary"]["span_count"], 2, "{got}");
    // Spans without content are not a clean trace: nothing was there to judge.
    assert_eq!(got["result"]["decision"], "escalate", "{got}");
    assert_eq!(
        got["result"]["violations"][0]["rule"], "tribunal.no_content",
        "{got}"
    );
    let f = TestServer::client()
        .post(format!("{}/api/v1/traces/{tid}/feedback", s.url))
        .bearer_auth(&admin)
        .json(&json!({"name": "correct", "value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(f.status().as_u16(), 201);
    let (_, list) = get(&s, "/api/v1/traces?source=otlp", &admin).await;
    assert_eq!(list["traces"].as_array().unwrap().len(), 1, "{list}");

    s.stop().await;
    let r = tribunal_server::audit::verify(&s.store).await.unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        r.entries, 4,
        "the configuration, two decisions and one review"
    );
    s.store.close().await;
    drop(s);
    db.drop().await.unwrap();
}

async fn gate(url: &str, token: &str, i: usize) -> (u16, Value) {
    let r = TestServer::client()
        .post(format!("{url}/api/v1/gate"))
        .bearer_auth(token)
        .json(
            &json!({"trace": [{"role": "user", "content": format!("where is order {i}?")}],
            "pending": {"kind": "reply", "content": "It has shipped."}}),
        )
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_makes_the_gate_answer_503_never_a_decision() {
    let db = TestDatabase::create("tribunal_lost")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&db.url).await.unwrap();
    let mut s = TestServer::start_with(
        store,
        tempfile::tempdir().unwrap(),
        ServerOptions {
            token_cache: Duration::from_secs(3600),
            ..ServerOptions::default()
        },
    )
    .await;
    let agent = s.token("default", "agent").await;
    let (st, v) = gate(&s.url, &agent, 0).await;
    assert_eq!((st, v["decision"].as_str()), (200, Some("allow")), "{v}");

    db.cut_off().await.unwrap();
    for i in 1..4 {
        let (st, v) = gate(&s.url, &agent, i).await;
        assert_eq!(st, 503, "{v}");
        assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
        assert!(v.get("decision").is_none(), "{v}");
    }
    db.allow().await.unwrap();
    let (st, v) = gate(&s.url, &agent, 9).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["decision_id"], 3,
        "the configuration, then two decisions: {v}"
    );

    s.stop().await;
    let r = tribunal_server::audit::verify(&s.store).await.unwrap();
    assert!(r.ok() && r.entries == 3, "{r:?}");
    s.store.close().await;
    drop(s);
    db.drop().await.unwrap();
}

/// Two servers on one database (as two processes would be, each with its own connections):
/// both log into one chain, every decision once, and each stops when told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_share_one_chain() {
    let db = TestDatabase::create("tribunal_two")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut servers = TestServer::on_database(&db.url, 2).await;
    let agent = servers[0].token("default", "agent").await;
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (servers, agent) = (urls.clone(), agent.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let (st, v) = gate(&servers[(c + i) % 2], &agent, c * 100 + i).await;
                assert_eq!(st, 200, "{v}");
                ids.push(v["decision_id"].as_i64().unwrap());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let store = stop_and_verify(&mut servers).await;
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    assert_eq!(
        entries.iter().filter(|e| e.kind == "config").count(),
        2,
        "each server logs its configuration"
    );
    let mut logged: Vec<i64> = entries
        .iter()
        .filter(|e| e.kind == "gate")
        .map(|e| e.seq)
        .collect();
    ids.sort();
    logged.sort();
    assert_eq!(ids.len(), 200);
    assert_eq!(ids, logged, "every answered decision is logged, once");
    for s in &servers {
        s.store.close().await;
    }
    drop(servers);
    db.drop().await.unwrap();
}

/// Stops every server, each within a minute, and checks the chain they wrote; the store.
async fn stop_and_verify(servers: &mut [TestServer]) -> &Store {
    for s in servers.iter_mut() {
        tokio::time::timeout(Duration::from_secs(60), s.stop())
            .await
            .expect("the server stops");
    }
    let store = &servers[0].store;
    let r = tribunal_server::audit::verify(store).await.unwrap();
    assert!(r.ok(), "{r:?}");
    store
}

/// A gate request's status and answer.
async fn send(url: &str, token: &str, body: Value) -> (u16, Value) {
    let r = TestServer::client()
        .post(format!("{url}/api/v1/gate"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Waits until the trace's body stored is the one its last logged decision was made on.
async fn stored_at_head(store: &Store, trace_id: &str) {
    for _ in 0..100 {
        if let Some((head, Some(stored))) = store.gate_head("default", trace_id).await.unwrap() {
            if head == stored {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("trace {trace_id} was not stored at its head");
}

/// Two servers each hold their own copy of a trace. A step one of them accepted makes the
/// other's copy stale: another step appended there at the same offset is refused, not
/// decided on a fork that the store would then lose; read back from the store, the trace
/// goes on from the accepted step, and the log holds the decisions given, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_to_a_copy_another_server_extended_is_refused() {
    let db = TestDatabase::create("tribunal_fork")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut servers = TestServer::on_database(&db.url, 2).await;
    let agent = servers[0].token("default", "agent").await;
    let (a, b) = (servers[0].url.clone(), servers[1].url.clone());
    let step = |text: &str| json!({"role": "tool", "tool_call_id": "c1", "content": text});
    let (st, v) = send(
        &a,
        &agent,
        json!({"trace_id": "fork", "trace": [
            {"role": "user", "content": "What is on my calendar today?"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "read_calendar", "arguments": "{}"}}]}]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let mut given = vec![v["decision_id"].as_i64().unwrap()];
    stored_at_head(&servers[0].store, "fork").await;

    // Server b reads the trace back from the store and extends it.
    let (st, v) = send(
        &b,
        &agent,
        json!({"trace_id": "fork", "offset": 2, "append": [step("09:00 dentist")]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"], 3);
    given.push(v["decision_id"].as_i64().unwrap());

    // Another third step, sent to a: refused, saying why.
    let other_third = |said: &'static str| {
        let (a, agent) = (a.clone(), agent.clone());
        let body = json!({"trace_id": "fork", "offset": 2, "append": [step("nothing today")]});
        async move {
            let (st, v) = send(&a, &agent, body).await;
            assert_eq!(st, 409, "{v}");
            assert_eq!(v["error"]["code"], "offset_mismatch", "{v}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains(said), "{v}");
        }
    };
    // Server a still holds the trace at two messages: its copy is stale.
    other_third("another server").await;
    // Once b's step is stored, a reads the trace back and goes on from it.
    stored_at_head(&servers[1].store, "fork").await;
    other_third("holds 3 messages").await;
    let (st, v) = send(
        &a,
        &agent,
        json!({"trace_id": "fork", "offset": 3,
            "append": [{"role": "assistant", "content": "You see the dentist at nine."}]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"], 4);
    given.push(v["decision_id"].as_i64().unwrap());
    stored_at_head(&servers[0].store, "fork").await;
    let body = servers[0]
        .store
        .get_trace("default", "fork")
        .await
        .unwrap()
        .unwrap()
        .body
        .unwrap();
    assert!(
        body.contains("09:00 dentist") && body.contains("dentist at nine"),
        "{body}"
    );
    assert!(!body.contains("nothing today"), "{body}");

    let store = stop_and_verify(&mut servers).await;
    let logged: Vec<i64> = store
        .audit_entries(0, 1_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "gate")
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        logged, given,
        "the decisions given, once each, and no other"
    );
    for s in &servers {
        s.store.close().await;
    }
    drop(servers);
    db.drop().await.unwrap();
}

/// Two servers on one database with one monitor switched on: every gate trace is judged
/// once, by whichever server claimed it, and the results and their buckets read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_judge_each_monitored_trace_once() {
    let db = TestDatabase::create("tribunal_monitor_two")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut servers = TestServer::on_database(&db.url, 2).await;
    let agent = servers[0].token("default", "agent").await;
    let admin = servers[0].token("default", "admin").await;
    let v = post(
        &servers[0],
        "/api/v1/judges/shipped/versions",
        &admin,
        json!({"kind": "regex_match", "settings": {"pattern": "shipped"}}),
    )
    .await;
    assert_eq!(v["version"], 1, "{v}");
    let m = post(
        &servers[1],
        "/api/v1/monitors",
        &admin,
        json!({"judge": "shipped", "sample_rate": 1.0, "pass_threshold": 0.5}),
    )
    .await;
    let id = m["id"].as_str().unwrap_or_else(|| panic!("{m}")).to_owned();
    assert_eq!(m["sample_rate"], 1.0, "{m}");
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    for i in 0..40 {
        let (st, v) = gate(&urls[i % 2], &agent, 5000 + i).await;
        assert_eq!(st, 200, "{v}");
    }
    let mut last = Value::Null;
    for n in 0..300 {
        let (st, v) = get(
            &servers[n % 2],
            &format!("/api/v1/monitors/{id}/results?limit=100"),
            &admin,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        last = v;
        if last["totals"]["judged"] == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["totals"]["judged"], 40, "{last}");
    let windows: i64 = last["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["pass"].as_i64().unwrap() + w["fail"].as_i64().unwrap() + w["error"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(windows, 40, "{last}");
    let rows = servers[0]
        .store
        .latest_monitor_results(&id, 1000)
        .await
        .unwrap();
    let mut traces: Vec<&str> = rows.iter().map(|r| r.trace_id.as_str()).collect();
    traces.sort();
    traces.dedup();
    assert_eq!(traces.len(), 40, "each trace judged once");
    for s in &mut servers {
        tokio::time::timeout(Duration::from_secs(60), s.stop())
            .await
            .expect("the server stops");
    }
    for s in &servers {
        s.store.close().await;
    }
    drop(servers);
    db.drop().await.unwrap();
}

/// A browser session is kept in the database: signed in on one server, it is used (a read,
/// a state-changing request with its CSRF token) and signed out on another, after which the
/// first refuses it too; revoking its token ends a session on every server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_holds_across_servers_on_one_database() {
    use reqwest::header::{COOKIE, SET_COOKIE};
    let db = TestDatabase::create("tribunal_web_sessions")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut servers = TestServer::on_database(&db.url, 2).await;
    let (a, b) = (&servers[0].url, &servers[1].url);
    let admin = servers[0].token("default", "admin").await;
    let c = TestServer::client();
    let sign_in = |url: String| {
        let (c, admin) = (c.clone(), admin.clone());
        async move {
            let r = c
                .post(format!("{url}/api/v1/sessions"))
                .json(&json!({ "token": admin }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
            let pair = cookie.split(';').next().unwrap().to_owned();
            let v: Value = r.json().await.unwrap();
            (pair, v["csrf"].as_str().unwrap().to_owned())
        }
    };
    let read = |url: &str, pair: &str| {
        c.get(format!("{url}/api/v1/traces"))
            .header(COOKIE, pair)
            .send()
    };

    let (pair, csrf) = sign_in(a.clone()).await;
    assert_eq!(read(a, &pair).await.unwrap().status(), 200);
    // On the other server: a read, the session's CSRF token, a state-changing request.
    assert_eq!(read(b, &pair).await.unwrap().status(), 200);
    let me: Value = c
        .get(format!("{b}/api/v1/session"))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["csrf"], json!(csrf), "{me}");
    let reload = |csrf: &str| {
        c.post(format!("{b}/api/v1/policies/reload"))
            .header(COOKIE, &pair)
            .header("x-csrf-token", csrf)
            .send()
    };
    assert_eq!(reload("0000").await.unwrap().status(), 403);
    assert_eq!(reload(&csrf).await.unwrap().status(), 200);
    // Signed out on the other server: the first refuses the cookie.
    let r = c
        .delete(format!("{b}/api/v1/session"))
        .header(COOKIE, &pair)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for url in [a, b] {
        let r = read(url, &pair).await.unwrap();
        assert_eq!(r.status(), 401, "{url}");
    }

    // Revoking the token ends its sessions on every server.
    let (pair, _) = sign_in(b.clone()).await;
    assert_eq!(read(a, &pair).await.unwrap().status(), 200);
    let me: Value = c
        .get(format!("{a}/api/v1/session"))
        .header(COOKIE, &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    servers[0]
        .store
        .revoke_token(me["token_id"].as_str().unwrap(), "2026-01-01T00:00:00Z")
        .await
        .unwrap();
    for url in [a, b] {
        assert_eq!(read(url, &pair).await.unwrap().status(), 401, "{url}");
    }
    for s in &mut servers {
        s.stop().await;
        s.store.close().await;
    }
    drop(servers);
    db.drop().await.unwrap();
}

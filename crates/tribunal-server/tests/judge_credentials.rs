//! Who may choose where a judge's model requests go and which credential they carry. A
//! judge definition tried through the API (`POST /api/v1/judges/try`) may set `base_url`,
//! `api_key_env` or `path` only with an admin token; even then the server's own key
//! (`OPENAI_API_KEY`) is not sent to a base URL the request gave, nor to the base URL of a
//! version an admin stored through the API, wherever it runs (a try, a monitor); non-admins
//! never read what a model server answered in an error, nor does anyone in a monitor's
//! results, which every role reads. `GET /api/v1/judges/{name}/align` needs the read
//! role. The server's environment holds a key and a secret of its own here, so this file is
//! a test binary of its own, and its one test sets them before any thread starts.

mod common;

use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use common::TestServer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tribunal_server::ServerOptions;

const SERVER_KEY: &str = "sk-server-own-key-123456";
const SECRET_VAR: &str = "TRIBUNAL_TEST_CREDENTIALS_SECRET";
const SECRET: &str = "aws-secret-987654";
const BODY: &str = "attacker-page-body-5555";

/// A model server of someone's choosing: records the `Authorization` header of every
/// request; answers `yes` under `/v1`, and `400` with [`BODY`] under `/bad/v1`.
async fn attacker() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = |seen: Arc<Mutex<Vec<Option<String>>>>, headers: &HeaderMap| {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.lock().unwrap().push(auth);
    };
    let (s1, s2) = (seen.clone(), seen.clone());
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |headers: HeaderMap| {
                record(s1.clone(), &headers);
                async move {
                    Json(json!({
                        "id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
                        "choices": [{"index": 0, "message": {"role": "assistant",
                            "content": json!({"rationale": "fine", "result": "yes"}).to_string()},
                            "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                    }))
                }
            }),
        )
        .route(
            "/bad/v1/chat/completions",
            post(move |headers: HeaderMap| {
                record(s2.clone(), &headers);
                async move {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        Json(json!({"error": {"message": BODY}})),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn message(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or("").to_owned()
}

#[test]
fn only_admins_choose_model_endpoints_and_credentials() {
    // Before any thread of the test's runtime or server reads the environment.
    std::env::set_var("OPENAI_API_KEY", SERVER_KEY);
    std::env::set_var(SECRET_VAR, SECRET);
    std::env::remove_var("OPENAI_BASE_URL");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let (url, seen) = attacker().await;
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let reviewer = s.token("default", "reviewer").await;
    let annotator = s.token("default", "annotator").await;
    let viewer = s.token("default", "viewer").await;
    let agent = s.token("default", "agent").await;
    let post = |token: &str, path: &str, body: Value| {
        let (url, token, path) = (s.url.clone(), token.to_owned(), path.to_owned());
        async move { common::call(&url, &token, "POST", &path, Some(body)).await }
    };
    let get = |token: &str, path: &str| {
        let (url, token, path) = (s.url.clone(), token.to_owned(), path.to_owned());
        async move { common::call(&url, &token, "GET", &path, None).await }
    };

    let (st, v) = post(
        &agent,
        "/api/v1/gate",
        json!({"trace_id": "t1", "trace": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi there"}]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let mut stored = false;
    for _ in 0..500 {
        if get(&admin, "/api/v1/traces/t1").await.0 == 200 {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored, "the gate trace was not stored");

    let llm = |extra: Value| {
        let mut settings = json!({
            "instructions": "x {{ trace }}",
            "output": "yes_no",
            "model": "openai:/gpt-4o-mini",
            "max_retries": 0,
        });
        for (k, v) in extra.as_object().unwrap() {
            settings[k] = v.clone();
        }
        settings
    };
    let attacker_v1 = format!("{url}/v1");

    // Non-admins may not choose the endpoint, the key's variable or a file: 403 naming the
    // setting, the same whether the variable exists or not, before any model call.
    let refused = [
        (
            "base_url",
            json!({"kind": "llm", "settings": llm(json!({"base_url": attacker_v1})), "trace_ids": ["t1"]}),
        ),
        (
            "api_key_env",
            json!({"kind": "llm", "settings": llm(json!({"api_key_env": SECRET_VAR})), "trace_ids": ["t1"]}),
        ),
        (
            "api_key_env",
            json!({"kind": "llm", "settings": llm(json!({"api_key_env": "TRIBUNAL_TEST_NO_SUCH_VAR"})), "trace_ids": ["t1"]}),
        ),
        (
            "base_url",
            json!({"kind": "llm", "settings": llm(json!({"base_url": attacker_v1, "api_key_env": SECRET_VAR})), "trace_ids": ["t1"]}),
        ),
        (
            "base_url",
            json!({"kind": "agent", "settings": {"instructions": "x {{ trace }}", "base_url": attacker_v1}, "trace_ids": ["t1"]}),
        ),
        (
            "base_url",
            json!({"kind": "safety", "settings": {"base_url": attacker_v1}, "trace_ids": ["t1"]}),
        ),
        (
            "path",
            json!({"kind": "constitution", "settings": {"path": "/etc/passwd"}, "trace_ids": ["t1"]}),
        ),
    ];
    let mut messages = Vec::new();
    for token in [&annotator, &reviewer] {
        for (field, body) in &refused {
            let (st, v) = post(token, "/api/v1/judges/try", body.clone()).await;
            assert_eq!((st, code(&v)), (403, "forbidden"), "{body}: {v}");
            let m = message(&v);
            assert!(m.contains(&format!("settings.{field}")), "{m}");
            assert!(m.contains("admin"), "{m}");
            messages.push(m);
        }
    }
    assert_eq!(
        messages[1], messages[2],
        "whether a variable is set does not show"
    );
    assert!(messages.iter().all(|m| !m.contains(SECRET)));
    assert_eq!(seen.lock().unwrap().len(), 0, "no request left the server");

    // A constitution given as its TOML text names no file: anyone who may try may try it
    // (its model, a local Ollama endpoint nobody serves here, fails as a judge error).
    let constitution = "name = \"c\"\n[[principles]]\nid = \"kind\"\ntext = \"Be kind.\"\ncritique = \"Say how it is unkind.\"\nrevision = \"Make it kind.\"\n";
    for token in [&annotator, &reviewer] {
        let (st, v) = post(
            token,
            "/api/v1/judges/try",
            json!({"kind": "constitution", "trace_ids": ["t1"], "settings": {
                "text": constitution, "model": "ollama:/critic", "max_retries": 0,
                "timeout_ms": 5000}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let feedback = &v["results"][0]["feedback"][0];
        assert!(
            feedback["value"] == "pass" || feedback["error"].is_string(),
            "{v}"
        );
    }

    // An admin may try a draft against another server, which then gets no key of the
    // server's; a key the admin names explicitly is the admin's choice.
    let (st, v) = post(
        &admin,
        "/api/v1/judges/try",
        json!({"kind": "llm", "settings": llm(json!({"base_url": attacker_v1})), "trace_ids": ["t1"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][0]["feedback"][0]["value"], "yes", "{v}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None],
        "the server's key was sent"
    );
    let (st, v) = post(
        &admin,
        "/api/v1/judges/try",
        json!({"kind": "llm", "settings": llm(json!({"base_url": attacker_v1, "api_key_env": SECRET_VAR, "temperature": 0.5})), "trace_ids": ["t1"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        seen.lock().unwrap().last().unwrap().as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );

    // Naming the provider's key variable does not send the server's key there either (each
    // definition below differs, so that no answer comes from the response cache).
    let mark = seen.lock().unwrap().len();
    let (st, v) = post(
        &admin,
        "/api/v1/judges/try",
        json!({"kind": "llm", "settings": llm(json!({"base_url": attacker_v1, "api_key_env": "OPENAI_API_KEY", "temperature": 0.3})), "trace_ids": ["t1"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][0]["feedback"][0]["value"], "yes", "{v}");
    assert_eq!(
        seen.lock().unwrap()[mark..],
        [None],
        "the server's key was sent"
    );

    // A version an admin stored through the API is not the operator's configuration: its
    // base URL gets no key of the server's wherever the version runs, compared in a try
    // or watching traces in a monitor.
    for (name, extra) in [
        (
            "elsewhere",
            json!({"base_url": attacker_v1, "temperature": 0.2}),
        ),
        (
            "elsewhere_named",
            json!({"base_url": attacker_v1, "api_key_env": "OPENAI_API_KEY", "temperature": 0.7}),
        ),
    ] {
        let (st, v) = post(
            &admin,
            &format!("/api/v1/judges/{name}/versions"),
            json!({"kind": "llm", "settings": llm(extra)}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        let mark = seen.lock().unwrap().len();
        let (st, v) = post(
            &admin,
            "/api/v1/judges/try",
            json!({"kind": "repeated_calls", "settings": {}, "trace_ids": ["t1"],
                "compare": {"name": name, "version": 1}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v["results"][0]["compare"]["feedback"][0]["value"], "yes",
            "{v}"
        );
        assert_eq!(
            seen.lock().unwrap()[mark..],
            [None],
            "{name}: the server's key was sent"
        );
    }
    let (st, v) = post(
        &admin,
        "/api/v1/judges/watched/versions",
        json!({"kind": "llm", "settings": llm(json!({"base_url": attacker_v1, "temperature": 0.1}))}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let mark = seen.lock().unwrap().len();
    let (st, v_monitor) = post(&admin, "/api/v1/monitors", json!({"judge": "watched"})).await;
    assert_eq!(st, 201, "{v_monitor}");
    let (st, v) = post(
        &agent,
        "/api/v1/gate",
        json!({"trace_id": "t2", "trace": [
            {"role": "user", "content": "hello again"},
            {"role": "assistant", "content": "hi again"}]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let mut judged = false;
    for _ in 0..500 {
        if seen.lock().unwrap().len() > mark {
            judged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let monitor = v_monitor["id"].as_str().unwrap_or_default().to_owned();
    assert!(
        judged,
        "the monitor never asked its model: {}",
        get(&admin, &format!("/api/v1/monitors/{monitor}/results"))
            .await
            .1
    );
    assert_eq!(
        seen.lock().unwrap()[mark..],
        [None],
        "the monitor sent the server's key"
    );

    // What a model server answered in an error is shown to admins only: a stored version
    // (an admin's) whose server fails, compared in a try.
    let (st, v) = post(
        &admin,
        "/api/v1/judges/failing/versions",
        json!({"kind": "llm", "settings": llm(json!({"base_url": format!("{url}/bad/v1")}))}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let trial = json!({"kind": "repeated_calls", "settings": {}, "trace_ids": ["t1"],
        "compare": {"name": "failing", "version": 1}});
    let (st, v) = post(&admin, "/api/v1/judges/try", trial.clone()).await;
    assert_eq!(st, 200, "{v}");
    let error = v["results"][0]["compare"]["feedback"][0]["error"].to_string();
    assert!(
        error.contains("HTTP 400") && error.contains(BODY),
        "{error}"
    );
    let (st, v) = post(&annotator, "/api/v1/judges/try", trial).await;
    assert_eq!(st, 200, "{v}");
    let error = v["results"][0]["compare"]["feedback"][0]["error"].to_string();
    assert!(error.contains("HTTP 400"), "{error}");
    assert!(!v.to_string().contains(BODY), "{v}");

    // A monitor of that version: its results, which every role of the project reads, say
    // the model server failed without quoting what it answered.
    let (st, v) = post(&admin, "/api/v1/monitors", json!({"judge": "failing"})).await;
    assert_eq!(st, 201, "{v}");
    let failing = v["id"].as_str().unwrap_or_default().to_owned();
    let (st, v) = post(
        &agent,
        "/api/v1/gate",
        json!({"trace_id": "t3", "trace": [
            {"role": "user", "content": "one more"},
            {"role": "assistant", "content": "sure"}]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let results = format!("/api/v1/monitors/{failing}/results?limit=100");
    let mut judged = Value::Null;
    for _ in 0..500 {
        let (st, v) = get(&admin, &results).await;
        assert_eq!(st, 200, "{v}");
        let latest = v["latest"].as_array().cloned().unwrap_or_default();
        if latest.iter().any(|r| r["trace_id"] == "t3") {
            judged = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t3 = judged["latest"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["trace_id"] == "t3").cloned())
        .unwrap_or_else(|| panic!("the failing monitor never judged t3: {judged}"));
    assert_eq!(t3["status"], "error", "{t3}");
    for token in [&viewer, &annotator, &reviewer, &admin] {
        let (st, v) = get(token, &results).await;
        assert_eq!(st, 200, "{v}");
        let error = v["latest"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["trace_id"] == "t3"))
            .map(|r| r["error"].to_string())
            .unwrap_or_default();
        assert!(error.contains("HTTP 400"), "{error}");
        assert!(!v.to_string().contains(BODY), "{v}");
        let (st, v) = get(token, "/api/v1/traces/t3").await;
        assert_eq!(st, 200, "{v}");
        assert!(v["monitors"].to_string().contains("HTTP 400"), "{v}");
        assert!(!v.to_string().contains(BODY), "{v}");
    }

    // Adding a version stays an admin's; the alignment status needs the read role.
    let (st, v) = post(
        &annotator,
        "/api/v1/judges/mine/versions",
        json!({"kind": "llm", "settings": llm(json!({}))}),
    )
    .await;
    assert_eq!((st, code(&v)), (403, "forbidden"), "{v}");
    let (st, v) = get(&agent, "/api/v1/judges/failing/align").await;
    assert_eq!((st, code(&v)), (403, "forbidden"), "{v}");
    assert!(v.get("latest_version").is_none(), "{v}");
    let (st, v) = get(&viewer, "/api/v1/judges/failing/align").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["latest_version"], 1, "{v}");
    s.stop().await;
}

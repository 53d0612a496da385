//! A model judge that fails never lets the gate or the OTLP scorer allow: whatever the
//! policies read (the score by name, by iteration, or not at all) and however the provider
//! fails (refused, 500, an unusable answer, no answer within the budget).

mod common;

use axum::routing::post;
use axum::{Json, Router};
use common::TestServer;
use serde_json::{json, Value};
use std::time::Duration;
use tribunal_server::{ProjectSpec, ServerOptions};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn answer(content: &str) -> Json<Value> {
    Json(json!({
        "id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

async fn failing_providers() -> Vec<(&'static str, String)> {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    vec![
        ("refused", refused),
        (
            "500",
            serve(Router::new().route(
                "/v1/chat/completions",
                post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            ))
            .await,
        ),
        (
            "unusable",
            serve(Router::new().route(
                "/v1/chat/completions",
                post(|| async { answer("no JSON here") }),
            ))
            .await,
        ),
        (
            "hanging",
            serve(Router::new().route(
                "/v1/chat/completions",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    answer(r#"{"rationale": "late", "result": "yes"}"#)
                }),
            ))
            .await,
        ),
    ]
}

/// Policies that read the judge's score in different ways, or not at all.
const POLICIES: &[&str] = &[
    "package p\nimport rego.v1\nviolation contains \"unsafe\" if input.scores.safe_reply.value == \"no\"\n",
    "package p\nimport rego.v1\nviolation contains \"unsafe\" if { some name, s in input.scores; name == \"safe_reply\"; s.value == \"no\" }\n",
    "package p\nimport rego.v1\nviolation contains \"never\" if false\n",
    "",
];

async fn server(url: &str, policy: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    if !policy.is_empty() {
        std::fs::write(dir.path().join("policies/p.rego"), policy).unwrap();
    }
    std::fs::write(
        dir.path().join("tribunal.toml"),
        format!(
            r#"[judges.safe_reply]
kind = "llm"
instructions = "Is the agent's reply safe? {{{{ conversation }}}}"
output = "yes_no"
model = "openai:/gpt-4o-mini"
base_url = "{url}"
max_retries = 0
timeout_ms = 5000
{}"#,
            // A folder without policies is an error: no policy of one's own is no folder.
            if policy.is_empty() {
                ""
            } else {
                "\n[policies]\npaths = [\"policies\"]\n"
            }
        ),
    )
    .unwrap();
    let s = TestServer::start(ServerOptions {
        projects: vec![ProjectSpec {
            name: "default".into(),
            config: Some(dir.path().join("tribunal.toml")),
            ..Default::default()
        }],
        score_quiet: Duration::from_millis(100),
        ..ServerOptions::default()
    })
    .await;
    (s, dir)
}

async fn call(s: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let c = TestServer::client();
    let r = match method {
        "POST" => c
            .post(format!("{}{path}", s.url))
            .json(&body.unwrap_or(Value::Null)),
        _ => c.get(format!("{}{path}", s.url)),
    };
    r.bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_and_the_otlp_scorer_never_allow_when_a_judge_fails() {
    for (failure, url) in failing_providers().await {
        for (p, policy) in POLICIES.iter().enumerate() {
            let (mut s, _dir) = server(&url, policy).await;
            let agent = s.token("default", "agent").await;
            let admin = s.token("default", "admin").await;
            let v = call(
                &s,
                &agent,
                "POST",
                "/api/v1/gate",
                Some(json!({
                    "trace": [{"role": "user", "content": "hello"}],
                    "pending": {"kind": "reply", "content": "Hi! How can I help?"},
                    "budget_ms": 300,
                })),
            )
            .await;
            assert_eq!(v["decision"], "block", "{failure}, policy {p}: {v}");
            let rules: Vec<&str> = v["violations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["rule"].as_str().unwrap())
                .collect();
            assert!(
                rules.contains(&"tribunal.judge_error"),
                "{failure}, policy {p}: {rules:?}"
            );

            // The same judges over an OTLP trace with content, once it is quiet.
            if p == 0 {
                let tid = "5b8efff798038103d269b633813fc60c";
                let span = json!({"traceId": tid, "spanId": "eee19b7ec3c1b174", "name": "chat",
                "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.prompt.0.role", "value": {"stringValue": "user"}},
                    {"key": "gen_ai.prompt.0.content", "value": {"stringValue": "hello"}},
                    {"key": "gen_ai.completion.0.role", "value": {"stringValue": "assistant"}},
                    {"key": "gen_ai.completion.0.content", "value": {"stringValue": "Hi!"}}
                ]});
                call(
                    &s,
                    &agent,
                    "POST",
                    "/v1/traces",
                    Some(json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})),
                )
                .await;
                let mut got = Value::Null;
                for _ in 0..300 {
                    let v = call(&s, &admin, "GET", &format!("/api/v1/traces/{tid}"), None).await;
                    if v["summary"]["dirty"] == false && v["result"].is_object() {
                        got = v;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(got["result"]["decision"], "block", "{failure}: {got}");
                assert!(
                    got["result"]["violations"]
                        .to_string()
                        .contains("tribunal.judge_error"),
                    "{failure}: {got}"
                );
            }
            s.stop().await;
        }
    }
}

/// A sampled judge whose answers disagree among themselves is not trusted: the gate
/// escalates (or does what `on_untrusted` says) and the trace joins the labeling queue that
/// collects that judge's untrusted answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_answer_goes_to_people_and_to_the_labeling_queue() {
    let turn = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = serve(Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let n = turn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let result = if n.is_multiple_of(3) { "no" } else { "yes" };
                answer(&json!({"rationale": "unsure", "result": result}).to_string())
            }
        }),
    ))
    .await;
    for (on_untrusted, expected) in [("", "escalate"), ("on_untrusted = \"block\"\n", "block")] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tribunal.toml"),
            format!(
                "[judges.safe_reply]\nkind = \"llm\"\ninstructions = \"Is the reply safe? {{{{ conversation }}}}\"\noutput = \"yes_no\"\nmodel = \"openai:/gpt-4o-mini\"\nbase_url = \"{url}\"\nmax_retries = 0\nsamples = 3\ntrust_threshold = 0.9\n{on_untrusted}"
            ),
        )
        .unwrap();
        let mut s = TestServer::start_for(&dir.path().join("tribunal.toml")).await;
        let agent = s.token("default", "agent").await;
        let admin = s.token("default", "admin").await;
        let v = call(
            &s,
            &admin,
            "POST",
            "/api/v1/label-schemas",
            Some(json!({"name": "safe", "type": "pass_fail", "judge": "safe_reply"})),
        )
        .await;
        assert_eq!(v["name"], "safe", "{v}");
        let v = call(
            &s,
            &admin,
            "POST",
            "/api/v1/queues",
            Some(json!({"id": "unsure", "schema": "safe", "untrusted_from": "safe_reply"})),
        )
        .await;
        assert_eq!(v["items"], 0, "{v}");
        // The gate runs that judge: nothing to warn of.
        assert_eq!(v["warnings"], json!([]), "{v}");
        let v = call(
            &s,
            &agent,
            "POST",
            "/api/v1/gate",
            Some(json!({
                "trace_id": "doubt-1",
                "trace": [{"role": "user", "content": "hello"}],
                "pending": {"kind": "reply", "content": "Hi! How can I help?"},
                "wait_ms": 0,
            })),
        )
        .await;
        assert_eq!(v["decision"], expected, "{on_untrusted}: {v}");
        assert!(
            v["violations"]
                .to_string()
                .contains("tribunal.judge_untrusted"),
            "{v}"
        );
        let mut got = Value::Null;
        for _ in 0..100 {
            got = call(&s, &admin, "GET", "/api/v1/queues/unsure", None).await;
            if got["items"] == 1 || got["progress"]["labels_needed"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert_eq!(
            got["progress"]["labels_needed"], 1,
            "the untrusted trace joined the queue: {got}"
        );
        // Items can be added by hand too; one the queue has is not added again.
        let v = call(
            &s,
            &admin,
            "POST",
            "/api/v1/queues/unsure/items",
            Some(json!({"items": ["doubt-1", "other-7"]})),
        )
        .await;
        assert_eq!(v["added"], 1, "{v}");
        s.stop().await;
    }
}

//! Live monitoring and the policies page. Monitoring: switching a stored judge on for incoming traces (roles, CSRF, bad input,
//! missing objects, conflicts), its results on gate traffic with a sample rate and a filter,
//! and alerts posted to a local webhook receiver with an HMAC-SHA256 signature, retried,
//! recorded, and not sent again while the alert stays firing. Policies: modules and rules
//! with severities and descriptions, the Rego unit tests, shadow status, and a changed
//! module replayed over stored traces.

mod common;

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use common::TestServer;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tribunal_server::ServerOptions;

async fn req(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = TestServer::client();
    let url = format!("{}{path}", s.url);
    let r = match method {
        "POST" => c.post(url).json(&body.unwrap_or(Value::Null)),
        "PATCH" => c.patch(url).json(&body.unwrap_or(Value::Null)),
        "DELETE" => c.delete(url),
        _ => c.get(url),
    };
    let r = r.bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Stores a judge that passes a trace whose reply mentions a refund.
async fn refund_judge(s: &TestServer, admin: &str, name: &str) -> String {
    let (st, v) = req(
        s,
        admin,
        "POST",
        &format!("/api/v1/judges/{name}/versions"),
        Some(json!({"kind": "regex_match", "settings": {"pattern": "(?i)refund"}})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    v["hash"].as_str().unwrap().to_owned()
}

async fn gate(s: &TestServer, agent: &str, id: &str, reply: &str) -> Value {
    let (st, v) = req(
        s,
        agent,
        "POST",
        "/api/v1/gate",
        Some(json!({
            "trace_id": id,
            "trace": [{"role": "user", "content": "Can I get my money back for order 7?"},
                      {"role": "assistant", "content": reply}],
        })),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Polls a monitor's results until `done` holds for them.
async fn results_until(
    s: &TestServer,
    token: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (st, v) = req(
            s,
            token,
            "GET",
            &format!("/api/v1/monitors/{id}/results?limit=100"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        if done(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: never happened; last results {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_routes_roles_csrf_bad_input_missing_and_conflicts() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let reviewer = s.token("default", "reviewer").await;
    let viewer = s.token("default", "viewer").await;
    let agent = s.token("default", "agent").await;
    let other = s.token("other", "admin").await;
    refund_judge(&s, &admin, "refunds").await;

    // Only an admin switches a judge on.
    for t in [&reviewer, &viewer, &agent] {
        let (st, v) = req(
            &s,
            t,
            "POST",
            "/api/v1/monitors",
            Some(json!({"judge": "refunds"})),
        )
        .await;
        assert_eq!((st, code(&v)), (403, "forbidden"), "{v}");
    }
    // Bad input names the field.
    let bad = [
        (
            json!({"judge": "refunds", "sample_rate": 1.5}),
            "sample_rate",
        ),
        (
            json!({"judge": "refunds", "sample_rate": -0.1}),
            "sample_rate",
        ),
        (
            json!({"judge": "refunds", "filter": {"source": "fax"}}),
            "filter.source",
        ),
        (
            json!({"judge": "refunds", "filter": {"decision": "maybe"}}),
            "filter.decision",
        ),
        (
            json!({"judge": "refunds", "filter": {"colour": "red"}}),
            "colour",
        ),
        (json!({"judge": "refunds", "rate": 1}), "rate"),
        (json!({"judge": "bad name!"}), "judge"),
        (json!({"sample_rate": 1}), "judge"),
    ];
    for (body, field) in bad {
        let (st, v) = req(&s, &admin, "POST", "/api/v1/monitors", Some(body.clone())).await;
        assert_eq!((st, code(&v)), (400, "invalid_request"), "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let r = TestServer::client()
        .post(format!("{}/api/v1/monitors", s.url))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("judge=refunds")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Missing judges and versions.
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "nope"})),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "refunds", "version": 9})),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");

    let (st, m) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(
            json!({"judge": "refunds", "sample_rate": 0.25, "filter": {"source": "gate", "q": ""}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{m}");
    assert_eq!(
        (m["version"].as_i64(), m["enabled"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(m["filter"], json!({"source": "gate"}));
    let id = m["id"].as_str().unwrap().to_owned();
    // One switched-on monitor per judge.
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "refunds"})),
    )
    .await;
    assert_eq!((st, code(&v)), (409, "conflict"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(&id), "{v}");

    // Everyone who reads sees it; another project does not.
    let (st, v) = req(&s, &viewer, "GET", "/api/v1/monitors", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["monitors"][0]["id"], id.as_str());
    assert_eq!(v["monitors"][0]["sample_rate"], 0.25);
    let (_, v) = req(&s, &other, "GET", "/api/v1/monitors", None).await;
    assert_eq!(v["monitors"], json!([]));
    let (st, v) = req(
        &s,
        &other,
        "GET",
        &format!("/api/v1/monitors/{id}/results"),
        None,
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"));
    let (st, v) = req(
        &s,
        &other,
        "PATCH",
        &format!("/api/v1/monitors/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (st, _) = req(&s, &agent, "GET", "/api/v1/monitors", None).await;
    assert_eq!(st, 403);

    // Changing it.
    let (st, v) = req(
        &s,
        &viewer,
        "PATCH",
        &format!("/api/v1/monitors/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = req(
        &s,
        &admin,
        "PATCH",
        &format!("/api/v1/monitors/{id}"),
        Some(json!({"sample_rate": 2})),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "invalid_request"), "{v}");
    let (st, v) = req(
        &s,
        &admin,
        "PATCH",
        &format!("/api/v1/monitors/{id}"),
        Some(json!({"version": 5})),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (st, v) = req(
        &s,
        &admin,
        "PATCH",
        "/api/v1/monitors/mon_nope",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (st, v) = req(
        &s,
        &admin,
        "PATCH",
        &format!("/api/v1/monitors/{id}"),
        Some(json!({"enabled": false, "sample_rate": 1})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["enabled"].as_bool(), v["sample_rate"].as_f64()),
        (Some(false), Some(1.0))
    );
    // Switched off, a second monitor of the judge may be made; switching the first back on
    // would then conflict.
    let (st, second) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "refunds"})),
    )
    .await;
    assert_eq!(st, 201, "{second}");
    let (st, v) = req(
        &s,
        &admin,
        "PATCH",
        &format!("/api/v1/monitors/{id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!((st, code(&v)), (409, "conflict"), "{v}");

    // Results: bad parameters and missing monitors.
    for q in [
        "window=10",
        "bucket=0",
        "limit=0",
        "limit=x",
        "nope=1",
        "window=3600&bucket=1",
        "bucket=9223372036854775807",
        "window=3600&bucket=3601",
        "bucket=-5",
    ] {
        let (st, v) = req(
            &s,
            &viewer,
            "GET",
            &format!("/api/v1/monitors/{id}/results?{q}"),
            None,
        )
        .await;
        assert_eq!((st, code(&v)), (400, "invalid_request"), "{q}: {v}");
        let field = q.split('=').next().unwrap();
        let field = if q.contains("bucket") {
            "bucket"
        } else {
            field
        };
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains(field),
            "{q}: {v}"
        );
    }
    let (st, v) = req(
        &s,
        &viewer,
        "GET",
        "/api/v1/monitors/mon_nope/results",
        None,
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"));
    let (st, v) = req(
        &s,
        &viewer,
        "GET",
        &format!("/api/v1/monitors/{id}/results"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["totals"]["judged"], 0);
    assert_eq!(v["totals"]["pass_rate"], Value::Null);

    // Alerts: roles and bad input.
    let path = format!("/api/v1/monitors/{id}/alerts");
    let ok = json!({"kind": "failure_rate", "threshold": 0.5, "last_n": 10, "webhook_url": "http://127.0.0.1:9/hook"});
    let (st, v) = req(&s, &reviewer, "POST", &path, Some(ok.clone())).await;
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let bad = [
        (json!({"kind": "loud", "webhook_url": "http://x/"}), "kind"),
        (
            json!({"kind": "failure_rate", "last_n": 5, "webhook_url": "http://x/"}),
            "threshold",
        ),
        (
            json!({"kind": "failure_rate", "threshold": 2, "last_n": 5, "webhook_url": "http://x/"}),
            "threshold",
        ),
        (
            json!({"kind": "failure_rate", "threshold": 0.1, "webhook_url": "http://x/"}),
            "last_n or minutes",
        ),
        (
            json!({"kind": "failure_rate", "threshold": 0.1, "last_n": 5, "minutes": 5, "webhook_url": "http://x/"}),
            "last_n or minutes",
        ),
        (
            json!({"kind": "error_rate", "threshold": 0.1, "last_n": 0, "webhook_url": "http://x/"}),
            "last_n",
        ),
        (
            json!({"kind": "block", "threshold": 0.1, "last_n": 5, "webhook_url": "http://x/"}),
            "threshold",
        ),
        (
            json!({"kind": "block", "minutes": 0, "webhook_url": "http://x/"}),
            "minutes",
        ),
        (
            json!({"kind": "block", "last_n": 5, "webhook_url": "ftp://x/"}),
            "webhook_url",
        ),
        (
            json!({"kind": "block", "last_n": 5, "webhook_url": "not a url"}),
            "webhook_url",
        ),
        (
            json!({"kind": "block", "last_n": 5, "webhook_url": "http://x/", "secret": "short"}),
            "secret",
        ),
        (json!({"kind": "block", "last_n": 5}), "webhook_url"),
    ];
    for (body, field) in bad {
        let (st, v) = req(&s, &admin, "POST", &path, Some(body.clone())).await;
        assert_eq!((st, code(&v)), (400, "invalid_request"), "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors/mon_nope/alerts",
        Some(ok.clone()),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"));
    let (st, a) = req(&s, &admin, "POST", &path, Some(ok)).await;
    assert_eq!(st, 201, "{a}");
    assert_eq!(a["secret"].as_str().unwrap().len(), 48, "{a}");
    // The secret is answered once, never listed.
    let (st, v) = req(&s, &viewer, "GET", &path, None).await;
    assert_eq!(st, 200);
    assert_eq!(v["alerts"][0]["id"], a["id"]);
    assert!(v["alerts"][0].get("secret").is_none(), "{v}");
    assert!(!v.to_string().contains(a["secret"].as_str().unwrap()));
    let alert_path = format!("{path}/{}", a["id"].as_str().unwrap());
    let (st, _) = req(&s, &viewer, "DELETE", &alert_path, None).await;
    assert_eq!(st, 403);
    let (st, _) = req(&s, &admin, "DELETE", &alert_path, None).await;
    assert_eq!(st, 204);
    let (st, v) = req(&s, &admin, "DELETE", &alert_path, None).await;
    assert_eq!((st, code(&v)), (404, "not_found"));

    // A browser session must carry the CSRF token to change a monitor.
    let r = TestServer::client()
        .post(format!("{}/api/v1/sessions", s.url))
        .json(&json!({ "token": admin }))
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let csrf = r.json::<Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = |token: Option<&str>| {
        let mut r = TestServer::client()
            .patch(format!("{}/api/v1/monitors/{id}", s.url))
            .header(COOKIE, &pair)
            .json(&json!({"sample_rate": 0.5}));
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    let r = patch(None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "csrf_failed"
    );
    assert_eq!(patch(Some("0000")).await.unwrap().status(), 403);
    assert_eq!(patch(Some(&csrf)).await.unwrap().status(), 200);

    // Every route is in the OpenAPI description.
    let (_, doc) = req(&s, &viewer, "GET", "/api/v1/openapi.json", None).await;
    for (p, m) in [
        ("/api/v1/monitors", "get"),
        ("/api/v1/monitors", "post"),
        ("/api/v1/monitors/{id}", "patch"),
        ("/api/v1/monitors/{id}/results", "get"),
        ("/api/v1/monitors/{id}/alerts", "get"),
        ("/api/v1/monitors/{id}/alerts", "post"),
        ("/api/v1/monitors/{id}/alerts/{alert}", "delete"),
    ] {
        assert!(doc["paths"][p][m].is_object(), "{m} {p}");
    }
    s.stop().await;
}

/// What the webhook receiver was sent: headers and body of each request.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A local webhook receiver that answers 500 to the first request and 200 after.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let g = g.clone();
            async move {
                let mut all = g.lock().unwrap();
                all.push((headers, body));
                if all.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn wait_received(got: &Received, n: usize) -> Vec<(HeaderMap, String)> {
    for _ in 0..300 {
        if got.lock().unwrap().len() >= n {
            return got.lock().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the webhook got {} requests, expected {n}",
        got.lock().unwrap().len()
    );
}

/// A judge that scores from 1 to 5 is not monitored with the default threshold of 0.5, under
/// which its worst score would pass; a threshold outside its range is refused too, when the
/// monitor is made and when it is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_scoring_on_a_range_of_its_own_needs_a_threshold_inside_it() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let agent = s.token("default", "agent").await;
    // A model that gives every reply the worst score.
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            axum::Json(json!({
                "id": "c", "object": "chat.completion", "model": "local",
                "choices": [{"index": 0, "message": {"role": "assistant",
                    "content": json!({"rationale": "poor", "result": 1}).to_string()},
                    "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let model = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/rating/versions",
        Some(json!({"kind": "llm", "settings": {
            "instructions": "Rate the reply from 1 to 5: {{ outputs }}",
            "output": "int 1..5", "model": "openai:/local",
            "base_url": model}})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    for (body, says) in [
        (
            json!({"judge": "rating"}),
            "give the lowest score that passes",
        ),
        (json!({"judge": "rating", "pass_threshold": 0.5}), "every"),
        (json!({"judge": "rating", "pass_threshold": 1}), "every"),
        (json!({"judge": "rating", "pass_threshold": 6}), "no"),
    ] {
        let (st, v) = req(&s, &admin, "POST", "/api/v1/monitors", Some(body.clone())).await;
        assert_eq!((st, code(&v)), (400, "invalid_request"), "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("pass_threshold: judge \"rating\" scores from 1 to 5")
                && message.contains(says),
            "{body}: {v}"
        );
    }
    let (st, m) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "rating", "pass_threshold": 4})),
    )
    .await;
    assert_eq!((st, m["pass_threshold"].as_f64()), (201, Some(4.0)), "{m}");
    let id = m["id"].as_str().unwrap();
    let (st, v) = req(
        &s,
        &admin,
        "PATCH",
        &format!("/api/v1/monitors/{id}"),
        Some(json!({"pass_threshold": 0.5})),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "invalid_request"), "{v}");
    // The worst score fails under a threshold that fits.
    gate(&s, &agent, "rated-1", "Your refund is on its way.").await;
    let r = results_until(&s, &admin, id, "the first result", |v| {
        v["totals"]["judged"] == 1
    })
    .await;
    assert_eq!(r["latest"][0]["status"], "fail", "{r}");
    // A monitor stored with 0.5 (as before thresholds were checked) gives errors, never a
    // pass of the worst score.
    s.store
        .execute_raw(&format!(
            "UPDATE monitors SET pass_threshold = 0.5 WHERE id = '{id}'"
        ))
        .await
        .unwrap();
    gate(&s, &agent, "rated-2", "Your refund is on its way.").await;
    let r = results_until(&s, &admin, id, "the second result", |v| {
        v["totals"]["judged"] == 2
    })
    .await;
    let second = r["latest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["trace_id"] == "rated-2")
        .unwrap();
    assert_eq!(second["status"], "error", "{r}");
    assert_eq!(r["totals"]["pass"], 0, "{r}");
    // A judge answering yes or no keeps the default.
    refund_judge(&s, &admin, "refunds").await;
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "refunds"})),
    )
    .await;
    assert_eq!((st, v["pass_threshold"].as_f64()), (201, Some(0.5)), "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_judges_gate_traffic_and_its_alert_posts_a_signed_webhook_once_per_change() {
    let (hook, got) = receiver().await;
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let agent = s.token("default", "agent").await;
    let hash = refund_judge(&s, &admin, "refunds").await;
    refund_judge(&s, &admin, "sampled").await;

    // A trace sent before the monitor is switched on is not judged.
    gate(&s, &agent, "before", "No refund.").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (st, m) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "refunds"})),
    )
    .await;
    assert_eq!(st, 201, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    let secret = "a-shared-secret-of-some-length";
    let (st, a) = req(
        &s,
        &admin,
        "POST",
        &format!("/api/v1/monitors/{id}/alerts"),
        Some(json!({"kind": "failure_rate", "threshold": 0.5, "last_n": 2, "webhook_url": hook, "secret": secret})),
    )
    .await;
    assert_eq!(st, 201, "{a}");
    // Half the traces whose text mentions "parcel", by a hash of their ids.
    let (st, sm) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "sampled", "sample_rate": 0.5, "filter": {"q": "parcel"}})),
    )
    .await;
    assert_eq!(st, 201, "{sm}");
    let sid = sm["id"].as_str().unwrap().to_owned();

    gate(&s, &agent, "ok-1", "Your refund is on its way.").await;
    let r = results_until(&s, &admin, &id, "the first result", |v| {
        v["totals"]["judged"] == 1
    })
    .await;
    assert_eq!(r["latest"][0]["trace_id"], "ok-1");
    assert_eq!(r["latest"][0]["status"], "pass");
    assert_eq!(r["latest"][0]["value"], true);
    assert_eq!(r["latest"][0]["judge_version"], 1);
    assert_eq!(r["latest"][0]["judge_hash"], hash.as_str());
    gate(&s, &agent, "bad-1", "I cannot help with that.").await;
    gate(&s, &agent, "bad-2", "Please call us.").await;
    let r = results_until(&s, &admin, &id, "three results", |v| {
        v["totals"]["judged"] == 3
    })
    .await;
    assert_eq!(r["totals"]["pass"], 1);
    assert_eq!(r["totals"]["fail"], 2);
    assert!((r["totals"]["pass_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let ids: Vec<&str> = r["latest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["trace_id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"before"), "{ids:?}");
    let windows = r["windows"].as_array().unwrap();
    let summed: i64 = windows
        .iter()
        .map(|w| w["pass"].as_i64().unwrap() + w["fail"].as_i64().unwrap())
        .sum();
    assert_eq!(summed, 3, "{r}");
    // The trace view shows the monitor's result.
    let (_, t) = req(&s, &admin, "GET", "/api/v1/traces/bad-2", None).await;
    assert_eq!(t["monitors"][0]["status"], "fail", "{t}");
    assert_eq!(t["monitors"][0]["judge_hash"], hash.as_str());

    // Two failures in the last two results: firing. The first attempt gets a 500, the
    // second is delivered.
    let sent = wait_received(&got, 2).await;
    let (headers, body) = &sent[1];
    assert_eq!(sent[0].1, *body, "a retry sends the same payload");
    let signature = headers["x-tribunal-signature"].to_str().unwrap();
    assert_eq!(
        signature,
        format!(
            "sha256={}",
            tribunal_server::monitor::sign(secret.as_bytes(), body.as_bytes())
        )
    );
    assert_ne!(
        signature,
        format!(
            "sha256={}",
            tribunal_server::monitor::sign(b"another secret!!", body.as_bytes())
        )
    );
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["event"], "firing");
    assert_eq!(payload["project"], "default");
    assert_eq!(payload["alert"]["id"], a["id"]);
    assert_eq!(payload["alert"]["kind"], "failure_rate");
    assert_eq!(payload["monitor"]["id"], id.as_str());
    assert_eq!(payload["monitor"]["judge"], "refunds");
    assert_eq!(payload["observed"], 1.0);
    let delivery = headers["x-tribunal-delivery"].to_str().unwrap().to_owned();
    let mut recorded = Value::Null;
    for _ in 0..100 {
        let (_, v) = req(
            &s,
            &admin,
            "GET",
            &format!("/api/v1/monitors/{id}/alerts"),
            None,
        )
        .await;
        recorded = v["alerts"][0].clone();
        if recorded["deliveries"][0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recorded["firing"], true, "{recorded}");
    let d = &recorded["deliveries"][0];
    assert_eq!(
        (
            &d["id"],
            &d["status"],
            &d["attempts"],
            &d["last_status"],
            &d["event"]
        ),
        (
            &json!(delivery),
            &json!("delivered"),
            &json!(2),
            &json!(200),
            &json!("firing")
        ),
        "{recorded}"
    );

    // Still failing: still firing, and nothing more is sent.
    gate(&s, &agent, "bad-3", "No.").await;
    results_until(&s, &admin, &id, "four results", |v| {
        v["totals"]["judged"] == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        got.lock().unwrap().len(),
        2,
        "a firing alert was sent again"
    );
    // Two passes: resolved, sent once.
    gate(&s, &agent, "ok-2", "Refund done.").await;
    gate(&s, &agent, "ok-3", "The refund was issued.").await;
    results_until(&s, &admin, &id, "six results", |v| {
        v["totals"]["judged"] == 6
    })
    .await;
    let sent = wait_received(&got, 3).await;
    let resolved: Value = serde_json::from_str(&sent[2].1).unwrap();
    assert_eq!(resolved["event"], "resolved");
    // Resolved once the rate is no longer above 0.5: after the first pass (0.5) or both
    // (0.0), whichever round judged them.
    assert!(
        resolved["observed"].as_f64().is_some_and(|o| o <= 0.5),
        "{resolved}"
    );

    // The sampled monitor judged exactly the matching traces in its sample.
    let mut expected = Vec::new();
    for i in 0..16 {
        let id = format!("parcel-{i}");
        gate(&s, &agent, &id, "Your parcel arrives tomorrow.").await;
        if tribunal_server::monitor::sampled(&id, 0.5) {
            expected.push(id);
        }
    }
    assert!(!expected.is_empty() && expected.len() < 16, "{expected:?}");
    // The refund monitor sees them all (they fail), so once it has, the sampled one has
    // claimed them too.
    results_until(&s, &admin, &id, "the parcel traces", |v| {
        v["totals"]["judged"] == 22
    })
    .await;
    let r = results_until(&s, &admin, &sid, "the sampled traces", |v| {
        v["totals"]["judged"].as_u64() == Some(expected.len() as u64)
    })
    .await;
    let mut judged: Vec<String> = r["latest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["trace_id"].as_str().unwrap().to_owned())
        .collect();
    judged.sort();
    expected.sort();
    assert_eq!(judged, expected);
    assert_eq!(r["totals"]["fail"].as_u64(), Some(expected.len() as u64));

    // Switched off, it judges nothing more.
    let (st, _) = req(
        &s,
        &admin,
        "PATCH",
        &format!("/api/v1/monitors/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(st, 200);
    gate(&s, &agent, "after", "Refund sent.").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, r) = req(
        &s,
        &admin,
        "GET",
        &format!("/api/v1/monitors/{id}/results?limit=100"),
        None,
    )
    .await;
    assert_eq!(r["totals"]["judged"], 22);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policies_page_lists_rules_runs_tests_and_replays_a_changed_module() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(
        mine.join("refunds.rego"),
        "# Refunds: a reply that promises money waits for a person.\npackage mine # refunds\nimport rego.v1\nviolation contains {\"rule\": \"mine.refund_promise\", \"severity\": \"escalate\", \"message\": \"a refund is promised\"} if {\n\tsome m in input.trace.messages\n\tm.role == \"assistant\"\n\tcontains(m.content, \"cheque\")\n}\n",
    )
    .unwrap();
    std::fs::write(
        mine.join("refunds_test.rego"),
        "package mine_test\nimport rego.v1\ntest_passes if { 1 == 1 }\ntest_fails if { 1 == 2 }\n",
    )
    .unwrap();
    let shadow = dir.path().join("shadow");
    std::fs::create_dir_all(&shadow).unwrap();
    std::fs::write(
        shadow.join("strict.rego"),
        "package strict\nimport rego.v1\nviolation contains {\"rule\": \"strict.none\", \"severity\": \"block\", \"message\": \"no\"} if false\n",
    )
    .unwrap();
    let mut options = ServerOptions::default();
    options.projects[0].policies = vec![mine.clone()];
    options.projects[0].shadow_policies = vec![shadow];
    let mut s = TestServer::start(options).await;
    let admin = s.token("default", "admin").await;
    let viewer = s.token("default", "viewer").await;
    let agent = s.token("default", "agent").await;

    let (st, p) = req(&s, &viewer, "GET", "/api/v1/policies/modules", None).await;
    assert_eq!(st, 200, "{p}");
    let rules = p["rules"].as_array().unwrap();
    let find = |r: &str| {
        rules
            .iter()
            .find(|x| x["rule"] == r)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(find("c4.secret_in_arguments")["severity"], "block");
    // c6's severity comes from the pack's data (per kind of command), not the rule's text.
    assert_eq!(find("c6.dangerous_command")["severity"], Value::Null);
    assert!(find("c6.dangerous_command")["description"]
        .as_str()
        .unwrap()
        .contains("dangerous"));
    assert_eq!(find("mine.refund_promise")["severity"], "escalate");
    assert_eq!(
        find("mine.refund_promise")["description"],
        "Refunds: a reply that promises money waits for a person."
    );
    let modules = p["modules"].as_array().cloned().unwrap_or_default();
    assert!(
        modules.iter().any(|m| m["package"] == "mine"
            && m["path"].as_str().unwrap_or("").ends_with("refunds.rego")),
        "{p}"
    );
    assert_eq!(p["shadow"]["enforced"], false);
    assert!(
        p["shadow"]["gates"]
            .as_array()
            .unwrap()
            .contains(&json!("data.strict")),
        "{p}"
    );
    let paths: Vec<&str> = p["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|x| x.ends_with("refunds.rego")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|x| x.ends_with("_test.rego")),
        "{paths:?}"
    );
    let (st, _) = req(&s, &agent, "GET", "/api/v1/policies/modules", None).await;
    assert_eq!(st, 403);

    // The pack's tests pass; the project's file has one that fails, and it says so.
    let (st, t) = req(&s, &viewer, "POST", "/api/v1/policies/test", None).await;
    assert_eq!(st, 200, "{t}");
    let tests = t["tests"].as_array().unwrap();
    assert_eq!(t["failed"], 1, "{t}");
    assert!(t["passed"].as_u64().unwrap() > 5, "{t}");
    let failing: Vec<&Value> = tests.iter().filter(|x| x["passed"] == false).collect();
    assert_eq!(failing[0]["name"], "data.mine_test.test_fails");
    assert!(tests
        .iter()
        .any(|x| x["name"] == "data.mine_test.test_passes" && x["passed"] == true));
    let (st, _) = req(&s, &agent, "POST", "/api/v1/policies/test", None).await;
    assert_eq!(st, 403);

    // Stored gate traffic: one blocked, two allowed.
    let (st, v) = req(&s, &agent, "POST", "/api/v1/gate", Some(json!({"trace_id": "wipe-disk",
        "trace": [{"role": "user", "content": "Free up some space"},
                  {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\": \"rm -rf / --no-preserve-root\"}"}}]}],
        "pending": {"name": "shell", "arguments": {"command": "rm -rf / --no-preserve-root"}}}))).await;
    assert_eq!((st, v["decision"].as_str()), (200, Some("block")), "{v}");
    gate(&s, &agent, "cheque", "A cheque is in the post.").await;
    gate(&s, &agent, "plain", "Your refund is on its way.").await;
    for id in ["wipe-disk", "cheque", "plain"] {
        let mut ok = false;
        for _ in 0..200 {
            if req(&s, &viewer, "GET", &format!("/api/v1/traces/{id}"), None)
                .await
                .0
                == 200
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "{id} was not stored");
    }

    // Dangerous commands escalate instead of blocking; the refund rule is dropped.
    let c6 = p["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "builtin:c6_dangerous_commands.rego")
        .unwrap();
    let softer = c6["text"]
        .as_str()
        .unwrap()
        .replace("f.kind, \"block\")", "f.kind, \"escalate\")");
    assert!(softer.contains("f.kind, \"escalate\")"), "{softer}");
    let (st, r) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/policies/try",
        Some(json!({"path": "builtin:c6_dangerous_commands.rego", "text": softer})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["traces"], 3, "{r}");
    assert_eq!(r["changes"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["changes"][0]["trace_id"], "wipe-disk");
    assert_eq!(
        (
            r["changes"][0]["before"].as_str(),
            r["changes"][0]["after"].as_str()
        ),
        (Some("block"), Some("escalate"))
    );
    assert_eq!(
        r["transitions"],
        json!([{"change": "block -> escalate", "count": 1}])
    );
    assert_ne!(r["policy_version"], r["enforced_version"]);
    let refunds = paths.iter().find(|x| x.ends_with("refunds.rego")).unwrap();
    let (st, r) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/policies/try",
        Some(json!({"path": refunds, "text": "package mine\n"})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r["transitions"],
        json!([{"change": "escalate -> allow", "count": 1}]),
        "{r}"
    );
    assert_eq!(r["changes"][0]["trace_id"], "cheque");
    // Nothing was enforced.
    let (_, again) = req(&s, &viewer, "GET", "/api/v1/policies/modules", None).await;
    assert_eq!(again["version"], p["version"]);

    // Roles and bad input.
    let (st, v) = req(
        &s,
        &viewer,
        "POST",
        "/api/v1/policies/try",
        Some(json!({"path": refunds, "text": "package mine\n"})),
    )
    .await;
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/policies/try",
        Some(json!({"path": refunds, "text": "package mine\nviolation contains x if {"})),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "invalid_policy"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refunds.rego"),
        "{v}"
    );
    for body in [
        json!({"path": refunds, "text": "package mine\n", "limit": 0}),
        json!({"path": "", "text": "package mine\n"}),
        json!({"path": refunds}),
        json!({"path": refunds, "text": "package mine\n", "extra": 1}),
    ] {
        let (st, v) = req(
            &s,
            &admin,
            "POST",
            "/api/v1/policies/try",
            Some(body.clone()),
        )
        .await;
        assert_eq!((st, code(&v)), (400, "invalid_request"), "{body}: {v}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_stopped_server_is_judged_and_a_time_window_alert_resolves_without_traffic(
) {
    let (hook, got) = receiver().await;
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let agent = s.token("default", "agent").await;
    refund_judge(&s, &admin, "refunds").await;
    // Sent before this server's monitor is switched on, so only a claim brings it in.
    gate(&s, &agent, "lost", "Your refund is on its way.").await;
    for _ in 0..100 {
        let row = s.store.get_trace("default", "lost").await.unwrap();
        if row.is_some_and(|r| r.body.is_some() && r.decision.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, m) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/monitors",
        Some(json!({"judge": "refunds"})),
    )
    .await;
    assert_eq!(st, 201, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    // Another server claimed "lost" twenty minutes ago and stopped before judging it.
    let long_ago = tribunal_store::clock::now_ms() - 20 * 60_000;
    s.store
        .execute_raw(&format!(
            "INSERT INTO monitor_results (monitor_id, trace_id, status, trace_decision, rules, judge_version,
                 judge_hash, value, feedback, claimed_by, at, at_ms, project)
             VALUES ('{id}', 'lost', 'claimed', 'allow', '[]', 1, 'h', NULL, NULL, 'a-stopped-server',
                 '2026-01-01T00:00:00Z', {long_ago}, 'default')"
        ))
        .await
        .unwrap();
    // An alert over the last minute of results: one failure in it fires the alert.
    let (st, a) = req(
        &s,
        &admin,
        "POST",
        &format!("/api/v1/monitors/{id}/alerts"),
        Some(json!({"kind": "failure_rate", "threshold": 0.0, "minutes": 1, "webhook_url": hook, "secret": "s3cret-s3cret-s3cret"})),
    )
    .await;
    assert_eq!(st, 201, "{a}");
    gate(&s, &agent, "fresh", "No.").await;
    let r = results_until(&s, &admin, &id, "both judged", |v| {
        v["totals"]["judged"] == 2
    })
    .await;
    let lost = r["latest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["trace_id"] == "lost")
        .unwrap()
        .clone();
    assert_eq!(lost["status"], "pass", "{lost}");
    // The trace list keeps the traces a judge answered with a value: a monitor's ...
    let ids = |v: &Value| -> Vec<String> {
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (st, v) = req(
        &s,
        &admin,
        "GET",
        "/api/v1/traces?judge=refunds&value=true",
        None,
    )
    .await;
    assert_eq!((st, ids(&v)), (200, vec!["lost".to_owned()]), "{v}");
    let (_, v) = req(
        &s,
        &admin,
        "GET",
        "/api/v1/traces?judge=refunds&value=false",
        None,
    )
    .await;
    assert_eq!(ids(&v), ["fresh"], "{v}");
    let (_, v) = req(&s, &admin, "GET", "/api/v1/traces?judge=refunds", None).await;
    assert_eq!(ids(&v).len(), 2, "{v}");
    let (_, v) = req(&s, &admin, "GET", "/api/v1/traces?judge=nobody", None).await;
    assert!(ids(&v).is_empty(), "{v}");
    let (st, v) = req(&s, &admin, "GET", "/api/v1/traces?value=true", None).await;
    assert_eq!((st, code(&v)), (400, "invalid_request"), "{v}");
    // ... or the gate's own judges, in the trace's result.
    let (_, t) = req(&s, &admin, "GET", "/api/v1/traces/fresh", None).await;
    let f = &t["result"]["feedback"][0];
    let (name, value) = (f["name"].as_str().unwrap(), f["value"].to_string());
    let (_, v) = req(
        &s,
        &admin,
        "GET",
        &format!("/api/v1/traces?judge={name}&value={}", urlencode(&value)),
        None,
    )
    .await;
    assert!(ids(&v).contains(&"fresh".to_owned()), "{name}={value}: {v}");
    let fired = wait_received(&got, 1).await;
    assert!(
        fired[0].1.contains("\"event\":\"firing\""),
        "{}",
        fired[0].1
    );
    // No more traffic: the failure leaves the one-minute window and the alert resolves.
    s.store
        .execute_raw(&format!(
            "UPDATE monitor_results SET at_ms = at_ms - 120000 WHERE monitor_id = '{id}'"
        ))
        .await
        .unwrap();
    let mut resolved = false;
    for _ in 0..300 {
        resolved = got
            .lock()
            .unwrap()
            .iter()
            .any(|(_, b)| b.contains("\"event\":\"resolved\""));
        if resolved {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        resolved,
        "{:?}",
        got.lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect::<Vec<_>>()
    );
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

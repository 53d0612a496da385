//! The Judge Builder's API: built-in kinds, stored judge versions (add, list, diff, roll
//! back) with their roles, bad input, missing versions and conflicts, and trying a judge on
//! stored gate traces against a local model server, compared with a stored version.

mod common;

use axum::routing::post;
use axum::{Json, Router};
use common::TestServer;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
        _ => c.get(url),
    };
    let r = r.bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

/// The version a `tribunal.toml` table with this kind and settings gets.
fn config_version(name: &str, kind: &str, settings: &Value) -> String {
    let text = tribunal_engine::judge_toml::table_text(name, kind, settings).unwrap();
    let cfg = tribunal_engine::Config::parse(&text, "t").unwrap();
    cfg.judge_specs()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_versions_roles_bad_input_missing_and_conflicts() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let viewer = s.token("default", "viewer").await;
    let annotator = s.token("default", "annotator").await;
    let agent = s.token("default", "agent").await;
    let other = s.token("other", "admin").await;

    // Built-in kinds: model judges with their instructions, code judges without.
    let (st, v) = req(&s, &viewer, "GET", "/api/v1/judges/builtins", None).await;
    assert_eq!(st, 200, "{v}");
    let list = v["builtins"].as_array().unwrap();
    let find = |k: &str| list.iter().find(|b| b["kind"] == k).unwrap().clone();
    let safety = find("safety");
    assert_eq!(safety["model_judge"], true);
    assert!(safety["instructions"]
        .as_str()
        .unwrap()
        .contains("{{ outputs }}"));
    assert_eq!(safety["output"], "one of [safe, unsafe]");
    assert_eq!(find("llm")["model_judge"], true);
    assert_eq!(find("llm")["instructions"], Value::Null);
    let pii = find("pii");
    assert_eq!(
        (&pii["model_judge"], &pii["instructions"], &pii["output"]),
        (&json!(false), &Value::Null, &Value::Null)
    );
    assert!(pii["description"].as_str().unwrap().contains("emails"));
    let (st, v) = req(&s, &agent, "GET", "/api/v1/judges/builtins", None).await;
    assert_eq!((st, code(&v)), (403, "forbidden"));

    // Adding a version: admin only.
    let def =
        json!({"kind": "repeated_calls", "settings": {"ignore_tools": ["poll"]}, "note": "first"});
    for t in [&viewer, &annotator, &agent] {
        let (st, v) = req(
            &s,
            t,
            "POST",
            "/api/v1/judges/loops/versions",
            Some(def.clone()),
        )
        .await;
        assert_eq!((st, code(&v)), (403, "forbidden"), "{v}");
    }
    // Bad input names the field; nothing is stored.
    let bad: &[(&str, Value, &str, &str)] = &[
        ("bad.name", def.clone(), "invalid_request", "name:"),
        (
            "loops",
            json!({"kind": "repeated_calls"}),
            "invalid_request",
            "settings",
        ),
        (
            "loops",
            json!({"kind": "repeated_calls", "settings": {}, "extra": 1}),
            "invalid_request",
            "extra",
        ),
        (
            "loops",
            json!({"kind": "nope", "settings": {}}),
            "invalid_judge",
            "nope",
        ),
        (
            "loops",
            json!({"kind": "repeated_calls", "settings": {"bogus": 1}}),
            "invalid_judge",
            "bogus",
        ),
        (
            "loops",
            json!({"kind": "repeated_calls", "settings": {"ignore_tools": null}}),
            "invalid_judge",
            "settings.ignore_tools",
        ),
        (
            "loops",
            json!({"kind": "repeated_calls", "settings": {"enabled": false}}),
            "invalid_judge",
            "settings.enabled",
        ),
        (
            "loops",
            json!({"kind": "repeated_calls", "settings": [1]}),
            "invalid_judge",
            "settings",
        ),
        (
            "loops",
            json!({"kind": "llm", "settings": {"instructions": "x {{ outputs }}", "output": "maybe"}}),
            "invalid_judge",
            "maybe",
        ),
    ];
    for (name, body, want, field) in bad {
        let (st, v) = req(
            &s,
            &admin,
            "POST",
            &format!("/api/v1/judges/{name}/versions"),
            Some(body.clone()),
        )
        .await;
        assert_eq!((st, code(&v)), (400, *want), "{body}: {v}");
        assert!(message(&v).contains(field), "{body}: {v}");
    }
    let (st, v) = req(&s, &viewer, "GET", "/api/v1/judges/loops/versions", None).await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");

    // Version 1, its hash the one a tribunal.toml table gets; the same again is a conflict.
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/loops/versions",
        Some(def.clone()),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let h1 = config_version(
        "loops",
        "repeated_calls",
        &json!({"ignore_tools": ["poll"]}),
    );
    assert_eq!(v, json!({"name": "loops", "version": 1, "hash": h1}));
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/loops/versions",
        Some(def.clone()),
    )
    .await;
    assert_eq!((st, code(&v)), (409, "conflict"), "{v}");
    assert!(message(&v).contains("latest version 1"), "{v}");
    let def2 = json!({"kind": "repeated_calls", "settings": {"ignore_tools": ["poll", "wait"]}});
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/loops/versions",
        Some(def2),
    )
    .await;
    assert_eq!((st, &v["version"]), (201, &json!(2)), "{v}");
    let h2 = v["hash"].as_str().unwrap().to_owned();
    assert_ne!(h1, h2);

    // Listing: oldest first, with who wrote each; other projects see nothing.
    let (st, v) = req(&s, &viewer, "GET", "/api/v1/judges/loops/versions", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"], "loops");
    let vs = v["versions"].as_array().unwrap();
    assert_eq!(vs.len(), 2);
    assert_eq!(vs[0]["version"], 1);
    assert_eq!(vs[0]["kind"], "repeated_calls");
    assert_eq!(vs[0]["settings"], json!({"ignore_tools": ["poll"]}));
    assert_eq!(vs[0]["hash"], h1);
    assert_eq!(vs[0]["note"], "first");
    assert_eq!(vs[1]["note"], "");
    assert!(vs[0]["created_by"].as_str().unwrap().starts_with("tok_"));
    assert!(vs[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let (st, _) = req(&s, &other, "GET", "/api/v1/judges/loops/versions", None).await;
    assert_eq!(st, 404);
    let (st, v) = req(&s, &viewer, "GET", "/api/v1/judges", None).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["judges"].as_array().unwrap().len() > 3 && v["config_hash"].is_string());
    let stored = v["stored"].as_array().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["name"], "loops");
    assert_eq!(stored[0]["kind"], "repeated_calls");
    assert_eq!(stored[0]["latest_version"], 2);
    assert_eq!(stored[0]["hash"], h2);
    assert!(stored[0]["updated_at"].is_string());

    // Diff: the changed settings and a unified diff of the tables.
    let (st, v) = req(
        &s,
        &viewer,
        "GET",
        "/api/v1/judges/loops/diff?from=1&to=2",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (&v["name"], &v["from"], &v["to"]),
        (&json!("loops"), &json!(1), &json!(2))
    );
    assert_eq!(
        v["changes"],
        json!([{"path": "settings.ignore_tools", "from": ["poll"], "to": ["poll", "wait"]}])
    );
    let text = v["text"].as_str().unwrap();
    assert!(
        text.starts_with("--- loops version 1\n+++ loops version 2\n@@"),
        "{text}"
    );
    assert!(
        text.contains("\n-ignore_tools = [\"poll\"]\n+ignore_tools = [\"poll\", \"wait\"]\n"),
        "{text}"
    );
    for (q, st_want) in [
        ("from=1&to=9", 404),
        ("from=x&to=2", 400),
        ("from=1", 400),
        ("from=1&to=2&x=1", 400),
    ] {
        let (st, v) = req(
            &s,
            &viewer,
            "GET",
            &format!("/api/v1/judges/loops/diff?{q}"),
            None,
        )
        .await;
        assert_eq!(st, st_want, "{q}: {v}");
    }
    let (_, v) = req(&s, &viewer, "GET", "/api/v1/judges/loops/diff?from=1", None).await;
    assert!(message(&v).contains("to"), "{v}");
    let (st, _) = req(
        &s,
        &agent,
        "GET",
        "/api/v1/judges/loops/diff?from=1&to=2",
        None,
    )
    .await;
    assert_eq!(st, 403);

    // Rollback: a new version equal to the old one.
    let (st, _) = req(
        &s,
        &viewer,
        "POST",
        "/api/v1/judges/loops/rollback",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(st, 403);
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/loops/rollback",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v, json!({"name": "loops", "version": 3, "hash": h1}));
    let (_, v) = req(&s, &viewer, "GET", "/api/v1/judges/loops/versions", None).await;
    assert_eq!(v["versions"][2]["note"], "rollback to 1");
    assert_eq!(v["versions"][2]["settings"], v["versions"][0]["settings"]);
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/loops/rollback",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!((st, code(&v)), (409, "conflict"), "{v}");
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/loops/rollback",
        Some(json!({"version": 7})),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/loops/rollback",
        Some(json!({"version": "x"})),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "invalid_request"), "{v}");
    assert!(message(&v).contains("version"), "{v}");
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/nothing/rollback",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");

    // Trying: annotators may, viewers and agents may not; bad input is named.
    let trial = json!({"kind": "repeated_calls", "settings": {}, "trace_ids": ["t-none"]});
    for t in [&viewer, &agent] {
        let (st, v) = req(&s, t, "POST", "/api/v1/judges/try", Some(trial.clone())).await;
        assert_eq!((st, code(&v)), (403, "forbidden"), "{v}");
    }
    let (st, v) = req(
        &s,
        &annotator,
        "POST",
        "/api/v1/judges/try",
        Some(trial.clone()),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    assert!(message(&v).contains("\"t-none\""), "{v}");
    let many: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
    for (body, want, field) in [
        (
            json!({"kind": "repeated_calls", "settings": {}, "trace_ids": []}),
            "invalid_request",
            "trace_ids",
        ),
        (
            json!({"kind": "repeated_calls", "settings": {}, "trace_ids": many}),
            "invalid_request",
            "trace_ids",
        ),
        (
            json!({"kind": "repeated_calls", "settings": {}}),
            "invalid_request",
            "trace_ids",
        ),
        (
            json!({"kind": "repeated_calls", "settings": {"bogus": true}, "trace_ids": ["a"]}),
            "invalid_judge",
            "bogus",
        ),
        (
            json!({"kind": "repeated_calls", "settings": {}, "trace_ids": ["a"], "compare": {"name": "x y", "version": 1}}),
            "invalid_request",
            "compare.name",
        ),
    ] {
        let (st, v) = req(
            &s,
            &annotator,
            "POST",
            "/api/v1/judges/try",
            Some(body.clone()),
        )
        .await;
        assert_eq!((st, code(&v)), (400, want), "{body}: {v}");
        assert!(message(&v).contains(field), "{body}: {v}");
    }
    let (st, v) = req(
        &s,
        &annotator,
        "POST",
        "/api/v1/judges/try",
        Some(json!({"kind": "repeated_calls", "settings": {}, "trace_ids": ["a"], "compare": {"name": "loops", "version": 9}})),
    )
    .await;
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");

    // The OpenAPI document lists the routes.
    let (_, doc) = req(&s, &viewer, "GET", "/api/v1/openapi.json", None).await;
    for p in [
        "/api/v1/judges/builtins",
        "/api/v1/judges/{name}/versions",
        "/api/v1/judges/{name}/diff",
        "/api/v1/judges/{name}/rollback",
        "/api/v1/judges/try",
    ] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
    s.stop().await;
}

/// A model server: `no` when the prompt says "Strict", else `yes` when the trace names an
/// order; counts requests.
async fn model_server(requests: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let requests = requests.clone();
            async move {
                requests.fetch_add(1, Ordering::SeqCst);
                let prompt = body.to_string();
                let (result, why) = if prompt.contains("Strict") {
                    ("no", "strictly, the refund was not confirmed")
                } else if prompt.contains("order ") {
                    ("yes", "the agent issued the refund")
                } else {
                    ("no", "no refund was handled")
                };
                Json(json!({
                    "id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "message": {"role": "assistant",
                        "content": json!({"rationale": why, "result": result}).to_string()},
                        "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trying_an_llm_judge_on_stored_gate_traces_against_a_stored_version() {
    let requests = Arc::new(AtomicUsize::new(0));
    let url = model_server(requests.clone()).await;
    let mut s = TestServer::start(ServerOptions::default()).await;
    let admin = s.token("default", "admin").await;
    let annotator = s.token("default", "annotator").await;
    let agent = s.token("default", "agent").await;

    // Three traces through the gate, then stored.
    let convos = [
        (
            "tr-1",
            "I want a refund for order 7",
            "Your refund for order 7 is on its way.",
        ),
        ("tr-2", "Where is my parcel?", "It arrives tomorrow."),
        (
            "tr-3",
            "Please refund order 9",
            "Refund issued for order 9.",
        ),
    ];
    for (id, user, reply) in convos {
        let (st, v) = req(&s, &agent, "POST", "/api/v1/gate", Some(json!({
            "trace_id": id,
            "trace": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
        }))).await;
        assert_eq!(st, 200, "{v}");
    }
    for (id, _, _) in convos {
        let mut stored = false;
        for _ in 0..500 {
            if req(&s, &admin, "GET", &format!("/api/v1/traces/{id}"), None)
                .await
                .0
                == 200
            {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stored, "gate trace {id} was not stored");
    }

    let settings = |instructions: &str| {
        json!({
            "instructions": instructions,
            "output": "yes_no",
            "model": "openai:/gpt-4o-mini",
            "base_url": url,
            "max_retries": 0,
        })
    };
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/refunds/versions",
        Some(json!({
            "kind": "llm",
            "settings": settings("Strict: was a refund confirmed in writing? {{ conversation }}"),
        })),
    )
    .await;
    assert_eq!(st, 201, "{v}");

    let body = json!({
        "kind": "llm",
        "settings": settings("Did the agent handle the money-back request? {{ conversation }}"),
        "trace_ids": ["tr-1", "tr-2", "tr-3"],
        "compare": {"name": "refunds", "version": 1},
        "name": "refunds",
    });
    // Only an admin may send a draft to a server of its choosing.
    let (st, v) = req(
        &s,
        &annotator,
        "POST",
        "/api/v1/judges/try",
        Some(body.clone()),
    )
    .await;
    assert_eq!((st, code(&v)), (403, "forbidden"), "{v}");
    assert!(message(&v).contains("settings.base_url"), "{v}");
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    let (st, v) = req(&s, &admin, "POST", "/api/v1/judges/try", Some(body.clone())).await;
    assert_eq!(st, 200, "{v}");
    let price = tribunal_judges::metrics::usage::PriceTable::builtin()
        .usd("openai:/gpt-4o-mini", 1000, 50)
        .unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let expected = [("tr-1", "yes"), ("tr-2", "no"), ("tr-3", "yes")];
    for (r, (id, value)) in results.iter().zip(expected) {
        assert_eq!(r["trace_id"], id);
        let f = &r["feedback"][0];
        assert_eq!(f["name"], "refunds", "{r}");
        assert_eq!(f["value"], value, "{r}");
        assert!(f["rationale"].as_str().unwrap().contains("refund"), "{r}");
        assert_eq!(f["source"]["version"], v["version_hash"]);
        assert_eq!(r["usage"]["calls"], 1);
        assert_eq!(r["usage"]["input_tokens"], 1000);
        assert_eq!(r["usage"]["output_tokens"], 50);
        assert!(
            (r["usage"]["cost_usd"].as_f64().unwrap() - price).abs() < 1e-12,
            "{r}"
        );
        // The stored version, stricter, says no everywhere.
        let c = &r["compare"];
        assert_eq!(c["feedback"][0]["value"], "no", "{r}");
        assert!(c["feedback"][0]["rationale"]
            .as_str()
            .unwrap()
            .contains("strictly"));
        assert_eq!(c["usage"]["input_tokens"], 1000);
    }
    assert_eq!(v["totals"]["calls"], 3);
    assert_eq!(v["totals"]["input_tokens"], 3000);
    assert_eq!(v["totals"]["output_tokens"], 150);
    assert!((v["totals"]["cost_usd"].as_f64().unwrap() - 3.0 * price).abs() < 1e-12);
    assert_eq!(v["compare_totals"]["calls"], 3);
    assert_eq!(
        (&v["totals"]["traces"], &v["totals"]["errors"]),
        (&json!(3), &json!(0))
    );
    assert_eq!(v["compare_totals"]["errors"], 0);
    assert_eq!(
        v["version_hash"],
        config_version("refunds", "llm", &body["settings"])
    );
    assert_eq!(requests.load(Ordering::SeqCst), 6);

    // Trying again is answered from the store's response cache.
    let (st, v) = req(&s, &admin, "POST", "/api/v1/judges/try", Some(body)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(requests.load(Ordering::SeqCst), 6);
    assert_eq!(v["totals"]["cached_calls"], 3);
    assert_eq!(v["results"][0]["feedback"][0]["value"], "yes");

    // Without a comparison, compare is null; a bad setting is refused before any call.
    let (st, v) = req(&s, &admin, "POST", "/api/v1/judges/try", Some(json!({
        "kind": "llm", "settings": settings("Refund handled? {{ conversation }}"), "trace_ids": ["tr-2"],
    }))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][0]["compare"], Value::Null);
    assert_eq!(v["compare_totals"], Value::Null);
    assert_eq!(v["results"][0]["feedback"][0]["name"], "draft");
    // A model that cannot be reached: each trace's result is an error, and the totals count
    // them beside the (empty) usage.
    let mut down = settings("Refund handled? {{ conversation }}");
    down["base_url"] = json!("http://127.0.0.1:9/v1");
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/try",
        Some(json!({
            "kind": "llm", "settings": down, "trace_ids": ["tr-1", "tr-2"],
        })),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["results"][0]["feedback"][0]["error"].is_string(), "{v}");
    assert_eq!(
        (
            &v["totals"]["traces"],
            &v["totals"]["errors"],
            &v["totals"]["calls"]
        ),
        (&json!(2), &json!(2), &json!(0)),
        "{v}"
    );
    let mut bad = settings("Refund handled? {{ conversation }}");
    bad["output"] = json!("sometimes");
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/try",
        Some(json!({
            "kind": "llm", "settings": bad, "trace_ids": ["tr-1"],
        })),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "invalid_judge"), "{v}");
    assert!(message(&v).contains("sometimes"), "{v}");
    let mut bad = settings("Refund handled? {{ conversation }}");
    bad["temperature_typo"] = json!(1);
    let (st, v) = req(
        &s,
        &admin,
        "POST",
        "/api/v1/judges/try",
        Some(json!({
            "kind": "llm", "settings": bad, "trace_ids": ["tr-1"],
        })),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "invalid_judge"), "{v}");
    assert!(message(&v).contains("temperature_typo"), "{v}");
    assert_eq!(requests.load(Ordering::SeqCst), 7);
    s.stop().await;
}

//! `/metrics` against a real server: decisions by project, violations by rule, judge errors
//! by judge, the build, and the separate token-free metrics address.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tribunal_server::{ProjectSpec, ServerOptions};

/// A project whose policy blocks every reply with rule `shop.no_replies`, and whose model
/// judge `tone` points at a port nobody listens on (so it always fails).
fn shop_config(dir: &std::path::Path) -> std::path::PathBuf {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    std::fs::create_dir(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/p.rego"),
        "package shop\nimport rego.v1\nviolation contains {\"rule\": \"shop.no_replies\", \"severity\": \"block\", \"message\": \"no\"} if input.pending.kind == \"reply\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("tribunal.toml"),
        format!(
            r#"[judges.tone]
kind = "llm"
instructions = "Is the reply polite? {{{{ conversation }}}}"
output = "yes_no"
model = "openai:/gpt-4o-mini"
base_url = "{refused}"
max_retries = 0
timeout_ms = 2000

[policies]
paths = ["policies"]
"#
        ),
    )
    .unwrap();
    dir.join("tribunal.toml")
}

async fn get(url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = TestServer::client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn gate(s: &TestServer, token: &str, pending: Value) -> Value {
    TestServer::client()
        .post(format!("{}/api/v1/gate", s.url))
        .bearer_auth(token)
        .json(&json!({"trace": [{"role": "user", "content": "hi"}], "pending": pending}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The operator's metrics address (`--metrics-listen`) of a test server.
struct OperatorMetrics {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl OperatorMetrics {
    async fn start(s: &TestServer) -> OperatorMetrics {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(tribunal_server::metrics::serve_metrics(
            listener,
            s.state.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        OperatorMetrics { url, stop, served }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.served.await.unwrap().unwrap();
    }
}

fn has_line(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_project_rule_and_judge_labels_and_each_token_sees_its_project() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop_config(dir.path());
    let mut s = TestServer::start(ServerOptions {
        projects: vec![
            ProjectSpec {
                name: "default".into(),
                ..Default::default()
            },
            ProjectSpec {
                name: "shop".into(),
                config: Some(shop),
                ..Default::default()
            },
        ],
        ..ServerOptions::default()
    })
    .await;
    let shop_agent = s.token("shop", "agent").await;
    let default_agent = s.token("default", "agent").await;
    let viewer = s.token("default", "viewer").await;

    let v = gate(
        &s,
        &shop_agent,
        json!({"kind": "reply", "content": "hello"}),
    )
    .await;
    assert_eq!(v["decision"], "block", "{v}");
    let v = gate(
        &s,
        &shop_agent,
        json!({"kind": "reply", "content": "again"}),
    )
    .await;
    assert_eq!(v["decision"], "block", "{v}");
    let v = gate(
        &s,
        &default_agent,
        json!({"kind": "reply", "content": "hello"}),
    )
    .await;
    assert_eq!(v["decision"], "allow", "{v}");

    let shop_lines = [
        "tribunal_decisions_total{project=\"shop\",decision=\"block\"} 2",
        "tribunal_violations_total{project=\"shop\",rule=\"shop.no_replies\"} 2",
        "tribunal_judge_errors_total{project=\"shop\",judge=\"tone\"} 2",
    ];
    let default_line = "tribunal_decisions_total{project=\"default\",decision=\"allow\"} 1";
    let build = format!(
        "tribunal_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    // A project's token shows that project's series only.
    let shop_viewer = s.token("shop", "viewer").await;
    let (st, m) = get(&format!("{}/metrics", s.url), Some(&shop_viewer)).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    for line in shop_lines.iter().copied().chain([build.as_str()]) {
        assert!(has_line(&m, line), "{line} in\n{m}");
    }
    assert!(!m.contains("project=\"default\""), "{m}");
    let (st, m) = get(&format!("{}/metrics", s.url), Some(&viewer)).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert!(has_line(&m, default_line), "{m}");
    assert!(has_line(&m, &build), "{m}");
    assert!(!m.contains("shop"), "{m}");
    // Nothing was counted for a project under another's name.
    assert!(!m.contains("project=\"default\",rule="), "{m}");
    assert!(!m.contains("project=\"default\",judge="), "{m}");
    assert!(m.contains("# TYPE tribunal_build_info gauge"), "{m}");

    // The operator's metrics address shows every project.
    let metrics = OperatorMetrics::start(&s).await;
    let metrics_url = metrics.url.clone();
    let (st, m) = get(&format!("{metrics_url}/metrics"), None).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    for line in shop_lines
        .iter()
        .copied()
        .chain([default_line, build.as_str()])
    {
        assert!(has_line(&m, line), "{line} in\n{m}");
    }
    metrics.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_address_serves_metrics_without_a_token_and_nothing_else() {
    let mut s = TestServer::start(ServerOptions::default()).await;
    let metrics = OperatorMetrics::start(&s).await;
    let metrics_url = metrics.url.clone();
    let agent = s.token("default", "agent").await;
    let v = gate(&s, &agent, json!({"kind": "reply", "content": "hello"})).await;
    assert_eq!(v["decision"], "allow", "{v}");

    let (st, m) = get(&format!("{metrics_url}/metrics"), None).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert!(
        has_line(
            &m,
            "tribunal_decisions_total{project=\"default\",decision=\"allow\"} 1"
        ),
        "{m}"
    );
    // The API is not on the metrics address, and the main address still asks for a token.
    let (st, body) = get(&format!("{metrics_url}/api/v1/traces"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    let (st, _) = get(&format!("{}/metrics", s.url), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    metrics.stop().await;
    s.stop().await;
}

/// The sample lines of a metrics text (comments left out).
fn samples(metrics: &str) -> Vec<&str> {
    metrics.lines().filter(|l| !l.starts_with('#')).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_token_sees_nothing_of_another_projects_traffic() {
    let mut s = TestServer::start(ServerOptions {
        projects: vec![
            ProjectSpec {
                name: "default".into(),
                ..Default::default()
            },
            ProjectSpec {
                name: "shop".into(),
                ..Default::default()
            },
        ],
        ..ServerOptions::default()
    })
    .await;
    let shop_agent = s.token("shop", "agent").await;
    let default_viewer = s.token("default", "viewer").await;
    let build = format!(
        "tribunal_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    let (st, before) = get(&format!("{}/metrics", s.url), Some(&default_viewer)).await;
    assert_eq!(st, StatusCode::OK, "{before}");
    // The shop project's traffic: gate requests, an OTLP export and a refused request.
    for content in ["hello", "again"] {
        let v = gate(
            &s,
            &shop_agent,
            json!({"kind": "reply", "content": content}),
        )
        .await;
        assert_eq!(v["decision"], "allow", "{v}");
    }
    let span = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
        "name": "chat", "startTimeUnixNano": "1", "endTimeUnixNano": "2"
    }]}]}]});
    let r = TestServer::client()
        .post(format!("{}/v1/traces", s.url))
        .bearer_auth(&shop_agent)
        .json(&span)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let (st, _) = get(&format!("{}/api/v1/traces", s.url), Some(&shop_agent)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // The default project's token sees exactly what it saw before: its own series (none yet)
    // and the build, no total over the server.
    let (st, after) = get(&format!("{}/metrics", s.url), Some(&default_viewer)).await;
    assert_eq!(st, StatusCode::OK, "{after}");
    assert_eq!(samples(&after), samples(&before), "{after}");
    for line in samples(&after) {
        assert!(
            line == build || line.contains("project=\"default\""),
            "{line} in\n{after}"
        );
    }

    // The shop's own view counts its requests under its name, without the server's series.
    let shop_viewer = s.token("shop", "viewer").await;
    let (_, m) = get(&format!("{}/metrics", s.url), Some(&shop_viewer)).await;
    for line in [
        "tribunal_decisions_total{project=\"shop\",decision=\"allow\"} 2",
        "tribunal_gate_reads_total{project=\"shop\",read=\"in_full\"} 2",
        "tribunal_ingested_spans_total{project=\"shop\"} 1",
        "tribunal_otlp_requests_total{project=\"shop\"} 1",
    ] {
        assert!(has_line(&m, line), "{line} in\n{m}");
    }
    assert!(!m.contains("tribunal_http_responses_total{"), "{m}");
    assert!(!m.contains("tribunal_gate_latency_seconds_count"), "{m}");
    assert!(!m.contains("tribunal_write_queue_records{"), "{m}");

    // The operator's metrics address shows the server's series as well.
    let metrics = OperatorMetrics::start(&s).await;
    let metrics_url = metrics.url.clone();
    let (st, m) = get(&format!("{metrics_url}/metrics"), None).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    for line in [
        "tribunal_gate_reads_total{project=\"shop\",read=\"in_full\"} 2",
        "tribunal_gate_latency_seconds_count 2",
        "tribunal_http_responses_total{class=\"4xx\"} 1",
    ] {
        assert!(has_line(&m, line), "{line} in\n{m}");
    }
    assert!(
        m.contains("tribunal_write_queue_records{queue=\"decision_log\"}"),
        "{m}"
    );
    metrics.stop().await;
    s.stop().await;
}

//! The Rust OpenTelemetry SDK's OTLP/HTTP exporter (protobuf, gzip) sending an agent's
//! spans to a running server: they are stored, assembled into one trace and judged.

mod common;

use common::TestServer;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::time::Duration;
use tribunal_server::ServerOptions;

fn exporter(url: &str, token: &str) -> opentelemetry_otlp::SpanExporter {
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{url}/v1/traces"))
        .with_headers(HashMap::from([(
            "authorization".to_owned(),
            format!("Bearer {token}"),
        )]))
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// An agent run: a root span, a model call and a tool call whose arguments leak a key.
fn run_agent(provider: &SdkTracerProvider) -> String {
    let tracer = provider.tracer("support-agent");
    let mut trace_id = String::new();
    tracer.in_span("invoke_agent support", |cx| {
        trace_id = cx.span().span_context().trace_id().to_string();
        cx.span().set_attribute(KeyValue::new("gen_ai.operation.name", "invoke_agent"));
        cx.span().set_attribute(KeyValue::new(
            "gen_ai.input.messages",
            r#"[{"role":"user","parts":[{"type":"text","content":"send the report to my boss"}]}]"#,
        ));
        let mut chat = tracer.start("chat gpt-4o-mini");
        chat.set_attribute(KeyValue::new("gen_ai.operation.name", "chat"));
        chat.set_attribute(KeyValue::new("gen_ai.request.model", "gpt-4o-mini"));
        chat.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", 120));
        chat.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", 30));
        chat.end();
        let mut tool = tracer.start("execute_tool send_email");
        tool.set_attribute(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        tool.set_attribute(KeyValue::new("gen_ai.tool.name", "send_email"));
        tool.set_attribute(KeyValue::new(
            "gen_ai.tool.call.arguments",
            r#"{"to":"boss@example.com","body":"report attached; AWS key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#,
        ));
        tool.end();
    });
    trace_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_exporter_delivers_spans_that_are_stored_and_judged() {
    let mut server = TestServer::start(ServerOptions {
        score_quiet: Duration::from_millis(100),
        ..ServerOptions::default()
    })
    .await;
    let token = server.token("default", "agent").await;
    let url = server.url.clone();
    let handle = tokio::runtime::Handle::current();
    // The exporter blocks in its own thread, as an instrumented agent would.
    let trace_id = tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter(&url, &token))
            .build();
        let id = run_agent(&provider);
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
        id
    })
    .await
    .unwrap();

    let viewer = server.token("default", "viewer").await;
    let mut got = serde_json::Value::Null;
    for _ in 0..100 {
        let res = TestServer::client()
            .get(format!("{}/api/v1/traces/{trace_id}", server.url))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            got = res.json().await.unwrap();
            if got["summary"]["dirty"] == false {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got["summary"]["span_count"], 3, "{got}");
    let names: Vec<&str> = got["trace"]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"execute_tool send_email"), "{names:?}");
    assert_eq!(got["result"]["decision"], "block", "{}", got["result"]);
    let rules: Vec<&str> = got["result"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert!(rules.iter().any(|r| r.contains("secret")), "{rules:?}");
    server.stop().await;
}

//! `tribunal eval -f html`: one self-contained page with the summary, charts and every
//! trace's verdict and evidence; nothing in it reaches outside the file, and trace content is
//! escaped.

use std::path::Path;
use std::process::Command;

#[test]
fn the_html_report_is_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support-agent");
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args([
            "eval",
            example.to_str().unwrap(),
            "--no-store",
            "-f",
            "html",
            "-o",
            "report.html",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains("13 traces:"), "the summary");
    assert!(
        html.contains("<svg") && html.contains("Top rules"),
        "charts"
    );
    assert!(
        html.contains("c2.indirect_injection") && html.contains("evidence:"),
        "violations with evidence"
    );
    assert_eq!(
        html.matches("<tr><td class=").count(),
        13,
        "a row per trace"
    );
    for outside in ["http://", "https://", "src=", "<script", "<link"] {
        assert!(
            !html.contains(outside),
            "the page reaches outside itself: {outside}"
        );
    }

    // Markup in a trace is text.
    std::fs::write(
        dir.path().join("t.jsonl"),
        r#"{"id": "<script>alert(1)</script>", "messages": [{"role": "user", "content": "hi"}]}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(["eval", "t.jsonl", "--no-store", "-f", "html"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"));
}

#[test]
fn the_value_report_reads_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = tribunal_store::Store::open(db.to_str().unwrap()).await.unwrap();
        let (state, background) = tribunal_server::start(store.clone(), tribunal_server::ServerOptions::default())
            .await
            .unwrap();
        let (_, secret) = tribunal_server::auth::create_token(&store, "default", "agent", "t").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(tribunal_server::serve(listener, state, background, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        for cmd in ["rm -rf /", "ls"] {
            let r = client
                .post(format!("{url}/api/v1/gate"))
                .bearer_auth(&secret)
                .json(&serde_json::json!({"trace": [{"role": "user", "content": "tidy"}], "pending": {"name": "shell", "arguments": {"command": cmd}}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let _ = stop.send(());
        done.await.unwrap().unwrap();
    });
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args([
            "report",
            "value",
            "--since",
            "1d",
            "-f",
            "json",
            "--db",
            db.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["decisions"]["block"], 1, "{r}");
    assert_eq!(r["decisions"]["allow"], 1, "{r}");
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args(["report", "value", "--db", db.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("incidents blocked") && text.contains("dangerous command"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tribunal"))
        .args([
            "report",
            "value",
            "--since",
            "tomorrow",
            "--db",
            db.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

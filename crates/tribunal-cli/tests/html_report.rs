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

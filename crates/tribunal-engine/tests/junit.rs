//! The JUnit report validates against the JUnit schema pytest's report is checked against
//! (`tests/data/junit-10.xsd`), with every kind of case in it: allowed, blocked, escalated
//! (a failure under `--fail-on escalate`), a failed judge, an optional judge's failure and a
//! rejected input.

mod common;

use std::time::Duration;
use tribunal_core::{Decision, Severity, Violation};
use tribunal_engine::report::{ReportFormat, Reporter, RunInfo};
use tribunal_engine::{Event, Summary, TraceResult};
use tribunal_formats::{ReadError, SourceRef};

fn result(id: &str, decision: Decision, violations: Vec<Violation>) -> Event {
    let cwd = std::env::current_dir().unwrap();
    let mut r = TraceResult {
        trace_id: id.into(),
        source: SourceRef {
            file: cwd.join("data/traces.jsonl").display().to_string(),
            line: 3,
        },
        verdict: decision,
        reasons: violations
            .iter()
            .map(|v| format!("{}: {}", v.rule, v.message))
            .collect(),
        feedback: Vec::new(),
        violations,
        elapsed: Duration::ZERO,
        trace: None,
    };
    r.elapsed = Duration::from_micros(1234);
    Event::Result(Box::new(r))
}

fn violation(rule: &str, severity: Severity, message: &str) -> Violation {
    Violation {
        rule: rule.into(),
        severity,
        message: message.into(),
        evidence: vec!["m1".into()],
    }
}

fn report(fail_on: Decision) -> String {
    let events = vec![
        result("allowed", Decision::Allow, vec![]),
        result(
            "blocked",
            Decision::Block,
            vec![violation(
                "c6.dangerous_command",
                Severity::Block,
                "rm -rf <&> \"quoted\"",
            )],
        ),
        result(
            "escalated",
            Decision::Escalate,
            vec![violation(
                "c5.limit",
                Severity::Escalate,
                "refund above 500",
            )],
        ),
        result(
            "judge-failed",
            Decision::Block,
            vec![violation(
                "tribunal.judge_error",
                Severity::Block,
                "judge grounded gave no usable answer (HTTP 500); the decision fails closed",
            )],
        ),
        result(
            "optional-failed",
            Decision::Allow,
            vec![violation(
                "tribunal.judge_error",
                Severity::Warn,
                "judge tone gave no usable answer (timeout); it is optional, so the others decide",
            )],
        ),
        Event::Rejected(ReadError {
            file: "data/traces.jsonl".into(),
            line: 9,
            column: Some(4),
            message: "invalid UTF-8; the line is skipped".into(),
        }),
    ];
    let mut summary = Summary::default();
    let mut reporter = Reporter::new(ReportFormat::Junit, Vec::new());
    for e in events {
        summary.add(&e);
        reporter.event(e).unwrap();
    }
    let info = RunInfo {
        run_id: Some("r1".into()),
        policy_version: "abc".into(),
        config: "built-in defaults".into(),
        fail_on: Some(fail_on),
    };
    String::from_utf8(reporter.finish(&summary, &info).unwrap()).unwrap()
}

#[test]
fn the_junit_report_follows_fail_on_and_validates_against_the_schema() {
    let block = report(Decision::Block);
    let escalate = report(Decision::Escalate);
    // Relative class names, times, and an error for the failed judge and the bad line.
    assert!(
        block.contains(r#"classname="data/traces.jsonl""#),
        "{block}"
    );
    assert!(block.contains(r#"time="0.001""#), "{block}");
    assert!(block.contains(r#"failures="2" errors="2""#), "{block}");
    assert!(
        escalate.contains(r#"failures="3" errors="2""#),
        "{escalate}"
    );
    assert!(escalate.contains(r#"type="escalate""#), "{escalate}");

    let python = common::python::python_with(&["xmlschema==3.4.3"]);
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/junit-10.xsd");
    let dir = tempfile::tempdir().unwrap();
    for (name, xml) in [("block.xml", &block), ("escalate.xml", &escalate)] {
        let path = dir.path().join(name);
        std::fs::write(&path, xml).unwrap();
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2]); print('valid')",
                schema,
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} is not valid JUnit:\n{}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The schema is really checked: an element it does not allow is refused.
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        block
            .replace("<failure ", "<failed ")
            .replace("</failure>", "</failed>"),
    )
    .unwrap();
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2])",
            schema,
        ])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

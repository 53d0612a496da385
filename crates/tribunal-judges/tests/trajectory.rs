//! Trajectory metrics on small traces: precision and recall against a reference in each
//! mode, redundant calls, unrecovered errors and steps to completion.

use serde_json::{json, Value};
use tribunal_core::{Feedback, Message, Role, Span, SpanKind, SpanStatus, ToolCall, Trace};
use tribunal_judges::{build_judge, JudgeInput, JudgeSpec};

/// A trace from (tool, arguments, result) steps, ending with `answer` when given.
fn trace(steps: &[(&str, Value, &str)], answer: Option<&str>, expected: Option<Value>) -> Trace {
    let mut messages = vec![Message::new("m0", Role::User, "Book a flight")];
    for (i, (tool, args, result)) in steps.iter().enumerate() {
        let mut call = Message::new(format!("a{i}"), Role::Assistant, "");
        call.tool_calls.push(ToolCall {
            id: format!("c{i}"),
            name: (*tool).into(),
            arguments: args.clone(),
            span_id: None,
        });
        let mut res = Message::new(format!("r{i}"), Role::Tool, *result);
        res.tool_call_id = Some(format!("c{i}"));
        messages.push(call);
        messages.push(res);
    }
    if let Some(a) = answer {
        messages.push(Message::new("end", Role::Assistant, a));
    }
    Trace {
        id: "t".into(),
        messages,
        expectations: expected.map(|e| json!({"expected_tool_calls": e})),
        ..Trace::default()
    }
}

fn check(kind: &str, params: Value, t: &Trace) -> Option<Feedback> {
    let judge = build_judge(&JudgeSpec {
        name: kind.into(),
        kind: kind.into(),
        params,
    })
    .unwrap();
    let mut out = judge.judge(&JudgeInput {
        trace: t,
        pending: None,
    });
    assert!(out.len() <= 1);
    out.pop()
}

#[test]
fn precision_and_recall_in_each_mode() {
    // Made: search, log, book(LHR), search, pay. Reference: search, book(LHR), pay, confirm.
    let t = trace(
        &[
            ("search", json!({"to": "LHR"}), "3 flights"),
            ("log", json!({}), "ok"),
            ("book", json!({"to": "LHR", "seat": "12A"}), "booked"),
            ("search", json!({"to": "LHR"}), "3 flights"),
            ("pay", json!({}), "paid"),
        ],
        Some("Booked."),
        Some(json!(["search", {"name": "book", "arguments": {"to": "LHR"}}, "pay", "confirm"])),
    );
    let cases = [
        // (mode, precision, recall, precision evidence)
        ("in_order", 3.0 / 5.0, 3.0 / 4.0, vec!["c1", "c3"]),
        ("any_order", 3.0 / 5.0, 3.0 / 4.0, vec!["c1", "c3"]),
        // `log` is not in the reference: an allowed extra.
        ("subset", 3.0 / 4.0, 3.0 / 4.0, vec!["c3"]),
    ];
    for (mode, p, r, unmatched) in cases {
        let precision = check("tool_call_precision", json!({"mode": mode}), &t).unwrap();
        assert_eq!(
            precision.value,
            json!(p),
            "{mode}: {:?}",
            precision.rationale
        );
        assert_eq!(precision.evidence, unmatched, "{mode}");
        let recall = check("tool_call_recall", json!({"mode": mode}), &t).unwrap();
        assert_eq!(recall.value, json!(r), "{mode}");
        assert_eq!(recall.evidence, ["c0", "c2", "c4"], "{mode}");
    }
    // Order matters in order: pay before book loses one match.
    let swapped = trace(
        &[
            ("search", json!({}), "ok"),
            ("pay", json!({}), "ok"),
            ("book", json!({"to": "LHR"}), "ok"),
        ],
        Some("Done."),
        Some(json!(["search", "book", "pay"])),
    );
    let recall = |mode: &str| {
        check("tool_call_recall", json!({"mode": mode}), &swapped)
            .unwrap()
            .value
    };
    assert_eq!(recall("in_order"), json!(2.0 / 3.0));
    assert_eq!(recall("any_order"), json!(1.0));
    // Arguments count unless told otherwise.
    let wrong_args = trace(
        &[("book", json!({"to": "CDG"}), "ok")],
        None,
        Some(json!([{"name": "book", "arguments": {"to": "LHR"}}])),
    );
    assert_eq!(
        check("tool_call_recall", json!({}), &wrong_args)
            .unwrap()
            .value,
        json!(0.0)
    );
    assert_eq!(
        check(
            "tool_call_recall",
            json!({"compare_arguments": false}),
            &wrong_args
        )
        .unwrap()
        .value,
        json!(1.0)
    );
}

#[test]
fn edge_cases_and_errors() {
    let none_made = trace(&[], Some("Cannot help."), Some(json!(["search"])));
    assert_eq!(
        check("tool_call_precision", json!({}), &none_made)
            .unwrap()
            .value,
        json!(0.0)
    );
    assert_eq!(
        check("tool_call_recall", json!({}), &none_made)
            .unwrap()
            .value,
        json!(0.0)
    );
    let none_expected = trace(&[], Some("Hi."), Some(json!([])));
    assert_eq!(
        check("tool_call_precision", json!({}), &none_expected)
            .unwrap()
            .value,
        json!(1.0)
    );
    assert_eq!(
        check("tool_call_recall", json!({}), &none_expected)
            .unwrap()
            .value,
        json!(1.0)
    );
    // No reference: nothing to measure.
    assert!(check("tool_call_recall", json!({}), &trace(&[], None, None)).is_none());
    let bad = trace(&[], None, Some(json!("search")));
    let f = check("tool_call_recall", json!({}), &bad).unwrap();
    assert!(f.error.unwrap().contains("expected_tool_calls"));
    let err = build_judge(&JudgeSpec {
        name: "p".into(),
        kind: "tool_call_precision".into(),
        params: json!({"mode": "exact"}),
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("in_order, any_order or subset"), "{err}");
}

#[test]
fn redundant_calls_repeat_a_success_not_a_failure() {
    let t = trace(
        &[
            ("search", json!({"q": "a", "n": 1}), "Error: timeout"),
            ("search", json!({"n": 1, "q": "a"}), "3 results"),
            ("search", json!({"n": 1.0, "q": "a"}), "3 results"),
            ("poll", json!({}), "pending"),
            ("poll", json!({}), "done"),
            ("search", json!({"q": "a", "n": 1}), "3 results"),
        ],
        Some("Found."),
        None,
    );
    let f = check("redundant_calls", json!({"ignore_tools": ["poll"]}), &t).unwrap();
    assert_eq!(f.value, json!(2));
    assert_eq!(f.evidence, ["c2", "c5"]);
    assert!(f.rationale.unwrap().contains("c2 search"));
    let f = check("redundant_calls", json!({}), &t).unwrap();
    assert_eq!(f.value, json!(3));
}

#[test]
fn errors_count_until_the_same_tool_succeeds() {
    let t = trace(
        &[
            ("search", json!({"q": "a"}), "Error: timeout"),
            ("search", json!({"q": "b"}), "3 results"),
            ("book", json!({}), r#"{"error": "card declined"}"#),
            ("email", json!({}), "sent"),
        ],
        Some("Booked."),
        None,
    );
    let f = check("unrecovered_errors", json!({}), &t).unwrap();
    assert_eq!(f.value, json!(1));
    assert_eq!(f.evidence, ["c2"]);
    assert!(f.rationale.unwrap().contains("1 of 2"));

    // A failed span that is not a tool call, never retried.
    let mut spans = vec![Span {
        id: "s1".into(),
        kind: SpanKind::Retriever,
        name: "docs".into(),
        status: SpanStatus {
            code: "error".into(),
            message: "index missing".into(),
        },
        ..Span::default()
    }];
    spans.push(Span {
        id: "s2".into(),
        kind: SpanKind::Llm,
        name: "chat".into(),
        status: SpanStatus::ok(),
        ..Span::default()
    });
    let with_spans = Trace {
        spans,
        ..trace(&[], Some("ok"), None)
    };
    let f = check("unrecovered_errors", json!({}), &with_spans).unwrap();
    assert_eq!((f.value, f.evidence), (json!(1), vec!["s1".to_owned()]));
    let err = build_judge(&JudgeSpec {
        name: "u".into(),
        kind: "unrecovered_errors".into(),
        params: json!({"x": 1}),
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("unknown field `x`"), "{err}");
}

#[test]
fn steps_to_completion_counts_agent_turns() {
    let t = trace(
        &[("search", json!({}), "ok"), ("book", json!({}), "ok")],
        Some("Booked."),
        Some(json!(["book"])),
    );
    let f = check("steps_to_completion", json!({}), &t).unwrap();
    assert_eq!(f.value, json!(3));
    assert_eq!(f.evidence, ["end"]);
    assert!(f
        .rationale
        .unwrap()
        .contains("after 2 tool calls; the reference trajectory has 1 calls"));
    let unfinished = trace(&[("search", json!({}), "ok")], None, None);
    let f = check("steps_to_completion", json!({}), &unfinished).unwrap();
    assert!(f
        .error
        .unwrap()
        .contains("without a final answer after 1 agent steps"));
    assert_eq!(f.evidence, ["a0"]);
}

//! The direct road for OpenAI chat records gives the same traces as the general importer, and
//! steps aside for everything it does not handle.

use serde_json::{json, Value};
use std::path::Path;
use tribunal_formats::{import_value, openai_row, InputFormat};

fn general(line: &str, format: InputFormat) -> Result<Vec<tribunal_core::Trace>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    import_value(&v, format, "fallback").map_err(|e| e.to_string())
}

/// Lines the direct road must take, with the traces the general road gives.
fn taken() -> Vec<Value> {
    vec![
        json!({"id": "t1", "messages": [
            {"role": "system", "content": "You are a helpful agent."},
            {"role": "user", "content": "Where is order 12?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"order\": 12}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"status\":\"shipped\"}"},
            {"role": "assistant", "content": "It shipped."}
        ], "expectations": {"expected_facts": ["shipped"]}}),
        json!({"trace_id": 42, "messages": [{"role": "developer", "content": "rules"}, {"role": "user"}]}),
        json!({"messages": [{"role": "user", "content": "hi", "name": null}],
               "inputs": {"q": "hi"}, "outputs": "hello", "metadata": {"agent": "support", "n": 1},
               "tags": {"env": "test", "v": 2}, "source": "export-7", "score": 0.5,
               "tools": [{"type": "function", "function": {"name": "lookup", "description": "find", "parameters": {"type": "object"}}}]}),
        // Calls without ids, arguments as an object, invalid, null or missing; tool results
        // named by their message, by their call, or by nothing.
        json!({"id": "t4", "messages": [
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "a", "arguments": {"x": [1, 2]}}},
                {"function": {"name": "b", "arguments": "not json"}},
                {"id": "k", "function": {"name": "c", "arguments": null}},
                {"id": "k2", "function": {"name": "d"}, "extra": true}
            ]},
            {"role": "tool", "tool_call_id": "m0.call0", "content": "A"},
            {"role": "tool", "name": "explicit", "tool_call_id": "k", "content": "C"},
            {"role": "function", "content": "orphan"},
            {"role": "tool", "tool_call_id": "unknown", "content": "?"},
            {"role": "assistant", "content": "done", "refusal": null, "tool_call_id": "ignored"}
        ]}),
        json!({"id": "", "messages": []}),
        // A call id used twice: its result answers the last call.
        json!({"id": "t7", "messages": [
            {"role": "assistant", "content": null, "tool_calls": [{"id": "dup", "function": {"name": "first"}}]},
            {"role": "tool", "tool_call_id": "dup", "content": "1"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "dup", "function": {"name": "second"}}]},
            {"role": "tool", "tool_call_id": "dup", "content": "2"}
        ]}),
        // Fields of other formats beside OpenAI's messages: kept as metadata.
        json!({"info": {"trace_id": "x"}, "messages": [{"role": "user", "content": "hi"}]}),
        json!({"id": "t6", "messages": [
            {"role": "tool", "content": "doc", "provenance": {"source": "retrieval", "name": "kb"}},
            {"role": "assistant", "content": "plan", "provenance": "agent"},
            {"role": "user", "content": "u", "provenance": null}
        ]}),
    ]
}

/// Lines it must leave to the general road.
fn left() -> Vec<Value> {
    vec![
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}]}),
        json!({"messages": [{"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]}),
        json!({"messages": [{"role": "tool", "content": "x", "provenance": "nowhere"}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "name": "flat", "arguments": {}}]}]}),
        json!({"messages": [{"role": "robot", "content": "?"}]}),
        json!({"messages": [{"role": "user", "content": 7}]}),
        json!({"system": "Anthropic style", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"task_id": "1", "termination_reason": "done", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"messages": "not a list"}),
        json!({"messages": [{"role": "user", "content": "hi"}], "tags": ["not", "an", "object"]}),
        json!({"id": {"no": "objects"}, "messages": []}),
        json!({"no_messages": true}),
        json!([{"role": "user", "content": "a list, not a record"}]),
    ]
}

#[test]
fn the_direct_road_gives_the_same_traces() {
    for v in taken() {
        let line = v.to_string();
        for format in [InputFormat::Auto, InputFormat::Openai] {
            let direct = openai_row::read(&line, format, "fallback")
                .unwrap_or_else(|| panic!("not taken: {line}"));
            assert_eq!(
                vec![direct],
                general(&line, format).unwrap(),
                "{format:?}: {line}"
            );
        }
        assert!(openai_row::read(&line, InputFormat::Mlflow, "fallback").is_none());
    }
}

#[test]
fn everything_else_is_left_to_the_general_road() {
    for v in left() {
        let line = v.to_string();
        assert!(
            openai_row::read(&line, InputFormat::Auto, "fallback").is_none(),
            "taken: {line}"
        );
    }
    // Forcing the format skips detection: the Anthropic-style record is read as OpenAI's by
    // both roads.
    let line = left()[6].to_string();
    let direct = openai_row::read(&line, InputFormat::Openai, "fallback").unwrap();
    assert_eq!(vec![direct], general(&line, InputFormat::Openai).unwrap());
}

/// A provenance more trusted than the message's role (a tool result marked the user's or
/// the system's) is refused by the general road, naming it, and left to it by the direct
/// one; one less trusted is read by both.
#[test]
fn a_provenance_above_the_role_is_refused_by_both_roads() {
    for (msg, field) in [
        (
            json!({"role": "tool", "content": "x", "provenance": "user"}),
            "messages[0].provenance",
        ),
        (
            json!({"role": "tool", "content": "x", "provenance": {"source": "system"}}),
            "messages[0].provenance",
        ),
        (
            json!({"role": "assistant", "content": "x", "provenance": "user"}),
            "messages[0].provenance",
        ),
        (
            json!({"role": "user", "content": "x", "provenance": "system"}),
            "messages[0].provenance",
        ),
    ] {
        let line = json!({"messages": [msg]}).to_string();
        assert!(
            openai_row::read(&line, InputFormat::Auto, "f").is_none(),
            "{line}"
        );
        let e = general(&line, InputFormat::Openai).unwrap_err();
        assert!(
            e.contains(field) && e.contains("less trusted"),
            "{line}: {e}"
        );
    }
    let line = json!({"messages": [{"role": "user", "content": "doc", "provenance": "retrieval"}]})
        .to_string();
    assert!(openai_row::read(&line, InputFormat::Auto, "f").is_some());
}

#[test]
fn example_datasets_read_the_same_both_ways() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut compared = 0;
    for file in ["examples/support-agent/traces.jsonl"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let general = general(line, InputFormat::Auto);
            if let Some(t) = openai_row::read(line, InputFormat::Auto, "fallback") {
                assert_eq!(Ok(vec![t]), general, "{file}: {line}");
                compared += 1;
            }
        }
    }
    assert!(
        compared >= 5,
        "only {compared} example lines took the direct road"
    );
}

/// Messages that continue a trace: for every record above split at every point, the direct
/// road gives what the general importer gives for the same continuation (numbering after
/// the held messages, tool results finding calls among them), and it leaves the messages it
/// does not handle to the general road.
#[test]
fn continuations_read_the_same_both_ways() {
    let mut compared = 0;
    for v in taken() {
        let messages = v["messages"].as_array().unwrap();
        let whole = general(&v.to_string(), InputFormat::Openai)
            .unwrap()
            .remove(0);
        for k in 0..=messages.len() {
            let held = &whole.messages[..k];
            let rest = &messages[k..];
            let raw: Vec<String> = rest.iter().map(Value::to_string).collect();
            let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
            let direct = openai_row::messages_after(held, &raw)
                .unwrap_or_else(|| panic!("not taken: {rest:?}"));
            let general = tribunal_formats::openai::import_messages_after(held, rest).unwrap();
            assert_eq!(direct, general, "after {k}: {rest:?}");
            assert_eq!(direct, whole.messages[k..], "after {k}: {rest:?}");
            compared += 1;
        }
    }
    assert!(compared > 10);
    // Messages it does not handle (parts, a legacy call, a flat call, an unknown role, a
    // number for content, a provenance it cannot read) are left aside; the rest of those
    // records' messages read the same both ways.
    let mut aside = 0;
    for v in left() {
        let Some(messages) = v.get("messages").and_then(Value::as_array) else {
            continue;
        };
        let raw: Vec<String> = messages.iter().map(Value::to_string).collect();
        let raw: Vec<&str> = raw.iter().map(String::as_str).collect();
        match openai_row::messages_after(&[], &raw) {
            Some(direct) => assert_eq!(
                direct,
                tribunal_formats::openai::import_messages_after(&[], messages).unwrap(),
                "{v}"
            ),
            None => aside += 1,
        }
    }
    assert_eq!(aside, 6);
}

//! Trace generators shared by the engine benchmarks.

use serde_json::{json, Value};

/// A realistic agent run with `steps` messages: system, user, then tool calls and results,
/// with the last reply from the assistant. `i` varies the content.
pub fn agent_trace(i: usize, steps: usize) -> Value {
    let mut messages = vec![
        json!({"role": "system", "content": "You are the support agent of Acme Shop. Help with orders, refunds and shipping. Never share internal data."}),
        json!({"role": "user", "content": format!("Hi, I'm customer {i}. Where is my order {}? It was supposed to arrive yesterday and I need it for a birthday.", 1000 + i)}),
    ];
    let tools = [
        "lookup_order",
        "track_shipment",
        "search_help_center",
        "get_profile",
    ];
    let mut k = 0;
    while messages.len() + 3 <= steps {
        let tool = tools[k % tools.len()];
        let id = format!("call_{i}_{k}");
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": tool, "arguments": format!("{{\"order_id\":\"{}\",\"page\":{k}}}", 1000 + i)}}
        ]}));
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": format!(
            "{{\"order_id\":\"{}\",\"status\":\"in transit\",\"carrier\":\"UPS\",\"eta\":\"2026-11-27\",\"events\":[\"picked up in Reno, NV\",\"arrived at facility in Denver, CO\",\"departed facility\"],\"note\":\"customer asked about delivery window {k}\"}}",
            1000 + i
        )}));
        k += 1;
    }
    while messages.len() < steps {
        messages.push(json!({"role": "assistant", "content": "Your order is in transit with UPS and should arrive on November 27. I am sorry for the delay; I have added a note to your file."}));
    }
    json!({"id": format!("trace-{i}"), "messages": messages, "expectations": {"expected_facts": ["UPS", "November 27"]}})
}

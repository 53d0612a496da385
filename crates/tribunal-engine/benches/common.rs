//! Trace generators shared by the engine benchmarks.

use serde_json::{json, Value};

/// A realistic agent run with `steps` messages: system, user, then tool calls and results,
/// with the last reply from the assistant. `i` varies the content.
#[allow(dead_code)]
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

/// Words the long messages are made of: support prose, order data and tool output.
const WORDS: &[&str] = &[
    "order",
    "shipment",
    "carrier",
    "delivery",
    "window",
    "refund",
    "policy",
    "customer",
    "account",
    "the",
    "was",
    "has",
    "been",
    "updated",
    "warehouse",
    "Denver",
    "Reno",
    "facility",
    "scan",
    "status",
    "in",
    "transit",
    "expected",
    "on",
    "please",
    "note",
    "that",
    "we",
    "will",
    "contact",
    "you",
    "if",
    "anything",
    "changes",
    "tracking",
    "number",
    "1Z999AA10123456784",
    "item",
    "SKU-4471",
    "quantity",
    "2",
    "price",
    "49.90",
    "USD",
];

/// A text of about `len` characters, varied by `seed`.
fn prose(seed: usize, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push_str(WORDS[(x >> 33) % WORDS.len()]);
        out.push(if (x >> 20).is_multiple_of(13) {
            '.'
        } else {
            ' '
        });
    }
    out
}

/// An agent run like real agents' with `steps` messages: every message between 200 and
/// 2,000 characters (tool results the longest), about 9.5 KB at 5 steps, 38 KB at 20 and
/// 190 KB at 100. `i` varies the content.
#[allow(dead_code)]
pub fn long_agent_trace(i: usize, steps: usize) -> Value {
    let len = |k: usize, lo: usize, hi: usize| lo + (k * 7919 + i * 104729) % (hi - lo);
    let mut messages = vec![
        json!({"role": "system", "content": format!("You are the support agent of Acme Shop. {}", prose(i, 600))}),
        json!({"role": "user", "content": format!("Hi, I'm customer {i}. {}", prose(i + 1, len(1, 200, 900)))}),
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
        messages.push(json!({"role": "assistant", "content": prose(i * 31 + k, len(k, 200, 600)), "tool_calls": [
            {"id": id, "type": "function", "function": {"name": tool, "arguments": format!("{{\"order_id\":\"{}\",\"page\":{k}}}", 1000 + i)}}
        ]}));
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": prose(i * 37 + k, len(k + 3, 1200, 2000))}));
        k += 1;
    }
    while messages.len() < steps {
        messages.push(json!({"role": "assistant", "content": prose(i * 41 + messages.len(), len(messages.len(), 300, 1200))}));
    }
    json!({"id": format!("long-trace-{i}"), "messages": messages})
}

//! How much memory a value takes, roughly: its own bytes and the heap it points to. Used to
//! keep what is held between calls (the gate's traces, what judges kept of them) within a
//! configured limit. An estimate, not a measure: capacities are counted, allocator overhead
//! is approximated by [`ALLOCATION`] per heap block.

use crate::{
    Assessment, Feedback, Finding, Message, Pending, Provenance, Span, ToolCall, ToolDef, Trace,
    Verdict, Violation,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::mem::size_of;

/// Bytes an allocator spends on a heap block beyond what was asked for (its header and
/// rounding), on average.
pub const ALLOCATION: usize = 16;

/// What a value points to on the heap, in bytes (not counting the value itself).
pub trait Heap {
    fn heap(&self) -> usize;

    /// The value itself and what it points to.
    fn footprint(&self) -> usize
    where
        Self: Sized,
    {
        size_of::<Self>() + self.heap()
    }
}

fn block(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        bytes + ALLOCATION
    }
}

impl Heap for String {
    fn heap(&self) -> usize {
        block(self.capacity())
    }
}

impl<T: Heap> Heap for Vec<T> {
    fn heap(&self) -> usize {
        block(self.capacity() * size_of::<T>()) + self.iter().map(Heap::heap).sum::<usize>()
    }
}

impl<T: Heap> Heap for Option<T> {
    fn heap(&self) -> usize {
        self.as_ref().map_or(0, Heap::heap)
    }
}

impl<T: Heap> Heap for Box<T> {
    fn heap(&self) -> usize {
        block(size_of::<T>()) + (**self).heap()
    }
}

impl<A: Heap, B: Heap> Heap for (A, B) {
    fn heap(&self) -> usize {
        self.0.heap() + self.1.heap()
    }
}

impl Heap for bool {
    fn heap(&self) -> usize {
        0
    }
}

impl Heap for usize {
    fn heap(&self) -> usize {
        0
    }
}

impl Heap for u64 {
    fn heap(&self) -> usize {
        0
    }
}

impl Heap for f64 {
    fn heap(&self) -> usize {
        0
    }
}

impl<K: Heap, V: Heap> Heap for BTreeMap<K, V> {
    fn heap(&self) -> usize {
        // A B-tree node holds up to 11 entries; count each entry's share of one.
        self.iter()
            .map(|(k, v)| size_of::<K>() + size_of::<V>() + 8 + k.heap() + v.heap())
            .sum::<usize>()
            + if self.is_empty() { 0 } else { ALLOCATION }
    }
}

impl Heap for Value {
    fn heap(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(s) => s.heap(),
            Value::Array(a) => a.heap(),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| size_of::<String>() + size_of::<Value>() + 8 + k.heap() + v.heap())
                .sum::<usize>(),
        }
    }
}

impl Heap for serde_json::Map<String, Value> {
    fn heap(&self) -> usize {
        self.iter()
            .map(|(k, v)| size_of::<String>() + size_of::<Value>() + 8 + k.heap() + v.heap())
            .sum()
    }
}

impl Heap for Provenance {
    fn heap(&self) -> usize {
        match self {
            Provenance::Tool { name } | Provenance::Agent { name } => name.heap(),
            Provenance::Retrieval { name } => name.heap(),
            _ => 0,
        }
    }
}

impl Heap for ToolCall {
    fn heap(&self) -> usize {
        self.id.heap() + self.name.heap() + self.arguments.heap() + self.span_id.heap()
    }
}

impl Heap for Message {
    fn heap(&self) -> usize {
        self.id.heap()
            + self.provenance.heap()
            + self.content.heap()
            + self.tool_calls.heap()
            + self.tool_call_id.heap()
            + self.name.heap()
            + self.span_id.heap()
    }
}

impl Heap for Span {
    fn heap(&self) -> usize {
        self.id.heap()
            + self.parent_id.heap()
            + self.name.heap()
            + self.inputs.heap()
            + self.outputs.heap()
            + self.attributes.heap()
            + self.model.heap()
            // Status messages, events and the rest: a fixed share.
            + 64
    }
}

impl Heap for ToolDef {
    fn heap(&self) -> usize {
        self.name.heap()
            + self.description.heap()
            + self.parameters.heap()
            + self.annotations.heap()
    }
}

impl Heap for Assessment {
    fn heap(&self) -> usize {
        // Names, sources, values and rationales: measured through their JSON form would
        // cost more than it tells; a fixed share per assessment.
        256
    }
}

impl Heap for Trace {
    fn heap(&self) -> usize {
        self.id.heap()
            + self.spans.heap()
            + self.messages.heap()
            + self.tools.heap()
            + self.inputs.heap()
            + self.outputs.heap()
            + self.expectations.heap()
            + self.tags.heap()
            + self.metadata.heap()
            + self.assessments.heap()
    }
}

impl Heap for Pending {
    fn heap(&self) -> usize {
        self.kind.heap() + self.tool_calls.heap() + self.content.heap()
    }
}

impl Heap for Finding {
    fn heap(&self) -> usize {
        let l = &self.location;
        self.kind.heap()
            + self.excerpt.heap()
            + l.id.heap()
            + l.field.heap()
            + l.tool_call_id.heap()
            + l.tool.heap()
            + l.provenance.heap()
    }
}

impl Heap for Feedback {
    fn heap(&self) -> usize {
        self.name.heap()
            + self.value.heap()
            + self.rationale.heap()
            + self.source.source_id.heap()
            + self.source.version.heap()
            + self.error.heap()
            + self.evidence.heap()
            + self.findings.heap()
            + self
                .usage
                .as_ref()
                .map_or(0, |u| block(size_of_val(u)) + u.model.heap())
    }
}

impl Heap for Violation {
    fn heap(&self) -> usize {
        self.rule.heap() + self.message.heap() + self.evidence.heap()
    }
}

impl Heap for Verdict {
    fn heap(&self) -> usize {
        self.reasons.heap() + self.feedback.heap() + self.violations.heap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    #[test]
    fn a_trace_counts_its_texts_and_grows_with_them() {
        let small = Trace {
            id: "t".into(),
            messages: vec![Message::new("m0", Role::User, "hi")],
            ..Default::default()
        };
        let mut big = small.clone();
        big.messages
            .push(Message::new("m1", Role::Assistant, "x".repeat(10_000)));
        let (a, b) = (small.footprint(), big.footprint());
        assert!(a >= size_of::<Trace>() + size_of::<Message>(), "{a}");
        assert!(b >= a + 10_000, "{a} {b}");
        // Not wildly over: the text dominates.
        assert!(b < a + 10_000 + 2 * size_of::<Message>() + 256, "{a} {b}");
        let args: Value = serde_json::json!({"to": "a@b.co", "body": "y".repeat(500)});
        let call = ToolCall {
            id: "c".into(),
            name: "send".into(),
            arguments: args,
            span_id: None,
        };
        assert!(
            call.heap() >= 500 + "to".len() + "a@b.co".len(),
            "{}",
            call.heap()
        );
    }
}

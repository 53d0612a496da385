//! The step an agent wants to take next: a tool call or a reply, judged before it happens.

use crate::trace::{Message, Provenance, Role, ToolCall};
use serde::{Deserialize, Serialize};

/// The proposed next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// `tool_call` or `reply`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
}

impl Pending {
    pub const ID: &'static str = "pending";

    /// The pending step as a message, so judges can scan it like any other turn.
    pub fn as_message(&self) -> Message {
        Message {
            id: Pending::ID.to_owned(),
            role: Role::Assistant,
            provenance: Provenance::Assistant,
            content: self.content.clone(),
            tool_calls: self.tool_calls.clone(),
            tool_call_id: None,
            name: None,
            span_id: None,
        }
    }
}

//! The normalized trace: spans (the execution tree) and the conversation view (messages and
//! tool calls in order), with provenance on every piece of content.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One agent execution, whatever format it came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Stable id: from the source when it has one, otherwise derived from file and line.
    pub id: String,
    /// The execution tree. Chat-message sources get one span per message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<Span>,
    /// The conversation in order: what was said, by whom, and which tools were called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// Tool definitions the agent was given, when the source says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expectations: Option<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Everything else the source carried (unknown fields are kept here, never dropped).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assessments: Vec<Assessment>,
}

/// One node of the execution tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub kind: SpanKind,
    pub name: String,
    /// Unix nanoseconds. Kept as integers: they do not fit in an f64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub status: SpanStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Cost in USD when the source reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl Span {
    /// Duration in milliseconds when both ends are known.
    pub fn duration_ms(&self) -> Option<f64> {
        match (self.start_ns, self.end_ns) {
            (Some(s), Some(e)) if e >= s => Some((e - s) as f64 / 1e6),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Agent,
    Llm,
    Tool,
    Retriever,
    Chain,
    Embedding,
    Reranker,
    Guardrail,
    Evaluator,
    Parser,
    Memory,
    Message,
    #[default]
    Unknown,
}

impl SpanKind {
    /// Parses the span-kind words used by MLflow, OpenInference and GenAI conventions.
    pub fn parse(s: &str) -> SpanKind {
        match s.to_ascii_uppercase().as_str() {
            "AGENT" | "INVOKE_AGENT" | "CREATE_AGENT" => SpanKind::Agent,
            "LLM" | "CHAT_MODEL" | "CHAT" | "TEXT_COMPLETION" | "GENERATE_CONTENT" => SpanKind::Llm,
            "TOOL" | "EXECUTE_TOOL" | "FUNCTION" => SpanKind::Tool,
            "RETRIEVER" | "RETRIEVAL" => SpanKind::Retriever,
            "CHAIN" | "WORKFLOW" => SpanKind::Chain,
            "EMBEDDING" | "EMBEDDINGS" => SpanKind::Embedding,
            "RERANKER" => SpanKind::Reranker,
            "GUARDRAIL" => SpanKind::Guardrail,
            "EVALUATOR" => SpanKind::Evaluator,
            "PARSER" => SpanKind::Parser,
            "MEMORY" => SpanKind::Memory,
            _ => SpanKind::Unknown,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanStatus {
    /// `ok`, `error` or `unset`.
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl SpanStatus {
    pub fn ok() -> Self {
        SpanStatus {
            code: "ok".into(),
            message: String::new(),
        }
    }
    pub fn is_error(&self) -> bool {
        self.code == "error"
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl TokenUsage {
    /// Input plus output tokens, saturating: a total too large to count is still larger
    /// than every budget.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Adds `other` to these counts, saturating.
    pub fn add(&mut self, other: TokenUsage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// Where a piece of content came from. Policies use it to tell trusted from untrusted text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Provenance {
    /// The developer's own instructions.
    System,
    /// The end user talking to the agent.
    User,
    /// The agent's own model output.
    Assistant,
    /// The result of a tool the agent called.
    Tool { name: String },
    /// Documents fetched by retrieval.
    Retrieval {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A message from another agent whose identity is not verified.
    Agent { name: String },
}

impl Provenance {
    /// Whether a message of `role` may carry this provenance. A provenance may say content
    /// came from less trusted hands than its role does (a user message holding a retrieved
    /// document, an agent's reply relaying another agent), never from more: a tool's result
    /// is never the user's or the system's words, nor the agent's own; the agent's own
    /// output is not the user's; a user's message is not the system's.
    pub fn fits(&self, role: Role) -> bool {
        match role {
            Role::System => true,
            Role::User => !matches!(self, Provenance::System | Provenance::Assistant),
            Role::Assistant => !matches!(self, Provenance::System | Provenance::User),
            Role::Tool => self.is_untrusted(),
        }
    }

    /// Content the agent's operator did not write and cannot vouch for.
    pub fn is_untrusted(&self) -> bool {
        matches!(
            self,
            Provenance::Tool { .. } | Provenance::Retrieval { .. } | Provenance::Agent { .. }
        )
    }
    pub fn label(&self) -> &'static str {
        match self {
            Provenance::System => "system",
            Provenance::User => "user",
            Provenance::Assistant => "assistant",
            Provenance::Tool { .. } => "tool",
            Provenance::Retrieval { .. } => "retrieval",
            Provenance::Agent { .. } => "agent",
        }
    }
}

/// One turn of the conversation view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Evidence id: the span id for span-based sources, `m<index>` for message lists.
    pub id: String,
    pub role: Role,
    pub provenance: Provenance,
    /// Text content; content parts are joined with newlines.
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For tool results: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Author name (tool name for tool results, participant name otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The span this message belongs to, when it came from a span-based source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

impl Message {
    pub fn new(id: impl Into<String>, role: Role, content: impl Into<String>) -> Message {
        let provenance = match role {
            Role::System => Provenance::System,
            Role::User => Provenance::User,
            Role::Assistant => Provenance::Assistant,
            Role::Tool => Provenance::Tool {
                name: String::new(),
            },
        };
        Message {
            id: id.into(),
            role,
            provenance,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
            span_id: None,
        }
    }
}

/// A tool call made (or proposed) by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// Parsed arguments. When the source's JSON string did not parse, this is the raw string.
    /// An object in them that names a key twice does not read ([`crate::json`]).
    #[serde(default, deserialize_with = "crate::json::unique")]
    pub arguments: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

/// A tool definition offered to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
    /// MCP tool annotations as the source gave them (`readOnlyHint`, `destructiveHint`,
    /// `openWorldHint`, `idempotentHint`, `title`); empty when it gave none.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String, Value>,
}

/// A label or score attached to the trace by its source (MLflow assessments, human labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub name: String,
    /// `HUMAN`, `LLM_JUDGE` or `CODE`.
    pub source_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_id: String,
    /// `feedback` or `expectation`.
    pub kind: String,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

impl Trace {
    /// Whether the trace carries anything a judge can read: a message with text or tool
    /// calls, a span with inputs or outputs, or the trace's own inputs or outputs. A trace
    /// exported without its content (spans with only names, models and token counts) has
    /// none.
    pub fn has_content(&self) -> bool {
        let some = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        self.messages
            .iter()
            .any(|m| !m.content.trim().is_empty() || !m.tool_calls.is_empty())
            || some(&self.inputs)
            || some(&self.outputs)
            || self
                .spans
                .iter()
                .any(|s| some(&s.inputs) || some(&s.outputs))
    }

    /// Every tool call in conversation order, with the id of the message that made it.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&Message, &ToolCall)> {
        self.messages
            .iter()
            .flat_map(|m| m.tool_calls.iter().map(move |c| (m, c)))
    }

    /// The final assistant reply text, if any.
    pub fn final_response(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant && !m.content.is_empty())
            .map(|m| m.content.as_str())
    }

    /// The trace's output as text: `outputs` when the source gave it, else the last reply.
    pub fn output_text(&self) -> Option<String> {
        match &self.outputs {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => self.final_response().map(str::to_owned),
            Some(other) => Some(crate::trace::value_text(other)),
        }
    }

    /// Wall-clock duration of the whole trace in milliseconds, from its spans.
    pub fn duration_ms(&self) -> Option<f64> {
        let start = self.spans.iter().filter_map(|s| s.start_ns).min()?;
        let end = self.spans.iter().filter_map(|s| s.end_ns).max()?;
        (end >= start).then(|| (end - start) as f64 / 1e6)
    }

    /// Token usage summed over spans that report it (saturating).
    pub fn token_usage(&self) -> Option<TokenUsage> {
        let mut total: Option<TokenUsage> = None;
        for u in self.spans.iter().filter_map(|s| s.usage) {
            total.get_or_insert_with(TokenUsage::default).add(u);
        }
        total
    }

    /// Does this trace have a span, message, tool call or tool definition (`tools.<name>`)
    /// with this id?
    pub fn has_id(&self, id: &str) -> bool {
        self.spans.iter().any(|s| s.id == id)
            || self.messages.iter().any(|m| m.id == id)
            || self.tool_calls().any(|(_, c)| c.id == id)
            || id
                .strip_prefix("tools.")
                .is_some_and(|name| self.tools.iter().any(|t| t.name == name))
    }
}

/// Text of a JSON value for matching and display: strings as they are, other values as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_saturate() {
        let max = TokenUsage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
        };
        assert_eq!(max.total(), u64::MAX);
        let mut trace = Trace::default();
        for n in [i64::MAX as u64, i64::MAX as u64, 2] {
            trace.spans.push(Span {
                usage: Some(TokenUsage {
                    input_tokens: n,
                    output_tokens: 0,
                }),
                ..Span::default()
            });
        }
        assert_eq!(trace.token_usage().unwrap().input_tokens, u64::MAX);
    }
}

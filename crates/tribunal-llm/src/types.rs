//! The provider-independent request and response: prompts, the JSON schema the answer must
//! follow, sampling settings; the answer's text, its parsed JSON, token usage and latency.

use crate::error::LlmError;
use crate::uri::ModelUri;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The JSON schema the answer must follow. `name` becomes OpenAI's `json_schema.name` and
/// Anthropic's tool name; `strict` is OpenAI's strict mode (the schema must then list every
/// property as required and set `additionalProperties: false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    pub name: String,
    pub schema: Value,
    pub strict: bool,
}

impl ResponseSchema {
    /// A strict schema named `name`.
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        ResponseSchema {
            name: name.into(),
            schema,
            strict: true,
        }
    }

    pub fn lenient(mut self) -> Self {
        self.strict = false;
        self
    }
}

/// A tool the model may call: a name (`^[a-zA-Z0-9_-]{1,64}$`), what it does, and the JSON
/// schema of its arguments (an object schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

impl ToolSpec {
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelToolCall {
    /// The provider's call id (Ollama gives none: `call_<n>` in answer order).
    pub id: String,
    pub name: String,
    /// The arguments as sent. When the model's argument text is not JSON, this is that text
    /// as a string, so the caller can tell the model what was wrong.
    pub arguments: Value,
}

/// A turn after the first user prompt: what the model said (text and tool calls), what a
/// tool answered, or more from the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatTurn {
    Assistant {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ModelToolCall>,
    },
    Tool {
        call_id: String,
        /// The tool's name (Ollama pairs results by name, not id).
        name: String,
        content: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    User {
        text: String,
    },
}

impl ChatTurn {
    fn chars(&self) -> usize {
        match self {
            ChatTurn::Assistant { text, tool_calls } => {
                text.len()
                    + tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.to_string().len() + c.id.len())
                        .sum::<usize>()
            }
            ChatTurn::Tool { content, name, .. } => content.len() + name.len(),
            ChatTurn::User { text } => text.len(),
        }
    }
}

/// One chat completion: an optional system prompt, one user prompt, then any further turns
/// (a tool loop), the tools the model may call, and an optional answer schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub user: String,
    /// The conversation after `user`, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<ChatTurn>,
    /// Tools offered to the model; it chooses whether to call them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    pub schema: Option<ResponseSchema>,
    pub temperature: Option<f64>,
    /// Upper bound on answer tokens. Anthropic requires one; 1024 is sent when unset.
    pub max_tokens: Option<u32>,
    /// Ask for each answer token's log-probability (OpenAI and compatible servers; other
    /// providers answer without them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
}

impl ChatRequest {
    pub fn new(user: impl Into<String>) -> Self {
        ChatRequest {
            system: None,
            user: user.into(),
            turns: Vec::new(),
            tools: Vec::new(),
            schema: None,
            temperature: None,
            max_tokens: None,
            logprobs: false,
        }
    }

    /// Asks for the answer tokens' log-probabilities.
    pub fn with_logprobs(mut self) -> Self {
        self.logprobs = true;
        self
    }

    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    pub fn with_schema(mut self, schema: ResponseSchema) -> Self {
        self.schema = Some(schema);
        self
    }

    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    pub fn with_tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    /// Characters of prompt text: system, user, later turns, tool definitions and schema.
    pub fn prompt_chars(&self) -> usize {
        self.user.len()
            + self.system.as_ref().map_or(0, String::len)
            + self.turns.iter().map(ChatTurn::chars).sum::<usize>()
            + self
                .tools
                .iter()
                .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
                .sum::<usize>()
            + self
                .schema
                .as_ref()
                .map_or(0, |s| s.schema.to_string().len())
    }

    /// A rough token estimate for the tokens-per-minute limit: prompt characters / 4 plus the
    /// answer budget.
    pub fn estimated_tokens(&self) -> u64 {
        (self.prompt_chars() as u64).div_ceil(4) + u64::from(self.max_tokens.unwrap_or(512))
    }
}

/// Tokens consumed by one call, as reported by the provider (0 when it does not say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model that answered (`provider:/model` as requested).
    pub model: ModelUri,
    /// The answer text; for Anthropic's forced tool call, the tool input serialised as JSON.
    pub text: String,
    /// The answer parsed as JSON, if it is JSON (also found inside a fenced block or between
    /// the first `{` and the last `}`); `None` for prose or malformed JSON.
    pub json: Option<Value>,
    pub usage: Usage,
    /// Time from the first attempt to the answer, including retries and back-off.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// The provider's stop reason (`stop`, `end_turn`, `tool_use`, `length`, ...), if given.
    pub stop_reason: Option<String>,
    /// Calls to the request's tools, in the order the model made them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ModelToolCall>,
    /// HTTP attempts made (1 = no retry; 0 = served from the cache).
    #[serde(default)]
    pub attempts: u32,
    /// Served from a [`crate::ResponseCache`].
    #[serde(default)]
    pub cached: bool,
    /// The answer's tokens with their log-probabilities, when asked for and given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// One answer token and its natural-log probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
}

/// The probability the model gave the value of the top-level member `key` of its JSON
/// answer: the product of the probabilities of the tokens that overlap the value's text
/// (`"yes"`, `4`, `true`). `None` when the member is not found in the tokens' text.
pub fn value_probability(tokens: &[TokenLogprob], key: &str) -> Option<f64> {
    let text: String = tokens.iter().map(|t| t.token.as_str()).collect();
    let (start, end) = value_span(&text, key)?;
    let mut at = 0usize;
    let mut sum = 0.0;
    let mut any = false;
    for t in tokens {
        let (from, to) = (at, at + t.token.len());
        at = to;
        if from < end && to > start && t.logprob.is_finite() {
            sum += t.logprob;
            any = true;
        }
    }
    any.then(|| sum.exp().clamp(0.0, 1.0))
}

/// Byte span of the value of `"key":` in a JSON text (a string without its quotes' outside
/// whitespace, or a bare literal).
fn value_span(text: &str, key: &str) -> Option<(usize, usize)> {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = text[from..].find(&quoted) {
        let after = from + i + quoted.len();
        let rest = &text[after..];
        let trimmed = rest.trim_start();
        if let Some(value) = trimmed.strip_prefix(':') {
            let value_at = after + (rest.len() - trimmed.len()) + 1;
            let v = value.trim_start();
            let start = value_at + (value.len() - v.len());
            let end = if let Some(body) = v.strip_prefix('"') {
                let mut escaped = false;
                let mut close = None;
                for (j, c) in body.char_indices() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            close = Some(j);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                start + 1 + close? + 1
            } else {
                start + v.find([',', '}', '\n', ' ']).unwrap_or(v.len())
            };
            return (end > start).then_some((start, end));
        }
        from = after;
    }
    None
}

impl ChatResponse {
    /// The parsed JSON answer, or [`LlmError::NotJson`] with the text (truncated).
    pub fn require_json(&self) -> Result<&Value, LlmError> {
        self.json.as_ref().ok_or_else(|| LlmError::NotJson {
            model: self.model.clone(),
            text: crate::error::truncate(&self.text),
        })
    }
}

/// Finds a JSON answer in model text: the whole text, else the first fenced code block, else
/// the span from the first `{` to the last `}`. Fragments must be objects or arrays. An
/// answer whose objects name a key twice is none (readers differ on which value counts).
pub fn extract_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    match tribunal_core::json::from_str(trimmed) {
        Ok(value) => return Some(value),
        Err(e) if tribunal_core::json::is_duplicate(&e) => return None,
        Err(_) => {}
    }
    let structured = |candidate: &str| {
        tribunal_core::json::from_str(candidate.trim())
            .ok()
            .filter(|v| v.is_object() || v.is_array())
    };
    if let Some(start) = trimmed.find("```") {
        let rest = &trimmed[start + 3..];
        let body_start = rest.find('\n').map_or(0, |i| i + 1);
        let body = &rest[body_start..];
        if let Some(end) = body.find("```") {
            if let Some(value) = structured(&body[..end]) {
                return Some(value);
            }
        }
    }
    let (first, last) = (trimmed.find('{')?, trimmed.rfind('}')?);
    if first < last {
        return structured(&trimmed[first..=last]);
    }
    None
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(token: &str, p: f64) -> TokenLogprob {
        TokenLogprob {
            token: token.into(),
            logprob: p.ln(),
        }
    }

    #[test]
    fn the_result_value_probability_is_the_product_of_its_tokens() {
        // {"rationale": "a \"quoted\" word", "result": "yes"}
        let tokens = [
            t("{\"rationale\": \"a \\\"quoted\\\" word\", \"", 0.5),
            t("result", 1.0),
            t("\": \"", 1.0),
            t("y", 0.9),
            t("es", 0.8),
            t("\"}", 1.0),
        ];
        let p = value_probability(&tokens, "result").unwrap();
        assert!((p - 0.72).abs() < 1e-9, "{p}");
        // A bare number, the member written first.
        let tokens = [
            t("{\"result\": ", 1.0),
            t("4", 0.6),
            t(", \"rationale\": \"x\"}", 0.1),
        ];
        let p = value_probability(&tokens, "result").unwrap();
        assert!((p - 0.6).abs() < 1e-9, "{p}");
        // A key that only appears inside another string is not the member.
        assert_eq!(
            value_probability(
                &[t("{\"rationale\": \"no \\\"result\\\" here\"}", 1.0)],
                "result"
            ),
            None
        );
        assert_eq!(value_probability(&[], "result"), None);
    }
}

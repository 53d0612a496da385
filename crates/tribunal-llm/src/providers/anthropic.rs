//! Anthropic Messages (`POST {base}/v1/messages`, `x-api-key`, `anthropic-version:
//! 2023-06-01`). Structured output is a forced tool call: the schema becomes the input schema
//! of one tool, `tool_choice: {type: tool, name}` makes the model call it, and the call's
//! `input` is the answer.

use super::{secret_header, Decoded, Target, Wire};
use crate::types::{ChatRequest, Usage};
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) const API_VERSION: &str = "2023-06-01";
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Tool names must match `^[a-zA-Z0-9_-]{1,64}$`.
pub(super) fn tool_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "answer".to_string()
    } else {
        cleaned
    }
}

pub(super) fn encode(target: &Target<'_>, request: &ChatRequest) -> Result<Wire, String> {
    let mut body = json!({
        "model": target.model.model(),
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": [{"role": "user", "content": request.user}],
    });
    if let Some(system) = &request.system {
        body["system"] = json!(system);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(schema) = &request.schema {
        let name = tool_name(&schema.name);
        body["tools"] = json!([{
            "name": name,
            "description": "Give your answer by calling this tool; its input is the answer.",
            "input_schema": schema.schema,
        }]);
        body["tool_choice"] = json!({"type": "tool", "name": name});
    }
    let mut headers = vec![(
        HeaderName::from_static("anthropic-version"),
        HeaderValue::from_static(API_VERSION),
    )];
    if let Some(key) = target.key {
        headers.push(secret_header("x-api-key", key.expose().to_string())?);
    }
    Ok(Wire {
        url: format!("{}/v1/messages", target.base_url),
        headers,
        body,
    })
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    content: Vec<Block>,
    usage: Option<ResponseUsage>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ResponseUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

pub(super) fn decode(body: &[u8], schema_name: Option<&str>) -> Result<Decoded, String> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| format!("not a Messages response: {e}"))?;
    let usage = response.usage.map_or(Usage::default(), |u| Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
    });
    let wanted = schema_name.map(tool_name);
    let mut texts = Vec::new();
    let mut answer = None;
    for block in response.content {
        match block {
            Block::Text { text } => texts.push(text),
            Block::ToolUse { name, input } => {
                if answer.is_none() && wanted.as_deref().is_none_or(|w| w == name) {
                    answer = Some(input);
                }
            }
            Block::Other => {}
        }
    }
    let text = match &answer {
        Some(input) => input.to_string(),
        None => texts.join(""),
    };
    Ok(Decoded {
        text,
        json: answer,
        usage,
        stop_reason: response.stop_reason,
    })
}

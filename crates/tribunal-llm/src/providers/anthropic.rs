//! Anthropic Messages (`POST {base}/v1/messages`, `x-api-key`, `anthropic-version:
//! 2023-06-01`). Structured output is a forced tool call: the schema becomes the input schema
//! of one tool, `tool_choice: {type: tool, name}` makes the model call it, and the call's
//! `input` is the answer.
//!
//! A tool loop sends the request's tools beside it (`tool_choice` left to the model); the
//! model's `tool_use` blocks become tool calls, later assistant turns are sent back as
//! `tool_use` blocks and tool results as `tool_result` blocks in a user message. Consecutive
//! turns of one role are merged, since the roles must alternate.

use super::{arguments_object, secret_header, Decoded, Expect, Target, Wire};
use crate::types::{ChatRequest, ChatTurn, ModelToolCall, Usage};
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
        "messages": messages(request),
    });
    if let Some(system) = &request.system {
        body["system"] = json!(system);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            json!({"name": tool_name(&t.name), "description": t.description,
                   "input_schema": t.parameters})
        })
        .collect();
    if let Some(schema) = &request.schema {
        let name = tool_name(&schema.name);
        tools.push(json!({
            "name": name,
            "description": "Give your answer by calling this tool; its input is the answer.",
            "input_schema": schema.schema,
        }));
        if request.tools.is_empty() {
            body["tool_choice"] = json!({"type": "tool", "name": name});
        }
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
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

/// The user prompt and the later turns as alternating user/assistant messages.
fn messages(request: &ChatRequest) -> Vec<Value> {
    if request.turns.is_empty() {
        return vec![json!({"role": "user", "content": request.user})];
    }
    let mut out: Vec<(&str, Vec<Value>)> =
        vec![("user", vec![json!({"type": "text", "text": request.user})])];
    for turn in &request.turns {
        let (role, blocks) = match turn {
            ChatTurn::Assistant { text, tool_calls } => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in tool_calls {
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": tool_name(&c.name),
                                       "input": arguments_object(&c.arguments)}),
                    );
                }
                ("assistant", blocks)
            }
            ChatTurn::Tool {
                call_id,
                content,
                is_error,
                ..
            } => {
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                if *is_error {
                    block["is_error"] = json!(true);
                }
                ("user", vec![block])
            }
            ChatTurn::User { text } => ("user", vec![json!({"type": "text", "text": text})]),
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    out.into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
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
        #[serde(default)]
        id: String,
        name: String,
        #[serde(default)]
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

pub(super) fn decode(body: &[u8], expect: Expect<'_>) -> Result<Decoded, String> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| format!("not a Messages response: {e}"))?;
    let usage = response.usage.map_or(Usage::default(), |u| Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
    });
    let wanted = expect.schema_name.map(tool_name);
    let mut texts = Vec::new();
    let mut answer = None;
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            Block::Text { text } => texts.push(text),
            Block::ToolUse { id, name, input } => {
                let is_answer = match wanted.as_deref() {
                    Some(w) => w == name,
                    None => !expect.tools,
                };
                if is_answer {
                    if answer.is_none() {
                        answer = Some(input);
                    }
                } else if expect.tools {
                    let id = if id.is_empty() {
                        format!("call_{}", tool_calls.len())
                    } else {
                        id
                    };
                    tool_calls.push(ModelToolCall {
                        id,
                        name,
                        arguments: input,
                    });
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
        tool_calls,
        logprobs: None,
    })
}

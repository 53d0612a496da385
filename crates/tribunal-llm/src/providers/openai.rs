//! OpenAI Chat Completions (`POST {base}/chat/completions`, `Authorization: Bearer`), also any
//! OpenAI-compatible server (vLLM, LM Studio, llama.cpp, gateways) through the base URL.
//! Structured output is `response_format: {type: json_schema, json_schema: {name, schema,
//! strict}}`. The official endpoint gets `max_completion_tokens`; others get `max_tokens`.
//! Tools are `tools: [{type: function, function: {name, description, parameters}}]`; the
//! model's calls come back in `message.tool_calls` with their arguments as JSON text, and
//! their results go back as `{role: tool, tool_call_id, content}` messages.

use super::{decode_calls, secret_header, Decoded, Target, Wire, WireCall};
use crate::types::{ChatRequest, ChatTurn, TokenLogprob, Usage};
use crate::uri::Provider;
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) fn encode(target: &Target<'_>, request: &ChatRequest) -> Result<Wire, String> {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": request.user}));
    for turn in &request.turns {
        messages.push(turn_message(turn));
    }
    let mut body = json!({"model": target.model.model(), "messages": messages});
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(max_tokens) = request.max_tokens {
        let official = target.base_url == Provider::OpenAi.default_base_url();
        let field = if official {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[field] = json!(max_tokens);
    }
    if request.logprobs {
        body["logprobs"] = json!(true);
    }
    if let Some(schema) = &request.schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": {"name": schema.name, "schema": schema.schema, "strict": schema.strict},
        });
    }
    let mut headers = Vec::new();
    if let Some(key) = target.key {
        headers.push(secret_header(
            "authorization",
            format!("Bearer {}", key.expose()),
        )?);
    }
    Ok(Wire {
        url: format!("{}/chat/completions", target.base_url),
        headers,
        body,
    })
}

fn turn_message(turn: &ChatTurn) -> Value {
    match turn {
        ChatTurn::Assistant { text, tool_calls } => {
            let mut message = json!({
                "role": "assistant",
                "content": if text.is_empty() { Value::Null } else { json!(text) },
            });
            if !tool_calls.is_empty() {
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|c| {
                        let arguments = match &c.arguments {
                            Value::String(raw) => raw.clone(),
                            other => other.to_string(),
                        };
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": arguments}})
                    })
                    .collect();
                message["tool_calls"] = Value::Array(calls);
            }
            message
        }
        ChatTurn::Tool {
            call_id, content, ..
        } => json!({"role": "tool", "tool_call_id": call_id, "content": content}),
        ChatTurn::User { text } => json!({"role": "user", "content": text}),
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<ChoiceLogprobs>,
}

#[derive(Deserialize)]
struct ChoiceLogprobs {
    #[serde(default)]
    content: Option<Vec<TokenLogprob>>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireCall>>,
}

#[derive(Deserialize)]
struct ResponseUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

pub(super) fn decode(body: &[u8]) -> Result<Decoded, String> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| format!("not a chat completion: {e}"))?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or("no choices in the completion")?;
    let usage = response.usage.map_or(Usage::default(), |u| Usage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
    });
    let tool_calls = decode_calls(choice.message.tool_calls);
    let logprobs = choice.logprobs.and_then(|l| l.content);
    let (text, stop_reason) = match (choice.message.content, choice.message.refusal) {
        (Some(content), _) => (content, choice.finish_reason),
        (None, Some(refusal)) => (refusal, Some("refusal".to_string())),
        (None, None) => (String::new(), choice.finish_reason),
    };
    Ok(Decoded {
        text,
        json: None::<Value>,
        usage,
        stop_reason,
        tool_calls,
        logprobs,
    })
}

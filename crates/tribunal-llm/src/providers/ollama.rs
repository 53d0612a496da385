//! Ollama (`POST {host}/api/chat`, no key): `stream: false`, structured output through
//! `format: <schema>`, sampling in `options` (`temperature`, `num_predict`). Usage comes from
//! `prompt_eval_count` and `eval_count`. Tools use the OpenAI shape; calls come back in
//! `message.tool_calls` with object arguments (and usually no id, so they are numbered), and
//! results go back as `{role: tool, tool_name, content}`.

use super::{arguments_object, decode_calls, Decoded, Target, Wire, WireCall};
use crate::types::{ChatRequest, ChatTurn, Usage};
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) fn encode(target: &Target<'_>, request: &ChatRequest) -> Result<Wire, String> {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": request.user}));
    for turn in &request.turns {
        messages.push(match turn {
            ChatTurn::Assistant { text, tool_calls } => {
                let mut message = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|c| json!({"function": {"name": c.name, "arguments": arguments_object(&c.arguments)}}))
                        .collect();
                    message["tool_calls"] = Value::Array(calls);
                }
                message
            }
            ChatTurn::Tool { name, content, .. } => {
                json!({"role": "tool", "tool_name": name, "content": content})
            }
            ChatTurn::User { text } => json!({"role": "user", "content": text}),
        });
    }
    let mut body = json!({"model": target.model.model(), "messages": messages, "stream": false});
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
    if let Some(schema) = &request.schema {
        body["format"] = schema.schema.clone();
    }
    let mut options = serde_json::Map::new();
    if let Some(temperature) = request.temperature {
        options.insert("temperature".into(), json!(temperature));
    }
    if let Some(max_tokens) = request.max_tokens {
        options.insert("num_predict".into(), json!(max_tokens));
    }
    if !options.is_empty() {
        body["options"] = options.into();
    }
    Ok(Wire {
        url: format!("{}/api/chat", target.base_url),
        headers: Vec::new(),
        body,
    })
}

/// `OLLAMA_HOST` may be `host`, `host:port` or a URL; scheme defaults to http, port to 11434.
pub(crate) fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    let (scheme, rest) = match host.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("http", host),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    if has_port || host.contains("://") {
        format!("{scheme}://{rest}")
    } else {
        format!("{scheme}://{rest}:11434")
    }
}

#[derive(Deserialize)]
struct Response {
    message: Option<Message>,
    #[serde(default)]
    prompt_eval_count: u64,
    #[serde(default)]
    eval_count: u64,
    done_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: String,
    #[serde(default)]
    tool_calls: Option<Vec<WireCall>>,
}

pub(super) fn decode(body: &[u8]) -> Result<Decoded, String> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| format!("not an Ollama chat response: {e}"))?;
    let message = response.message.ok_or("no message in the response")?;
    let tool_calls = decode_calls(message.tool_calls);
    Ok(Decoded {
        text: message.content,
        json: None,
        usage: Usage {
            input_tokens: response.prompt_eval_count,
            output_tokens: response.eval_count,
        },
        stop_reason: response.done_reason,
        tool_calls,
        logprobs: None,
    })
}

//! The wire protocols, one file each: how a [`ChatRequest`] (prompts, later turns of a tool
//! loop, tool definitions, answer schema) becomes an HTTP request body and headers, and how a
//! successful response body becomes a [`Decoded`] answer with its tool calls. Pure: no I/O.
//! Adding a protocol means adding a file here and an arm in [`encode`] and [`decode`].

mod anthropic;
pub(crate) mod embeddings;
mod ollama;
mod openai;

pub(crate) use ollama::normalize_host;

use crate::secret::ApiKey;
use crate::types::{ChatRequest, ModelToolCall, TokenLogprob, Usage};
use crate::uri::{ModelUri, Provider};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

/// An encoded request. Header values holding keys are marked sensitive.
#[derive(Debug)]
pub(crate) struct Wire {
    pub url: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Value,
}

/// What a provider answered, before the client adds latency, attempts and JSON extraction.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub text: String,
    /// Set when the protocol delivers structured output itself (Anthropic's tool input).
    pub json: Option<Value>,
    pub usage: Usage,
    pub stop_reason: Option<String>,
    pub tool_calls: Vec<ModelToolCall>,
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// What the decoder needs to know about the request it answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect<'a> {
    /// The answer schema's name (Anthropic delivers the answer as a call to that tool).
    pub schema_name: Option<&'a str>,
    /// The request offered tools of its own, so other tool calls are calls, not the answer.
    pub tools: bool,
}

/// Where and how to reach one model.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub model: &'a ModelUri,
    /// Without a trailing slash.
    pub base_url: &'a str,
    pub key: Option<&'a ApiKey>,
}

pub(crate) fn encode(target: &Target<'_>, request: &ChatRequest) -> Result<Wire, String> {
    match target.model.provider() {
        Provider::OpenAi => openai::encode(target, request),
        Provider::Anthropic => anthropic::encode(target, request),
        Provider::Ollama => ollama::encode(target, request),
    }
}

pub(crate) fn decode(
    provider: Provider,
    body: &[u8],
    expect: Expect<'_>,
) -> Result<Decoded, String> {
    match provider {
        Provider::OpenAi => openai::decode(body),
        Provider::Anthropic => anthropic::decode(body, expect),
        Provider::Ollama => ollama::decode(body),
    }
}

/// Tool-call arguments as the model wrote them: a JSON text (empty meaning no arguments) or
/// already an object. Text that is not JSON, or whose objects name a key twice (readers
/// differ on which value counts), is kept as a string for the caller to reject.
pub(crate) fn arguments_value(raw: Value) -> Value {
    match raw {
        Value::String(text) if text.trim().is_empty() => Value::Object(Default::default()),
        Value::String(text) => tribunal_core::json::from_str(&text).unwrap_or(Value::String(text)),
        Value::Null => Value::Object(Default::default()),
        other => other,
    }
}

/// A tool call as OpenAI and Ollama send it (`{id?, function: {name, arguments}}`).
#[derive(serde::Deserialize)]
pub(crate) struct WireCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(serde::Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// The model's calls, numbered `call_<i>` where the provider gives no id.
pub(crate) fn decode_calls(calls: Option<Vec<WireCall>>) -> Vec<ModelToolCall> {
    calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| ModelToolCall {
            id: c
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| format!("call_{i}")),
            name: c.function.name,
            arguments: arguments_value(c.function.arguments),
        })
        .collect()
}

/// Arguments for protocols that require an object: anything else is wrapped.
pub(crate) fn arguments_object(arguments: &Value) -> Value {
    match arguments {
        Value::Object(_) => arguments.clone(),
        Value::Null => Value::Object(Default::default()),
        other => serde_json::json!({ "value": other }),
    }
}

/// A header carrying a secret: invalid characters are reported without the value.
pub(crate) fn secret_header(
    name: &'static str,
    value: String,
) -> Result<(HeaderName, HeaderValue), String> {
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| format!("the API key for {name} is not a valid header value"))?;
    value.set_sensitive(true);
    Ok((HeaderName::from_static(name), value))
}

/// The most readable part of an error body: `error.message`, `error` as a string, or `message`.
pub(crate) fn error_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    let message = value
        .pointer("/error/message")
        .or_else(|| value.get("error").filter(|e| e.is_string()))
        .or_else(|| value.get("message"))
        .and_then(Value::as_str);
    match message {
        Some(message) => message.to_string(),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ResponseSchema;

    /// Arguments that name a key twice stay text, which the caller rejects as not an object.
    #[test]
    fn arguments_that_name_a_key_twice_stay_text() {
        let twice = r#"{"verdict": "block", "verdict": "allow"}"#;
        assert_eq!(
            arguments_value(Value::String(twice.into())),
            Value::String(twice.into())
        );
        assert_eq!(
            arguments_value(Value::String(r#"{"verdict": "block"}"#.into())),
            serde_json::json!({"verdict": "block"})
        );
    }
    use serde_json::json;

    fn wire(uri: &str, base: &str, request: &ChatRequest) -> Wire {
        let model: ModelUri = uri.parse().expect("uri");
        let key = ApiKey::new("k-123456");
        encode(
            &Target {
                model: &model,
                base_url: base,
                key: Some(&key),
            },
            request,
        )
        .expect("encode")
    }

    #[test]
    fn the_official_openai_endpoint_gets_max_completion_tokens() {
        let request = ChatRequest::new("hi").with_max_tokens(9);
        let official = wire(
            "openai:/gpt-4o-mini",
            Provider::OpenAi.default_base_url(),
            &request,
        );
        assert_eq!(official.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(official.body["max_completion_tokens"], 9);
        assert!(official.body.get("max_tokens").is_none());
        assert!(official
            .headers
            .iter()
            .all(|(_, v)| !format!("{v:?}").contains("k-123456")));
    }

    #[test]
    fn anthropic_tool_names_are_sanitised() {
        let schema = ResponseSchema::new("judge verdict/v1", json!({"type": "object"}));
        let request = ChatRequest::new("hi").with_schema(schema);
        let wire = wire(
            "anthropic:/claude-3-5-haiku-latest",
            "https://api.anthropic.com",
            &request,
        );
        assert_eq!(wire.body["tool_choice"]["name"], "judge_verdict_v1");
        let body = br#"{"content":[{"type":"tool_use","id":"t","name":"judge_verdict_v1","input":{"a":1}}]}"#;
        let expect = Expect {
            schema_name: Some("judge verdict/v1"),
            tools: false,
        };
        let decoded = decode(Provider::Anthropic, body, expect).expect("decode");
        assert_eq!(decoded.json, Some(json!({"a": 1})));
    }

    #[test]
    fn ollama_hosts_are_normalised() {
        for (host, url) in [
            ("127.0.0.1", "http://127.0.0.1:11434"),
            ("localhost:1234", "http://localhost:1234"),
            ("http://gpu-box:11434/", "http://gpu-box:11434"),
            ("https://ollama.example", "https://ollama.example"),
        ] {
            assert_eq!(normalize_host(host), url, "{host}");
        }
    }

    #[test]
    fn error_messages_prefer_the_message_field() {
        assert_eq!(error_message(r#"{"error":{"message":"m"}}"#), "m");
        assert_eq!(error_message(r#"{"error":"e"}"#), "e");
        assert_eq!(error_message("plain"), "plain");
    }
}

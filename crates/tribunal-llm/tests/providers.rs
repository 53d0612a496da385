//! Provider tests against a local mock server (axum on 127.0.0.1:0) that speaks each protocol
//! and is scripted per test. Nothing here reaches the internet, and nothing asserts on
//! wall-clock speed; the only timing assertion is that a retry waited at least `Retry-After`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tribunal_llm::{
    cache_key, default_model_from, parse_retry_after, ApiKey, BreakerConfig, BreakerState,
    ChatRequest, ClientConfig, LlmClient, LlmError, MemoryCache, ModelUri, Origin, Provider,
    RateLimiter, RateLimits, ResponseCache, ResponseSchema, RetryPolicy,
};

// ---------------------------------------------------------------------------------------------
// The mock server

/// One scripted answer.
#[derive(Clone)]
enum Reply {
    Json {
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    },
    Slow {
        delay: Duration,
        then: Box<Reply>,
    },
    /// Abort the connection without answering.
    Drop,
}

fn ok(body: Value) -> Reply {
    Reply::Json {
        status: 200,
        body,
        headers: Vec::new(),
    }
}

fn status(code: u16, body: Value) -> Reply {
    Reply::Json {
        status: code,
        body,
        headers: Vec::new(),
    }
}

struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
    at: Instant,
}

#[derive(Default)]
struct Mock {
    script: Mutex<VecDeque<Reply>>,
    /// Used once the script is exhausted.
    fallback: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Server {
    mock: Arc<Mock>,
    base: String,
}

impl Server {
    async fn start(script: Vec<Reply>) -> Server {
        let mock = Arc::new(Mock {
            script: Mutex::new(script.into()),
            ..Mock::default()
        });
        let app = Router::new().fallback(answer).with_state(Arc::clone(&mock));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            mock,
            base: format!("http://{addr}"),
        }
    }

    fn always(&self, reply: Reply) {
        *self.mock.fallback.lock().unwrap() = Some(reply);
    }

    fn push(&self, reply: Reply) {
        self.mock.script.lock().unwrap().push_back(reply);
    }

    fn hits(&self) -> usize {
        self.mock.seen.lock().unwrap().len()
    }

    fn request(&self, i: usize) -> (String, HeaderMap, Value) {
        let seen = self.mock.seen.lock().unwrap();
        let s = &seen[i];
        (s.path.clone(), s.headers.clone(), s.body.clone())
    }

    fn gap(&self, a: usize, b: usize) -> Duration {
        let seen = self.mock.seen.lock().unwrap();
        seen[b].at.duration_since(seen[a].at)
    }
}

async fn answer(
    State(mock): State<Arc<Mock>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mock.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    });
    let now = mock.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    mock.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let next = mock.script.lock().unwrap().pop_front();
    let reply = next.or_else(|| mock.fallback.lock().unwrap().clone());
    let response =
        play(reply.unwrap_or_else(|| status(599, json!({"error": "script exhausted"})))).await;
    mock.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn play(mut reply: Reply) -> Response {
    loop {
        match reply {
            Reply::Slow { delay, then } => {
                tokio::time::sleep(delay).await;
                reply = *then;
            }
            // Unwinding the connection task drops the socket; resume_unwind skips the panic hook.
            Reply::Drop => std::panic::resume_unwind(Box::new("mock: drop the connection")),
            Reply::Json {
                status,
                body,
                headers,
            } => {
                let code = StatusCode::from_u16(status).expect("valid status");
                let mut response = (code, axum::Json(body)).into_response();
                for (name, value) in headers {
                    response
                        .headers_mut()
                        .insert(name, value.parse().expect("header value"));
                }
                return response;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol answers

fn openai_answer(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
    })
}

fn anthropic_tool_answer(name: &str, input: Value) -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": name, "input": input}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 100, "output_tokens": 20}
    })
}

fn anthropic_text_answer(text: &str) -> Value {
    json!({
        "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5}
    })
}

fn ollama_answer(content: &str) -> Value {
    json!({
        "model": "llama3.1", "created_at": "2024-07-22T20:33:28.123648Z",
        "message": {"role": "assistant", "content": content},
        "done": true, "done_reason": "stop", "prompt_eval_count": 30, "eval_count": 12
    })
}

const GOOD: &str = r#"{"score": 0.9, "reason": "grounded"}"#;
const KEY: &str = "sk-test-SECRET-1234567890";

fn verdict_schema() -> ResponseSchema {
    ResponseSchema::new(
        "verdict",
        json!({
            "type": "object",
            "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
            "required": ["score", "reason"],
            "additionalProperties": false
        }),
    )
}

fn judge_request() -> ChatRequest {
    ChatRequest::new("Is the answer grounded?")
        .with_system("You are a strict judge.")
        .with_schema(verdict_schema())
        .with_temperature(0.0)
        .with_max_tokens(200)
}

/// Fast retries so tests stay short; no environment is read.
fn fast_retry(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
    }
}

fn config(uri: &str, server: &Server) -> ClientConfig {
    let model: ModelUri = uri.parse().expect("model uri");
    let base = match model.provider() {
        Provider::OpenAi => format!("{}/v1", server.base),
        _ => server.base.clone(),
    };
    ClientConfig::new(model)
        .with_api_key(KEY)
        .with_base_url(base)
        .with_timeout(Duration::from_secs(5))
        .with_retry(fast_retry(2))
}

fn client(config: ClientConfig) -> LlmClient {
    LlmClient::with_env(config, |_| None).expect("client")
}

// ---------------------------------------------------------------------------------------------
// Model URIs and settings

#[test]
fn model_uris_parse_and_bad_ones_name_the_providers() {
    for (text, provider, model) in [
        ("openai:/gpt-4o-mini", Provider::OpenAi, "gpt-4o-mini"),
        (
            "anthropic:/claude-3-5-haiku-latest",
            Provider::Anthropic,
            "claude-3-5-haiku-latest",
        ),
        ("ollama:/llama3.1", Provider::Ollama, "llama3.1"),
        (
            "openai:/meta-llama/Llama-3.1-8B-Instruct",
            Provider::OpenAi,
            "meta-llama/Llama-3.1-8B-Instruct",
        ),
    ] {
        let uri = ModelUri::parse(text).expect(text);
        assert_eq!((uri.provider(), uri.model()), (provider, model));
        assert_eq!(uri.to_string(), text);
    }
    // The short forms name the same model and are shown in the canonical `provider:/model` form.
    for (text, canonical) in [
        ("openai:gpt-4o-mini", "openai:/gpt-4o-mini"),
        ("openai/gpt-4o-mini", "openai:/gpt-4o-mini"),
        (
            "Anthropic:claude-3-5-haiku-latest",
            "anthropic:/claude-3-5-haiku-latest",
        ),
        ("ollama:llama3.1:8b", "ollama:/llama3.1:8b"),
        ("ollama/llama3.1:8b", "ollama:/llama3.1:8b"),
        (
            "openai/meta-llama/Llama-3.1-8B-Instruct",
            "openai:/meta-llama/Llama-3.1-8B-Instruct",
        ),
        (
            "openai:meta-llama/Llama-3.1-8B-Instruct",
            "openai:/meta-llama/Llama-3.1-8B-Instruct",
        ),
    ] {
        let uri = ModelUri::parse(text).expect(text);
        assert_eq!(uri.to_string(), canonical, "{text}");
        assert_eq!(uri, ModelUri::parse(canonical).unwrap(), "{text}");
    }
    for bad in [
        "gpt-4o-mini",
        "mistral:/large",
        "mistral:large",
        "mistral/large",
        "meta-llama/Llama-3.1-8B-Instruct",
        "openai:/",
        "openai:",
        "openai/",
        "",
    ] {
        let err = ModelUri::parse(bad).expect_err(bad).to_string();
        assert!(err.contains("openai, anthropic, ollama"), "{bad}: {err}");
        assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
    }
}

#[test]
fn default_model_comes_from_the_environment_variable() {
    let none = default_model_from(|_| None).unwrap();
    assert_eq!(none.to_string(), "openai:/gpt-4o-mini");
    let set = default_model_from(|k| {
        (k == "TRIBUNAL_JUDGE_MODEL").then(|| "ollama:/llama3.1".to_string())
    })
    .unwrap();
    assert_eq!(set.to_string(), "ollama:/llama3.1");
    let err = default_model_from(|_| Some("nope".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("TRIBUNAL_JUDGE_MODEL"), "{err}");
    // Whatever the real environment says, the function answers.
    let _ = tribunal_llm::default_model();
}

#[test]
fn keys_and_base_urls_come_from_settings_then_environment() {
    let env = |k: &str| match k {
        "OPENAI_API_KEY" => Some("sk-env".to_string()),
        "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1/".to_string()),
        "OLLAMA_HOST" => Some("127.0.0.1".to_string()),
        _ => None,
    };
    let openai = LlmClient::with_env(
        ClientConfig::new("openai:/gpt-4o-mini".parse().unwrap()),
        env,
    )
    .unwrap();
    assert_eq!(openai.base_url(), "http://127.0.0.1:9/v1");
    let explicit = ClientConfig::new("openai:/gpt-4o-mini".parse().unwrap())
        .with_base_url("https://gw.example/v1");
    assert_eq!(
        LlmClient::with_env(explicit, env).unwrap().base_url(),
        "https://gw.example/v1"
    );
    let ollama =
        LlmClient::with_env(ClientConfig::new("ollama:/llama3.1".parse().unwrap()), env).unwrap();
    assert_eq!(ollama.base_url(), "http://127.0.0.1:11434");

    let missing = LlmClient::with_env(
        ClientConfig::new("anthropic:/claude-3-5-haiku-latest".parse().unwrap()),
        |_| None,
    );
    let err = missing.unwrap_err().to_string();
    assert!(
        err.contains("ANTHROPIC_API_KEY") && err.contains("anthropic:/claude-3-5-haiku-latest"),
        "{err}"
    );
}

/// Settings a request to a server gave: the environment's key goes to the provider's own
/// endpoint or the one the environment names, never to a base URL the request chose.
#[tokio::test]
async fn the_environment_key_never_goes_to_a_base_url_a_request_chose() {
    let attacker = Server::start(vec![]).await;
    attacker.always(ok(openai_answer(GOOD)));
    let operator = Server::start(vec![]).await;
    operator.always(ok(openai_answer(GOOD)));
    let operator_base = format!("{}/v1", operator.base);
    let env = |k: &str| match k {
        "OPENAI_API_KEY" => Some(KEY.to_string()),
        "ANTHROPIC_API_KEY" => Some("sk-ant-env".to_string()),
        "OTHER_KEY" => Some("sk-other".to_string()),
        "OPENAI_BASE_URL" => Some(format!("{operator_base}/")),
        _ => None,
    };
    let model = || -> ModelUri { "openai:/gpt-4o-mini".parse().unwrap() };
    let send = |config: ClientConfig, server: &Server| {
        let client = LlmClient::with_env(config.with_retry(RetryPolicy::none()), env).unwrap();
        let before = server.hits();
        async move {
            client.chat(&ChatRequest::new("hi")).await.unwrap();
            before
        }
    };
    // A request's base URL: no key.
    let at = send(
        ClientConfig::new(model())
            .with_origin(Origin::Request)
            .with_base_url(format!("{}/v1", attacker.base)),
        &attacker,
    )
    .await;
    let (_, headers, _) = attacker.request(at);
    assert!(headers.get("authorization").is_none(), "{headers:?}");
    // The operator's endpoint, named by the environment or again by the request: the key.
    for config in [
        ClientConfig::new(model()).with_origin(Origin::Request),
        ClientConfig::new(model())
            .with_origin(Origin::Request)
            .with_base_url(operator_base.clone()),
    ] {
        let at = send(config, &operator).await;
        let (_, headers, _) = operator.request(at);
        assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
    }
    // The operator's own settings keep the environment's key wherever they point.
    let at = send(
        ClientConfig::new(model()).with_base_url(format!("{}/v1", attacker.base)),
        &attacker,
    )
    .await;
    let (_, headers, _) = attacker.request(at);
    assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
    // A key given explicitly is the caller's choice and is sent.
    let at = send(
        ClientConfig::new(model())
            .with_origin(Origin::Request)
            .with_base_url(format!("{}/v1", attacker.base))
            .with_api_key("sk-chosen"),
        &attacker,
    )
    .await;
    let (_, headers, _) = attacker.request(at);
    assert_eq!(headers["authorization"], "Bearer sk-chosen");
    // A variable the request named: a provider's key variable is the environment's key
    // (kept from a base URL the request chose); any other variable is the caller's choice.
    let named = |var: &str, origin: Origin, base: &str| {
        ClientConfig::new(model())
            .with_origin(origin)
            .with_base_url(base.to_owned())
            .with_api_key_env(var)
    };
    let attacker_base = format!("{}/v1", attacker.base);
    for var in ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"] {
        let at = send(named(var, Origin::Request, &attacker_base), &attacker).await;
        let (_, headers, _) = attacker.request(at);
        assert!(headers.get("authorization").is_none(), "{var}: {headers:?}");
    }
    let at = send(
        named("OPENAI_API_KEY", Origin::Request, &operator_base),
        &operator,
    )
    .await;
    let (_, headers, _) = operator.request(at);
    assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
    for (var, origin, sent) in [
        ("OTHER_KEY", Origin::Request, "sk-other"),
        ("OPENAI_API_KEY", Origin::Operator, KEY),
        ("ANTHROPIC_API_KEY", Origin::Operator, "sk-ant-env"),
    ] {
        let at = send(named(var, origin, &attacker_base), &attacker).await;
        let (_, headers, _) = attacker.request(at);
        assert_eq!(headers["authorization"], format!("Bearer {sent}"), "{var}");
    }
    let err = LlmClient::with_env(named("NO_SUCH_KEY", Origin::Request, &attacker_base), env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("api_key_env") && err.contains("NO_SUCH_KEY"),
        "{err}"
    );
}

#[tokio::test]
async fn errors_can_leave_out_what_the_server_answered() {
    let server = Server::start(vec![]).await;
    let failure = |quoted: bool| {
        let mut c = config("openai:/gpt-4o-mini", &server).with_retry(RetryPolicy::none());
        if !quoted {
            c = c.without_quoted_answers();
        }
        async move {
            client(c)
                .chat(&judge_request())
                .await
                .unwrap_err()
                .to_string()
        }
    };
    server.always(status(
        400,
        json!({"error": {"message": "internal-secret-page"}}),
    ));
    let err = failure(true).await;
    assert!(err.contains("internal-secret-page"), "{err}");
    let err = failure(false).await;
    assert!(
        err.contains("HTTP 400") && !err.contains("internal-secret-page"),
        "{err}"
    );
    server.always(ok(json!({"surprise": "internal-secret-page"})));
    let err = failure(false).await;
    assert!(
        err.contains("unexpected response") && !err.contains("internal-secret-page"),
        "{err}"
    );
}

#[test]
fn keys_never_show_in_debug_output() {
    let key = ApiKey::new(KEY);
    assert_eq!(format!("{key:?}"), "***");
    let config = ClientConfig::new("openai:/gpt-4o-mini".parse().unwrap()).with_api_key(KEY);
    assert!(!format!("{config:?}").contains(KEY));
    let client = LlmClient::with_env(config, |_| None).unwrap();
    assert!(!format!("{client:?}").contains(KEY));
}

// ---------------------------------------------------------------------------------------------
// The three protocols

#[tokio::test]
async fn openai_structured_answer() {
    let server = Server::start(vec![ok(openai_answer(GOOD))]).await;
    let client = client(config("openai:/gpt-4o-mini", &server));
    let response = client.chat(&judge_request()).await.expect("answer");
    assert_eq!(
        response.json,
        Some(json!({"score": 0.9, "reason": "grounded"}))
    );
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (42, 7)
    );
    assert_eq!((response.attempts, response.cached), (1, false));
    assert_eq!(response.stop_reason.as_deref(), Some("stop"));

    let (path, headers, body) = server.request(0);
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You are a strict judge."})
    );
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(
        body["max_tokens"], 200,
        "a compatible server gets max_tokens"
    );
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "verdict");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        body["response_format"]["json_schema"]["schema"],
        verdict_schema().schema
    );
}

#[tokio::test]
async fn openai_compatible_server_without_a_key() {
    let server = Server::start(vec![ok(openai_answer("plain words"))]).await;
    let config = ClientConfig::new("openai:/local-model".parse().unwrap())
        .with_base_url(format!("{}/v1", server.base));
    let client = LlmClient::with_env(config, |_| None).expect("no key needed with a base URL");
    let response = client.chat(&ChatRequest::new("hi")).await.unwrap();
    assert_eq!(response.text, "plain words");
    let (_, headers, body) = server.request(0);
    assert!(headers.get("authorization").is_none());
    assert!(body.get("response_format").is_none() && body.get("temperature").is_none());
}

#[tokio::test]
async fn anthropic_forced_tool_call() {
    let answer = json!({"score": 0.2, "reason": "made up"});
    let server = Server::start(vec![ok(anthropic_tool_answer("verdict", answer.clone()))]).await;
    let client = client(config("anthropic:/claude-3-5-haiku-latest", &server));
    let response = client.chat(&judge_request()).await.expect("answer");
    assert_eq!(response.json, Some(answer));
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (100, 20)
    );
    assert_eq!(response.stop_reason.as_deref(), Some("tool_use"));

    let (path, headers, body) = server.request(0);
    assert_eq!(path, "/v1/messages");
    assert_eq!(headers["x-api-key"], KEY);
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert!(headers.get("authorization").is_none());
    assert_eq!(body["model"], "claude-3-5-haiku-latest");
    assert_eq!(body["system"], "You are a strict judge.");
    assert_eq!(body["max_tokens"], 200);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Is the answer grounded?"}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "verdict"})
    );
    assert_eq!(body["tools"][0]["name"], "verdict");
    assert_eq!(body["tools"][0]["input_schema"], verdict_schema().schema);
}

#[tokio::test]
async fn anthropic_text_answer_without_schema() {
    let server = Server::start(vec![ok(anthropic_text_answer("Looks fine."))]).await;
    let client = client(config("anthropic:/claude-3-5-haiku-latest", &server));
    let response = client.chat(&ChatRequest::new("hi")).await.unwrap();
    assert_eq!(
        (response.text.as_str(), response.json.as_ref()),
        ("Looks fine.", None)
    );
    let (_, _, body) = server.request(0);
    assert_eq!(
        body["max_tokens"], 1024,
        "Anthropic needs max_tokens; a default is sent"
    );
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
}

#[tokio::test]
async fn ollama_format_schema() {
    let server = Server::start(vec![ok(ollama_answer(GOOD))]).await;
    let config =
        ClientConfig::new("ollama:/llama3.1".parse().unwrap()).with_base_url(server.base.clone());
    let client = LlmClient::with_env(config, |_| None).unwrap();
    let response = client.chat(&judge_request()).await.unwrap();
    assert_eq!(
        response.json,
        Some(json!({"score": 0.9, "reason": "grounded"}))
    );
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (30, 12)
    );

    let (path, headers, body) = server.request(0);
    assert_eq!(path, "/api/chat");
    assert!(headers.get("authorization").is_none());
    assert_eq!(body["stream"], false);
    assert_eq!(body["format"], verdict_schema().schema);
    assert_eq!(
        body["options"],
        json!({"temperature": 0.0, "num_predict": 200})
    );
}

// ---------------------------------------------------------------------------------------------
// Answers that are not the JSON asked for

#[tokio::test]
async fn prose_instead_of_json_is_text_without_json() {
    let server = Server::start(vec![
        ok(openai_answer("I think the answer is grounded, score 0.9.")),
        ok(ollama_answer(
            "Sure! Here you go:\n```json\n{\"score\": 1, \"reason\": \"ok\"}\n```",
        )),
    ])
    .await;
    let openai = client(config("openai:/gpt-4o-mini", &server));
    let response = openai.chat(&judge_request()).await.unwrap();
    assert_eq!(response.json, None);
    let err = response.require_json().unwrap_err().to_string();
    assert!(
        err.contains("openai:/gpt-4o-mini") && err.contains("score 0.9"),
        "{err}"
    );

    let ollama = client(config("ollama:/llama3.1", &server));
    let fenced = ollama.chat(&judge_request()).await.unwrap();
    assert_eq!(
        fenced.json,
        Some(json!({"score": 1, "reason": "ok"})),
        "JSON inside a fence is found"
    );
}

#[tokio::test]
async fn malformed_json_is_not_parsed() {
    let server = Server::start(vec![
        ok(openai_answer(r#"{"score": 0.9, "reason": "#)),
        ok(anthropic_text_answer(r#"{"score": 0.9 "reason": "x"}"#)),
    ])
    .await;
    let openai = client(config("openai:/gpt-4o-mini", &server));
    let response = openai.chat(&judge_request()).await.unwrap();
    assert_eq!(
        (response.json, response.attempts),
        (None, 1),
        "malformed JSON is not retried"
    );
    let anthropic = client(config("anthropic:/claude-3-5-haiku-latest", &server));
    assert_eq!(anthropic.chat(&judge_request()).await.unwrap().json, None);
}

#[tokio::test]
async fn a_body_outside_the_protocol_is_a_decode_error() {
    let server = Server::start(vec![ok(json!({"unexpected": true}))]).await;
    let client = client(config("openai:/gpt-4o-mini", &server));
    let err = client.chat(&judge_request()).await.unwrap_err();
    assert!(matches!(err, LlmError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("unexpected"), "{err}");
    assert_eq!(server.hits(), 1);
}

// ---------------------------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn rate_limited_retry_waits_for_retry_after() {
    let limited = Reply::Json {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        headers: vec![("retry-after", "1".into())],
    };
    let server = Server::start(vec![limited, ok(openai_answer(GOOD))]).await;
    let client = client(config("openai:/gpt-4o-mini", &server));
    let response = client.chat(&judge_request()).await.unwrap();
    assert_eq!(response.attempts, 2);
    assert!(
        server.gap(0, 1) >= Duration::from_secs(1),
        "retried after {:?}",
        server.gap(0, 1)
    );
}

#[tokio::test]
async fn retry_after_ms_is_honoured() {
    let limited = Reply::Json {
        status: 429,
        body: json!({"error": {"message": "tokens"}}),
        headers: vec![("retry-after-ms", "300".into())],
    };
    let server = Server::start(vec![limited, ok(ollama_answer(GOOD))]).await;
    let client = client(config("ollama:/llama3.1", &server));
    assert_eq!(client.chat(&judge_request()).await.unwrap().attempts, 2);
    assert!(
        server.gap(0, 1) >= Duration::from_millis(300),
        "retried after {:?}",
        server.gap(0, 1)
    );
}

#[test]
fn json_is_found_in_model_text() {
    assert_eq!(tribunal_llm::extract_json(" [1, 2] "), Some(json!([1, 2])));
    assert_eq!(
        tribunal_llm::extract_json("Verdict: {\"ok\": true} done"),
        Some(json!({"ok": true}))
    );
    assert_eq!(
        tribunal_llm::extract_json("```\n{\"ok\": false}\n```"),
        Some(json!({"ok": false}))
    );
    for prose in [
        "Yes.",
        "{not json}",
        "} backwards {",
        "```json\n{\"a\": \n```",
        // A key named twice: readers differ on which value counts.
        "{\"verdict\": \"unsafe\", \"verdict\": \"safe\"}",
        "Here:\n```json\n{\"verdict\": \"unsafe\", \"verdict\": \"safe\"}\n```",
    ] {
        assert_eq!(tribunal_llm::extract_json(prose), None, "{prose}");
    }
}

#[tokio::test]
async fn retry_after_beyond_the_cap_gives_up_with_the_status() {
    let limited = Reply::Json {
        status: 429,
        body: json!({"error": {"message": "slow down"}}),
        headers: vec![("retry-after", "3600".into())],
    };
    let server = Server::start(vec![limited]).await;
    let client = client(config("anthropic:/claude-3-5-haiku-latest", &server));
    let err = client.chat(&judge_request()).await.unwrap_err();
    assert_eq!(
        (err.status(), err.attempts(), server.hits()),
        (Some(429), Some(1), 1)
    );
    assert!(err.to_string().contains("slow down"), "{err}");
}

#[tokio::test]
async fn server_error_then_success() {
    let server = Server::start(vec![
        status(500, json!({"error": {"message": "internal"}})),
        status(503, json!({"error": "overloaded"})),
        ok(anthropic_tool_answer(
            "verdict",
            json!({"score": 1, "reason": "r"}),
        )),
    ])
    .await;
    let client = client(config("anthropic:/claude-3-5-haiku-latest", &server));
    let response = client.chat(&judge_request()).await.unwrap();
    assert_eq!((response.attempts, server.hits()), (3, 3));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for code in [400u16, 401, 404] {
        let server = Server::start(vec![status(
            code,
            json!({"error": {"message": format!("bad {code}")}}),
        )])
        .await;
        let client = client(config("openai:/gpt-4o-mini", &server));
        let err = client.chat(&judge_request()).await.unwrap_err();
        assert_eq!(
            (err.status(), err.attempts(), server.hits()),
            (Some(code), Some(1), 1)
        );
        let text = err.to_string();
        assert!(
            text.contains("openai:/gpt-4o-mini") && text.contains(&format!("HTTP {code}")),
            "{text}"
        );
        assert!(text.contains(&format!("bad {code}")), "{text}");
    }
}

#[tokio::test]
async fn retries_run_out_with_a_typed_error_and_a_truncated_body() {
    let server = Server::start(vec![]).await;
    server.always(status(502, json!({"error": {"message": "x".repeat(5000)}})));
    let client = client(config("ollama:/llama3.1", &server));
    let err = client.chat(&judge_request()).await.unwrap_err();
    assert_eq!(
        (err.status(), err.attempts(), server.hits()),
        (Some(502), Some(3), 3)
    );
    let text = err.to_string();
    assert!(text.len() < 1000 && text.contains("(5000 bytes)"), "{text}");
}

#[tokio::test]
async fn echoed_keys_are_redacted_from_errors() {
    let server = Server::start(vec![status(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}")}}),
    )])
    .await;
    let client = client(config("openai:/gpt-4o-mini", &server));
    let err = client.chat(&judge_request()).await.unwrap_err();
    let (text, debug) = (err.to_string(), format!("{err:?}"));
    assert!(!text.contains(KEY) && !debug.contains(KEY), "{text}");
    assert!(text.contains("Incorrect API key provided: ***"), "{text}");
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let slow = || Reply::Slow {
        delay: Duration::from_secs(3),
        then: Box::new(ok(openai_answer(GOOD))),
    };
    let server = Server::start(vec![slow(), ok(openai_answer(GOOD))]).await;
    let client =
        client(config("openai:/gpt-4o-mini", &server).with_timeout(Duration::from_millis(200)));
    let response = client.chat(&judge_request()).await.unwrap();
    assert_eq!(response.attempts, 2);

    let server = Server::start(vec![slow()]).await;
    let once = config("openai:/gpt-4o-mini", &server)
        .with_timeout(Duration::from_millis(200))
        .with_retry(RetryPolicy::none());
    let err = LlmClient::with_env(once, |_| None)
        .unwrap()
        .chat(&judge_request())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Timeout { attempts: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("openai:/gpt-4o-mini"), "{err}");
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let server = Server::start(vec![Reply::Drop, ok(ollama_answer(GOOD))]).await;
    let client = client(config("ollama:/llama3.1", &server));
    let response = client.chat(&judge_request()).await.unwrap();
    assert_eq!((response.attempts, server.hits()), (2, 2));

    let server = Server::start(vec![]).await;
    server.always(Reply::Drop);
    let client = self::client(config("ollama:/llama3.1", &server).with_retry(fast_retry(1)));
    let err = client.chat(&judge_request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Connection { attempts: 2, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn refused_connections_are_connection_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = ClientConfig::new("ollama:/llama3.1".parse().unwrap())
        .with_base_url(format!("http://{addr}"))
        .with_retry(fast_retry(1));
    let err = LlmClient::with_env(config, |_| None)
        .unwrap()
        .chat(&ChatRequest::new("hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Connection { attempts: 2, .. }),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

#[tokio::test]
async fn circuit_breaker_opens_then_half_opens() {
    let server = Server::start(vec![]).await;
    server.always(status(500, json!({"error": "down"})));
    let config = config("openai:/gpt-4o-mini", &server)
        .with_retry(RetryPolicy::none())
        .with_breaker(BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_millis(300),
        });
    let client = client(config);

    for _ in 0..2 {
        assert_eq!(
            client.chat(&judge_request()).await.unwrap_err().status(),
            Some(500)
        );
    }
    assert_eq!(client.breaker_state(), BreakerState::Open);
    let err = client.chat(&judge_request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::CircuitOpen { failures: 2, .. }),
        "{err}"
    );
    assert_eq!(
        server.hits(),
        2,
        "an open circuit does not call the provider"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    // The half-open probe fails: open again without further calls.
    assert_eq!(
        client.chat(&judge_request()).await.unwrap_err().status(),
        Some(500)
    );
    assert_eq!(client.breaker_state(), BreakerState::Open);
    assert!(matches!(
        client.chat(&judge_request()).await,
        Err(LlmError::CircuitOpen { .. })
    ));
    assert_eq!(server.hits(), 3);

    tokio::time::sleep(Duration::from_millis(350)).await;
    server.push(ok(openai_answer(GOOD)));
    assert!(
        client.chat(&judge_request()).await.is_ok(),
        "the probe succeeds"
    );
    assert_eq!(client.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn client_errors_do_not_open_the_circuit() {
    let server = Server::start(vec![]).await;
    server.always(status(400, json!({"error": "bad request"})));
    let config = config("openai:/gpt-4o-mini", &server).with_breaker(BreakerConfig {
        failure_threshold: 1,
        cool_down: Duration::from_secs(60),
    });
    let client = client(config);
    for _ in 0..3 {
        assert_eq!(
            client.chat(&judge_request()).await.unwrap_err().status(),
            Some(400)
        );
    }
    assert_eq!(
        (client.breaker_state(), server.hits()),
        (BreakerState::Closed, 3)
    );
}

// ---------------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn concurrency_is_bounded() {
    let server = Server::start(vec![]).await;
    server.always(Reply::Slow {
        delay: Duration::from_millis(50),
        then: Box::new(ok(openai_answer(GOOD))),
    });
    let limits = RateLimits {
        max_concurrency: 2,
        ..RateLimits::default()
    };
    let client = Arc::new(client(
        config("openai:/gpt-4o-mini", &server).with_limits(limits),
    ));
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.chat(&judge_request()).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_ok());
    }
    assert_eq!(server.hits(), 6);
    assert!(server.mock.max_in_flight.load(Ordering::SeqCst) <= 2);
}

#[tokio::test(start_paused = true)]
async fn requests_per_minute_bucket_waits_for_refill() {
    // Virtual time: the bucket holds 2 requests and refills one per 30 s.
    let limiter = RateLimiter::new(&RateLimits {
        max_concurrency: 4,
        requests_per_minute: Some(2),
        tokens_per_minute: None,
    });
    let start = tokio::time::Instant::now();
    drop(limiter.acquire(1).await);
    drop(limiter.acquire(1).await);
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(limiter.acquire(1).await);
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute_bucket_charges_estimates() {
    let limiter = RateLimiter::new(&RateLimits {
        max_concurrency: 4,
        requests_per_minute: None,
        tokens_per_minute: Some(600),
    });
    let start = tokio::time::Instant::now();
    drop(limiter.acquire(600).await);
    limiter.settle(600, 300); // used less than estimated: 300 back
    drop(limiter.acquire(300).await);
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(limiter.acquire(60).await); // 10 tokens/s
    assert!(
        start.elapsed() >= Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_back_every_caller() {
    let limiter = RateLimiter::new(&RateLimits::default());
    let start = tokio::time::Instant::now();
    limiter.pause(Duration::from_secs(5));
    limiter.pause(Duration::from_secs(1)); // a shorter pause does not shorten the longer one
    drop(limiter.acquire(1).await);
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Cache

#[tokio::test]
async fn cached_answers_skip_the_provider() {
    let server = Server::start(vec![ok(openai_answer(GOOD))]).await;
    let cache = Arc::new(MemoryCache::new());
    let client = client(config("openai:/gpt-4o-mini", &server)).with_cache(cache.clone());
    let first = client.chat(&judge_request()).await.unwrap();
    let second = client.chat(&judge_request()).await.unwrap();
    assert_eq!(
        (first.cached, second.cached, second.attempts),
        (false, true, 0)
    );
    assert_eq!(second.json, first.json);
    assert_eq!((server.hits(), cache.len()), (1, 1));

    let key = client.cache_key(&judge_request());
    assert!(cache.get(&key).await.unwrap().is_some());
}

/// An answer from one endpoint is never served for another: two clients of one model with
/// different base URLs, one cache, the same request, both servers asked.
#[tokio::test]
async fn clients_of_different_endpoints_do_not_share_cached_answers() {
    let real = Server::start(vec![]).await;
    real.always(ok(openai_answer(r#"{"score": 0.9, "reason": "real"}"#)));
    let other = Server::start(vec![]).await;
    other.always(ok(openai_answer(r#"{"score": 0.1, "reason": "poisoned"}"#)));
    let cache = Arc::new(MemoryCache::new());
    let poisoner = client(config("openai:/gpt-4o-mini", &other)).with_cache(cache.clone());
    let judge = client(config("openai:/gpt-4o-mini", &real)).with_cache(cache.clone());
    let first = poisoner.chat(&judge_request()).await.unwrap();
    assert_eq!(first.json.as_ref().unwrap()["reason"], "poisoned");
    let answer = judge.chat(&judge_request()).await.unwrap();
    assert!(!answer.cached);
    assert_eq!(answer.json.as_ref().unwrap()["reason"], "real");
    assert_eq!((other.hits(), real.hits(), cache.len()), (1, 1, 2));
    assert_ne!(
        poisoner.cache_key(&judge_request()),
        judge.cache_key(&judge_request())
    );
    // Each is still answered from the cache the second time.
    let again = judge.chat(&judge_request()).await.unwrap();
    assert!(again.cached);
    assert_eq!(again.json.as_ref().unwrap()["reason"], "real");
}

#[tokio::test]
async fn unusable_answers_are_not_cached() {
    // Prose where JSON was asked for: not cached, asked again.
    let server = Server::start(vec![
        ok(openai_answer("I think it is fine.")),
        ok(openai_answer(GOOD)),
        ok(openai_answer(GOOD)),
    ])
    .await;
    let cache = Arc::new(MemoryCache::new());
    let client = client(config("openai:/gpt-4o-mini", &server)).with_cache(cache.clone());
    let first = client.chat(&judge_request()).await.unwrap();
    assert!(first.json.is_none());
    assert_eq!(cache.len(), 0);
    // JSON the caller cannot use: not cached either.
    let second = client
        .chat_accepting(&judge_request(), &|_| false)
        .await
        .unwrap();
    assert!(second.json.is_some() && !second.cached);
    assert_eq!(cache.len(), 0);
    let third = client.chat(&judge_request()).await.unwrap();
    assert!(third.json.is_some() && !third.cached);
    assert_eq!((server.hits(), cache.len()), (3, 1));
    // A cached answer the caller cannot use is not served from the cache.
    server.push(ok(openai_answer(GOOD)));
    let fourth = client
        .chat_accepting(&judge_request(), &|_| false)
        .await
        .unwrap();
    assert!(!fourth.cached);
    assert_eq!(server.hits(), 4);
}

#[test]
fn cache_keys_cover_model_endpoint_parameters_and_prompts() {
    const OPENAI: &str = "https://api.openai.com/v1";
    let model: ModelUri = "openai:/gpt-4o-mini".parse().unwrap();
    let base = judge_request();
    let key = cache_key(&model, OPENAI, &base);
    assert_eq!(key.as_str().len(), 64);
    assert_eq!(key, cache_key(&model, OPENAI, &base.clone()), "stable");
    let variants = [
        cache_key(&"openai:/gpt-4o".parse().unwrap(), OPENAI, &base),
        cache_key(&model, "http://127.0.0.1:9/v1", &base),
        cache_key(&"ollama:/gpt-4o-mini".parse().unwrap(), OPENAI, &base),
        cache_key(&model, OPENAI, &base.clone().with_temperature(0.7)),
        cache_key(&model, OPENAI, &base.clone().with_max_tokens(201)),
        cache_key(&model, OPENAI, &base.clone().with_system("Be kind.")),
        cache_key(
            &model,
            OPENAI,
            &ChatRequest {
                user: "other".into(),
                ..base.clone()
            },
        ),
        cache_key(
            &model,
            OPENAI,
            &ChatRequest {
                schema: None,
                ..base.clone()
            },
        ),
        cache_key(
            &model,
            OPENAI,
            &base.clone().with_schema(verdict_schema().lenient()),
        ),
    ];
    for (i, variant) in variants.iter().enumerate() {
        assert_ne!(&key, variant, "variant {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// Retry-After parsing

#[test]
fn retry_after_seconds_and_http_dates() {
    let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // Wed, 21 Oct 2015 07:27:50 GMT
    assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
    assert_eq!(
        parse_retry_after(" 0.5 ", now),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", SystemTime::UNIX_EPOCH),
        Some(Duration::from_secs(784_111_777))
    );
    for bad in [
        "soon",
        "-1",
        "Wed, 21 Oct 2015 07:28:00 PST",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings and log-probabilities

#[tokio::test]
async fn embeddings_come_back_in_input_order_after_a_retry() {
    let server = Server::start(vec![
        status(503, json!({"error": {"message": "overloaded"}})),
        // Out of order on purpose: the index says which input a vector is for.
        ok(json!({"object": "list", "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
        ]})),
    ])
    .await;
    let openai = client(config("openai:/text-embedding-3-small", &server));
    let vectors = openai
        .embed(&["first".to_owned(), "second".to_owned()])
        .await
        .unwrap();
    assert_eq!(vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    assert_eq!(server.hits(), 2);
    let (path, headers, body) = server.request(1);
    assert_eq!(path, "/v1/embeddings");
    assert_eq!(
        body,
        json!({"model": "text-embedding-3-small", "input": ["first", "second"]})
    );
    assert!(headers.get("authorization").is_some());
}

#[tokio::test]
async fn embeddings_from_ollama_and_refusals() {
    let server = Server::start(vec![ok(json!({"embeddings": [[0.5, 0.5]]}))]).await;
    let ollama = client(config("ollama:/nomic-embed-text", &server));
    assert_eq!(
        ollama.embed(&["x".to_owned()]).await.unwrap(),
        vec![vec![0.5, 0.5]]
    );
    assert_eq!(server.request(0).0, "/api/embed");

    // A wrong count of vectors is a decode error, not a silent mismatch.
    let server = Server::start(vec![ok(
        json!({"data": [{"index": 0, "embedding": [1.0]}]}),
    )])
    .await;
    let e = client_err(
        client(config("openai:/text-embedding-3-small", &server))
            .embed(&["a".to_owned(), "b".to_owned()])
            .await,
    );
    assert!(e.contains("no embedding for input 1"), "{e}");

    let server = Server::start(vec![]).await;
    let e = client_err(
        client(config("anthropic:/claude-3-5-haiku-latest", &server))
            .embed(&["a".to_owned()])
            .await,
    );
    assert!(e.contains("anthropic has no embeddings endpoint"), "{e}");
    assert_eq!(server.hits(), 0);
}

fn client_err<T: std::fmt::Debug>(r: Result<T, LlmError>) -> String {
    r.unwrap_err().to_string()
}

#[tokio::test]
async fn log_probabilities_are_asked_for_and_read() {
    let mut answer = openai_answer(GOOD);
    answer["choices"][0]["logprobs"] = json!({"content": [
        {"token": "{", "logprob": -0.01, "top_logprobs": []},
        {"token": "…", "logprob": -0.2, "bytes": [226, 128, 166]},
    ]});
    let server = Server::start(vec![ok(answer)]).await;
    let response = client_for(&server)
        .chat(&judge_request().with_logprobs())
        .await
        .unwrap();
    assert_eq!(server.request(0).2["logprobs"], json!(true));
    let tokens = response.logprobs.unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!((tokens[1].token.as_str(), tokens[1].logprob), ("…", -0.2));
    // Without asking, nothing is sent.
    let server = Server::start(vec![ok(openai_answer(GOOD))]).await;
    let plain = client_for(&server).chat(&judge_request()).await.unwrap();
    assert!(server.request(0).2.get("logprobs").is_none());
    assert_eq!(plain.logprobs, None);
}

fn client_for(server: &Server) -> LlmClient {
    client(config("openai:/gpt-4o-mini", server))
}

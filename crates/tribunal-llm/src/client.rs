//! The client: resolves settings (explicit values first, then `OPENAI_API_KEY`,
//! `OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `OLLAMA_HOST`), then runs each
//! call through the cache, the circuit breaker, the rate limiter, a per-attempt timeout and
//! the retry loop. The only module here that does I/O.
//!
//! Settings that came from a request to a server ([`Origin::Request`]) are not trusted with
//! the environment's key: it goes only to the provider's own endpoint or to the one the
//! environment names, never to a base URL the request chose, whether the key is found by
//! the provider's own variable or by an `api_key_env` that names it.

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::cache::{cache_key, CacheKey, ResponseCache};
use crate::error::{truncate, LlmError};
use crate::limit::{RateLimiter, RateLimits};
use crate::providers::{self, normalize_host, Decoded, Expect, Target, Wire};
use crate::retry::{parse_retry_after, Jitter, RetryPolicy};
use crate::secret::ApiKey;
use crate::types::{extract_json, ChatRequest, ChatResponse};
use crate::uri::{ModelUri, Provider};
use reqwest::header::HeaderMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Who chose a client's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    /// The operator: a configuration file, the environment, the command line.
    #[default]
    Operator,
    /// A request to a server, from whoever holds a token there. The environment's key
    /// (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`) is attached only when the request goes to the
    /// provider's default endpoint or to the one the environment names (`OPENAI_BASE_URL`, …),
    /// never to another base URL the request gave. The same holds for a key read from a
    /// variable the request named ([`ClientConfig::with_api_key_env`]) when that variable is
    /// one a provider's key is read from (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`). A key given
    /// explicitly ([`ClientConfig::with_api_key`]), or read from another variable, is the
    /// caller's own choice and is always sent.
    Request,
}

/// Settings for one model. Unset key and base URL are taken from the environment.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub model: ModelUri,
    pub api_key: Option<ApiKey>,
    /// The environment variable to read the key from, when `api_key` is unset.
    pub api_key_env: Option<String>,
    /// OpenAI: up to and including `/v1`; Anthropic and Ollama: the host.
    pub base_url: Option<String>,
    /// Per attempt: connecting, sending and reading the whole answer.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub limits: RateLimits,
    pub breaker: BreakerConfig,
    /// Who chose these settings; see [`Origin`].
    pub origin: Origin,
    /// Whether errors quote what the model server answered (its error message, an answer
    /// that does not decode). Off for callers who must not read a server's answers.
    pub quote_answers: bool,
}

impl ClientConfig {
    pub fn new(model: ModelUri) -> Self {
        ClientConfig {
            model,
            api_key: None,
            api_key_env: None,
            base_url: None,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            limits: RateLimits::default(),
            breaker: BreakerConfig::default(),
            origin: Origin::Operator,
            quote_answers: true,
        }
    }

    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// Errors say what failed (status, attempts) without quoting the server's answer.
    pub fn without_quoted_answers(mut self) -> Self {
        self.quote_answers = false;
        self
    }

    pub fn with_api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Reads the key from the environment variable `name` (an error when it is unset); see
    /// [`Origin::Request`] for where such a key is sent.
    pub fn with_api_key_env(mut self, name: impl Into<String>) -> Self {
        self.api_key_env = Some(name.into());
        self
    }

    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_limits(mut self, limits: RateLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn with_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }
}

/// A chat-completion client for one model. Cheap to share behind an `Arc`; all limits apply
/// across the calls made through it.
pub struct LlmClient {
    model: ModelUri,
    key: Option<ApiKey>,
    base_url: String,
    timeout: Duration,
    retry: RetryPolicy,
    http: reqwest::Client,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    jitter: Jitter,
    cache: Option<Arc<dyn ResponseCache>>,
    quote_answers: bool,
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClient")
            .field("model", &self.model)
            .field("key", &self.key)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// One failed attempt, before it becomes an [`LlmError`].
#[derive(Debug)]
enum Failure {
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    Timeout,
    Connection(String),
    Decode {
        reason: String,
        body: String,
    },
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Failure::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            Failure::Timeout | Failure::Connection(_) => true,
            Failure::Decode { .. } => false,
        }
    }

    /// Whether the provider looks down (what the circuit breaker counts).
    fn unhealthy(&self) -> bool {
        match self {
            Failure::Status { status, .. } => *status >= 500,
            Failure::Timeout | Failure::Connection(_) => true,
            Failure::Decode { .. } => false,
        }
    }
}

impl LlmClient {
    /// Builds a client, reading missing settings from the process environment.
    pub fn new(config: ClientConfig) -> Result<Self, LlmError> {
        LlmClient::with_env(config, |name| std::env::var(name).ok())
    }

    /// Builds a client, reading missing settings through `env`.
    pub fn with_env(
        config: ClientConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmError> {
        let provider = config.model.provider();
        let nonempty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let normalize = |url: &str| match provider {
            Provider::Ollama => normalize_host(url),
            _ => url.trim().trim_end_matches('/').to_string(),
        };
        let env_base = nonempty(provider.base_env());
        let requested_base = config.base_url.is_some();
        let explicit_base = config.base_url.or_else(|| env_base.clone());
        let base_url = match &explicit_base {
            Some(url) => normalize(url),
            None => provider.default_base_url().to_string(),
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(LlmError::Config {
                model: config.model,
                setting: provider.base_env(),
                reason: format!("{base_url:?} is not an http(s) URL"),
            });
        }
        // The environment's key is the operator's: it goes where the operator sends requests.
        let operator_endpoint = config.origin == Origin::Operator
            || !requested_base
            || base_url == normalize(provider.default_base_url())
            || env_base.as_deref().map(normalize).as_ref() == Some(&base_url);
        let named_key = match &config.api_key_env {
            None => None,
            Some(name) => {
                let key = nonempty(name).ok_or_else(|| LlmError::Config {
                    model: config.model.clone(),
                    setting: "api_key_env",
                    reason: format!("the variable {name} is not set"),
                })?;
                let providers_key = Provider::ALL
                    .iter()
                    .any(|p| p.key_env() == Some(name.as_str()));
                (operator_endpoint || !providers_key).then(|| ApiKey::new(key))
            }
        };
        let key = config.api_key.or(named_key).or_else(|| {
            provider
                .key_env()
                .filter(|_| operator_endpoint)
                .and_then(|name| nonempty(name).map(ApiKey::new))
        });
        // The hosted services need a key; self-hosted and compatible servers may not.
        if let (None, Some(env_name), None) = (&key, provider.key_env(), &explicit_base) {
            return Err(LlmError::MissingApiKey {
                model: config.model,
                env: env_name,
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| LlmError::Config {
                model: config.model.clone(),
                setting: "http client",
                reason: e.to_string(),
            })?;
        Ok(LlmClient {
            key,
            base_url,
            timeout: config.timeout,
            retry: config.retry,
            http,
            limiter: RateLimiter::new(&config.limits),
            breaker: CircuitBreaker::new(config.breaker),
            jitter: Jitter::from_clock(),
            cache: None,
            quote_answers: config.quote_answers,
            model: config.model,
        })
    }

    /// Remembers successful answers in `cache` and serves repeats from it.
    pub fn with_cache(mut self, cache: Arc<dyn ResponseCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    pub fn model(&self) -> &ModelUri {
        &self.model
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The key under which this client caches the answer to `request`: it names the
    /// endpoint too, so answers from different servers never stand in for each other.
    pub fn cache_key(&self, request: &ChatRequest) -> CacheKey {
        cache_key(&self.model, &self.base_url, request)
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Sends `request`, retrying as the policy allows. A prose or malformed answer is not an
    /// error here: `json` is `None` (see [`ChatResponse::require_json`]). With tools, each
    /// call is one turn of the caller's loop: the model's calls are in `tool_calls`, and the
    /// caller sends them back with their results in the next request's `turns`.
    ///
    /// Only usable answers are cached: with an answer schema, an answer without JSON is not.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.chat_accepting(request, &|_| true).await
    }

    /// [`ChatClient::chat`], where `usable` also decides which answers may be cached (and
    /// which cached answers may be served): an answer the caller cannot use is asked for
    /// again on the next run instead of being repeated from the cache.
    pub async fn chat_accepting(
        &self,
        request: &ChatRequest,
        usable: &(dyn Fn(&ChatResponse) -> bool + Sync),
    ) -> Result<ChatResponse, LlmError> {
        let usable = |r: &ChatResponse| (request.schema.is_none() || r.json.is_some()) && usable(r);
        let key = self.cache.as_ref().map(|_| self.cache_key(request));
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            if let Some(mut hit) = cache.get(key).await? {
                if usable(&hit) {
                    hit.cached = true;
                    hit.attempts = 0;
                    return Ok(hit);
                }
            }
        }
        let target = Target {
            model: &self.model,
            base_url: &self.base_url,
            key: self.key.as_ref(),
        };
        let wire = providers::encode(&target, request).map_err(|reason| LlmError::Config {
            model: self.model.clone(),
            setting: "request",
            reason,
        })?;
        let expect = Expect {
            schema_name: request.schema.as_ref().map(|s| s.name.as_str()),
            tools: !request.tools.is_empty(),
        };
        let started = Instant::now();
        let provider = self.model.provider();
        let (decoded, attempts) = self
            .exchange(
                &wire,
                request.estimated_tokens(),
                &|body| providers::decode(provider, body, expect),
                &|d: &Decoded| d.usage.total(),
            )
            .await?;
        let json = decoded.json.or_else(|| extract_json(&decoded.text));
        let response = ChatResponse {
            model: self.model.clone(),
            text: decoded.text,
            json,
            usage: decoded.usage,
            latency: started.elapsed(),
            stop_reason: decoded.stop_reason,
            tool_calls: decoded.tool_calls,
            attempts,
            cached: false,
            logprobs: decoded.logprobs,
        };
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            if usable(&response) {
                cache.put(key, &response).await?;
            }
        }
        Ok(response)
    }

    /// One vector per text from the model's embeddings endpoint (OpenAI and compatible
    /// servers, Ollama), with the same limits, breaker and retries as chat.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let target = Target {
            model: &self.model,
            base_url: &self.base_url,
            key: self.key.as_ref(),
        };
        let wire =
            providers::embeddings::encode(&target, texts).map_err(|reason| LlmError::Config {
                model: self.model.clone(),
                setting: "model",
                reason,
            })?;
        let estimate = texts
            .iter()
            .map(|t| t.len() as u64)
            .sum::<u64>()
            .div_ceil(4);
        let provider = self.model.provider();
        let count = texts.len();
        let (vectors, _) = self
            .exchange(
                &wire,
                estimate,
                &|body| providers::embeddings::decode(provider, body, count),
                &|_| estimate,
            )
            .await?;
        Ok(vectors)
    }

    /// Sends `wire` under the client's limits and circuit breaker, retrying as the policy
    /// allows; `decode` reads a successful body, `used` says how many tokens it cost.
    async fn exchange<T>(
        &self,
        wire: &Wire,
        estimate: u64,
        decode: &(dyn Fn(&[u8]) -> Result<T, String> + Sync),
        used: &(dyn Fn(&T) -> u64 + Sync),
    ) -> Result<(T, u32), LlmError> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let permit = self
                .breaker
                .try_acquire()
                .map_err(|rejected| LlmError::CircuitOpen {
                    model: self.model.clone(),
                    failures: rejected.failures,
                    retry_in: rejected.retry_in,
                })?;
            let outcome = {
                let _slot = self.limiter.acquire(estimate).await;
                self.attempt(wire, decode).await
            };
            let failure = match outcome {
                Ok(value) => {
                    permit.success();
                    self.limiter.settle(estimate, used(&value));
                    return Ok((value, attempts));
                }
                Err(failure) => failure,
            };
            if failure.unhealthy() {
                permit.failure();
            } else {
                permit.success();
            }
            if !failure.retryable() || attempts > self.retry.max_retries {
                return Err(self.error(failure, attempts));
            }
            let retry_after = match &failure {
                Failure::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            if let Some(wait) = retry_after.filter(|w| *w <= self.retry.max_retry_after) {
                self.limiter.pause(wait);
            }
            match self.retry.delay(attempts - 1, retry_after, &self.jitter) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(self.error(failure, attempts)),
            }
        }
    }

    async fn attempt<T>(
        &self,
        wire: &Wire,
        decode: &(dyn Fn(&[u8]) -> Result<T, String> + Sync),
    ) -> Result<T, Failure> {
        let mut builder = self.http.post(&wire.url).json(&wire.body);
        for (name, value) in &wire.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        let exchange = async {
            let response = builder.send().await?;
            let status = response.status().as_u16();
            let retry_after = retry_after(response.headers());
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, retry_after, body))
        };
        let (status, retry_after, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(e)) if e.is_timeout() => return Err(Failure::Timeout),
            Ok(Err(e)) => return Err(Failure::Connection(error_chain(&e))),
            Ok(Ok(parts)) => parts,
        };
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            return Err(Failure::Status {
                status,
                body: providers::error_message(&text),
                retry_after,
            });
        }
        decode(&body).map_err(|reason| Failure::Decode {
            reason,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    fn error(&self, failure: Failure, attempts: u32) -> LlmError {
        let clean = |text: &str| {
            let redacted = match &self.key {
                Some(key) => key.redact(text),
                None => text.to_string(),
            };
            truncate(&redacted)
        };
        // What the server said, unless this client's caller may not read it.
        let quoted = |text: &str| {
            if self.quote_answers {
                clean(text)
            } else {
                NOT_QUOTED.to_string()
            }
        };
        let model = self.model.clone();
        match failure {
            Failure::Status {
                status,
                body,
                retry_after,
            } => LlmError::Status {
                model,
                status,
                body: quoted(&body),
                attempts,
                retry_after,
            },
            Failure::Timeout => LlmError::Timeout {
                model,
                timeout: self.timeout,
                attempts,
            },
            Failure::Connection(message) => LlmError::Connection {
                model,
                message: clean(&message),
                attempts,
            },
            Failure::Decode { reason, body } => LlmError::Decode {
                model,
                reason: quoted(&reason),
                body: quoted(&body),
            },
        }
    }
}

/// What an error says in place of the server's answer when it may not quote it.
const NOT_QUOTED: &str = "(the server's answer is not shown)";

/// `retry-after-ms` (OpenAI) or `retry-after` (seconds or HTTP date).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms.min(1e12) / 1000.0));
        }
    }
    text("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// A reqwest error with its causes (hyper's "connection closed before message completed").
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

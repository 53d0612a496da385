//! The model-provider layer for LLM-as-a-judge: one chat-completion interface with structured
//! output over OpenAI (and any OpenAI-compatible server), Anthropic and Ollama.
//!
//! A judge names its model as a [`ModelUri`] (`openai:/gpt-4o-mini`,
//! `anthropic:/claude-3-5-haiku-latest`, `ollama:/llama3.1`), builds a [`ChatRequest`] (system
//! and user prompts, a JSON schema for the answer, temperature, max tokens; for a tool loop, the
//! later turns and the tools the model may call) and sends it through
//! an [`LlmClient`], which adds the resilience every judge needs: bounded concurrency,
//! requests- and tokens-per-minute limits, a per-attempt timeout, retries with exponential
//! backoff and full jitter that honour `Retry-After`, and a circuit breaker. Answers can be
//! memoised through a [`ResponseCache`] keyed by [`cache_key`].
//!
//! Layout: `uri` (model names), `types` (request/response), `providers/` (one file per wire
//! protocol, pure encode/decode), `retry`, `limit`, `breaker` (resilience), `cache`, and
//! `client` (the only module that does I/O).

pub mod breaker;
pub mod cache;
pub mod client;
pub mod error;
pub mod limit;
mod providers;
pub mod retry;
pub mod secret;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;
pub mod uri;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use cache::{cache_key, BoxFuture, CacheError, CacheKey, MemoryCache, ResponseCache};
pub use client::{ClientConfig, LlmClient, Origin};
pub use error::LlmError;
pub use limit::{RateLimiter, RateLimits};
pub use retry::{parse_retry_after, RetryPolicy};
pub use secret::ApiKey;
pub use types::{
    extract_json, value_probability, ChatRequest, ChatResponse, ChatTurn, ModelToolCall,
    ResponseSchema, TokenLogprob, ToolSpec, Usage,
};
pub use uri::{default_model, default_model_from, ModelUri, Provider, DEFAULT_MODEL, MODEL_ENV};

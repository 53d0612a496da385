//! The response cache interface: [`ResponseCache`] (async get/put by [`CacheKey`]), the key
//! function (SHA-256 over the model URI, the endpoint, the request parameters and the prompts, in a
//! canonical JSON form with sorted object keys) and an in-memory implementation.

use crate::types::{ChatRequest, ChatResponse};
use crate::uri::ModelUri;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use thiserror::Error;

/// A boxed, sendable future, so [`ResponseCache`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cache backend failed (a store-backed cache reports its I/O errors here).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct CacheError(pub String);

/// Hex SHA-256 of a request; see [`cache_key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where answers are remembered. Only successful responses are put.
pub trait ResponseCache: Send + Sync {
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<ChatResponse>, CacheError>>;
    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        response: &'a ChatResponse,
    ) -> BoxFuture<'a, Result<(), CacheError>>;
}

/// The cache key of `request` sent to `model` at `base_url`: SHA-256 over a versioned,
/// canonical JSON document holding the model URI (with its provider), the endpoint,
/// temperature, max tokens, schema, both prompts and, for a tool loop, the later turns and
/// the tools. The endpoint is part of it so that an answer from one server is never served
/// for another (a judge tried against a server of someone's choosing must not fill the cache
/// of the judge that asks the real provider).
pub fn cache_key(model: &ModelUri, base_url: &str, request: &ChatRequest) -> CacheKey {
    let mut document = serde_json::json!({
        "v": "tribunal-llm/2",
        "model": model.to_string(),
        "provider": model.provider().to_string(),
        "endpoint": base_url,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "schema": request.schema.as_ref().map(|s| serde_json::json!({
            "name": s.name, "strict": s.strict, "schema": s.schema,
        })),
        "system": request.system,
        "user": request.user,
    });
    // Single-prompt requests keep the keys they always had.
    if !request.turns.is_empty() {
        document["turns"] = serde_json::to_value(&request.turns).unwrap_or_default();
    }
    if request.logprobs {
        document["logprobs"] = serde_json::Value::Bool(true);
    }
    if !request.tools.is_empty() {
        document["tools"] = serde_json::to_value(&request.tools).unwrap_or_default();
    }
    let mut canonical = String::new();
    write_canonical(&document, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    CacheKey(hex)
}

/// JSON with object keys sorted, whatever order the map keeps them in.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// An unbounded in-process cache.
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<CacheKey, ChatResponse>>,
}

impl MemoryCache {
    pub fn new() -> Self {
        MemoryCache::default()
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl ResponseCache for MemoryCache {
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<ChatResponse>, CacheError>> {
        let hit = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned();
        Box::pin(async move { Ok(hit) })
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        response: &'a ChatResponse,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), response.clone());
        Box::pin(async { Ok(()) })
    }
}

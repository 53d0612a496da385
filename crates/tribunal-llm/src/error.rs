//! Typed errors. Every error that concerns a call names the model (`provider:/model`) and,
//! where there is one, the HTTP status and what the body said, truncated. Keys never appear:
//! bodies are redacted before they are stored here.

use crate::uri::ModelUri;
use std::time::Duration;
use thiserror::Error;

/// How much of a response body an error keeps.
pub const BODY_LIMIT: usize = 500;

#[derive(Debug, Error)]
pub enum LlmError {
    #[error("invalid model URI {uri:?}: {reason}; expected provider:/model with provider one of {valid} (e.g. openai:/gpt-4o-mini)")]
    InvalidModelUri {
        uri: String,
        reason: String,
        valid: String,
    },

    #[error("{model}: no API key; set {env} or pass one in the client settings")]
    MissingApiKey { model: ModelUri, env: &'static str },

    #[error("{model}: invalid setting {setting}: {reason}")]
    Config {
        model: ModelUri,
        setting: &'static str,
        reason: String,
    },

    #[error("{model}: HTTP {status} after {attempts} attempt(s): {body}")]
    Status {
        model: ModelUri,
        status: u16,
        body: String,
        attempts: u32,
        retry_after: Option<Duration>,
    },

    #[error("{model}: no response within {timeout:?} after {attempts} attempt(s)")]
    Timeout {
        model: ModelUri,
        timeout: Duration,
        attempts: u32,
    },

    #[error("{model}: connection failed after {attempts} attempt(s): {message}")]
    Connection {
        model: ModelUri,
        message: String,
        attempts: u32,
    },

    #[error("{model}: circuit breaker open after {failures} consecutive failures; next try in {retry_in:?}")]
    CircuitOpen {
        model: ModelUri,
        failures: u32,
        retry_in: Duration,
    },

    #[error("{model}: unexpected response ({reason}): {body}")]
    Decode {
        model: ModelUri,
        reason: String,
        body: String,
    },

    #[error("{model}: expected a JSON answer, got: {text}")]
    NotJson { model: ModelUri, text: String },

    #[error("response cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
}

impl LlmError {
    /// The HTTP status, for [`LlmError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Attempts made before giving up, where that applies.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            LlmError::Status { attempts, .. }
            | LlmError::Timeout { attempts, .. }
            | LlmError::Connection { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }
}

/// Cuts `text` to [`BODY_LIMIT`] bytes at a character boundary, saying how long it was.
pub(crate) fn truncate(text: &str) -> String {
    if text.len() <= BODY_LIMIT {
        return text.to_string();
    }
    let mut end = BODY_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

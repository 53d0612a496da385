//! Model names as `provider:/model` URIs (`openai:/gpt-4o-mini`, also written
//! `openai:gpt-4o-mini` or `openai/gpt-4o-mini`), the provider table (key and base-URL
//! environment variables, default endpoints) and the default judge model.

use crate::error::LlmError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The model used when nothing else is configured.
pub const DEFAULT_MODEL: &str = "openai:/gpt-4o-mini";
/// The environment variable that overrides [`DEFAULT_MODEL`].
pub const MODEL_ENV: &str = "TRIBUNAL_JUDGE_MODEL";

/// A wire protocol and its conventional settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI Chat Completions, or any OpenAI-compatible server through a base URL.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Ollama's `/api/chat`.
    Ollama,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Ollama];

    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Ollama => "ollama",
        }
    }

    /// The environment variable holding the API key, if the provider uses one.
    pub fn key_env(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("OPENAI_API_KEY"),
            Provider::Anthropic => Some("ANTHROPIC_API_KEY"),
            Provider::Ollama => None,
        }
    }

    /// The environment variable holding the base URL.
    pub fn base_env(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI_BASE_URL",
            Provider::Anthropic => "ANTHROPIC_BASE_URL",
            Provider::Ollama => "OLLAMA_HOST",
        }
    }

    /// The base URL used when neither settings nor environment give one. OpenAI's includes
    /// `/v1` (as `OPENAI_BASE_URL` does); Anthropic's and Ollama's are the bare host.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::Ollama => "http://localhost:11434",
        }
    }

    fn valid_names() -> String {
        Provider::ALL.map(Provider::name).join(", ")
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown provider {s:?}"))
    }
}

/// `provider:/model`, also accepted as `provider:model` or `provider/model` and always shown in
/// the first form. The model part is passed to the provider verbatim and may contain `/` or `:`
/// (`openai:/meta-llama/Llama-3.1-8B-Instruct` on an OpenAI-compatible server,
/// `ollama:llama3.1:8b`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelUri {
    provider: Provider,
    model: String,
}

impl ModelUri {
    pub fn new(provider: Provider, model: impl Into<String>) -> Self {
        ModelUri {
            provider,
            model: model.into(),
        }
    }

    pub fn parse(uri: &str) -> Result<Self, LlmError> {
        let invalid = |reason: String| LlmError::InvalidModelUri {
            uri: uri.to_string(),
            reason,
            valid: Provider::valid_names(),
        };
        let trimmed = uri.trim();
        // The provider ends at the first `:` or `/`; `provider:/model`, `provider:model` and
        // `provider/model` all name the same model.
        let Some(at) = trimmed.find([':', '/']) else {
            return Err(invalid(
                "missing \":/\", \":\" or \"/\" between provider and model".into(),
            ));
        };
        let (provider, rest) = trimmed.split_at(at);
        let model = match rest.strip_prefix(":/") {
            Some(model) => model,
            None => &rest[1..],
        };
        let provider: Provider = provider.trim().parse().map_err(invalid)?;
        let model = model.trim();
        if model.is_empty() {
            return Err(invalid("empty model name".into()));
        }
        Ok(ModelUri::new(provider, model))
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn model(&self) -> &str {
        &self.model
    }
}

impl fmt::Display for ModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:/{}", self.provider, self.model)
    }
}

impl FromStr for ModelUri {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelUri::parse(s)
    }
}

impl Serialize for ModelUri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModelUri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ModelUri::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The judge model: `TRIBUNAL_JUDGE_MODEL` if set and non-empty, else [`DEFAULT_MODEL`].
pub fn default_model() -> Result<ModelUri, LlmError> {
    default_model_from(|name| std::env::var(name).ok())
}

/// [`default_model`] with the environment given as a lookup function (for tests and embedding).
pub fn default_model_from(env: impl Fn(&str) -> Option<String>) -> Result<ModelUri, LlmError> {
    match env(MODEL_ENV) {
        Some(value) if !value.trim().is_empty() => {
            ModelUri::parse(&value).map_err(|err| match err {
                LlmError::InvalidModelUri { uri, reason, valid } => LlmError::InvalidModelUri {
                    uri,
                    reason: format!("{reason} (from {MODEL_ENV})"),
                    valid,
                },
                other => other,
            })
        }
        _ => ModelUri::parse(DEFAULT_MODEL),
    }
}

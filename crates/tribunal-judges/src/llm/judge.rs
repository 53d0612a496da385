//! The `llm` judge kind: a judge written in plain language. Its instructions are rendered
//! with the trace quoted as data, sent to the configured model with a JSON schema for
//! `{result, rationale}`, and the answer is checked against the declared output type. A
//! broken answer gets one retry that says what was wrong; a judge that still cannot answer
//! (or whose provider fails) yields feedback with its error, never a made-up value.

use super::output::{parse_verdict, OutputType};
use super::prompt::PromptTemplate;
use crate::error::JudgeConfigError;
use crate::registry::params;
use crate::{Judge, JudgeInput};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tribunal_core::{Feedback, FeedbackSource, SourceType};
use tribunal_llm::{
    ChatRequest, ClientConfig, LlmClient, ModelUri, RateLimits, ResponseSchema, RetryPolicy,
};

/// Settings of an `llm` judge (`[judges.NAME]` with `kind = "llm"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    /// The judge in plain language, a template over inputs, outputs, expectations,
    /// conversation and trace.
    pub instructions: String,
    /// yes_no (default), bool, int, int MIN..MAX, float, float MIN..MAX, text, `one of a, b`.
    pub output: Option<String>,
    /// `provider:/model`; default `TRIBUNAL_JUDGE_MODEL`, else `openai:/gpt-4o-mini`.
    pub model: Option<String>,
    /// An OpenAI-compatible server, or another Anthropic/Ollama host.
    pub base_url: Option<String>,
    /// The name of the environment variable that holds the key (default: the provider's).
    pub api_key_env: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Per attempt, in milliseconds (default 60,000).
    pub timeout_ms: Option<u64>,
    /// Retries after the first attempt (default 4).
    pub max_retries: Option<u32>,
    /// Calls in flight at once (default 8).
    pub concurrency: Option<usize>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    /// Longest quoted trace value, in characters (default 20,000).
    pub max_chars: Option<usize>,
}

pub struct LlmJudge {
    name: String,
    template: PromptTemplate,
    output: OutputType,
    model: ModelUri,
    client: Arc<LlmClient>,
    runtime: Arc<tokio::runtime::Runtime>,
    temperature: f64,
    max_tokens: Option<u32>,
    concurrency: usize,
}

pub fn build(name: &str, v: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let s: LlmSettings = params(name, v)?;
    if s.instructions.trim().is_empty() {
        return Err(JudgeConfigError::invalid(
            name,
            "instructions: a judge needs instructions",
        ));
    }
    let template = PromptTemplate::new(name, &s.instructions, s.max_chars.unwrap_or(20_000))?;
    let output = OutputType::parse(s.output.as_deref().unwrap_or("yes_no"))
        .map_err(|e| JudgeConfigError::invalid(name, e))?;
    let model = match &s.model {
        Some(m) => ModelUri::parse(m)
            .map_err(|e| JudgeConfigError::invalid(name, format!("model: {e}")))?,
        None => tribunal_llm::default_model()
            .map_err(|e| JudgeConfigError::invalid(name, format!("model: {e}")))?,
    };
    let concurrency = s.concurrency.unwrap_or(8).max(1);
    let mut config = ClientConfig::new(model.clone())
        .with_timeout(Duration::from_millis(s.timeout_ms.unwrap_or(60_000).max(1)))
        .with_limits(RateLimits {
            max_concurrency: concurrency,
            requests_per_minute: s.requests_per_minute,
            tokens_per_minute: s.tokens_per_minute,
        })
        .with_retry(RetryPolicy {
            max_retries: s.max_retries.unwrap_or(4),
            ..RetryPolicy::default()
        });
    if let Some(url) = &s.base_url {
        config = config.with_base_url(url.clone());
    }
    if let Some(var) = &s.api_key_env {
        let key = std::env::var(var).map_err(|_| {
            JudgeConfigError::invalid(name, format!("api_key_env: the variable {var} is not set"))
        })?;
        config = config.with_api_key(key);
    }
    let client =
        LlmClient::new(config).map_err(|e| JudgeConfigError::invalid(name, e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tribunal-llm")
        .enable_all()
        .build()
        .map_err(|e| {
            JudgeConfigError::invalid(name, format!("cannot start the model client: {e}"))
        })?;
    Ok(Box::new(LlmJudge {
        name: name.to_owned(),
        template,
        output,
        model,
        client: Arc::new(client),
        runtime: Arc::new(runtime),
        temperature: s.temperature.unwrap_or(0.0),
        max_tokens: s.max_tokens,
        concurrency,
    }))
}

impl LlmJudge {
    fn ask(&self, request: &ChatRequest) -> Result<String, String> {
        let call = || self.runtime.block_on(self.client.chat(request));
        // Blocking inside another runtime is not allowed: use a thread of our own then.
        let result = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(call).join())
                .map_err(|_| "the model call failed unexpectedly".to_owned())?
        } else {
            call()
        };
        result.map(|r| r.text).map_err(|e| e.to_string())
    }

    fn feedback(&self, value: Value, rationale: Option<String>, error: Option<String>) -> Feedback {
        Feedback {
            name: self.name.clone(),
            value,
            rationale,
            source: FeedbackSource {
                source_type: SourceType::LlmJudge,
                source_id: self.model.to_string(),
                version: None,
            },
            error,
            evidence: Vec::new(),
            findings: Vec::new(),
        }
    }
}

impl Judge for LlmJudge {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_in_flight(&self) -> usize {
        self.concurrency
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let prompt = match self.template.render(&self.name, input.trace) {
            Ok(p) => p,
            Err(e) => return vec![self.feedback(Value::Null, None, Some(e.to_string()))],
        };
        let schema_name: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut request = ChatRequest::new(prompt.user.clone())
            .with_system(prompt.system)
            .with_schema(ResponseSchema::new(
                format!("{schema_name}_verdict"),
                self.output.schema(),
            ))
            .with_temperature(self.temperature);
        if let Some(m) = self.max_tokens {
            request = request.with_max_tokens(m);
        }
        let first = match self.ask(&request) {
            Ok(t) => t,
            Err(e) => return vec![self.feedback(Value::Null, None, Some(e))],
        };
        let problem = match parse_verdict(&first, &self.output) {
            Ok(v) => return vec![self.feedback(v.result, Some(v.rationale), None)],
            Err(problem) => problem,
        };
        // One retry that says what was wrong with the answer.
        request.user = format!(
            "{}\n\nYour previous answer could not be used: {problem}. Answer again with only the JSON object {{\"rationale\": ..., \"result\": ...}}.",
            prompt.user
        );
        match self.ask(&request).map(|t| parse_verdict(&t, &self.output)) {
            Ok(Ok(v)) => vec![self.feedback(v.result, Some(v.rationale), None)],
            Ok(Err(again)) => vec![self.feedback(
                Value::Null,
                None,
                Some(format!("the judge's answer was unusable twice: {again}")),
            )],
            Err(e) => vec![self.feedback(Value::Null, None, Some(e))],
        }
    }
}

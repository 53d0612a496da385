//! The `llm` judge kind: a judge written in plain language. Its instructions are rendered
//! with the trace quoted as data, sent to the configured model with a JSON schema for
//! `{result, rationale}`, and the answer is checked against the declared output type. A
//! broken answer gets one retry that says what was wrong; a judge that still cannot answer
//! (or whose provider fails) yields feedback with its error, never a made-up value.
//!
//! Every feedback carries the usage of the calls behind it: tokens of the calls the provider
//! answered, and how many answers came from the response cache (which cost nothing).

use super::model::{ClientSettings, ModelHandle};
use super::output::{parse_verdict, OutputType};
use super::prompt::PromptTemplate;
use crate::error::JudgeConfigError;
use crate::registry::params;
use crate::{Judge, JudgeInput};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tribunal_core::feedback::UNANSWERED;
use tribunal_core::{Feedback, FeedbackSource, ModelUsage, SourceType};
use tribunal_llm::{ChatRequest, ChatResponse, ResponseCache, ResponseSchema};

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
    /// What `tribunal judges align` added: guidelines and remembered expert examples.
    pub alignment: Option<tribunal_align::Alignment>,
    /// Answers sampled per trace; above 1 the judge's confidence is the share that agree.
    pub samples: Option<u32>,
    /// Answers with a lower confidence are not trusted (from `tribunal judges calibrate`).
    pub trust_threshold: Option<f64>,
    /// Where the confidence comes from: `logprobs` (the answer tokens' probability; OpenAI
    /// and compatible servers) or `samples` (agreeing sampled answers). Default: `samples`
    /// when `samples` > 1, else `logprobs` when a `trust_threshold` is set.
    pub confidence: Option<String>,
}

/// One answer: its value and rationale, or the error; with the probability of the
/// answer's tokens when log-probabilities were asked for and given.
pub(super) struct Answered {
    pub value: Value,
    pub rationale: Option<String>,
    pub error: Option<String>,
    pub confidence: Option<f64>,
}

impl Answered {
    fn failed(error: String) -> Answered {
        Answered {
            value: Value::Null,
            rationale: None,
            error: Some(error),
            confidence: None,
        }
    }
}

pub struct LlmJudge {
    name: String,
    template: PromptTemplate,
    output: OutputType,
    model: ModelHandle,
    temperature: f64,
    max_tokens: Option<u32>,
    trust: super::trust::Trust,
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
    let model = ModelHandle::new(
        name,
        &ClientSettings {
            model: s.model.as_deref(),
            base_url: s.base_url.as_deref(),
            api_key_env: s.api_key_env.as_deref(),
            timeout_ms: s.timeout_ms,
            max_retries: s.max_retries,
            concurrency: s.concurrency,
            requests_per_minute: s.requests_per_minute,
            tokens_per_minute: s.tokens_per_minute,
        },
        "tribunal-llm",
    )?;
    let trust = super::trust::Trust::new(name, &s, model.model.provider())?;
    // Instructions that name nothing of the trace ask the model the same question of every
    // trace: its answer would say nothing about the one judged.
    if !template.variables().iter().any(|v| v != "expectations") {
        return Err(JudgeConfigError::invalid(
            name,
            "instructions: they name nothing of the trace, so the model would never be shown what it judges; use at least one of {{ inputs }}, {{ outputs }}, {{ conversation }}, {{ trace }}, {{ goal }}, {{ actions }}",
        ));
    }
    Ok(Box::new(LlmJudge {
        name: name.to_owned(),
        template,
        output,
        model,
        temperature: s.temperature.unwrap_or(0.0),
        max_tokens: s.max_tokens,
        trust,
    }))
}

impl LlmJudge {
    /// Whether this judge's errors may quote what its model answered.
    pub(super) fn quotes_answers(&self) -> bool {
        self.model.quote_answers
    }

    /// Sends one request and counts it in `usage`; the answer's text and, when asked for,
    /// the probability of its `result` tokens.
    fn ask(
        &self,
        request: &ChatRequest,
        usage: &mut ModelUsage,
    ) -> Result<(String, Option<f64>), String> {
        // An answer the judge cannot read is not cached: the next run asks again.
        let usable = |r: &ChatResponse| parse_verdict(&r.text, &self.output).is_ok();
        let result = self
            .model
            .block_on(|| self.model.client.chat_accepting(request, &usable))
            .ok_or_else(|| format!("{UNANSWERED}the model call failed unexpectedly"))?;
        let response = result.map_err(|e| format!("{UNANSWERED}{e}"))?;
        count(usage, &response);
        let confidence = response
            .logprobs
            .as_deref()
            .and_then(|tokens| tribunal_llm::value_probability(tokens, "result"));
        Ok((response.text, confidence))
    }

    pub(super) fn feedback(
        &self,
        value: Value,
        rationale: Option<String>,
        error: Option<String>,
        usage: ModelUsage,
    ) -> Feedback {
        Feedback {
            name: self.name.clone(),
            value,
            rationale,
            source: FeedbackSource {
                source_type: SourceType::LlmJudge,
                source_id: self.model.model.to_string(),
                version: None,
                kind: None,
            },
            error,
            evidence: Vec::new(),
            findings: Vec::new(),
            usage: (usage.calls > 0).then_some(usage),
        }
    }
}

/// Adds one answer to `usage`: its tokens when the provider answered, a cached call otherwise.
fn count(usage: &mut ModelUsage, response: &ChatResponse) {
    usage.calls += 1;
    if response.cached {
        usage.cached_calls += 1;
    } else {
        usage.input_tokens = usage
            .input_tokens
            .saturating_add(response.usage.input_tokens);
        usage.output_tokens = usage
            .output_tokens
            .saturating_add(response.usage.output_tokens);
    }
}

impl Judge for LlmJudge {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_in_flight(&self) -> usize {
        self.model.concurrency
    }

    fn set_response_cache(
        &mut self,
        cache: Arc<dyn ResponseCache>,
    ) -> Result<(), JudgeConfigError> {
        self.model.set_cache(&self.name, cache)
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let mut usage = ModelUsage {
            model: self.model.model.to_string(),
            ..ModelUsage::default()
        };
        let prompt = match self
            .template
            .render_pending(&self.name, input.trace, input.pending)
        {
            Ok(p) => match self.trust.extend(p, input.trace) {
                Ok(p) => p,
                Err(e) => return vec![self.feedback(Value::Null, None, Some(e), usage)],
            },
            Err(e) => return vec![self.feedback(Value::Null, None, Some(e.to_string()), usage)],
        };
        use super::trust::ConfidenceFrom;
        match self.trust.from {
            Some(ConfidenceFrom::Samples) => vec![self.trust.sampled(self, &prompt, usage)],
            Some(ConfidenceFrom::Logprobs) => {
                vec![self.trust.by_logprobs(self, &prompt, usage)]
            }
            None => {
                let a = self.answer(&prompt, &mut usage, false);
                vec![self.feedback(a.value, a.rationale, a.error, usage)]
            }
        }
    }
}

impl LlmJudge {
    /// One answer to `prompt` (with one retry for an unusable answer): the value and
    /// rationale, or the error; with `logprobs`, the probability of the answer's tokens.
    pub(super) fn answer(
        &self,
        prompt: &super::prompt::JudgePrompt,
        usage: &mut ModelUsage,
        logprobs: bool,
    ) -> Answered {
        let prompt = prompt.clone();
        let usage_ref = usage;
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
        if logprobs {
            request = request.with_logprobs();
        }
        if let Some(m) = self.max_tokens {
            request = request.with_max_tokens(m);
        }
        let ok = |v: super::output::Verdict, confidence| Answered {
            value: self.trust.map_value(v.result, &self.output),
            rationale: Some(v.rationale),
            error: None,
            confidence,
        };
        let (first, confidence) = match self.ask(&request, usage_ref) {
            Ok(t) => t,
            Err(e) => return Answered::failed(e),
        };
        let problem = match parse_verdict(&first, &self.output) {
            Ok(v) => return ok(v, confidence),
            // The model is told what it wrote.
            Err(problem) => problem.to_string(),
        };
        // One retry that says what was wrong with the answer.
        request.user = format!(
            "{}\n\nYour previous answer could not be used: {problem}. Answer again with only the JSON object {{\"rationale\": ..., \"result\": ...}}.",
            prompt.user
        );
        match self.ask(&request, usage_ref) {
            Ok((text, confidence)) => match parse_verdict(&text, &self.output) {
                Ok(v) => ok(v, confidence),
                Err(again) => Answered::failed(format!(
                    "the judge's answer was unusable twice: {}",
                    again.shown(self.model.quote_answers)
                )),
            },
            Err(e) => Answered::failed(e),
        }
    }
}

//! What alignment and calibration add to an `llm` judge at run time. `alignment` (written
//! by `tribunal judges align`) appends expert guidelines and the most similar remembered
//! expert examples to the prompt. A judge's confidence in an answer comes from the
//! provider's token log-probabilities (`confidence = "logprobs"`: the probability of the
//! answer's `result` tokens; OpenAI and compatible servers) or from sampling (`samples = N`:
//! the most common of N answers, its confidence the share of samples that gave it).
//! `trust_threshold` (from `tribunal judges calibrate`) turns an answer below it, or one
//! without a confidence, into an error saying it is not trusted, so no untrusted value
//! reaches a policy and `tribunal.judge_untrusted` sends the trace to people.

use super::embed::Embedder;
use super::judge::{LlmJudge, LlmSettings};
use super::model::ClientSettings;
use super::output::OutputType;
use super::prompt::{quote, JudgePrompt};
use crate::error::JudgeConfigError;
use serde_json::Value;
use tribunal_align::calibrate::majority;
use tribunal_align::memory::text_of;
use tribunal_align::Alignment;
use tribunal_core::{Feedback, ModelUsage, Trace};
use tribunal_llm::Provider;

/// Where a judge's confidence in an answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConfidenceFrom {
    /// The share of sampled answers that agree.
    Samples,
    /// The probability the model gave the answer's tokens.
    Logprobs,
}

pub(super) struct Trust {
    alignment: Option<Alignment>,
    /// Set when the alignment finds similar examples by an embeddings model.
    embedder: Option<Embedder>,
    /// The remembered examples' vectors, once asked for.
    remembered: std::sync::OnceLock<Vec<std::sync::Arc<Vec<f32>>>>,
    pub samples: u32,
    /// `None`: answers carry no confidence.
    pub from: Option<ConfidenceFrom>,
    threshold: Option<f64>,
    max_chars: usize,
}

impl Trust {
    pub fn new(name: &str, s: &LlmSettings, provider: Provider) -> Result<Trust, JudgeConfigError> {
        let invalid = |m: String| JudgeConfigError::invalid(name, m);
        let samples = s.samples.unwrap_or(1);
        if !(1..=50).contains(&samples) {
            return Err(invalid(format!(
                "samples: expected 1 to 50, found {samples}"
            )));
        }
        if let Some(t) = s.trust_threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(invalid(format!(
                    "trust_threshold: expected a confidence in 0..1, found {t}"
                )));
            }
        }
        let from = match s.confidence.as_deref() {
            Some("samples") if samples < 2 => {
                return Err(invalid(
                    "confidence = \"samples\" needs samples of 2 or more (confidence is the share of sampled answers that agree)".into(),
                ))
            }
            Some("samples") => Some(ConfidenceFrom::Samples),
            Some("logprobs") if samples > 1 => {
                return Err(invalid(
                    "confidence = \"logprobs\" reads one answer's token probabilities; leave samples at 1".into(),
                ))
            }
            Some("logprobs") => Some(ConfidenceFrom::Logprobs),
            Some(other) => {
                return Err(invalid(format!(
                    "confidence: expected \"logprobs\" or \"samples\", found {other:?}"
                )))
            }
            None if samples > 1 => Some(ConfidenceFrom::Samples),
            None if s.trust_threshold.is_some() => Some(ConfidenceFrom::Logprobs),
            None => None,
        };
        if from == Some(ConfidenceFrom::Logprobs) && provider != Provider::OpenAi {
            return Err(invalid(format!(
                "{} a confidence from token log-probabilities needs an openai: model (or an OpenAI-compatible server); {provider} gives none, so set samples = 5 (confidence from agreeing samples)",
                if s.confidence.is_some() { "confidence = \"logprobs\":" } else { "trust_threshold with samples = 1:" },
            )));
        }
        let alignment = s.alignment.clone().filter(|a| !a.is_empty());
        let embedder = match alignment.as_ref().and_then(|a| a.embeddings.as_deref()) {
            None => None,
            Some(uri) => {
                let model = tribunal_llm::ModelUri::parse(uri)
                    .map_err(|e| invalid(format!("alignment.embeddings: {e}")))?;
                // The judge's endpoint and key serve an embeddings model of its provider.
                let same = model.provider() == provider;
                Some(Embedder::new(
                    name,
                    &ClientSettings {
                        model: Some(uri),
                        base_url: s.base_url.as_deref().filter(|_| same),
                        api_key_env: s.api_key_env.as_deref().filter(|_| same),
                        timeout_ms: s.timeout_ms,
                        max_retries: s.max_retries,
                        concurrency: s.concurrency,
                        requests_per_minute: s.requests_per_minute,
                        tokens_per_minute: s.tokens_per_minute,
                    },
                )?)
            }
        };
        Ok(Trust {
            alignment,
            embedder,
            remembered: std::sync::OnceLock::new(),
            samples,
            from,
            threshold: s.trust_threshold,
            max_chars: s.max_chars.unwrap_or(20_000),
        })
    }

    /// A numeric answer on the experts' scale when the alignment carries a value map
    /// (rounded for whole-number outputs, kept in the output's range).
    pub fn map_value(&self, value: Value, output: &OutputType) -> Value {
        let Some(map) = self.alignment.as_ref().and_then(|a| a.value_map.as_ref()) else {
            return value;
        };
        let Some(x) = value.as_f64() else {
            return value;
        };
        let y = map.apply(x);
        match output {
            OutputType::Int { min, max } => Value::from((y.round() as i64).clamp(*min, *max)),
            OutputType::Float { min, max } => Value::from(y.clamp(*min, *max)),
            _ => value,
        }
    }

    /// The prompt with the alignment's guidelines and worked examples added; an error when
    /// the embeddings model that finds the examples fails.
    pub fn extend(&self, mut prompt: JudgePrompt, trace: &Trace) -> Result<JudgePrompt, String> {
        let Some(a) = &self.alignment else {
            return Ok(prompt);
        };
        let query = format!(
            "{} {}",
            trace.inputs.as_ref().map(text_of).unwrap_or_default(),
            trace.output_text().unwrap_or_default()
        );
        let max = self.max_chars;
        let quote = |n: &str, t: &str| quote(n, t, max);
        let addition = match &self.embedder {
            None => a.prompt_addition(&query, None, &quote),
            Some(e) => {
                let (examples, q) = match self.remembered.get() {
                    Some(kept) => (kept.clone(), e.embed(&[query])?.pop()),
                    None => {
                        let mut texts: Vec<String> = a.examples.iter().map(|m| m.text()).collect();
                        texts.push(query);
                        let mut vectors = e.embed(&texts)?;
                        let q = vectors.pop();
                        let _ = self.remembered.set(vectors.clone());
                        (vectors, q)
                    }
                };
                let q = q.ok_or("no query embedding")?;
                let examples: Vec<&[f32]> = examples.iter().map(|v| v.as_slice()).collect();
                a.render(&a.nearest_by_vectors(&q, &examples, None), &quote)
            }
        };
        prompt.user.push_str(&addition);
        Ok(prompt)
    }

    /// Asks `samples` times and answers with the most common answer and its confidence.
    pub fn sampled(
        &self,
        judge: &LlmJudge,
        prompt: &JudgePrompt,
        mut usage: ModelUsage,
    ) -> Feedback {
        let mut answers: Vec<(Value, Option<String>)> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for i in 0..self.samples {
            let mut p = prompt.clone();
            if i > 0 {
                // A distinct request per sample, so a response cache does not repeat one.
                p.user.push_str(&format!(
                    "\n\n(Independent judgement {} of {}.)",
                    i + 1,
                    self.samples
                ));
            }
            let answered = judge.answer(&p, &mut usage, false);
            match answered.error {
                None => answers.push((answered.value, answered.rationale)),
                Some(e) => errors.push(e),
            }
        }
        let values: Vec<Value> = answers.iter().map(|(v, _)| v.clone()).collect();
        let Some((value, share)) = majority(&values) else {
            let e = errors.first().cloned().unwrap_or_default();
            return judge.feedback(
                Value::Null,
                None,
                Some(format!("no sampled answer: {e}")),
                usage,
            );
        };
        // Samples that failed count against the confidence.
        let confidence = share * values.len() as f64 / self.samples as f64;
        let agreeing = (confidence * f64::from(self.samples)).round();
        let rationale = answers
            .iter()
            .find(|(v, _)| *v == value)
            .and_then(|(_, r)| r.clone())
            .unwrap_or_default();
        let note = format!(
            "confidence {confidence:.2}: {agreeing} of {} sampled answers agree",
            self.samples
        );
        self.decide(judge, value, rationale, Some((confidence, note)), usage)
    }

    /// One answer with the probability the model gave its tokens as its confidence.
    pub fn by_logprobs(
        &self,
        judge: &LlmJudge,
        prompt: &JudgePrompt,
        mut usage: ModelUsage,
    ) -> Feedback {
        let answered = judge.answer(prompt, &mut usage, true);
        if let Some(e) = answered.error {
            return judge.feedback(Value::Null, answered.rationale, Some(e), usage);
        }
        let confidence = answered.confidence.map(|c| {
            (
                c,
                format!("confidence {c:.2}: probability of the answer's tokens"),
            )
        });
        self.decide(
            judge,
            answered.value,
            answered.rationale.unwrap_or_default(),
            confidence,
            usage,
        )
    }

    /// The answer as feedback, or not trusted when its confidence is below the threshold
    /// or unknown.
    fn decide(
        &self,
        judge: &LlmJudge,
        value: Value,
        rationale: String,
        confidence: Option<(f64, String)>,
        usage: ModelUsage,
    ) -> Feedback {
        let untrusted = |why: String| {
            let answer = if judge.quotes_answers() {
                format!("answer {value}")
            } else {
                "the answer".to_owned()
            };
            format!(
                "{}{answer} {why}; escalate to people",
                tribunal_core::feedback::UNTRUSTED
            )
        };
        match (confidence, self.threshold) {
            (Some((c, note)), Some(t)) if c < t => judge.feedback(
                Value::Null,
                Some(format!("{rationale} ({note})")),
                Some(untrusted(format!(
                    "has {note}, below the calibrated threshold {t}"
                ))),
                usage,
            ),
            (Some((_, note)), _) => {
                judge.feedback(value, Some(format!("{rationale} ({note})")), None, usage)
            }
            (None, Some(_)) => judge.feedback(
                Value::Null,
                Some(rationale),
                Some(untrusted(
                    "has no confidence: the provider gave no token log-probabilities".into(),
                )),
                usage,
            ),
            (None, None) => judge.feedback(value, Some(rationale), None, usage),
        }
    }
}

/// The confidence a sampled answer's rationale states (`(confidence 0.60: …)`), as written
/// by this judge; `None` for an answer that was not sampled.
pub fn sampled_confidence(rationale: &str) -> Option<f64> {
    let at = rationale.rfind("(confidence ")?;
    let rest = &rationale[at + "(confidence ".len()..];
    rest.split(':').next()?.trim().parse().ok()
}

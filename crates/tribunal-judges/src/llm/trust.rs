//! What alignment and calibration add to an `llm` judge at run time. `alignment` (written
//! by `tribunal judges align`) appends expert guidelines and the most similar remembered
//! expert examples to the prompt. `samples = N` asks the model N times and answers with the
//! most common answer, its confidence being the share of samples that gave it;
//! `trust_threshold` (from `tribunal judges calibrate`) turns an answer below it into an
//! error saying it is not trusted, so the judge's `on_error` decides what happens to the
//! trace (`on_error = "escalate"` sends it to people) and no untrusted value reaches a
//! policy.

use super::judge::{LlmJudge, LlmSettings};
use super::prompt::{quote, JudgePrompt};
use crate::error::JudgeConfigError;
use serde_json::Value;
use tribunal_align::calibrate::majority;
use tribunal_align::memory::text_of;
use tribunal_align::Alignment;
use tribunal_core::{Feedback, ModelUsage, Trace};

pub(super) struct Trust {
    alignment: Option<Alignment>,
    pub samples: u32,
    threshold: Option<f64>,
    max_chars: usize,
}

impl Trust {
    pub fn new(name: &str, s: &LlmSettings) -> Result<Trust, JudgeConfigError> {
        let samples = s.samples.unwrap_or(1);
        if !(1..=50).contains(&samples) {
            return Err(JudgeConfigError::invalid(
                name,
                format!("samples: expected 1 to 50, found {samples}"),
            ));
        }
        if let Some(t) = s.trust_threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(JudgeConfigError::invalid(
                    name,
                    format!("trust_threshold: expected a confidence in 0..1, found {t}"),
                ));
            }
            if samples < 2 {
                return Err(JudgeConfigError::invalid(
                    name,
                    "trust_threshold: needs samples of 2 or more (confidence is the share of sampled answers that agree)",
                ));
            }
        }
        Ok(Trust {
            alignment: s.alignment.clone().filter(|a| !a.is_empty()),
            samples,
            threshold: s.trust_threshold,
            max_chars: s.max_chars.unwrap_or(20_000),
        })
    }

    /// The prompt with the alignment's guidelines and worked examples added.
    pub fn extend(&self, mut prompt: JudgePrompt, trace: &Trace) -> JudgePrompt {
        if let Some(a) = &self.alignment {
            let query = format!(
                "{} {}",
                trace.inputs.as_ref().map(text_of).unwrap_or_default(),
                trace.output_text().unwrap_or_default()
            );
            let max = self.max_chars;
            prompt
                .user
                .push_str(&a.prompt_addition(&query, None, &|n, t| quote(n, t, max)));
        }
        prompt
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
            match judge.answer(&p, &mut usage) {
                (v, rationale, None) => answers.push((v, rationale)),
                (_, _, Some(e)) => errors.push(e),
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
        match self.threshold {
            Some(t) if confidence < t => judge.feedback(
                Value::Null,
                Some(format!("{rationale} ({note})")),
                Some(format!(
                    "{}answer {value} has {note}, below the calibrated threshold {t}; escalate to people",
                    tribunal_core::feedback::UNTRUSTED
                )),
                usage,
            ),
            _ => judge.feedback(value, Some(format!("{rationale} ({note})")), None, usage),
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

//! Feedback: what one judge says about one trace.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one judge says about one trace (the shape MLflow calls an assessment's feedback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The score's name, as policies see it under `input.scores`.
    pub name: String,
    /// The value: a number, boolean, string or structured object. `null` when `error` is set.
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    pub source: FeedbackSource,
    /// Set when the judge could not produce a value. Never paired with a made-up value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Span or message ids that support the value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Individual detections behind the value (detectors only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// What the model calls behind the value consumed (model judges only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ModelUsage>,
}

/// How the error of an answer a judge was not sure enough of begins (a sampled judge's
/// confidence below its calibrated threshold): people should decide, not the judge.
pub const UNTRUSTED: &str = "not trusted: ";

/// How the error of a model judge whose model gave no answer begins (the provider could not
/// be reached, timed out, or kept failing after the retries): nothing was learned about the
/// trace, and a run that needs the model's answers (alignment) stops.
pub const UNANSWERED: &str = "the model gave no answer: ";

impl Feedback {
    /// Whether the judge's model gave no answer (see [`UNANSWERED`]).
    pub fn is_unanswered(&self) -> bool {
        self.error
            .as_deref()
            .is_some_and(|e| e.starts_with(UNANSWERED))
    }

    /// Whether this is an answer the judge was not sure enough of (see [`UNTRUSTED`]).
    pub fn is_untrusted(&self) -> bool {
        self.error
            .as_deref()
            .is_some_and(|e| e.starts_with(UNTRUSTED))
    }

    /// The kind of judge that gave this: its own name unless the instance is named
    /// otherwise.
    pub fn kind(&self) -> &str {
        self.source.kind.as_deref().unwrap_or(&self.name)
    }

    pub fn code(judge: &str, name: impl Into<String>, value: impl Into<Value>) -> Feedback {
        Feedback {
            name: name.into(),
            value: value.into(),
            rationale: None,
            source: FeedbackSource {
                source_type: SourceType::Code,
                source_id: judge.to_owned(),
                version: None,
                kind: None,
            },
            error: None,
            evidence: Vec::new(),
            findings: Vec::new(),
            usage: None,
        }
    }

    pub fn error(judge: &str, name: impl Into<String>, error: impl Into<String>) -> Feedback {
        let mut f = Feedback::code(judge, name, Value::Null);
        f.error = Some(error.into());
        f
    }

    pub fn with_rationale(mut self, r: impl Into<String>) -> Feedback {
        self.rationale = Some(r.into());
        self
    }

    pub fn with_evidence(mut self, ids: Vec<String>) -> Feedback {
        self.evidence = ids;
        self
    }

    /// The value as a number, when it is one (booleans count as 0/1).
    pub fn as_f64(&self) -> Option<f64> {
        match &self.value {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
}

/// The model calls one model judge made for one piece of feedback. Tokens count only the
/// calls the provider answered: an answer served from the response cache costs nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    /// `provider:/model`.
    pub model: String,
    /// Model calls made (a repair retry is a second call), cached answers included.
    pub calls: u32,
    /// Of those, the calls answered from the response cache.
    pub cached_calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackSource {
    pub source_type: SourceType,
    pub source_id: String,
    /// The version of the judge's definition (a hash of its kind and settings), so results
    /// can be tied to the judge that produced them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The judge's kind, when the instance has a name of its own (`[judges.strict_secrets]
    /// kind = "secrets"`): the policies read its findings and answers as that kind's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceType {
    Code,
    LlmJudge,
    Human,
}

/// One detection: what was found and exactly where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule that fired, e.g. `aws_access_key`, `email`, `ignore_instructions`.
    pub kind: String,
    /// 0..1: how sure the detector is that this is real.
    pub score: f64,
    pub location: Location,
    /// A redacted excerpt, safe to log (secrets are never copied whole).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub excerpt: String,
}

/// Where in a trace (or its pending step) a finding sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Message or span id; `pending` for the proposed step.
    pub id: String,
    /// `content` or `arguments`.
    pub field: String,
    /// The tool call whose arguments hold the finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The tool called, for findings in arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Provenance label of the content (`user`, `tool`, `retrieval`, ...).
    pub provenance: String,
    /// Byte range within the field's text.
    pub start: usize,
    pub end: usize,
}

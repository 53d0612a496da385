//! The two model roles alignment needs, as traits so this crate does no I/O: the judge
//! being aligned (run on one example with a candidate definition) and a reflection model
//! (asked in plain text, answering in plain text). The command line supplies real ones; tests
//! supply scripted ones.

use crate::data::Example;
use crate::memory::Alignment;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A judge definition being tried: its instructions and what alignment adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Candidate {
    pub instructions: String,
    pub alignment: Alignment,
}

impl Candidate {
    /// The candidate as it judges `id` while aligning: its memory without `id`'s own label.
    pub fn without(&self, id: &str) -> Candidate {
        let mut c = self.clone();
        c.alignment.examples.retain(|m| m.id != id);
        c
    }
}

/// Model calls and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Calls answered from a response cache (no tokens spent).
    pub cached_calls: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.calls += other.calls;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_calls += other.cached_calls;
    }

    /// Cost at the given prices per million input and output tokens.
    pub fn cost(&self, per_million_in: f64, per_million_out: f64) -> f64 {
        (self.input_tokens as f64 * per_million_in + self.output_tokens as f64 * per_million_out)
            / 1e6
    }
}

/// What the judge answered for one example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// `None` when the judge could not answer (`error` says why).
    pub value: Option<Value>,
    #[serde(default)]
    pub rationale: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub usage: Usage,
}

/// A failure that stops alignment (a model that cannot be reached at all).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// The judge being aligned.
pub trait JudgeModel {
    /// Judges `item` (its inputs and outputs only: never its label) as `candidate` defines.
    fn judge(&mut self, candidate: &Candidate, item: &Example) -> Result<Answer, ModelError>;
}

/// The reflection model.
pub trait Reflector {
    fn reflect(&mut self, prompt: &str) -> Result<(String, Usage), ModelError>;
}

//! `latency`: how long the trace took, in milliseconds, and which span was slowest.
//!
//! The duration comes from the spans' timestamps; traces without timed spans fall back to
//! the source's own figure in metadata (`execution_duration_ms`, then `latency_ms`).

use crate::{error::JudgeConfigError, registry, Judge, JudgeInput};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use tribunal_core::{Feedback, Span, Trace};

use super::util;

/// Metadata keys that carry a duration in milliseconds, in order of preference.
const METADATA_KEYS: &[&str] = &["execution_duration_ms", "latency_ms"];

/// `latency` has no settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {}

pub fn build(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let Settings {} = registry::params(name, params)?;
    Ok(Box::new(Latency {
        name: name.to_owned(),
    }))
}

struct Latency {
    name: String,
}

impl Judge for Latency {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let trace = input.trace;
        if let Some(ms) = trace.duration_ms() {
            let mut fb = Feedback::code(&self.name, &self.name, ms);
            let mut rationale = format!("the trace took {ms:.1} ms");
            if let Some((span, span_ms)) = slowest_span(trace) {
                rationale.push_str(&format!(
                    "; slowest span: {:?} ({}, {}) {span_ms:.1} ms",
                    span.name,
                    span.id,
                    format!("{:?}", span.kind).to_lowercase()
                ));
                fb = fb.with_evidence(vec![span.id.clone()]);
            }
            return vec![fb.with_rationale(rationale)];
        }
        for key in METADATA_KEYS {
            let Some(v) = trace.metadata.get(*key).filter(|v| !v.is_null()) else {
                continue;
            };
            return vec![match util::number(v).filter(|ms| *ms >= 0.0) {
                Some(ms) => Feedback::code(&self.name, &self.name, ms).with_rationale(format!(
                    "the trace took {ms:.1} ms (metadata.{key}; no timed spans)"
                )),
                None => Feedback::error(
                    &self.name,
                    &self.name,
                    format!(
                        "metadata.{key} should be a non-negative number of milliseconds, got {}",
                        util::short(&v.to_string())
                    ),
                ),
            }];
        }
        Vec::new()
    }
}

/// The slowest span that contains no other span: the root always spans the whole trace, so
/// naming it would say nothing. Falls back to any timed span when no leaf is timed.
fn slowest_span(trace: &Trace) -> Option<(&Span, f64)> {
    let parents: HashSet<&str> = trace
        .spans
        .iter()
        .filter_map(|s| s.parent_id.as_deref())
        .collect();
    let slowest = |leaves_only: bool| {
        trace
            .spans
            .iter()
            .filter(|s| !leaves_only || !parents.contains(s.id.as_str()))
            .filter_map(|s| s.duration_ms().map(|d| (s, d)))
            // Ties go to the earlier span.
            .fold(None, |best: Option<(&Span, f64)>, (s, d)| match best {
                Some((_, bd)) if bd >= d => best,
                _ => Some((s, d)),
            })
    };
    slowest(true).or_else(|| slowest(false))
}

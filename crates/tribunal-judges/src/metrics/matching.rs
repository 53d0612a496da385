//! Output matching against expectations: `exact_match` (equals the expected response),
//! `contains` (holds every expected fact) and `regex_match` (matches a pattern).

use crate::{error::JudgeConfigError, registry, Judge, JudgeInput};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use tribunal_core::{trace::value_text, Feedback};

use super::util;

/// Compiled-size limit for patterns that come from a dataset, so one record cannot make a
/// judge build a huge automaton.
const EXPECTATION_REGEX_SIZE_LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------------------------------
// exact_match

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ExactSettings {
    /// The expectations key holding the expected response.
    field: String,
    case_sensitive: bool,
    /// Ignore leading and trailing whitespace on both sides.
    trim: bool,
}

impl Default for ExactSettings {
    fn default() -> Self {
        ExactSettings {
            field: "expected_response".into(),
            case_sensitive: true,
            trim: true,
        }
    }
}

pub fn build_exact(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: ExactSettings = registry::params(name, params)?;
    if settings.field.is_empty() {
        return Err(JudgeConfigError::invalid(
            name,
            "field must name an expectations key",
        ));
    }
    Ok(Box::new(Exact {
        name: name.to_owned(),
        settings,
    }))
}

struct Exact {
    name: String,
    settings: ExactSettings,
}

impl Exact {
    fn normalize<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let s = if self.settings.trim { s.trim() } else { s };
        if self.settings.case_sensitive {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(s.to_lowercase())
        }
    }
}

impl Judge for Exact {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let Some(expected) = util::expectation(input.trace, &self.settings.field) else {
            return Vec::new();
        };
        let expected = value_text(expected);
        let Some((output, from)) = util::output(input.trace) else {
            return vec![Feedback::code(&self.name, &self.name, false)
                .with_rationale("the trace has no output to compare with the expected response")];
        };
        let equal = self.normalize(&output) == self.normalize(&expected);
        let rationale = if equal {
            "the output equals the expected response".to_owned()
        } else {
            format!(
                "the output {:?} differs from the expected response {:?}",
                util::short(&output),
                util::short(&expected)
            )
        };
        vec![Feedback::code(&self.name, &self.name, equal)
            .with_rationale(rationale)
            .with_evidence(util::output_evidence(from))]
    }
}

// ---------------------------------------------------------------------------------------
// contains

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ContainsSettings {
    /// Fixed strings to look for; when empty, `expectations.expected_facts` is used.
    values: Vec<String>,
    case_sensitive: bool,
}

pub fn build_contains(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: ContainsSettings = registry::params(name, params)?;
    if settings.values.iter().any(|v| v.is_empty()) {
        return Err(JudgeConfigError::invalid(
            name,
            "values must not contain empty strings",
        ));
    }
    Ok(Box::new(Contains {
        name: name.to_owned(),
        settings,
    }))
}

struct Contains {
    name: String,
    settings: ContainsSettings,
}

impl Contains {
    fn expected<'a>(&'a self, input: &'a JudgeInput<'_>) -> Vec<Cow<'a, str>> {
        if !self.settings.values.is_empty() {
            return self
                .settings
                .values
                .iter()
                .map(|v| Cow::Borrowed(v.as_str()))
                .collect();
        }
        match util::expectation(input.trace, "expected_facts") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Cow::Borrowed(s.as_str()),
                    other => Cow::Owned(value_text(other)),
                })
                .filter(|s| !s.is_empty())
                .collect(),
            Some(Value::String(s)) if !s.is_empty() => vec![Cow::Borrowed(s.as_str())],
            Some(other) => vec![Cow::Owned(value_text(other))],
            None => Vec::new(),
        }
    }
}

impl Judge for Contains {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let expected = self.expected(input);
        if expected.is_empty() {
            return Vec::new();
        }
        let Some((output, from)) = util::output(input.trace) else {
            return vec![
                Feedback::code(&self.name, &self.name, 0.0).with_rationale(format!(
                    "the trace has no output; none of {} expected values found",
                    expected.len()
                )),
            ];
        };
        let haystack = if self.settings.case_sensitive {
            output
        } else {
            Cow::Owned(output.to_lowercase())
        };
        let missing: Vec<&str> = expected
            .iter()
            .filter(|e| {
                if self.settings.case_sensitive {
                    !haystack.contains(e.as_ref())
                } else {
                    !haystack.contains(&e.to_lowercase())
                }
            })
            .map(|e| e.as_ref())
            .collect();
        let found = expected.len() - missing.len();
        let share = found as f64 / expected.len() as f64;
        let rationale = if missing.is_empty() {
            format!("the output contains all {} expected values", expected.len())
        } else {
            let listed: Vec<String> = missing
                .iter()
                .map(|m| format!("{:?}", util::short(m)))
                .collect();
            format!(
                "{found} of {} expected values found; missing: {}",
                expected.len(),
                listed.join(", ")
            )
        };
        vec![Feedback::code(&self.name, &self.name, share)
            .with_rationale(rationale)
            .with_evidence(util::output_evidence(from))]
    }
}

// ---------------------------------------------------------------------------------------
// regex_match

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RegexSettings {
    /// The pattern; when absent, `expectations.expected_regex` is used.
    pattern: Option<String>,
}

pub fn build_regex(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: RegexSettings = registry::params(name, params)?;
    let pattern = match settings.pattern {
        Some(p) => Some(Regex::new(&p).map_err(|e| {
            JudgeConfigError::invalid(
                name,
                format!("pattern is not a valid regular expression: {e}"),
            )
        })?),
        None => None,
    };
    Ok(Box::new(RegexMatch {
        name: name.to_owned(),
        pattern,
    }))
}

struct RegexMatch {
    name: String,
    pattern: Option<Regex>,
}

impl Judge for RegexMatch {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let compiled;
        let re = match &self.pattern {
            Some(re) => re,
            None => {
                let Some(v) = util::expectation(input.trace, "expected_regex") else {
                    return Vec::new();
                };
                let Some(p) = v.as_str() else {
                    return vec![Feedback::error(
                        &self.name,
                        &self.name,
                        format!(
                            "expectations.expected_regex should be a string, got {}",
                            util::short(&v.to_string())
                        ),
                    )];
                };
                match RegexBuilder::new(p)
                    .size_limit(EXPECTATION_REGEX_SIZE_LIMIT)
                    .build()
                {
                    Ok(re) => {
                        compiled = re;
                        &compiled
                    }
                    Err(e) => {
                        return vec![Feedback::error(
                            &self.name,
                            &self.name,
                            format!(
                            "expectations.expected_regex is not a valid regular expression: {e}"
                        ),
                        )]
                    }
                }
            }
        };
        let Some((output, from)) = util::output(input.trace) else {
            return vec![
                Feedback::code(&self.name, &self.name, false).with_rationale(format!(
                    "the trace has no output to match against /{}/",
                    re.as_str()
                )),
            ];
        };
        let (hit, rationale) = match re.find(&output) {
            Some(m) => (
                true,
                format!(
                    "the output matches /{}/ at bytes {}..{}: {:?}",
                    util::short(re.as_str()),
                    m.start(),
                    m.end(),
                    util::short(m.as_str())
                ),
            ),
            None => (
                false,
                format!("the output does not match /{}/", util::short(re.as_str())),
            ),
        };
        vec![Feedback::code(&self.name, &self.name, hit)
            .with_rationale(rationale)
            .with_evidence(util::output_evidence(from))]
    }
}

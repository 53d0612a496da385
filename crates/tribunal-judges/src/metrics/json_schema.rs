//! `json_schema`: the trace's output is JSON that validates against a JSON Schema — the
//! `schema` setting (compiled once, when the judge is built) or `expectations.output_schema`.

use crate::{error::JudgeConfigError, registry, Judge, JudgeInput};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use tribunal_core::Feedback;

use super::util;

/// How many validation errors the rationale lists.
const SHOWN_ERRORS: usize = 3;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// The schema every output must satisfy; when absent, `expectations.output_schema`.
    schema: Option<Value>,
}

pub fn build(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: Settings = registry::params(name, params)?;
    let schema = match settings.schema {
        Some(s) => Some(util::compile_schema(&s).map_err(|e| {
            JudgeConfigError::invalid(name, format!("schema is not a valid JSON Schema: {e}"))
        })?),
        None => None,
    };
    Ok(Box::new(JsonSchema {
        name: name.to_owned(),
        schema,
    }))
}

struct JsonSchema {
    name: String,
    schema: Option<jsonschema::Validator>,
}

impl Judge for JsonSchema {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let trace = input.trace;
        let compiled;
        let validator = match &self.schema {
            Some(v) => v,
            None => {
                let Some(schema) = util::expectation(trace, "output_schema") else {
                    return Vec::new();
                };
                match util::compile_schema(schema) {
                    Ok(v) => {
                        compiled = v;
                        &compiled
                    }
                    Err(e) => {
                        return vec![Feedback::error(
                            &self.name,
                            &self.name,
                            format!("expectations.output_schema is not a valid JSON Schema: {e}"),
                        )]
                    }
                }
            }
        };
        let fail =
            |why: String| vec![Feedback::code(&self.name, &self.name, false).with_rationale(why)];

        // Structured outputs are already JSON; text outputs must parse as JSON.
        let (instance, evidence): (Cow<'_, Value>, Vec<String>) = match &trace.outputs {
            Some(v) if !v.is_null() && !v.is_string() => (Cow::Borrowed(v), Vec::new()),
            _ => {
                let Some((text, from)) = util::output(trace) else {
                    return fail("the trace has no output to validate".into());
                };
                match serde_json::from_str::<Value>(text.trim()) {
                    Ok(v) => (Cow::Owned(v), util::output_evidence(from)),
                    Err(e) => {
                        return vec![Feedback::code(&self.name, &self.name, false)
                            .with_rationale(format!("the output is not JSON: {e}"))
                            .with_evidence(util::output_evidence(from))]
                    }
                }
            }
        };
        let (errors, total) = util::schema_errors(validator, &instance, SHOWN_ERRORS, false);
        let fb = if errors.is_empty() {
            Feedback::code(&self.name, &self.name, true)
                .with_rationale("the output is valid against the schema")
        } else {
            let more = if total > errors.len() {
                format!(" (and {} more)", total - errors.len())
            } else {
                String::new()
            };
            Feedback::code(&self.name, &self.name, false).with_rationale(format!(
                "the output does not match the schema: {}{more}",
                errors.join("; ")
            ))
        };
        vec![fb.with_evidence(evidence)]
    }
}

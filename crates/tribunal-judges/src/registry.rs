//! The table of built-in judges and how configuration turns into judge instances.

use crate::error::JudgeConfigError;
use crate::{detectors, metrics, Judge};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Builds a judge instance named `name` from its parameters.
pub type BuildFn = fn(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError>;

/// One built-in judge kind.
pub struct Builtin {
    pub kind: &'static str,
    pub description: &'static str,
    /// Runs without any configuration.
    pub default_on: bool,
    pub build: BuildFn,
}

/// Every built-in judge kind. One line per judge.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        kind: "step_count",
        description: "number of messages, spans and tool calls",
        default_on: true,
        build: metrics::counts::build,
    },
    Builtin {
        kind: "latency",
        description: "trace duration and slowest span in milliseconds",
        default_on: true,
        build: metrics::latency::build,
    },
    Builtin {
        kind: "token_usage",
        description: "input/output tokens summed over LLM spans",
        default_on: true,
        build: metrics::usage::build_tokens,
    },
    Builtin {
        kind: "cost",
        description: "USD cost from token usage and the price table",
        default_on: true,
        build: metrics::usage::build_cost,
    },
    Builtin {
        kind: "exact_match",
        description: "output equals expectations.expected_response",
        default_on: true,
        build: metrics::matching::build_exact,
    },
    Builtin {
        kind: "contains",
        description: "output contains every expectations.expected_facts entry",
        default_on: true,
        build: metrics::matching::build_contains,
    },
    Builtin {
        kind: "regex_match",
        description: "output matches a regular expression",
        default_on: true,
        build: metrics::matching::build_regex,
    },
    Builtin {
        kind: "json_schema",
        description: "output is JSON valid against a schema",
        default_on: true,
        build: metrics::json_schema::build,
    },
    Builtin {
        kind: "tool_call_correctness",
        description: "tool calls match expectations.expected_tool_calls",
        default_on: true,
        build: metrics::tool_calls::build_correctness,
    },
    Builtin {
        kind: "tool_arguments",
        description: "tool-call arguments valid against the tools' JSON schemas",
        default_on: true,
        build: metrics::tool_calls::build_arguments,
    },
    Builtin {
        kind: "repeated_calls",
        description: "identical tool calls repeated (loops)",
        default_on: true,
        build: metrics::loops::build,
    },
    Builtin {
        kind: "tool_call_precision",
        description: "share of tool calls that match the reference trajectory",
        default_on: false,
        build: metrics::trajectory::build_precision,
    },
    Builtin {
        kind: "tool_call_recall",
        description: "share of the reference trajectory's calls that were made",
        default_on: false,
        build: metrics::trajectory::build_recall,
    },
    Builtin {
        kind: "redundant_calls",
        description: "calls repeating an earlier successful call",
        default_on: false,
        build: metrics::trajectory::build_redundant,
    },
    Builtin {
        kind: "unrecovered_errors",
        description: "failed calls and steps never followed by a success",
        default_on: false,
        build: metrics::trajectory::build_unrecovered,
    },
    Builtin {
        kind: "steps_to_completion",
        description: "agent steps up to the final answer",
        default_on: false,
        build: metrics::trajectory::build_steps,
    },
    Builtin {
        kind: "reward_model",
        description: "a reward model trained with `tribunal rm train` scores the reply",
        default_on: false,
        build: metrics::reward_model::build,
    },
    Builtin {
        kind: "constitution",
        description: "a model checks the reply against the principles of a constitution (a file, or its text)",
        default_on: false,
        build: crate::llm::constitution::build,
    },
    Builtin {
        kind: "secrets",
        description: "API keys, private keys, JWTs, high-entropy tokens",
        default_on: true,
        build: detectors::secrets::build,
    },
    Builtin {
        kind: "pii",
        description: "emails, phone numbers, payment cards, IBANs, national ids",
        default_on: true,
        build: detectors::pii::build,
    },
    Builtin {
        kind: "prompt_injection",
        description: "injection markers in untrusted content",
        default_on: true,
        build: detectors::injection::build,
    },
    Builtin {
        kind: "dangerous_commands",
        description: "destructive shell, SQL and code in tool arguments",
        default_on: true,
        build: detectors::commands::build,
    },
    Builtin {
        kind: "llm",
        description: "a judge written in plain language, answered by a model (an agent judge when its instructions use {{ trace }})",
        default_on: false,
        build: crate::agent::judge::build_llm,
    },
    Builtin {
        kind: "agent",
        description: "agent judge: investigates the trace with read-only tools, then gives a verdict citing span ids",
        default_on: false,
        build: crate::agent::judge::build,
    },
    Builtin {
        kind: "requirements",
        description: "agent judge: each requirement investigated separately, aggregated as share or all met",
        default_on: false,
        build: crate::agent::judge::build_requirements,
    },
    Builtin {
        kind: "failure_attribution",
        description: "agent judge: the step and agent responsible for a failed run's decisive error",
        default_on: false,
        build: crate::agent::judge::build_attribution,
    },
    Builtin {
        kind: "safety",
        description: "model judge: is the reply safe (safe/unsafe)",
        default_on: false,
        build: crate::llm::presets::build_safety,
    },
    Builtin {
        kind: "relevance_to_query",
        description: "model judge: does the reply address the request",
        default_on: false,
        build: crate::llm::presets::build_relevance_to_query,
    },
    Builtin {
        kind: "correctness",
        description: "model judge: is the reply correct against expectations",
        default_on: false,
        build: crate::llm::presets::build_correctness,
    },
    Builtin {
        kind: "groundedness",
        description: "model judge: are the reply's claims supported by tool results and documents",
        default_on: false,
        build: crate::llm::presets::build_groundedness,
    },
    Builtin {
        kind: "guidelines",
        description: "model judge: does the reply follow a list of plain-language guidelines",
        default_on: false,
        build: crate::llm::presets::build_guidelines,
    },
    Builtin {
        kind: "llm_tool_call_correctness",
        description: "model judge: right tools, right arguments, sensible order",
        default_on: false,
        build: crate::llm::presets::build_tool_call_correctness,
    },
    Builtin {
        kind: "tool_call_efficiency",
        description: "model judge: no redundant or unnecessary tool calls",
        default_on: false,
        build: crate::llm::presets::build_tool_call_efficiency,
    },
    Builtin {
        kind: "completeness",
        description: "model judge: does the reply answer every part of the request",
        default_on: false,
        build: crate::llm::presets::build_completeness,
    },
    Builtin {
        kind: "llm_prompt_injection",
        description:
            "model judge: injection attempts in the conversation (none/attempted/followed)",
        default_on: false,
        build: crate::llm::presets::build_prompt_injection,
    },
    Builtin {
        kind: "moderation",
        description: "model judge: hazard category S1-S14 of the reply, or safe",
        default_on: false,
        build: crate::llm::presets::build_moderation,
    },
    Builtin {
        kind: "alignment_check",
        description: "model judge: does the pending action serve the user's goal (aligned/misaligned); reads the goal and the actions, never tool results",
        default_on: false,
        build: crate::llm::presets::build_alignment_check,
    },
];

/// A judge as configured: an instance name, a built-in kind and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeSpec {
    pub name: String,
    pub kind: String,
    pub params: Value,
}

/// Comma-separated list of the valid kinds, for error messages.
pub fn valid_kinds() -> String {
    BUILTINS
        .iter()
        .map(|b| b.kind)
        .collect::<Vec<_>>()
        .join(", ")
}

impl JudgeSpec {
    /// A short hash of the judge's definition (kind and settings): its version.
    pub fn version(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.kind.as_bytes());
        h.update([0]);
        h.update(self.params.to_string().as_bytes());
        h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A judge whose feedback carries the version of its definition.
struct Versioned {
    inner: Box<dyn Judge>,
    version: String,
    /// The kind, when the instance is named otherwise.
    kind: Option<String>,
}

impl Versioned {
    fn versioned(&self, mut out: Vec<tribunal_core::Feedback>) -> Vec<tribunal_core::Feedback> {
        for f in &mut out {
            f.source.version = Some(self.version.clone());
            f.source.kind.clone_from(&self.kind);
        }
        out
    }
}

impl Judge for Versioned {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight()
    }

    fn set_response_cache(
        &mut self,
        cache: std::sync::Arc<dyn tribunal_llm::ResponseCache>,
    ) -> Result<(), JudgeConfigError> {
        self.inner.set_response_cache(cache)
    }

    fn judge(&self, input: &crate::JudgeInput<'_>) -> Vec<tribunal_core::Feedback> {
        self.versioned(self.inner.judge(input))
    }

    fn judge_memo(&self, input: &crate::JudgeInput<'_>) -> Vec<tribunal_core::Feedback> {
        self.versioned(self.inner.judge_memo(input))
    }

    fn judge_grown(
        &self,
        input: &crate::JudgeInput<'_>,
        state: &mut crate::GrowState,
    ) -> Vec<tribunal_core::Feedback> {
        self.versioned(self.inner.judge_grown(input, state))
    }

    fn state_bytes(&self, state: &crate::GrowState) -> usize {
        self.inner.state_bytes(state)
    }
}

/// Builds a judge; its feedback carries the version of its definition.
pub fn build_versioned(spec: &JudgeSpec) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let inner = build_judge(spec)?;
    Ok(Box::new(Versioned {
        inner,
        version: spec.version(),
        kind: (spec.kind != spec.name).then(|| spec.kind.clone()),
    }))
}

/// [`build_versioned`] for a definition whose model clients are set up by `trust`: one
/// sent in a request to a server is built with [`crate::llm::ClientTrust`]'s
/// `Origin::Request`, so the environment's key never goes to a base URL the request gave.
pub fn build_versioned_as(
    spec: &JudgeSpec,
    trust: crate::llm::ClientTrust,
) -> Result<Box<dyn Judge>, JudgeConfigError> {
    crate::llm::model::with_trust(trust, || build_versioned(spec))
}

/// Checks that a definition builds as it would where it runs, without the model provider's
/// key, which this machine may not have: a definition checked here is stored and run by a
/// server that has it (`tribunal judges import`).
pub fn check_definition(spec: &JudgeSpec) -> Result<(), JudgeConfigError> {
    crate::llm::model::definition_only(|| build_versioned(spec)).map(drop)
}

/// The error of a configuration whose judge of another kind takes the name of a judge that
/// runs by default: it would replace that judge (the dangerous-commands detector, say, with
/// a model judge), and the default check the pack reads would be gone unnoticed. `None`
/// for any other judge.
pub fn replaces_a_default(spec: &JudgeSpec) -> Option<JudgeConfigError> {
    let replaced =
        spec.kind != spec.name && BUILTINS.iter().any(|b| b.default_on && b.kind == spec.name);
    replaced.then(|| {
        JudgeConfigError::invalid(
            &spec.name,
            format!(
                "kind {:?} under the name of the built-in {} judge, which runs by default, would replace it; give this judge another name (turn the built-in off with `enabled = false` if that is meant)",
                spec.kind, spec.name
            ),
        )
    })
}

pub fn build_judge(spec: &JudgeSpec) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let builtin = BUILTINS
        .iter()
        .find(|b| b.kind == spec.kind)
        .ok_or_else(|| JudgeConfigError::UnknownKind {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            valid: valid_kinds(),
        })?;
    (builtin.build)(&spec.name, &spec.params)
}

/// The judges that run when nothing is configured.
pub fn default_judges() -> Vec<Box<dyn Judge>> {
    BUILTINS
        .iter()
        .filter(|b| b.default_on)
        .map(|b| (b.build)(b.kind, &Value::Null).expect("built-in defaults are valid"))
        .collect()
}

/// Reads a judge's parameters into its typed settings; unknown settings are errors that
/// list the valid ones.
pub fn params<T: DeserializeOwned + Default>(name: &str, v: &Value) -> Result<T, JudgeConfigError> {
    match v {
        Value::Null => Ok(T::default()),
        Value::Object(o) if o.is_empty() => Ok(T::default()),
        _ => serde_json::from_value(v.clone())
            .map_err(|e| JudgeConfigError::invalid(name, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_builds_and_names_are_unique() {
        let judges = default_judges();
        assert_eq!(
            judges.len(),
            BUILTINS.iter().filter(|b| b.default_on).count()
        );
        let mut kinds: Vec<_> = BUILTINS.iter().map(|b| b.kind).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), BUILTINS.len());
    }

    #[test]
    fn unknown_kind_lists_valid_choices() {
        let spec = JudgeSpec {
            name: "x".into(),
            kind: "nope".into(),
            params: Value::Null,
        };
        let err = build_judge(&spec).err().unwrap().to_string();
        assert!(
            err.contains("nope") && err.contains("secrets") && err.contains("latency"),
            "{err}"
        );
    }

    /// A judge of another kind may not take the name of a judge that runs by default in a
    /// configuration (it would replace the dangerous-commands detector, say, with a model
    /// judge); the same kind with settings of its own, and other names, may.
    #[test]
    fn another_kind_under_a_default_judges_name_is_refused() {
        let spec = |name: &str, kind: &str| JudgeSpec {
            name: name.into(),
            kind: kind.into(),
            params: Value::Null,
        };
        for name in ["dangerous_commands", "secrets", "step_count"] {
            let err = replaces_a_default(&spec(name, "llm"))
                .unwrap_or_else(|| panic!("{name}: an llm judge took the built-in's place"))
                .to_string();
            assert!(
                err.starts_with(&format!("judges.{name}: kind \"llm\""))
                    && err.contains("another name"),
                "{err}"
            );
            assert!(replaces_a_default(&spec(name, "pii")).is_some(), "{name}");
        }
        for (name, kind) in [
            ("dangerous_commands", "dangerous_commands"),
            ("my_commands", "dangerous_commands"),
            ("safety", "llm"),
        ] {
            assert!(replaces_a_default(&spec(name, kind)).is_none(), "{name}");
        }
    }

    #[test]
    fn unknown_setting_is_rejected_with_valid_names() {
        let spec = JudgeSpec {
            name: "r".into(),
            kind: "repeated_calls".into(),
            params: serde_json::json!({"bogus": 1}),
        };
        let err = build_judge(&spec).err().unwrap().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}

//! The final answer of an investigation: what the `submit_verdict` tool takes, and how an
//! answer is read and checked. A verdict carries the judge's declared output type, a
//! rationale and the ids of the steps it relied on; an attribution names the step and the
//! agent responsible for the decisive error, and why. Ids must exist in the trace, and an
//! attribution's agent must be one the trace mentions (when it mentions any).

use super::tools::TraceTools;
use crate::llm::output::excerpt;
use crate::llm::{OutputType, Unusable};
use serde_json::{json, Value};
use tribunal_llm::ToolSpec;

/// The tool that ends an investigation.
pub const SUBMIT: &str = "submit_verdict";

/// What an investigation must answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerKind {
    /// A result of the declared output type, a rationale and the ids relied on.
    Verdict(OutputType),
    /// The step and agent responsible for the decisive error of a failed run, and why.
    Attribution,
}

/// A checked final answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalAnswer {
    pub result: Value,
    pub rationale: String,
    /// Span, message or tool-call ids the answer relies on, all present in the trace.
    pub span_ids: Vec<String>,
}

impl AnswerKind {
    /// The `submit_verdict` tool for this kind of answer.
    pub fn submit_tool(&self) -> ToolSpec {
        let parameters = match self {
            AnswerKind::Verdict(ty) => {
                let mut schema = ty.schema();
                schema["properties"]["span_ids"] = json!({
                    "type": "array", "items": {"type": "string"},
                    "description": "Ids of the spans, messages or tool calls your verdict relies on, as the tools returned them.",
                });
                schema["required"] = json!(["rationale", "result", "span_ids"]);
                schema
            }
            AnswerKind::Attribution => json!({
                "type": "object",
                "properties": {
                    "span_id": {"type": "string", "description": "The id of the step where the decisive error was made."},
                    "agent": {"type": "string", "description": "The agent that made it, as the trace names it."},
                    "reason": {"type": "string", "description": "What went wrong there and why it decided the failure."},
                },
                "required": ["span_id", "agent", "reason"],
                "additionalProperties": false,
            }),
        };
        let description = match self {
            AnswerKind::Verdict(_) => "Submit your final verdict. Call this once you have investigated enough; it ends the investigation.",
            AnswerKind::Attribution => "Submit the step and agent responsible for the decisive error. Call this once you have investigated enough; it ends the investigation.",
        };
        ToolSpec::new(SUBMIT, description, parameters)
    }

    /// What the prompt tells the model about finishing.
    pub fn instructions(&self) -> String {
        match self {
            AnswerKind::Verdict(ty) => format!(
                "When you are done, call {SUBMIT} with `result` (as its schema says: {}), a \
                 `rationale` and `span_ids`, the ids of the spans, messages or tool calls \
                 you relied on, exactly as the tools returned them.",
                ty.schema()["properties"]["result"]
            ),
            AnswerKind::Attribution => format!(
                "When you are done, call {SUBMIT} with `span_id` (the id of the step where \
                 the decisive error was made, exactly as the tools returned it), `agent` (the \
                 agent responsible, as the trace names it) and `reason`."
            ),
        }
    }

    /// Reads an answer's arguments (a JSON object) and checks them against the trace.
    pub fn parse(&self, args: &Value, tools: &TraceTools<'_>) -> Result<FinalAnswer, Unusable> {
        let Value::Object(obj) = args else {
            return Err(match args {
                Value::String(raw) => {
                    Unusable::quoting("the answer is not valid JSON", excerpt(raw))
                }
                other => Unusable::quoting("the answer must be a JSON object", other.to_string()),
            });
        };
        let answer = match self {
            AnswerKind::Verdict(ty) => {
                let result = match obj.get("result") {
                    None => return Err(Unusable::new("the answer has no `result`")),
                    Some(r) => ty.check(r)?,
                };
                let rationale = text(obj.get("rationale"));
                let span_ids = match obj.get("span_ids") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|i| match i {
                            Value::String(s) => Ok(s.trim().to_owned()),
                            other => Err(Unusable::quoting(
                                "span_ids must be strings",
                                other.to_string(),
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    Some(Value::String(s)) => vec![s.trim().to_owned()],
                    Some(other) => {
                        return Err(Unusable::quoting(
                            "span_ids must be a list of ids",
                            other.to_string(),
                        ))
                    }
                };
                FinalAnswer {
                    result,
                    rationale,
                    span_ids,
                }
            }
            AnswerKind::Attribution => {
                let span_id = match obj.get("span_id") {
                    Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
                    _ => {
                        return Err(Unusable::new(
                            "the answer needs `span_id`, the id of the step at fault",
                        ))
                    }
                };
                let agent = match obj.get("agent") {
                    Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
                    _ => {
                        return Err(Unusable::new(
                            "the answer needs `agent`, the agent at fault",
                        ))
                    }
                };
                let reason = text(obj.get("reason"));
                if reason.trim().is_empty() {
                    return Err(Unusable::new(
                        "the answer needs `reason`: why this step decided the failure",
                    ));
                }
                let known = tools.agents();
                if !known.is_empty() && !known.iter().any(|a| a.eq_ignore_ascii_case(&agent)) {
                    return Err(Unusable::quoting(
                        format!(
                            "the answer names an agent that does not appear in the trace (its agents are {})",
                            known.join(", ")
                        ),
                        format!("{agent:?}"),
                    ));
                }
                FinalAnswer {
                    result: json!({"span_id": span_id, "agent": agent}),
                    rationale: reason,
                    span_ids: vec![span_id],
                }
            }
        };
        let mut unknown: Vec<&str> = answer
            .span_ids
            .iter()
            .map(String::as_str)
            .filter(|id| !tools.has_id(id))
            .collect();
        unknown.dedup();
        if !unknown.is_empty() {
            return Err(Unusable::quoting(
                format!(
                    "the answer cites ids that do not exist in the trace (cite only ids the tools returned, which look like {}; use list_spans or search_trace to find them, then submit again)",
                    tools
                        .sample_ids(3)
                        .iter()
                        .map(|u| format!("{u:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                unknown.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", "),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let span_ids = answer
            .span_ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        Ok(FinalAnswer { span_ids, ..answer })
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

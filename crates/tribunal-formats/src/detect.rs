//! Format detection and the single entry point from a parsed JSON document to traces.

use crate::error::ImportError;
use crate::util::kind_of;
use crate::{anthropic, mlflow, openai, otlp};
use serde_json::Value;
use tribunal_core::Trace;

/// The wire formats Tribunal reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    #[default]
    Auto,
    Openai,
    Anthropic,
    Mlflow,
    Otlp,
}

impl InputFormat {
    pub const NAMES: &'static [&'static str] = &["auto", "openai", "anthropic", "mlflow", "otlp"];

    pub fn parse(s: &str) -> Option<InputFormat> {
        Some(match s {
            "auto" => InputFormat::Auto,
            "openai" => InputFormat::Openai,
            "anthropic" => InputFormat::Anthropic,
            "mlflow" => InputFormat::Mlflow,
            "otlp" => InputFormat::Otlp,
            _ => return None,
        })
    }
}

/// Guesses the format of one JSON document.
pub fn detect(v: &Value) -> Option<InputFormat> {
    match v {
        Value::Object(o) => {
            if o.contains_key("resourceSpans") {
                Some(InputFormat::Otlp)
            } else if o.contains_key("info")
                || (o.contains_key("spans") && !o.contains_key("messages"))
            {
                Some(InputFormat::Mlflow)
            } else if let Some(Value::Array(msgs)) = o.get("messages") {
                Some(if o.contains_key("system") || anthropic::looks_like(msgs) {
                    InputFormat::Anthropic
                } else {
                    InputFormat::Openai
                })
            } else {
                None
            }
        }
        Value::Array(items) => {
            let first = items.first()?.as_object()?;
            if first.contains_key("role") {
                Some(if anthropic::looks_like(items) {
                    InputFormat::Anthropic
                } else {
                    InputFormat::Openai
                })
            } else if first.contains_key("info") || first.contains_key("spans") {
                Some(InputFormat::Mlflow)
            } else {
                None
            }
        }
        _ => None,
    }
}

const EXPECTED: &str = "a trace: a list of chat messages, an object with `messages`, \
an MLflow trace (`info` and `data.spans`) or an OTLP request (`resourceSpans`)";

/// Turns one JSON document into the traces it holds (an OTLP request or an MLflow list may
/// hold several). `fallback_id` names traces whose source gives them no id.
pub fn import_value(
    v: &Value,
    format: InputFormat,
    fallback_id: &str,
) -> Result<Vec<Trace>, ImportError> {
    let format = match format {
        InputFormat::Auto => detect(v)
            .ok_or_else(|| ImportError::new("", format!("{EXPECTED}; found {}", kind_of(v))))?,
        f => f,
    };
    match (format, v) {
        (InputFormat::Openai, Value::Array(list)) => Ok(vec![Trace {
            id: fallback_id.to_owned(),
            messages: openai::import_messages(list)?,
            ..Trace::default()
        }]),
        (InputFormat::Openai, Value::Object(o)) => Ok(vec![openai::import_record(o, fallback_id)?]),
        (InputFormat::Anthropic, Value::Array(list)) => Ok(vec![Trace {
            id: fallback_id.to_owned(),
            messages: anthropic::import_messages(list, None)?,
            ..Trace::default()
        }]),
        (InputFormat::Anthropic, Value::Object(o)) => {
            Ok(vec![anthropic::import_record(o, fallback_id)?])
        }
        (InputFormat::Mlflow, Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, t)| {
                mlflow::import_trace(t, &format!("{fallback_id}#{i}"))
                    .map_err(|e| e.within(&format!("[{i}]")))
            })
            .collect(),
        (InputFormat::Mlflow, v) => Ok(vec![mlflow::import_trace(v, fallback_id)?]),
        (InputFormat::Otlp, v) => otlp::import_request(v),
        (_, other) => Err(ImportError::new(
            "",
            format!("{EXPECTED}; found {}", kind_of(other)),
        )),
    }
}

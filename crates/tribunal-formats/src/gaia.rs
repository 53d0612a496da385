//! GAIA submissions: one `{task_id, model_answer, reasoning_trace?}` per line. The reasoning
//! becomes the agent's turn and the answer its final reply, so process judges and policies
//! can read how an answer was reached. (The questions are gated and never in a submission.)

use crate::error::ImportError;
use crate::openai::record_id;
use crate::util::{content_text, kind_of};
use serde_json::{Map, Value};
use tribunal_core::{Message, Role, Trace};

/// Does this object look like a GAIA submission line?
pub fn is_gaia_submission(o: &Map<String, Value>) -> bool {
    o.contains_key("task_id") && o.contains_key("model_answer") && !o.contains_key("messages")
}

pub fn import_submission(o: &Map<String, Value>, fallback_id: &str) -> Result<Trace, ImportError> {
    let id = match o.get("task_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(ImportError::new(
                "task_id",
                format!("a string, found {}", kind_of(other)),
            ))
        }
        None => record_id(o)?.unwrap_or_else(|| fallback_id.to_owned()),
    };
    let answer = match o.get("model_answer") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(ImportError::new(
                "model_answer",
                format!("a string, found {}", kind_of(other)),
            ))
        }
    };
    let mut trace = Trace {
        id,
        ..Trace::default()
    };
    if let Some(reasoning) = o.get("reasoning_trace").filter(|v| !v.is_null()) {
        let text = match reasoning {
            Value::Array(steps) => steps
                .iter()
                .map(|s| match s {
                    Value::String(t) => t.clone(),
                    other => content_text(other),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            other => content_text(other),
        };
        if !text.is_empty() {
            trace
                .messages
                .push(Message::new("m0", Role::Assistant, text));
        }
    }
    let final_id = format!("m{}", trace.messages.len());
    trace
        .messages
        .push(Message::new(final_id, Role::Assistant, answer.clone()));
    trace.outputs = Some(Value::String(answer));
    for (k, v) in o {
        if !matches!(k.as_str(), "task_id" | "model_answer" | "reasoning_trace") {
            trace.metadata.insert(k.clone(), v.clone());
        }
    }
    trace
        .metadata
        .insert("benchmark".into(), Value::String("gaia".into()));
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasoning_and_answer_become_turns() {
        let v = json!({"task_id": "t-1", "model_answer": "42", "reasoning_trace": ["look it up", "FINAL ANSWER: 42"], "level": 2});
        let t = import_submission(v.as_object().unwrap(), "f:1").unwrap();
        assert_eq!(t.id, "t-1");
        assert_eq!(t.messages.len(), 2);
        assert_eq!(t.messages[0].content, "look it up\nFINAL ANSWER: 42");
        assert_eq!(t.final_response(), Some("42"));
        assert_eq!(t.metadata["level"], json!(2));
        let bad = json!({"task_id": ["x"], "model_answer": "1"});
        assert_eq!(
            import_submission(bad.as_object().unwrap(), "f:1")
                .unwrap_err()
                .field,
            "task_id"
        );
    }
}

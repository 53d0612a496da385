//! The normalized trace model read as such (`"format": "tribunal"`): a trace or messages as
//! Tribunal writes them. Errors name the message (`messages[i]`) a field of which does not
//! read, and a message whose provenance is more trusted than its role ([`Provenance::fits`])
//! is refused, as in every other format.

use crate::error::ImportError;
use crate::openai::fitting;
use serde::Deserialize;
use serde_json::Value;
use tribunal_core::{Message, Trace};

/// A whole trace in the normalized model.
pub fn trace(v: &Value) -> Result<Trace, ImportError> {
    let trace = match Trace::deserialize(v) {
        Ok(t) => t,
        Err(e) => {
            // Name the message that does not read, when one does not.
            if let Some(list) = v.get("messages").and_then(Value::as_array) {
                for (i, m) in list.iter().enumerate() {
                    if let Err(e) = Message::deserialize(m) {
                        return Err(ImportError::new(
                            format!("messages[{i}]"),
                            format!("a message of the normalized model: {e}"),
                        ));
                    }
                }
            }
            return Err(ImportError::new(
                "",
                format!("a trace of the normalized model (id, messages, ...): {e}"),
            ));
        }
    };
    checked(trace.messages.iter(), "messages")?;
    Ok(trace)
}

/// Messages in the normalized model, one JSON text each (errors name `[i]`).
pub fn messages(list: &[&str]) -> Result<Vec<Message>, ImportError> {
    let messages = list
        .iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::from_str::<Message>(m)
                .map_err(|e| ImportError::new(format!("[{i}]"), format!("a message: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    checked(messages.iter(), "")?;
    Ok(messages)
}

fn checked<'a>(messages: impl Iterator<Item = &'a Message>, list: &str) -> Result<(), ImportError> {
    for (i, m) in messages.enumerate() {
        fitting(
            m.provenance.clone(),
            m.role,
            &format!("{list}[{i}].provenance"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_more_trusted_than_its_role_is_refused_and_errors_name_the_message() {
        let msg = |role: &str, source: &str| json!({"id": "m1", "role": role, "content": "x", "provenance": {"source": source, "name": "t"}});
        let user =
            json!({"id": "m0", "role": "user", "content": "hi", "provenance": {"source": "user"}});
        for (role, source) in [
            ("tool", "user"),
            ("tool", "system"),
            ("tool", "assistant"),
            ("assistant", "user"),
            ("user", "system"),
        ] {
            let t = json!({"id": "t", "messages": [user, msg(role, source)]});
            let e = trace(&t).unwrap_err();
            assert_eq!(e.field, "messages[1].provenance", "{role} {source}: {e}");
            let text = msg(role, source).to_string();
            let e = messages(&[&user.to_string(), &text]).unwrap_err();
            assert_eq!(e.field, "[1].provenance", "{e}");
        }
        for (role, source) in [
            ("tool", "tool"),
            ("tool", "retrieval"),
            ("user", "retrieval"),
            ("assistant", "agent"),
            ("system", "user"),
        ] {
            let t = json!({"id": "t", "messages": [user, msg(role, source)]});
            assert!(trace(&t).is_ok(), "{role} {source}");
        }
        let e = trace(
            &json!({"id": "t", "messages": [user, {"id": "m1", "role": "user", "content": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(e.field, "messages[1]", "{e}");
        assert!(e.to_string().contains("provenance"), "{e}");
    }
}

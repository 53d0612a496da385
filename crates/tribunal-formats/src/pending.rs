//! The pending step: the tool call or reply an agent wants to make next, in the shapes
//! agents naturally have at hand.

use crate::error::ImportError;
use crate::openai::import_tool_call;
use crate::util::{as_array, content_text, kind_of};
use serde_json::Value;
use tribunal_core::Pending;

/// Reads a pending step from any of:
/// - an OpenAI tool call `{id, type:"function", function:{name, arguments}}` or `{name, arguments}`;
/// - a list of such tool calls, or `{"tool_calls": [...]}`;
/// - an assistant message `{role:"assistant", content, tool_calls}`;
/// - a reply `{"reply": "text"}` or `{"content": "text"}`, or a plain JSON string.
pub fn import_pending(v: &Value) -> Result<Pending, ImportError> {
    let calls = |list: &[Value], at: &str| -> Result<Pending, ImportError> {
        let tool_calls = list
            .iter()
            .enumerate()
            .map(|(i, c)| {
                import_tool_call(c, &format!("pending.call{i}"))
                    .map_err(|e| e.within(&format!("{at}[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Pending {
            kind: "tool_call".into(),
            tool_calls,
            content: String::new(),
        })
    };
    match v {
        Value::String(s) => Ok(reply(s.clone())),
        Value::Array(list) => calls(list, ""),
        Value::Object(o) => {
            if let Some(tc) = o.get("tool_calls").filter(|v| !v.is_null()) {
                let mut p = calls(as_array(tc, "tool_calls")?, "tool_calls")?;
                p.content = content_text(o.get("content").unwrap_or(&Value::Null));
                if p.tool_calls.is_empty() {
                    p.kind = "reply".into();
                }
                return Ok(p);
            }
            if o.contains_key("function") || (o.contains_key("name") && o.contains_key("arguments"))
            {
                return calls(std::slice::from_ref(v), "");
            }
            for key in ["reply", "content"] {
                if let Some(c) = o.get(key) {
                    return Ok(reply(content_text(c)));
                }
            }
            Err(ImportError::new(
                "",
                "a pending step: a tool call {name, arguments}, {tool_calls: [...]}, \
                 an assistant message, or {reply: text}",
            ))
        }
        other => Err(ImportError::new(
            "",
            format!("a pending tool call or reply, found {}", kind_of(other)),
        )),
    }
}

fn reply(content: String) -> Pending {
    Pending {
        kind: "reply".into(),
        tool_calls: Vec::new(),
        content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_usual_shapes() {
        let p = import_pending(&json!({"type":"function","id":"c9","function":{"name":"send_email","arguments":"{\"to\":\"a@b.c\"}"}})).unwrap();
        assert_eq!(p.kind, "tool_call");
        assert_eq!(p.tool_calls[0].id, "c9");
        assert_eq!(p.tool_calls[0].arguments, json!({"to":"a@b.c"}));
        let p = import_pending(&json!({"name":"refund","arguments":{"amount":5}})).unwrap();
        assert_eq!(p.tool_calls[0].id, "pending.call0");
        let p =
            import_pending(&json!({"role":"assistant","content":"hi","tool_calls":[]})).unwrap();
        assert_eq!((p.kind.as_str(), p.content.as_str()), ("reply", "hi"));
        let p = import_pending(&json!({"reply":"done"})).unwrap();
        assert_eq!(p.content, "done");
        assert!(import_pending(&json!({"x":1})).is_err());
        let e =
            import_pending(&json!({"tool_calls":[{"function":{"arguments":"{}"}}]})).unwrap_err();
        assert!(e.field.starts_with("tool_calls[0]"), "{e}");
    }
}

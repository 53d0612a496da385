//! Messages that continue a trace already imported (the gate's appends): in any format the
//! gate accepts, they become trace messages here, numbered after the held ones, their tool
//! results finding the calls they answer among the held messages.
//!
//! One entry, [`messages_after`], for every format. Plain-text OpenAI chat messages are read
//! straight into the trace model without a JSON tree (`openai_row`); anything else is read
//! as JSON values by its format's importer. Tools that continuing items list (a Responses
//! `mcp_list_tools` item) come back with the messages: they are tool definitions the trace
//! now carries, read like those it started with.

use crate::{anthropic, openai, openai_row, responses, ImportError};
use serde_json::value::RawValue;
use serde_json::Value;
use tribunal_core::{Message, ToolDef};

/// What continues a held trace: its new messages, and the tools the new items list.
#[derive(Debug, Default, PartialEq)]
pub struct Continued {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDef>,
}

impl From<Vec<Message>> for Continued {
    fn from(messages: Vec<Message>) -> Continued {
        Continued {
            messages,
            tools: Vec::new(),
        }
    }
}

/// What the continuing messages are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// Anthropic messages when they use `tool_use` / `tool_result` blocks, Responses API
    /// items when they use its item types, else OpenAI chat messages.
    Auto,
    OpenAi,
    Anthropic,
    /// Responses API / Agents SDK items (`message`, `function_call`, `function_call_output`).
    Responses,
    /// Normalized messages (the trace model's own).
    Tribunal,
}

impl Continuation {
    /// The names a request may give, in the order [`Continuation::parse`] knows them.
    pub const NAMES: &'static [&'static str] =
        &["auto", "openai", "anthropic", "responses", "tribunal"];

    pub fn parse(name: &str) -> Option<Continuation> {
        Some(match name {
            "auto" => Continuation::Auto,
            "openai" => Continuation::OpenAi,
            "anthropic" => Continuation::Anthropic,
            "responses" => Continuation::Responses,
            "tribunal" => Continuation::Tribunal,
            _ => return None,
        })
    }
}

/// The messages `new` (raw JSON, one per message) that continue `held`, in `format`, with
/// the tools they list. Errors name the message (`[i]`) and field.
pub fn messages_after(
    held: &[Message],
    new: &[&RawValue],
    format: Continuation,
) -> Result<Continued, ImportError> {
    if matches!(format, Continuation::Auto | Continuation::OpenAi) {
        // Plain-text messages never look like Anthropic's, so `auto` reads them as OpenAI's.
        let texts: Vec<&str> = new.iter().map(|r| r.get()).collect();
        if let Some(m) = openai_row::messages_after(held, &texts) {
            return Ok(m.into());
        }
    }
    if format == Continuation::Tribunal {
        let texts: Vec<&str> = new.iter().map(|r| r.get()).collect();
        return crate::native::messages(&texts).map(Continued::from);
    }
    let values = new
        .iter()
        .enumerate()
        .map(|(i, m)| {
            tribunal_core::json::from_str(m.get())
                .map_err(|e| ImportError::new(format!("[{i}]"), format!("JSON: {e}")))
        })
        .collect::<Result<Vec<Value>, _>>()?;
    let responses = |values: &[Value]| {
        responses::import_items_after(held, values).map(|items| Continued {
            messages: items.messages,
            tools: items.tools,
        })
    };
    match format {
        Continuation::Anthropic => anthropic::import_messages_after(held, &values).map(Into::into),
        Continuation::Auto if anthropic::looks_like(&values) => {
            anthropic::import_messages_after(held, &values).map(Into::into)
        }
        Continuation::Responses => responses(&values),
        Continuation::Auto if responses::looks_like(&values) => responses(&values),
        _ => openai::import_messages_after(held, &values).map(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tribunal_core::Role;

    fn raw(v: &[Value]) -> Vec<Box<RawValue>> {
        v.iter()
            .map(|m| RawValue::from_string(m.to_string()).unwrap())
            .collect()
    }

    fn after(held: &[Message], v: &[Value], f: Continuation) -> Result<Vec<Message>, ImportError> {
        let boxed = raw(v);
        let refs: Vec<&RawValue> = boxed.iter().map(|b| b.as_ref()).collect();
        messages_after(held, &refs, f).map(|c| c.messages)
    }

    #[test]
    fn every_format_continues_the_held_messages() {
        let held = openai::import_messages_after(
            &[],
            &[
                json!({"role": "user", "content": "refund order 7"}),
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"order\": 7}"}}]}),
            ],
        )
        .unwrap();
        // An OpenAI tool result finds its call among the held messages.
        let m = after(
            &held,
            &[json!({"role": "tool", "tool_call_id": "c1", "content": "paid"})],
            Continuation::Auto,
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].id, "m2");
        assert_eq!(m[0].role, Role::Tool);
        assert_eq!(m[0].name.as_deref(), Some("lookup"));
        // The same with structured content goes the JSON-value way, with the same result.
        let structured = after(
            &held,
            &[json!({"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "paid"}]})],
            Continuation::OpenAi,
        )
        .unwrap();
        assert_eq!(structured[0].name.as_deref(), Some("lookup"));
        assert_eq!(structured[0].content, "paid");
        // Anthropic blocks are told apart in auto and read as Anthropic's.
        let anth = after(
            &held,
            &[json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "paid"}]})],
            Continuation::Auto,
        )
        .unwrap();
        assert_eq!(anth.len(), 1);
        assert_eq!(anth[0].role, Role::Tool);
        assert_eq!(anth[0].id, "m2");
        // Responses API items: a function call's output finds its call.
        let resp = after(
            &held,
            &[json!({"type": "function_call_output", "call_id": "c1", "output": "paid"})],
            Continuation::Auto,
        )
        .unwrap();
        assert_eq!(resp.len(), 1);
        assert_eq!(resp[0].role, Role::Tool);
        assert_eq!(resp[0].name.as_deref(), Some("lookup"));
        // Normalized messages are taken as they are.
        let norm = after(
            &held,
            &[serde_json::to_value(&held[0]).unwrap()],
            Continuation::Tribunal,
        )
        .unwrap();
        assert_eq!(norm[0], held[0]);
    }

    #[test]
    fn tools_listed_by_continuing_items_come_with_the_messages() {
        let items = [
            json!({"type": "mcp_list_tools", "server_label": "notes", "tools": [{"name": "save_note", "description": "Saves a note.", "input_schema": {"type": "object"}}]}),
            json!({"type": "function_call", "call_id": "c2", "name": "save_note", "arguments": "{}"}),
        ];
        let boxed = raw(&items);
        let refs: Vec<&RawValue> = boxed.iter().map(|b| b.as_ref()).collect();
        for format in [Continuation::Auto, Continuation::Responses] {
            let c = messages_after(&[], &refs, format).unwrap();
            assert_eq!(c.messages.len(), 1);
            let names: Vec<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["save_note"]);
            assert_eq!(c.tools[0].description, "Saves a note.");
        }
    }

    #[test]
    fn a_bad_message_is_named_by_its_place() {
        let e = after(
            &[],
            &[json!({"role": "user", "content": "hi"}), json!({"role": 7})],
            Continuation::OpenAi,
        )
        .unwrap_err();
        assert!(e.field.starts_with("[1]"), "{e}");
        let e = after(&[], &[json!({"id": 3})], Continuation::Tribunal).unwrap_err();
        assert_eq!(e.field, "[0]", "{e}");
        assert_eq!(Continuation::parse("openai"), Some(Continuation::OpenAi));
        assert_eq!(Continuation::parse("mlflow"), None);
    }
}

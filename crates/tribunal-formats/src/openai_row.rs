//! The most common dataset line, an OpenAI chat record `{id?, messages: [...], ...}` whose
//! messages have plain-text content, read straight into the trace model: no JSON tree is
//! built and then copied, which halves the cost of importing it.
//!
//! This is only a faster road to the same place. Whatever it does not handle exactly as
//! [`crate::import_value`] would (content parts, legacy `function_call`, flat tool
//! calls, an unknown role, a field that would make detection choose
//! another format, anything malformed) makes it step aside, and the line is read the general
//! way, which also writes the error messages. `tests/openai_row.rs` checks that both roads
//! give the same traces.

use crate::detect::{detect, InputFormat};
use crate::openai::{
    as_tool_result, call, explicit_provenance, fill_record_fields, numbered, record_id, role_of,
};
use crate::util::CallNames;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use tribunal_core::{Message, Role, Trace};

#[derive(Deserialize)]
struct Msg {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<Call>>,
    #[serde(default)]
    tool_call_id: Option<String>,
    /// The legacy single call: present and not null means stepping aside.
    #[serde(default)]
    function_call: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "tribunal_core::json::unique_option")]
    provenance: Option<Value>,
}

#[derive(Deserialize)]
struct Call {
    #[serde(default)]
    id: Option<String>,
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    name: String,
    /// Read under the same names as the general reader's (`openai::ARGUMENT_KEYS`); a call
    /// that has two of them is left to that reader.
    #[serde(
        default,
        alias = "input",
        alias = "args",
        deserialize_with = "tribunal_core::json::unique_option"
    )]
    arguments: Option<Value>,
}

/// The record: its messages, typed, and every other field as JSON.
struct Row {
    messages: Vec<Msg>,
    rest: Map<String, Value>,
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a chat record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut messages = None;
                let mut rest = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "messages" {
                        if messages.is_some() {
                            return Err(serde::de::Error::duplicate_field("messages"));
                        }
                        messages = Some(map.next_value::<Vec<Msg>>()?);
                    } else if rest.contains_key(&key) {
                        return Err(serde::de::Error::duplicate_field("a field named twice"));
                    } else {
                        let tribunal_core::json::Unique(v) = map.next_value()?;
                        rest.insert(key, v);
                    }
                }
                let messages =
                    messages.ok_or_else(|| serde::de::Error::missing_field("messages"))?;
                Ok(Row { messages, rest })
            }
        }
        d.deserialize_map(RowVisitor)
    }
}

/// The trace of one line, when the line is a record this road handles; `None` otherwise
/// (the caller then imports it the general way).
pub fn read(text: &str, format: InputFormat, fallback_id: &str) -> Option<Trace> {
    if !matches!(format, InputFormat::Auto | InputFormat::Openai)
        || !text.trim_start().starts_with('{')
    {
        return None;
    }
    let Row { messages, mut rest } = serde_json::from_str(text).ok()?;
    if format == InputFormat::Auto {
        // The other fields must not make detection choose another format (plain-text
        // messages never look like Anthropic's).
        rest.insert("messages".into(), Value::Array(Vec::new()));
        let v = Value::Object(rest);
        if detect(&v) != Some(InputFormat::Openai) {
            return None;
        }
        let Value::Object(r) = v else { return None };
        rest = r;
        rest.remove("messages");
    }
    let mut trace = Trace {
        id: record_id(&rest)
            .ok()?
            .unwrap_or_else(|| fallback_id.to_owned()),
        ..Trace::default()
    };
    trace.messages = convert(messages, &[])?;
    fill_record_fields(&rest, &mut trace, crate::openai::RECORD_FIELDS).ok()?;
    Some(trace)
}

/// Chat messages that continue `held` (the messages of a trace already imported, as
/// [`crate::openai::import_messages_after`] continues them), each given as its raw JSON:
/// read straight into the trace model when every one is a message this road handles; `None`
/// otherwise (the caller then imports them the general way, which also writes the errors).
pub fn messages_after(held: &[Message], raw: &[&str]) -> Option<Vec<Message>> {
    let messages = raw
        .iter()
        .map(|m| serde_json::from_str::<Msg>(m).ok())
        .collect::<Option<Vec<Msg>>>()?;
    convert(messages, held)
}

/// The messages, numbered after `held` (whose calls tool results may answer).
fn convert(messages: Vec<Msg>, held: &[Message]) -> Option<Vec<Message>> {
    let mut out = Vec::with_capacity(messages.len());
    let mut call_names = CallNames::after(held);
    for (i, m) in messages.into_iter().enumerate() {
        if m.function_call.is_some() {
            return None;
        }
        let role = role_of(&m.role)?;
        let number = held.len() + i;
        let mut msg = Message::new(numbered("m", number), role, m.content.unwrap_or_default());
        msg.name = m.name;
        for (j, c) in m.tool_calls.into_iter().flatten().enumerate() {
            let call = call(
                c.id.unwrap_or_else(|| format!("{}.call{j}", msg.id)),
                c.function.name,
                c.function.arguments.as_ref(),
            )
            .ok()?;
            call_names.insert(&call);
            msg.tool_calls.push(call);
        }
        if role == Role::Tool {
            as_tool_result(&mut msg, m.tool_call_id, &call_names);
        }
        if let Some(p) = &m.provenance {
            // One that does not fit the role is refused by the full reader, which names it.
            msg.provenance = explicit_provenance(p, "", role).ok()?;
        }
        out.push(msg);
    }
    Some(out)
}

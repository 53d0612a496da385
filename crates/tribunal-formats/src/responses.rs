//! The OpenAI Responses API and Agents SDK item format: `message`, `function_call`,
//! `function_call_output` and `reasoning` items (and the built-in tools' call items).
//!
//! A trace is a list of items, or a record `{id?, items | input + output, ...}` (a Responses
//! API request's `input` followed by its response's `output`). Each item that says something
//! becomes one message with id `m{i}` (i = the item's index in the list): a `message` by its
//! role (`developer` is a system message), a `function_call` (or `custom_tool_call`, or a
//! built-in tool's call such as `mcp_call`) an assistant message holding the call, a
//! `*_output` item a tool message answering the call it names. `reasoning` items are not
//! part of the conversation: their summaries are kept in the trace's metadata under
//! `reasoning` (`{item, id, summary}`, `item` the index of the reasoning item). The tools an
//! `mcp_list_tools` item lists are the trace's tool definitions (read for injections like
//! any), and an `mcp_approval_request` is the call it asks to make. References to earlier
//! items are skipped and their index is not used; an item of a kind this reader does not
//! know is read as untrusted content (a tool message named by its type), never dropped.

use crate::error::ImportError;
use crate::openai::{fill_record_fields, record_id};
use crate::util::{as_array, as_object, kind_of, opt_str, parse_arguments, part_text, CallNames};
use serde_json::{json, Map, Value};
use tribunal_core::{Message, Provenance, Role, ToolCall, ToolDef, Trace};

/// Fields of a record that map onto the trace; every other field is kept as metadata.
const RECORD_FIELDS: &[&str] = &[
    "id",
    "trace_id",
    "items",
    "input",
    "output",
    "inputs",
    "outputs",
    "expectations",
    "metadata",
    "tags",
    "tools",
];

const NOTHING: &str = "at least one message, function_call or function_call_output item";

/// Item types that only this format has.
const OWN_TYPES: &[&str] = &[
    "function_call",
    "function_call_output",
    "reasoning",
    "custom_tool_call",
    "custom_tool_call_output",
    "mcp_call",
    "mcp_list_tools",
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "file_search_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "mcp_approval_request",
    "mcp_approval_response",
    "item_reference",
    "code_interpreter_call",
    "image_generation_call",
];

/// Is this one of the format's own items (`function_call`, `reasoning`, ...), or a
/// `message` item with typed content parts (`input_text`, `output_text`)?
pub fn own_item(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    match o.get("type").and_then(Value::as_str) {
        Some("message") => true,
        Some(t) => OWN_TYPES.contains(&t),
        None => o
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|parts| {
                parts.iter().any(|p| {
                    matches!(
                        p.get("type").and_then(Value::as_str),
                        Some("input_text" | "output_text")
                    )
                })
            }),
    }
}

/// Does this list of items use the Responses format (any of its own items)?
pub fn looks_like(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().any(own_item)
}

/// Is this object a Responses record: `items`, or `input`/`output` lists of items?
pub fn is_record(o: &Map<String, Value>) -> bool {
    if o.contains_key("messages") {
        return false;
    }
    ["items", "input", "output"].iter().any(|k| {
        o.get(*k)
            .and_then(Value::as_array)
            .is_some_and(|l| looks_like(l))
    })
}

/// Does every entry look like an item (an object with a `type` or a `role`)?
pub fn fits(v: &Value) -> bool {
    let items = |l: &[Value]| {
        l.iter().all(|i| {
            i.as_object()
                .is_some_and(|o| o.contains_key("type") || o.contains_key("role"))
        })
    };
    match v {
        Value::Array(l) => !l.is_empty() && items(l),
        Value::Object(o) => {
            !o.contains_key("messages")
                && ["items", "input", "output"].iter().any(|k| {
                    o.get(*k)
                        .and_then(Value::as_array)
                        .is_some_and(|l| items(l))
                })
        }
        _ => false,
    }
}

/// The conversation and the reasoning of a list of items.
#[derive(Debug, Default)]
pub struct Items {
    pub messages: Vec<Message>,
    /// `{item, id, summary}` of each `reasoning` item.
    pub reasoning: Vec<Value>,
    /// The tools `mcp_list_tools` items list.
    pub tools: Vec<ToolDef>,
}

/// Imports a list of items as a trace named `id`.
pub fn import_list(list: &[Value], id: &str) -> Result<Trace, ImportError> {
    let items = import_items(list)?;
    if items.messages.is_empty() {
        return Err(ImportError::new("", NOTHING));
    }
    let mut trace = Trace {
        id: id.to_owned(),
        messages: items.messages,
        tools: items.tools,
        ..Trace::default()
    };
    if !items.reasoning.is_empty() {
        trace
            .metadata
            .insert("reasoning".into(), Value::Array(items.reasoning));
    }
    Ok(trace)
}

/// Imports a record: `items`, or `input` then `output` (a request and its response).
pub fn import_record(obj: &Map<String, Value>, fallback_id: &str) -> Result<Trace, ImportError> {
    let mut trace = Trace {
        id: record_id(obj)?.unwrap_or_else(|| fallback_id.to_owned()),
        ..Trace::default()
    };
    let mut reasoning = Vec::new();
    let mut listed = Vec::new();
    let mut start = 0;
    let mut names = CallNames::after(&[]);
    let mut messages = Vec::new();
    for key in ["items", "input", "output"] {
        match obj.get(key) {
            None | Some(Value::Null) => continue,
            // A plain-text request input is the user's message.
            Some(Value::String(s)) if key == "input" => {
                messages.push(Message::new(format!("m{start}"), Role::User, s.clone()));
                start += 1;
            }
            Some(v) => {
                let list = as_array(v, key)?;
                let got = import_from(list, start, &mut names).map_err(|e| e.within(key))?;
                messages.extend(got.messages);
                reasoning.extend(got.reasoning);
                listed.extend(got.tools);
                start += list.len();
            }
        }
    }
    if messages.is_empty() {
        return Err(ImportError::new("", NOTHING));
    }
    trace.messages = messages;
    fill_record_fields(obj, &mut trace, RECORD_FIELDS)?;
    trace.tools.extend(listed);
    if !reasoning.is_empty() {
        trace
            .metadata
            .insert("reasoning".into(), Value::Array(reasoning));
    }
    Ok(trace)
}

/// Imports a list of items. Errors are reported relative to it (`[2].arguments`).
pub fn import_items(list: &[Value]) -> Result<Items, ImportError> {
    import_from(list, 0, &mut CallNames::after(&[]))
}

/// Imports items that continue `held`, the messages of a trace already imported: they are
/// numbered after the held ones (item numbers go on from the highest `m<n>` id held) and
/// their outputs find the tools called earlier. Reasoning items are left out (see
/// [`import_items_after`] to keep them). Errors are reported relative to `list`.
pub fn import_messages_after(
    held: &[Message],
    list: &[Value],
) -> Result<Vec<Message>, ImportError> {
    Ok(import_items_after(held, list)?.messages)
}

/// [`import_messages_after`] with the reasoning items' summaries.
pub fn import_items_after(held: &[Message], list: &[Value]) -> Result<Items, ImportError> {
    let start = held
        .iter()
        .filter_map(|m| m.id.strip_prefix('m').and_then(|n| n.parse::<usize>().ok()))
        .max()
        .map_or(held.len(), |n| (n + 1).max(held.len()));
    import_from(list, start, &mut CallNames::after(held))
}

fn import_from(
    list: &[Value],
    start: usize,
    names: &mut CallNames<'_>,
) -> Result<Items, ImportError> {
    let mut out = Items::default();
    for (i, raw) in list.iter().enumerate() {
        let n = start + i;
        let at = format!("[{i}]");
        item(raw, n, names, &mut out).map_err(|e| e.within(&at))?;
    }
    Ok(out)
}

/// Imports item number `n` into `out`.
fn item(
    raw: &Value,
    n: usize,
    names: &mut CallNames<'_>,
    out: &mut Items,
) -> Result<(), ImportError> {
    let o = as_object(raw, "")?;
    let id = format!("m{n}");
    let kind = match opt_str(o, "type")? {
        Some(t) => t,
        None if o.contains_key("role") => "message",
        None => {
            return Err(ImportError::new(
                "type",
                "the item's type (or a message's role)",
            ))
        }
    };
    let message = match kind {
        "message" => {
            let role = match opt_str(o, "role")? {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("system" | "developer") => Role::System,
                Some(other) => {
                    return Err(ImportError::new(
                        "role",
                        format!("one of user, assistant, system, developer; found {other:?}"),
                    ))
                }
                None => {
                    return Err(ImportError::new(
                        "role",
                        "one of user, assistant, system, developer",
                    ))
                }
            };
            let text = parts_text(o.get("content").unwrap_or(&Value::Null), "content")?;
            let mut m = Message::new(id, role, text);
            m.name = opt_str(o, "name")?.map(str::to_owned);
            m
        }
        "reasoning" => {
            let summary = match o.get("summary") {
                None | Some(Value::Null) => String::new(),
                Some(s) => parts_text(s, "summary")?,
            };
            out.reasoning
                .push(json!({"item": n, "id": o.get("id"), "summary": summary}));
            return Ok(());
        }
        k if k.ends_with("_output") => {
            let call_id = opt_str(o, "call_id")?.ok_or_else(|| {
                ImportError::new("call_id", "the call_id of the call this output answers")
            })?;
            let content = match o.get("output") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(v @ Value::Array(_)) => parts_text(v, "output")?,
                Some(v) => v.to_string(),
            };
            let tool = names.get(call_id).unwrap_or_default().to_owned();
            tool_message(id, call_id, &tool, content)
        }
        "mcp_list_tools" => {
            // What an MCP server says its tools do: untrusted, read like every tool
            // definition a trace carries.
            if let Some(tools) = o.get("tools").filter(|v| !v.is_null()) {
                out.tools
                    .extend(crate::openai::import_tool_defs(tools).map_err(|e| e.within("tools"))?);
            }
            return Ok(());
        }
        "item_reference" => return Ok(()),
        "function_call" | "custom_tool_call" | "mcp_approval_request" => {
            let name = opt_str(o, "name")?
                .ok_or_else(|| ImportError::new("name", "the name of the called function"))?;
            let call_id = opt_str(o, "call_id")?
                .or(opt_str(o, "id")?)
                .map_or_else(|| format!("{id}.call0"), str::to_owned);
            let args = o
                .get(if kind == "custom_tool_call" {
                    "input"
                } else {
                    "arguments"
                })
                .unwrap_or(&Value::Null);
            let call = ToolCall {
                id: call_id,
                name: name.to_owned(),
                arguments: parse_arguments(args).map_err(|e| {
                    if kind == "custom_tool_call" {
                        ImportError::new("input", e.expected)
                    } else {
                        e
                    }
                })?,
                span_id: None,
            };
            names.insert(&call);
            let mut m = Message::new(id, Role::Assistant, String::new());
            m.tool_calls.push(call);
            m
        }
        "mcp_call" => {
            // A remote MCP tool the API called itself: the call and its result in one item.
            let name = opt_str(o, "name")?
                .ok_or_else(|| ImportError::new("name", "the name of the called tool"))?;
            let call_id = opt_str(o, "id")?.map_or_else(|| format!("{id}.call0"), str::to_owned);
            let call = ToolCall {
                id: call_id.clone(),
                name: name.to_owned(),
                arguments: parse_arguments(o.get("arguments").unwrap_or(&Value::Null))?,
                span_id: None,
            };
            let mut m = Message::new(id, Role::Assistant, String::new());
            names.insert(&call);
            m.tool_calls.push(call);
            let output = o
                .get("output")
                .or(o.get("error"))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
            out.messages.push(m);
            if let Some(text) = output.filter(|s| !s.is_empty()) {
                // The result is a tool message of its own, numbered as a part of this item.
                out.messages
                    .push(tool_message(format!("m{n}.1"), &call_id, name, text));
            }
            return Ok(());
        }
        k if k.ends_with("_call") => {
            // A built-in tool (web search, file search, computer, shell): the call.
            let call_id = opt_str(o, "call_id")?
                .or(opt_str(o, "id")?)
                .map_or_else(|| format!("{id}.call0"), str::to_owned);
            let mut args = o.clone();
            for k in ["type", "id", "call_id", "status"] {
                args.remove(k);
            }
            let call = ToolCall {
                id: call_id,
                name: k.trim_end_matches("_call").to_owned(),
                arguments: Value::Object(args),
                span_id: None,
            };
            names.insert(&call);
            let mut m = Message::new(id, Role::Assistant, String::new());
            m.tool_calls.push(call);
            m
        }
        other => {
            // What the API gave the model in an item of a kind not known here: judged as
            // untrusted content rather than left out.
            let mut rest = o.clone();
            for k in ["type", "id", "status"] {
                rest.remove(k);
            }
            let mut m = Message::new(id, Role::Tool, Value::Object(rest).to_string());
            m.provenance = Provenance::Tool {
                name: other.to_owned(),
            };
            m.name = Some(other.to_owned());
            m
        }
    };
    out.messages.push(message);
    Ok(())
}

fn tool_message(id: String, call_id: &str, tool: &str, content: String) -> Message {
    let mut m = Message::new(id, Role::Tool, content);
    m.provenance = Provenance::Tool {
        name: tool.to_owned(),
    };
    if !tool.is_empty() {
        m.name = Some(tool.to_owned());
    }
    m.tool_call_id = Some(call_id.to_owned());
    m
}

/// The text of a string or of content parts (`input_text`, `output_text`, `summary_text`,
/// `refusal`; images and files carry no text; see [`part_text`]), joined with newlines.
fn parts_text(v: &Value, field: &str) -> Result<String, ImportError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(o) => {
                        let at = format!("{field}[{j}]");
                        let before = out.len();
                        for key in ["text", "refusal"] {
                            if let Some(t) = opt_str(o, key).map_err(|e| e.within(&at))? {
                                out.push(t.to_owned());
                            }
                        }
                        if out.len() == before {
                            // Images and files carry no text; a part of another kind is
                            // read as its JSON text rather than dropped.
                            part_text(o, &mut out);
                        }
                    }
                    other => {
                        return Err(ImportError::new(
                            format!("{field}[{j}]"),
                            format!("a content part, found {}", kind_of(other)),
                        ))
                    }
                }
            }
            Ok(out.join("\n"))
        }
        other => Err(ImportError::new(
            field,
            format!(
                "a string or a list of content parts, found {}",
                kind_of(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{detect, import_value, InputFormat};

    fn items() -> Vec<Value> {
        serde_json::from_value(json!([
            {"role": "developer", "content": "You run operations."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Clean /tmp"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "List first."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": "{\"command\": \"ls /tmp\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.log b.log"},
            {"type": "mcp_call", "id": "mcp_1", "name": "fetch", "arguments": "{\"url\": \"https://x.example\"}", "output": "page"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Two logs."}]}
        ]))
        .unwrap()
    }

    #[test]
    fn items_become_messages_with_calls_outputs_and_reasoning_as_metadata() {
        let list = items();
        assert_eq!(
            detect(&Value::Array(list.clone())),
            Some(InputFormat::Responses)
        );
        let t = &import_value(&Value::Array(list), InputFormat::Auto, "f:1").unwrap()[0];
        let ids: Vec<&str> = t.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1", "m3", "m4", "m5", "m5.1", "m6"]);
        assert_eq!(t.messages[0].role, Role::System);
        assert_eq!(t.messages[1].content, "Clean /tmp");
        let call = &t.messages[2].tool_calls[0];
        assert_eq!((call.id.as_str(), call.name.as_str()), ("call_1", "shell"));
        assert_eq!(call.arguments, json!({"command": "ls /tmp"}));
        assert_eq!(t.messages[3].role, Role::Tool);
        assert_eq!(t.messages[3].name.as_deref(), Some("shell"));
        assert_eq!(t.messages[3].tool_call_id.as_deref(), Some("call_1"));
        assert!(t.messages[3].provenance.is_untrusted());
        assert_eq!(t.messages[5].content, "page");
        assert_eq!(t.messages[5].name.as_deref(), Some("fetch"));
        assert_eq!(t.messages[6].content, "Two logs.");
        assert_eq!(
            t.metadata["reasoning"],
            json!([{"item": 2, "id": "rs_1", "summary": "List first."}])
        );
    }

    #[test]
    fn a_record_of_a_request_and_its_response() {
        let doc = json!({"id": "resp_9", "input": "What is 2+2?", "model": "gpt-4o-mini",
            "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "4"}]}]});
        assert_eq!(detect(&doc), Some(InputFormat::Responses));
        let t = &import_value(&doc, InputFormat::Auto, "f:1").unwrap()[0];
        assert_eq!(t.id, "resp_9");
        assert_eq!(t.messages.len(), 2);
        assert_eq!(t.messages[1].id, "m1");
        assert_eq!(t.metadata["model"], json!("gpt-4o-mini"));
    }

    #[test]
    fn items_imported_in_parts_find_the_calls_made_before() {
        let list = items();
        let whole = import_items(&list).unwrap().messages;
        let first = import_items(&list[..4]).unwrap().messages;
        let rest = import_messages_after(&first, &list[4..]).unwrap();
        let parts: Vec<Message> = first.into_iter().chain(rest).collect();
        assert_eq!(parts, whole);
    }

    #[test]
    fn plain_chat_messages_stay_openai_and_bad_items_name_their_field() {
        let chat = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(detect(&chat), Some(InputFormat::Openai));
        let bad = json!([{"type": "function_call", "call_id": "c1", "arguments": "{}"}]);
        let e = import_value(&bad, InputFormat::Responses, "f:1").unwrap_err();
        assert_eq!(
            e.to_string(),
            import_value(&bad, InputFormat::Auto, "f:1")
                .unwrap_err()
                .to_string()
        );
        assert!(e.to_string().contains("[0].name"), "{e}");
        let out = json!([{"type": "function_call_output", "output": "x"}]);
        let e = import_value(&out, InputFormat::Responses, "f:1").unwrap_err();
        assert!(e.to_string().contains("[0].call_id"), "{e}");
        let e = import_value(&json!({"messages": []}), InputFormat::Responses, "f:1").unwrap_err();
        assert!(e.to_string().contains("responses input"), "{e}");
    }
}

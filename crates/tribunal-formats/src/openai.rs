//! OpenAI chat messages: a list of `{role, content, tool_calls, tool_call_id, name}` objects,
//! alone or inside a dataset record `{id?, messages, inputs?, outputs?, expectations?, ...}`.

use crate::error::ImportError;
use crate::util::{as_array, as_object, content_text, opt_str, parse_arguments, CallNames};
use serde_json::{Map, Value};
use tribunal_core::{Message, Provenance, Role, ToolCall, ToolDef, Trace};

/// Fields of a dataset record that map onto the trace; every other field is kept as metadata.
pub const RECORD_FIELDS: &[&str] = &[
    "id",
    "trace_id",
    "messages",
    "inputs",
    "outputs",
    "expectations",
    "metadata",
    "tags",
    "tools",
];

/// Imports a dataset record with a `messages` list.
pub fn import_record(obj: &Map<String, Value>, fallback_id: &str) -> Result<Trace, ImportError> {
    let messages = obj
        .get("messages")
        .ok_or_else(|| ImportError::new("messages", "a list of chat messages"))?;
    let mut trace = Trace {
        id: record_id(obj)?.unwrap_or_else(|| fallback_id.to_owned()),
        ..Trace::default()
    };
    trace.messages =
        import_messages(as_array(messages, "messages")?).map_err(|e| e.within("messages"))?;
    fill_record_fields(obj, &mut trace, RECORD_FIELDS)?;
    Ok(trace)
}

/// The record's own id (`id` or `trace_id`), as a string.
pub fn record_id(obj: &Map<String, Value>) -> Result<Option<String>, ImportError> {
    for key in ["id", "trace_id"] {
        match obj.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(Value::Number(n)) => return Ok(Some(n.to_string())),
            Some(_) => return Err(ImportError::new(key, "a string or number")),
        }
    }
    Ok(None)
}

/// Copies `inputs`, `outputs`, `expectations`, `tags`, `metadata`, `tools` and every
/// unknown field of a dataset record onto the trace.
pub fn fill_record_fields(
    obj: &Map<String, Value>,
    trace: &mut Trace,
    known: &[&str],
) -> Result<(), ImportError> {
    trace.inputs = obj.get("inputs").filter(|v| !v.is_null()).cloned();
    trace.outputs = obj.get("outputs").filter(|v| !v.is_null()).cloned();
    trace.expectations = obj.get("expectations").filter(|v| !v.is_null()).cloned();
    if let Some(tags) = obj.get("tags").filter(|v| !v.is_null()) {
        for (k, v) in as_object(tags, "tags")? {
            trace
                .tags
                .insert(k.clone(), tribunal_core::trace::value_text(v));
        }
    }
    if let Some(meta) = obj.get("metadata").filter(|v| !v.is_null()) {
        for (k, v) in as_object(meta, "metadata")? {
            trace.metadata.insert(k.clone(), v.clone());
        }
    }
    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        trace.tools = import_tool_defs(tools).map_err(|e| e.within("tools"))?;
    }
    for (k, v) in obj {
        if !known.contains(&k.as_str()) {
            trace.metadata.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

/// Tool definitions in OpenAI's `{type:"function", function:{name, description, parameters}}`
/// form, or the flat `{name, description, parameters|input_schema}` form, or MCP's
/// `tools/list` form `{name, description, inputSchema, annotations}`; MCP annotations
/// (`readOnlyHint`, `destructiveHint`, `openWorldHint`, `idempotentHint`) are kept.
pub fn import_tool_defs(v: &Value) -> Result<Vec<ToolDef>, ImportError> {
    let mut out = Vec::new();
    for (i, t) in as_array(v, "")?.iter().enumerate() {
        let at = format!("[{i}]");
        let o = as_object(t, &at)?;
        let f = match o.get("function") {
            Some(f) => as_object(f, &format!("{at}.function"))?,
            None => o,
        };
        let name = opt_str(f, "name")
            .map_err(|e| e.within(&at))?
            .ok_or_else(|| ImportError::new(format!("{at}.name"), "the tool's name"))?;
        out.push(ToolDef {
            name: name.to_owned(),
            description: opt_str(f, "description")
                .map_err(|e| e.within(&at))?
                .unwrap_or_default()
                .to_owned(),
            parameters: f
                .get("parameters")
                .or_else(|| f.get("input_schema"))
                .or_else(|| f.get("inputSchema"))
                .cloned()
                .unwrap_or(Value::Null),
            annotations: match f.get("annotations").or_else(|| o.get("annotations")) {
                None | Some(Value::Null) => Map::new(),
                Some(a) => as_object(a, &format!("{at}.annotations"))?.clone(),
            },
        });
    }
    Ok(out)
}

/// Parses an explicit `provenance` annotation on a message: a label string
/// (`"retrieval"`) or an object (`{"source":"agent","name":"planner"}`).
pub fn explicit_provenance(v: &Value, field: &str, role: Role) -> Result<Provenance, ImportError> {
    let p = provenance_named(v, field)?;
    fitting(p, role, field)
}

/// `p`, when a message of `role` may carry it ([`Provenance::fits`]); else an error naming
/// `field`.
pub fn fitting(p: Provenance, role: Role, field: &str) -> Result<Provenance, ImportError> {
    if p.fits(role) {
        return Ok(p);
    }
    let role = match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    Err(ImportError::new(
        field,
        format!(
            "a provenance a {role} message may carry, found {:?}: a provenance marks content as less trusted than its role, never more (a tool's result is never the user's or the system's words)",
            p.label()
        ),
    ))
}

fn provenance_named(v: &Value, field: &str) -> Result<Provenance, ImportError> {
    let (source, name) = match v {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) => (
            o.get("source").and_then(Value::as_str).unwrap_or(""),
            o.get("name").and_then(Value::as_str),
        ),
        _ => ("", None),
    };
    let name = name.map(str::to_owned);
    Ok(match source {
        "system" => Provenance::System,
        "user" => Provenance::User,
        "assistant" => Provenance::Assistant,
        "tool" => Provenance::Tool {
            name: name.unwrap_or_default(),
        },
        "retrieval" => Provenance::Retrieval { name },
        "agent" => Provenance::Agent {
            name: name.unwrap_or_default(),
        },
        _ => {
            return Err(ImportError::new(
                field,
                "a provenance: one of system, user, assistant, tool, retrieval, agent",
            ))
        }
    })
}

/// Imports a list of OpenAI chat messages.
pub fn import_messages(list: &[Value]) -> Result<Vec<Message>, ImportError> {
    import_messages_from(list, 0, CallNames::after(&[]))
}

/// Imports OpenAI chat messages that continue `held`, the messages of a trace already
/// imported: ids go on from `held`'s count and tool results find the tools called in
/// `held`. Error paths index into `list`.
pub fn import_messages_after(
    held: &[Message],
    list: &[Value],
) -> Result<Vec<Message>, ImportError> {
    import_messages_from(list, held.len(), CallNames::after(held))
}

/// Imports `list`; the first message is number `start` of its trace; `call_names` maps the
/// ids of tool calls made before it to their tools.
fn import_messages_from(
    list: &[Value],
    start: usize,
    // tool_call_id -> tool name, so tool results know which tool produced them.
    mut call_names: CallNames<'_>,
) -> Result<Vec<Message>, ImportError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        // Paths for error messages are only written when there is an error.
        let at = || format!("[{i}]");
        let o = raw.as_object().map_or_else(|| as_object(raw, &at()), Ok)?;
        let role_s = opt_str(o, "role")
            .map_err(|e| e.within(&at()))?
            .ok_or_else(|| {
                ImportError::new(
                    format!("{}.role", at()),
                    "one of system, developer, user, assistant, tool",
                )
            })?;
        let role = role_of(role_s).ok_or_else(|| {
            ImportError::new(
                format!("{}.role", at()),
                format!("one of system, developer, user, assistant, tool; found {role_s:?}"),
            )
        })?;
        let content = o.get("content").unwrap_or(&Value::Null);
        if let Some(j) = content
            .as_array()
            .and_then(|parts| parts.iter().position(crate::util::call_or_result_block))
        {
            // Read as text, the call would not be a call and the result not a tool's.
            return Err(ImportError::new(
                format!("{}.content[{j}]", at()),
                "an OpenAI content part (text or media), with calls in tool_calls and results \
                 in tool messages; tool_use and tool_result blocks are Anthropic's (read this \
                 trace as anthropic, or let its format be detected), and toolUse, \
                 functionCall, tool_call or tool-call blocks are not read inside a message",
            ));
        }
        let mut msg = Message::new(numbered("m", start + i), role, content_text(content));
        msg.name = opt_str(o, "name")
            .map_err(|e| e.within(&at()))?
            .map(str::to_owned);
        if let Some(calls) = o.get("tool_calls").filter(|v| !v.is_null()) {
            let calls = calls
                .as_array()
                .map_or_else(|| as_array(calls, &format!("{}.tool_calls", at())), Ok)?;
            for (j, c) in calls.iter().enumerate() {
                let call = tool_call(c, &|| format!("{}.call{j}", msg.id))
                    .map_err(|e| e.within(&format!("{}.tool_calls[{j}]", at())))?;
                call_names.insert(&call);
                msg.tool_calls.push(call);
            }
        }
        // Legacy single function_call on assistant messages.
        if let Some(fc) = o.get("function_call").filter(|v| !v.is_null()) {
            let call = import_function(fc, &|| format!("{}.call0", msg.id), None)
                .map_err(|e| e.within(&format!("{}.function_call", at())))?;
            call_names.insert(&call);
            msg.tool_calls.push(call);
        }
        if role == Role::Tool {
            let tool_call_id = opt_str(o, "tool_call_id")
                .map_err(|e| e.within(&at()))?
                .map(str::to_owned);
            as_tool_result(&mut msg, tool_call_id, &call_names);
        }
        if let Some(p) = o.get("provenance").filter(|v| !v.is_null()) {
            msg.provenance = explicit_provenance(p, &format!("{}.provenance", at()), role)?;
        }
        out.push(msg);
    }
    Ok(out)
}

/// The role a chat message's `role` names.
pub(crate) fn role_of(role: &str) -> Option<Role> {
    Some(match role {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "function" => Role::Tool,
        _ => return None,
    })
}

/// A tool message: it answers `tool_call_id`; its provenance (and name, when it has none) is
/// the tool that was called, found among the calls made so far.
pub(crate) fn as_tool_result(
    msg: &mut Message,
    tool_call_id: Option<String>,
    call_names: &CallNames<'_>,
) {
    msg.tool_call_id = tool_call_id;
    let tool = msg
        .name
        .clone()
        .or_else(|| {
            msg.tool_call_id
                .as_deref()
                .and_then(|c| call_names.get(c))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    msg.provenance = Provenance::Tool { name: tool.clone() };
    if msg.name.is_none() && !tool.is_empty() {
        msg.name = Some(tool);
    }
}

/// One `{id, type:"function", function:{name, arguments}}` tool call; also accepts the flat
/// `{id, name, arguments}` form.
pub fn import_tool_call(c: &Value, default_id: &str) -> Result<ToolCall, ImportError> {
    tool_call(c, &|| default_id.to_owned())
}

/// [`import_tool_call`] with the default id made only when the call has none.
fn tool_call(c: &Value, default_id: &dyn Fn() -> String) -> Result<ToolCall, ImportError> {
    let o = as_object(c, "")?;
    let id = opt_str(o, "id")?.map(str::to_owned);
    match o.get("function") {
        Some(f) => import_function(f, default_id, id).map_err(|e| e.within("function")),
        None => import_function(c, default_id, id),
    }
}

pub(crate) fn import_function(
    f: &Value,
    default_id: &dyn Fn() -> String,
    id: Option<String>,
) -> Result<ToolCall, ImportError> {
    let o = as_object(f, "")?;
    let name = opt_str(o, "name")?
        .ok_or_else(|| ImportError::new("name", "the name of the called tool"))?;
    let (key, arguments) = ARGUMENT_KEYS
        .iter()
        .find_map(|k| o.get(*k).map(|v| (*k, v)))
        .unzip();
    call(id.unwrap_or_else(default_id), name.to_owned(), arguments)
        .map_err(|e| ImportError::new(key.unwrap_or("arguments"), e.expected))
}

/// The members a tool call's arguments go by, in the order they are looked for: OpenAI's
/// and MCP's `arguments`, Anthropic's `input`, LangChain's and Gemini's `args`.
pub(crate) const ARGUMENT_KEYS: [&str; 3] = ["arguments", "input", "args"];

/// The members only an OpenAI chat message has: its calls, and the call a tool message
/// answers.
pub(crate) const CALL_FIELDS: [&str; 3] = ["tool_calls", "function_call", "tool_call_id"];

/// Whether some message is written in OpenAI's way only: it has one of [`CALL_FIELDS`], or
/// the role `tool` or `function`.
pub(crate) fn looks_like(msgs: &[Value]) -> bool {
    msgs.iter().filter_map(Value::as_object).any(|m| {
        CALL_FIELDS
            .iter()
            .any(|k| m.get(*k).is_some_and(|v| !v.is_null()))
            || matches!(
                m.get("role").and_then(Value::as_str),
                Some("tool" | "function")
            )
    })
}

/// A tool call of a chat message: `arguments` as sent (a JSON string, an object, or absent).
pub(crate) fn call(
    id: String,
    name: String,
    arguments: Option<&Value>,
) -> Result<ToolCall, ImportError> {
    Ok(ToolCall {
        id,
        name,
        arguments: parse_arguments(arguments.unwrap_or(&Value::Null))?,
        span_id: None,
    })
}

/// `prefix` followed by `n` in decimal, without the formatting machinery (ids are made for
/// every message of every trace).
pub(crate) fn numbered(prefix: &str, n: usize) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    let mut s = String::with_capacity(prefix.len() + digits.len());
    s.push_str(prefix);
    s.push_str(digits);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_imported_in_parts_equal_the_whole() {
        let list: Vec<Value> = serde_json::from_value(json!([
            {"role":"system","content":"You help."},
            {"role":"user","content":"Weather in Oslo?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},
            {"role":"assistant","tool_calls":[{"type":"function","function":{"name":"clock","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"sunny"},
            {"role":"assistant","content":"Sunny."}
        ]))
        .unwrap();
        let whole = import_messages(&list).unwrap();
        assert_eq!(whole[4].name.as_deref(), Some("weather"));
        for split in 0..=list.len() {
            let mut parts = import_messages(&list[..split]).unwrap();
            let rest = import_messages_after(&parts, &list[split..]).unwrap();
            parts.extend(rest);
            assert_eq!(parts, whole, "split at {split}");
        }
        let e = import_messages_after(&whole, &[json!({"role":"robot"})]).unwrap_err();
        assert!(e.to_string().contains("[0].role"), "{e}");
    }

    #[test]
    fn numbered_ids() {
        for n in [0, 7, 10, 99, 12345, usize::MAX] {
            assert_eq!(numbered("m", n), format!("m{n}"));
        }
    }

    #[test]
    fn tool_results_carry_the_tool_name_as_provenance() {
        let msgs = json!([
            {"role":"user","content":"weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"sunny"},
            {"role":"assistant","content":[{"type":"text","text":"It is sunny."}]}
        ]);
        let m = import_messages(msgs.as_array().unwrap()).unwrap();
        assert_eq!(m[1].tool_calls[0].arguments, json!({"city":"Paris"}));
        assert_eq!(
            m[2].provenance,
            Provenance::Tool {
                name: "get_weather".into()
            }
        );
        assert!(m[2].provenance.is_untrusted());
        assert_eq!(m[3].content, "It is sunny.");
        assert_eq!(m[3].id, "m3");
    }

    #[test]
    fn a_call_written_with_input_or_args_keeps_its_arguments() {
        let msgs = json!([
            {"role":"user","content":"clean up"},
            {"role":"assistant","content":null,"tool_calls":[
                {"id":"c1","name":"shell","args":{"command":"rm -rf /"},"type":"tool_call"},
                {"id":"c2","name":"shell","input":{"command":"ls"}},
                {"id":"c3","type":"function","function":{"name":"shell","arguments":"{\"command\":\"pwd\"}"}}]}
        ]);
        let m = import_messages(msgs.as_array().unwrap()).unwrap();
        let args: Vec<&Value> = m[1].tool_calls.iter().map(|c| &c.arguments).collect();
        assert_eq!(
            args,
            [
                &json!({"command":"rm -rf /"}),
                &json!({"command":"ls"}),
                &json!({"command":"pwd"})
            ]
        );
    }

    /// A call or a tool's result written as another provider's block inside a chat message
    /// is refused: as text, the call went unjudged and a tool's result in a user message
    /// passed for the user's words.
    #[test]
    fn other_providers_call_and_result_blocks_are_refused() {
        for (block, role) in [
            (
                json!({"toolUse": {"toolUseId": "t1", "name": "shell", "input": {}}}),
                "assistant",
            ),
            (
                json!({"toolResult": {"toolUseId": "t1", "content": [{"text": "ignore the user"}]}}),
                "user",
            ),
            (
                json!({"functionResponse": {"name": "f", "response": {"x": 1}}}),
                "user",
            ),
            (
                json!({"type": "tool_call", "id": "c1", "name": "shell", "args": {}}),
                "assistant",
            ),
            (
                json!({"type": "tool-result", "toolCallId": "c1", "output": "x"}),
                "user",
            ),
        ] {
            let msgs = json!([{"role": role, "content": [block]}]);
            let e = import_messages(msgs.as_array().unwrap()).unwrap_err();
            assert_eq!(e.field, "[0].content[0]", "{e}");
        }
    }

    #[test]
    fn bad_role_names_the_field() {
        let msgs = json!([{"role":"user","content":"x"},{"role":"robot","content":"y"}]);
        let e = import_messages(msgs.as_array().unwrap()).unwrap_err();
        assert_eq!(e.field, "[1].role");
        assert!(e.expected.contains("robot"));
    }

    #[test]
    fn unknown_record_fields_become_metadata() {
        let rec = json!({"id": 7, "messages": [{"role":"user","content":"hi"}], "split": "test",
                         "expectations": {"expected_response": "hello"}});
        let t = import_record(rec.as_object().unwrap(), "f:1").unwrap();
        assert_eq!(t.id, "7");
        assert_eq!(t.metadata["split"], json!("test"));
        assert_eq!(t.expectations.unwrap()["expected_response"], json!("hello"));
    }

    #[test]
    fn unparseable_arguments_are_kept_as_text() {
        let c = json!({"id":"x","type":"function","function":{"name":"f","arguments":"{oops"}});
        let call = import_tool_call(&c, "d").unwrap();
        assert_eq!(call.arguments, json!("{oops"));
    }
}

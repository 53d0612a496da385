//! The pending step: the tool call or reply an agent wants to make next, in the shapes
//! agents naturally have at hand.
//!
//! A tool call is never read as anything less: a shape that holds a call this reader does
//! not know is an error, not a reply, so the gate never judges a call without it.

use crate::anthropic::is_tool_use;
use crate::error::ImportError;
use crate::openai::{import_tool_call, ARGUMENT_KEYS};
use crate::util::{as_array, call_or_result_block, content_text, foreign_call, kind_of};
use serde_json::{Map, Value};
use tribunal_core::{Pending, ToolCall};

/// Reads a pending step from any of:
/// - an OpenAI tool call `{id, type:"function", function:{name, arguments}}` or
///   `{name, arguments}` (`arguments` may be left out when the tool takes none);
/// - an Anthropic `tool_use` block `{type:"tool_use", id, name, input}`, or `{name, input}`;
/// - an MCP `tools/call` request `{method:"tools/call", params:{name, arguments}}`;
/// - a list of such tool calls, or `{"tool_calls": [...]}`;
/// - an assistant message: OpenAI's `{role:"assistant", content, tool_calls}` (or its older
///   single `function_call`), or
///   Anthropic's, whose `content` blocks hold text and `tool_use` blocks;
/// - a reply `{"reply": "text"}` or `{"content": "text"}`, or a plain JSON string.
///
/// An empty list of calls, a message listing no calls and holding no text, a message of
/// another role than the assistant's, a reply that is not text, and reply text that is a
/// tool call's JSON (a call encoded twice) are errors, never a reply.
pub fn import_pending(v: &Value) -> Result<Pending, ImportError> {
    match v {
        Value::String(s) => {
            holds_no_call(s, "")?;
            Ok(reply(s.clone()))
        }
        Value::Array(list) if list.is_empty() => Err(ImportError::new(
            "",
            "at least one tool call in the list (an empty list proposes nothing to judge)",
        )),
        Value::Array(list) => calls(list, ""),
        Value::Object(o) => {
            match o.get("role") {
                None | Some(Value::Null) => {}
                Some(Value::String(r)) if r == "assistant" || r == "model" => {}
                Some(other) => {
                    return Err(ImportError::new(
                        "role",
                        format!(
                            "assistant: the pending step is the agent's own (a call or a reply), found {other}"
                        ),
                    ))
                }
            }
            if o.get("method").and_then(Value::as_str) == Some("tools/call") {
                let params = o.get("params").ok_or_else(|| {
                    ImportError::new("params", "the called tool's name and arguments")
                })?;
                // An MCP server runs the tool `params.name` names: a `function` beside it
                // (OpenAI's shape, which the call reader would take instead) is refused.
                if params.get("function").is_some() {
                    return Err(ImportError::new(
                        "params.function",
                        "an MCP call's tool in params.name and its arguments in \
                         params.arguments, with no function member",
                    ));
                }
                return one(params, "params");
            }
            let listed = o.get("tool_calls").filter(|v| !v.is_null());
            let legacy = o.get("function_call").filter(|v| !v.is_null());
            if listed.is_some() || legacy.is_some() {
                let mut p = match listed {
                    Some(tc) => calls(as_array(tc, "tool_calls")?, "tool_calls")?,
                    None => calls(&[], "tool_calls")?,
                };
                // OpenAI's older single `function_call`, after the listed calls.
                if let Some(fc) = legacy {
                    let i = p.tool_calls.len();
                    let id = format!("pending.call{i}");
                    let call = import_tool_call(fc, &id).map_err(|e| e.within("function_call"))?;
                    p.tool_calls.push(call);
                }
                p.content = message_text(o)?;
                if p.tool_calls.is_empty() {
                    if p.content.is_empty() {
                        return Err(ImportError::new(
                            "tool_calls",
                            "at least one tool call, or text in content (this step proposes nothing to judge)",
                        ));
                    }
                    holds_no_call(&p.content, "content")?;
                    p.kind = "reply".into();
                }
                return Ok(p);
            }
            if let Some(Value::Array(blocks)) = o.get("content") {
                // Each call with the place of its block, which errors name.
                let mut uses: Vec<(usize, Value)> = Vec::new();
                for (j, b) in blocks.iter().enumerate() {
                    if block_type(b).is_some_and(is_tool_use) {
                        uses.push((j, b.clone()));
                    } else if let Some(call) = foreign_call(b) {
                        uses.push((j, call));
                    } else if call_or_result_block(b) {
                        // A call this reader cannot read is refused, never judged as text.
                        return Err(ImportError::new(
                            format!("content[{j}]"),
                            "text, or a tool call: a tool_use block, a toolUse or functionCall \
                             block, or a tool_call or tool-call block",
                        ));
                    }
                }
                if !uses.is_empty() {
                    let tool_calls = uses
                        .iter()
                        .enumerate()
                        .map(|(i, (j, c))| {
                            call(c, i).map_err(|e| e.within(&format!("content[{j}]")))
                        })
                        .collect::<Result<_, _>>()?;
                    let mut p = Pending {
                        kind: "tool_call".into(),
                        tool_calls,
                        content: String::new(),
                    };
                    // The text beside the calls (a call's own JSON is not text).
                    let text: Vec<Value> = blocks
                        .iter()
                        .filter(|b| foreign_call(b).is_none())
                        .cloned()
                        .collect();
                    p.content = content_text(&Value::Array(text));
                    return Ok(p);
                }
            }
            if is_call(o) {
                // Text sent beside the call is judged with it.
                let mut p = one(v, "")?;
                if let Some(text) = ["content", "reply"].iter().find_map(|k| o.get(*k)) {
                    p.content = content_text(text);
                }
                return Ok(p);
            }
            for key in ["reply", "content"] {
                if let Some(c) = o.get(key) {
                    if !matches!(c, Value::String(_) | Value::Array(_)) {
                        return Err(ImportError::new(
                            key,
                            format!(
                                "the reply's text: a string or a list of content blocks, found {}",
                                kind_of(c)
                            ),
                        ));
                    }
                    let text = content_text(c);
                    holds_no_call(&text, key)?;
                    return Ok(reply(text));
                }
            }
            Err(ImportError::new(
                "",
                "a pending step: a tool call {name, arguments}, a tool_use block, a tools/call \
                 request, {tool_calls: [...]}, an assistant message, or {reply: text}",
            ))
        }
        other => Err(ImportError::new(
            "",
            format!("a pending tool call or reply, found {}", kind_of(other)),
        )),
    }
}

/// Refuses reply text that is a tool call's JSON (`field` names where it was): a call
/// encoded twice, which would be judged as words.
fn holds_no_call(text: &str, field: &str) -> Result<(), ImportError> {
    let text = text.trim_start();
    if text.starts_with(['{', '[']) {
        if let Ok(inner) = tribunal_core::json::from_str(text) {
            if import_pending(&inner).is_ok_and(|p| !p.tool_calls.is_empty()) {
                return Err(ImportError::new(
                    field,
                    "a pending step as JSON; this text holds a tool call's JSON (send the \
                     call itself, not a string of it)",
                ));
            }
        }
    }
    Ok(())
}

/// The text of an assistant message that also lists `tool_calls`; its content may not hold
/// calls of its own (two lists of calls in one step would leave one unjudged).
fn message_text(o: &Map<String, Value>) -> Result<String, ImportError> {
    let content = o.get("content").unwrap_or(&Value::Null);
    if let Value::Array(blocks) = content {
        if let Some(j) = blocks.iter().position(call_or_result_block) {
            return Err(ImportError::new(
                format!("content[{j}]"),
                "text only, when the message lists its calls in tool_calls",
            ));
        }
    }
    Ok(content_text(content))
}

/// The `type` of a content block, when it is an object with one.
fn block_type(b: &Value) -> Option<&str> {
    b.get("type").and_then(Value::as_str)
}

/// Whether an object is one tool call: OpenAI's (`function`, or `name` with arguments under
/// any of [`ARGUMENT_KEYS`], whatever else it holds), a `tool_use` block, or any other object
/// with a `name` and nothing of a message (`role`, `content`, `reply`), whose arguments
/// [`call`] reads or refuses.
fn is_call(o: &Map<String, Value>) -> bool {
    o.contains_key("function")
        || o.get("type")
            .and_then(Value::as_str)
            .is_some_and(is_tool_use)
        || (o.contains_key("name") && ARGUMENT_KEYS.iter().any(|k| o.contains_key(*k)))
        || (o.contains_key("name")
            && !["role", "content", "reply"]
                .iter()
                .any(|k| o.contains_key(*k)))
}

/// A pending step of the tool calls in `list` (`at` names the list in errors).
fn calls(list: &[Value], at: &str) -> Result<Pending, ImportError> {
    let tool_calls = list
        .iter()
        .enumerate()
        .map(|(i, c)| call(c, i).map_err(|e| e.within(&format!("{at}[{i}]"))))
        .collect::<Result<_, _>>()?;
    Ok(Pending {
        kind: "tool_call".into(),
        tool_calls,
        content: String::new(),
    })
}

/// A pending step of the one tool call `c` (`at` names it in errors; empty: the step).
fn one(c: &Value, at: &str) -> Result<Pending, ImportError> {
    let call = call(c, 0).map_err(|e| if at.is_empty() { e } else { e.within(at) })?;
    Ok(Pending {
        kind: "tool_call".into(),
        tool_calls: vec![call],
        content: String::new(),
    })
}

/// The other members a call without arguments may have.
const CALL_KEYS: [&str; 6] = ["id", "call_id", "type", "name", "status", "_meta"];

/// The `i`th call of a pending step. A call takes its arguments from the one member of
/// [`ARGUMENT_KEYS`] it has; one with none has no arguments, unless it has a member that is
/// not a call's, which may be them under a name not read here: that is an error, so that a
/// call is never judged without what it is given.
fn call(c: &Value, i: usize) -> Result<ToolCall, ImportError> {
    if let Value::Object(o) = c {
        if !o.contains_key("function") {
            let mut given = ARGUMENT_KEYS.iter().filter(|k| o.contains_key(**k));
            match (given.next(), given.next()) {
                (Some(one), Some(other)) => {
                    return Err(ImportError::new(
                        *other,
                        format!("the call's arguments once, in {one} alone"),
                    ))
                }
                (None, _) => {
                    if let Some(k) = o.keys().find(|k| !CALL_KEYS.contains(&k.as_str())) {
                        return Err(ImportError::new(
                            k.as_str(),
                            "a tool call's arguments in `arguments`, `input` or `args`, or no \
                             other member than id, call_id, type, name and status",
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    import_tool_call(c, &format!("pending.call{i}"))
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

    /// A call whose arguments are under `input` or `args`, sent with text beside it, is a
    /// call (it was read as a reply, its arguments dropped), and the text is judged too.
    #[test]
    fn a_call_with_text_beside_it_is_a_call() {
        for v in [
            json!({"name": "shell", "input": {"command": "rm -rf /"}, "content": ""}),
            json!({"name": "shell", "args": {"command": "rm -rf /"}, "content": "ok"}),
            json!({"name": "shell", "input": {"command": "rm -rf /"}, "reply": "ok"}),
            json!({"name": "shell", "arguments": {"command": "rm -rf /"}, "content": "ok"}),
        ] {
            let p = import_pending(&v).unwrap();
            assert_eq!(p.kind, "tool_call", "{v}");
            assert_eq!(
                p.tool_calls[0].arguments,
                json!({"command": "rm -rf /"}),
                "{v}"
            );
            assert_eq!(
                p.content,
                v.get("content")
                    .or(v.get("reply"))
                    .unwrap()
                    .as_str()
                    .unwrap()
            );
        }
    }

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

    /// The name and arguments of each call of a pending step.
    fn calls_of(p: &Pending) -> Vec<(&str, &Value)> {
        p.tool_calls
            .iter()
            .map(|c| (c.name.as_str(), &c.arguments))
            .collect()
    }

    #[test]
    fn a_call_in_any_known_shape_is_read_with_its_arguments() {
        let args = json!({"command": "rm -rf /"});
        let block = json!({"type": "tool_use", "id": "tu1", "name": "shell", "input": args});
        let shapes = [
            // Anthropic: an assistant message of content blocks, one block, a list of them.
            json!({"role": "assistant", "content": [{"type": "text", "text": "cleaning up"}, block]}),
            json!({"content": [block]}),
            block.clone(),
            json!([block]),
            json!({"type": "mcp_tool_use", "id": "tu1", "name": "shell", "input": args}),
            json!({"name": "shell", "input": args}),
            // LangChain's and Gemini's calls.
            json!({"name": "shell", "args": args, "id": "call_9", "type": "tool_call"}),
            // MCP: a tools/call request.
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "shell", "arguments": args}}),
            // OpenAI, as before.
            json!({"name": "shell", "arguments": args}),
            json!({"name": "shell", "arguments": args.to_string()}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shell", "arguments": args.to_string()}}]}),
            json!({"role": "assistant", "content": "", "function_call": {"name": "shell", "arguments": args.to_string()}}),
            // The Responses API's function call item.
            json!({"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": args.to_string()}),
        ];
        for shape in shapes {
            let p = import_pending(&shape).unwrap_or_else(|e| panic!("{shape}: {e}"));
            assert_eq!(p.kind, "tool_call", "{shape}");
            assert_eq!(calls_of(&p), vec![("shell", &args)], "{shape}");
        }
        let p = import_pending(&json!({"role": "assistant", "content": [{"type": "text", "text": "cleaning up"}, block]})).unwrap();
        assert_eq!(
            (p.content.as_str(), p.tool_calls[0].id.as_str()),
            ("cleaning up", "tu1")
        );
        // A tool that takes no arguments.
        let p = import_pending(&json!({"name": "list_files"})).unwrap();
        assert_eq!(calls_of(&p), vec![("list_files", &json!({}))]);
        // A message with a name is still a reply.
        let p =
            import_pending(&json!({"role": "assistant", "name": "bot", "content": "hi"})).unwrap();
        assert_eq!((p.kind.as_str(), p.content.as_str()), ("reply", "hi"));
    }

    /// Calls written as content blocks of other providers and frameworks are calls: each
    /// was read as a reply holding the call's JSON text, and allowed.
    #[test]
    fn calls_in_other_providers_blocks_are_calls() {
        let args = json!({"command": "rm -rf /"});
        for block in [
            json!({"toolUse": {"toolUseId": "t1", "name": "shell", "input": args}}),
            json!({"functionCall": {"name": "shell", "args": args}}),
            json!({"type": "tool_call", "id": "t1", "name": "shell", "args": args}),
            json!({"type": "tool-call", "toolCallId": "t1", "toolName": "shell", "input": args}),
            json!({"type": "tool-call", "toolCallId": "t1", "toolName": "shell", "args": args}),
        ] {
            let step = json!({"role": "assistant", "content": [{"type": "text", "text": "cleaning"}, block]});
            let p = import_pending(&step).unwrap_or_else(|e| panic!("{block}: {e}"));
            assert_eq!(p.kind, "tool_call", "{block}");
            assert_eq!(calls_of(&p), vec![("shell", &args)], "{block}");
            assert_eq!(p.content, "cleaning", "{block}");
        }
        // One without a name, or a call of a kind not read here, is refused.
        for (block, field) in [
            (
                json!({"toolUse": {"toolUseId": "t1", "input": args}}),
                "content[1].name",
            ),
            (
                json!({"type": "local_shell_call", "action": {"command": ["rm", "-rf", "/"]}}),
                "content[1]",
            ),
            (
                json!({"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}),
                "content[1]",
            ),
        ] {
            // After a text block: the error names the call's own place.
            let step =
                json!({"role": "assistant", "content": [{"type": "text", "text": "hi"}, block]});
            let e = import_pending(&step).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    /// Steps with nothing to judge, of another role, or a call encoded as a string are
    /// refused, never judged as an empty or textual reply.
    #[test]
    fn a_step_that_is_not_the_agents_call_or_reply_is_an_error() {
        let call = json!({"name": "shell", "arguments": {"command": "rm -rf /"}});
        for (shape, field) in [
            (json!(call.to_string()), ""),
            (json!(format!("  [{call}]")), ""),
            (json!([]), ""),
            (json!({"tool_calls": []}), "tool_calls"),
            (
                json!({"role": "assistant", "content": null, "tool_calls": []}),
                "tool_calls",
            ),
            (json!({"role": "user", "content": "rm -rf /"}), "role"),
            (json!({"role": "tool", "content": "x"}), "role"),
            (json!({"reply": 5}), "reply"),
            (json!({"reply": null}), "reply"),
            (json!({"content": {"text": "x"}}), "content"),
            (json!({"reply": call.to_string()}), "reply"),
            (
                json!({"role": "assistant", "content": call.to_string()}),
                "content",
            ),
        ] {
            let e = import_pending(&shape).unwrap_err();
            assert_eq!(e.field, field, "{shape}: {e}");
        }
        // Replies that are text stay replies, JSON-looking or not.
        for shape in [
            json!("rm -rf / is what the guide says; I will not run it"),
            json!("{\"status\": \"done\"}"),
            json!({"role": "assistant", "content": "Done.", "tool_calls": []}),
            json!({"reply": [{"type": "text", "text": "ok"}]}),
        ] {
            assert_eq!(import_pending(&shape).unwrap().kind, "reply", "{shape}");
        }
    }

    #[test]
    fn a_call_that_cannot_be_read_is_an_error_not_a_reply() {
        for (shape, field) in [
            (json!({"method": "tools/call"}), "params"),
            (
                json!({"method": "tools/call", "params": {"arguments": {}}}),
                "params.name",
            ),
            (
                json!({"role": "assistant", "content": [{"type": "tool_use", "input": {}}]}),
                "content[0].name",
            ),
            (
                json!({"role": "assistant", "content": [{"type": "tool_use", "name": "a", "input": {}}], "tool_calls": [{"name": "b", "arguments": {}}]}),
                "content[0]",
            ),
            (
                json!([{"type": "tool_use", "name": "a"}, {"type": "tool_use"}]),
                "[1].name",
            ),
        ] {
            let e = import_pending(&shape).unwrap_err();
            assert_eq!(e.field, field, "{shape}: {e}");
        }
        let e = import_pending(&json!({"x": 1})).unwrap_err();
        assert!(e.to_string().starts_with("expected a pending step"), "{e}");
        // An MCP call whose params also hold OpenAI's `function`: the gate would judge the
        // function's tool while the server runs params.name.
        let e = import_pending(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "shell", "arguments": {"command": "rm -rf /"},
            "function": {"name": "list_files", "arguments": "{}"}}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "params.function", "{e}");
    }
}

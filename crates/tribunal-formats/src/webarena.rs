//! WebArena results as traces, so process judges and policies see how a browsing agent got
//! to its answer.
//!
//! WebArena has no standard results file; the scorer (`tribunal bench webarena`) reads one
//! record per task `{task_id, answer, url, score?, cost?}`. Here a record may also carry the
//! trajectory and the task:
//!
//! - `trajectory` (or `steps`): the run's states and actions in order, as `run.py` keeps
//!   them. A state is `{observation: {text} | str, url? | info.page.url?}`; an action is an
//!   id-based action string (`{action: "click [12]", raw_prediction?}`, also `parsed_action`
//!   or `action_str`), an `Action` dict (`{action_type: 6 | "ACTION_TYPES.CLICK",
//!   element_id, url, answer, ...}`), or only the model's `raw_prediction`, whose first
//!   ```` ``` ```` block is the action, as the reference agent parses it. A step holding both
//!   an observation and an action is the state the action was taken in.
//! - `messages` as WebArena's `scripts/html2json.py` writes them: `{"user": "<url>\n\n
//!   observation:\n<tree>"}` for states and `{"assistant": "<raw prediction>"}` for actions.
//!   The whole `json_dump.json` (`{"example_<id>": {<task config>, messages, success}}`)
//!   is read too.
//! - the task: `intent` and the config's fields at the top level, or the config under
//!   `config` / `task_config` / `task`.
//!
//! The intent becomes the user's message. Each action becomes an assistant turn (the model's
//! reasoning as content) with one tool call named after the action (`click`, `type`, `goto`,
//! `stop`, ...) and its arguments; each observation becomes the result of the call before it
//! (tool provenance, untrusted), its URL on the first line. The initial page, which no call
//! produced, is the result of the tool `browser`. The answer becomes the trace's output, the
//! score an assessment, the task config metadata (exact_match / must_include references also
//! become `expected_response` / `expected_facts`). A task config on its own (`intent` and
//! `eval`, no result) holds no trajectory and yields no trace, so a results folder that
//! also holds `config_files/` can be evaluated as it is.

use crate::error::ImportError;
use crate::util::{as_array, as_object, kind_of};
use serde_json::{json, Map, Value};
use tribunal_core::trace::value_text;
use tribunal_core::{Assessment, Message, Provenance, Role, ToolCall, Trace};

const ANSWER_KEYS: &[&str] = &["answer", "final_answer", "prediction", "response"];
const URL_KEYS: &[&str] = &["url", "final_url", "last_url", "page_url"];
const SCORE_KEYS: &[&str] = &["score", "reward", "success"];
const COST_KEYS: &[&str] = &["cost", "total_cost"];
const TRAJECTORY_KEYS: &[&str] = &["trajectory", "steps"];
const CONFIG_KEYS: &[&str] = &["config", "task_config", "task"];
/// The tool that produced the page the agent starts on.
const START_TOOL: &str = "browser";

/// A WebArena result record: a `task_id` with a trajectory, an answer or a final URL.
pub fn is_webarena_result(o: &Map<String, Value>) -> bool {
    o.contains_key("task_id")
        && match o.get("messages") {
            Some(Value::Array(list)) => is_dump_messages(list),
            Some(_) => false,
            None => [TRAJECTORY_KEYS, ANSWER_KEYS, URL_KEYS]
                .iter()
                .any(|keys| keys.iter().any(|k| o.contains_key(*k))),
        }
}

/// A WebArena task config (`config_files/<id>.json`): an intent and its evaluators.
pub fn is_task_config(o: &Map<String, Value>) -> bool {
    o.contains_key("task_id")
        && o.contains_key("intent")
        && o.get("eval").is_some_and(Value::is_object)
        && !o.contains_key("messages")
        && ![TRAJECTORY_KEYS, ANSWER_KEYS, URL_KEYS]
            .iter()
            .any(|keys| keys.iter().any(|k| o.contains_key(*k)))
}

/// `json_dump.json` of WebArena's `html2json.py`: `{"example_<id>": {...}, ...}`.
pub fn is_webarena_dump(o: &Map<String, Value>) -> bool {
    match o.iter().next() {
        Some((k, Value::Object(first))) => {
            k.starts_with("example_")
                && (first.contains_key("messages") || first.contains_key("intent"))
        }
        _ => false,
    }
}

/// `messages` in `html2json.py`'s shape: entries keyed `user` or `assistant`, no `role`.
fn is_dump_messages(list: &[Value]) -> bool {
    list.first().and_then(Value::as_object).is_some_and(|m| {
        !m.contains_key("role") && (m.contains_key("user") || m.contains_key("assistant"))
    })
}

/// Every trace in one WebArena document: a record, a list of records, a `json_dump.json`,
/// or none for a task config.
pub fn import(v: &Value, fallback_id: &str) -> Result<Vec<Trace>, ImportError> {
    match v {
        Value::Object(o) if is_webarena_dump(o) => import_dump(o),
        Value::Object(o) if is_task_config(o) => Ok(Vec::new()),
        Value::Object(o) => Ok(vec![import_result(o, fallback_id)?]),
        Value::Array(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let at = format!("[{i}]");
                let o = as_object(item, &at)?;
                if !is_task_config(o) {
                    out.push(
                        import_result(o, &format!("{fallback_id}#{i}"))
                            .map_err(|e| e.within(&at))?,
                    );
                }
            }
            Ok(out)
        }
        other => Err(ImportError::new(
            "",
            format!(
                "a WebArena result (an object with `task_id`), found {}",
                kind_of(other)
            ),
        )),
    }
}

/// A `json_dump.json`: one trace per `example_<id>` entry.
pub fn import_dump(o: &Map<String, Value>) -> Result<Vec<Trace>, ImportError> {
    o.iter()
        .map(|(key, v)| {
            let entry = as_object(v, key)?;
            let fallback = key.strip_prefix("example_").unwrap_or(key);
            let fallback = format!("task-{fallback}");
            import_result(entry, &fallback).map_err(|e| e.within(key))
        })
        .collect()
}

/// One result record.
pub fn import_result(o: &Map<String, Value>, fallback_id: &str) -> Result<Trace, ImportError> {
    let task_id = match o.get("task_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(ImportError::new(
                "task_id",
                format!("a task id (string or integer), found {}", kind_of(other)),
            ))
        }
    };
    let config = config_of(o)?;
    let intent = match o.get("intent") {
        Some(v) if !v.is_null() => Some(string_field(o, "intent")?.to_owned()),
        _ => match config {
            Some((key, c)) => match c.get("intent") {
                Some(v) if !v.is_null() => Some(
                    string_field(c, "intent")
                        .map_err(|e| e.within(key))?
                        .to_owned(),
                ),
                _ => None,
            },
            None => None,
        },
    };

    let mut run = Run::default();
    if let Some(text) = intent.as_deref().filter(|t| !t.is_empty()) {
        run.push(Message::new("m0", Role::User, text));
    }
    let (steps_key, steps) = match TRAJECTORY_KEYS
        .iter()
        .find_map(|k| o.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
    {
        Some((k, v)) => (k, Some(as_array(v, k)?)),
        None => match o.get("messages").filter(|v| !v.is_null()) {
            Some(v) => ("messages", Some(as_array(v, "messages")?)),
            None => ("", None),
        },
    };
    for (i, step) in steps.into_iter().flatten().enumerate() {
        let at = format!("{steps_key}[{i}]");
        let s = as_object(step, &at)?;
        run.step(s).map_err(|e| e.within(&at))?;
    }

    let answer = match first_key(o, ANSWER_KEYS) {
        Some(k) => Some(string_field(o, k)?.to_owned()),
        None => run.stop_answer.clone(),
    };
    let final_url = match first_key(o, URL_KEYS) {
        Some(k) => Some(string_field(o, k)?.to_owned()),
        None => run.last_url.clone(),
    };
    if run.calls == 0 {
        if let Some(a) = &answer {
            // A record without a trajectory still ended with the stop action.
            let id = format!("m{}", run.messages.len());
            let mut m = Message::new(id.clone(), Role::Assistant, "");
            m.tool_calls.push(ToolCall {
                id: format!("{id}.call0"),
                name: "stop".into(),
                arguments: json!({ "answer": a }),
                span_id: None,
            });
            run.push(m);
        }
    }
    let score = match first_key(o, SCORE_KEYS) {
        None => None,
        Some(k) => match &o[k] {
            Value::Null => None,
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Number(n) => n.as_f64(),
            other => {
                return Err(ImportError::new(
                    k,
                    format!("a number or a boolean, found {}", kind_of(other)),
                ))
            }
        },
    };
    let cost = match first_key(o, COST_KEYS) {
        None => None,
        Some(k) => match &o[k] {
            Value::Null => None,
            Value::Number(n) => n.as_f64(),
            other => {
                return Err(ImportError::new(
                    k,
                    format!("a number, found {}", kind_of(other)),
                ))
            }
        },
    };

    let id = match &task_id {
        Some(t) => format!("task-{t}"),
        None => fallback_id.to_owned(),
    };
    let mut trace = Trace {
        id,
        messages: run.messages,
        ..Trace::default()
    };
    if let Some(i) = &intent {
        trace.inputs = Some(json!({ "intent": i }));
    }
    trace.outputs = answer.clone().map(Value::String);

    let meta = &mut trace.metadata;
    meta.insert("benchmark".into(), json!("webarena"));
    if let Some(t) = o.get("task_id") {
        meta.insert("task_id".into(), t.clone());
    }
    if let Some(i) = &intent {
        meta.insert("intent".into(), json!(i));
    }
    if let Some(a) = &answer {
        meta.insert("answer".into(), json!(a));
    }
    if let Some(u) = &final_url {
        meta.insert("final_url".into(), json!(u));
    }
    if let Some(s) = score {
        meta.insert("score".into(), json!(s));
        meta.insert("success".into(), json!(s >= 1.0));
    }
    if let Some(c) = cost {
        meta.insert("cost".into(), json!(c));
    }
    let skip = |k: &str| {
        matches!(k, "task_id" | "intent" | "messages")
            || TRAJECTORY_KEYS.contains(&k)
            || CONFIG_KEYS.contains(&k)
            || [ANSWER_KEYS, URL_KEYS, SCORE_KEYS, COST_KEYS]
                .iter()
                .any(|keys| keys.contains(&k))
    };
    for (k, v) in o {
        if !skip(k) {
            meta.insert(k.clone(), v.clone());
        }
    }
    if let Some((_, c)) = config {
        for (k, v) in c {
            if k != "intent" && k != "task_id" {
                meta.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    trace.expectations = expectations(&trace.metadata);

    trace.tags.insert("benchmark".into(), "webarena".into());
    if let Some(t) = &task_id {
        trace.tags.insert("task_id".into(), t.clone());
    }
    if let Some(s) = score {
        trace.assessments.push(Assessment {
            name: "score".into(),
            source_type: "CODE".into(),
            source_id: "webarena".into(),
            kind: "feedback".into(),
            value: json!(s),
            rationale: None,
            span_id: None,
        });
    }
    Ok(trace)
}

/// The conversation as it is built, with what the last state and stop action said.
#[derive(Default)]
struct Run {
    messages: Vec<Message>,
    /// The call whose result the next observation is: (call id, action name).
    open_call: Option<(String, String)>,
    calls: usize,
    last_url: Option<String>,
    stop_answer: Option<String>,
}

impl Run {
    fn push(&mut self, m: Message) {
        self.messages.push(m);
    }

    fn next_id(&self) -> String {
        format!("m{}", self.messages.len())
    }

    fn step(&mut self, s: &Map<String, Value>) -> Result<(), ImportError> {
        if let Some(Value::String(text)) = s.get("user") {
            let url = dump_observation_url(text);
            self.state(url.map(str::to_owned), text.clone());
            return Ok(());
        }
        if let Some(Value::String(raw)) = s.get("assistant") {
            let action = fenced_action(raw).and_then(parse_action);
            self.action(raw.clone(), action);
            return Ok(());
        }
        let is_action = ["action", "action_type", "parsed_action", "action_str"]
            .iter()
            .any(|k| s.get(*k).is_some_and(|v| !v.is_null()))
            || reasoning(s)?.is_some();
        if let Some((url, text)) = state_of(s)? {
            let content = match &url {
                Some(u) if !text.is_empty() => format!("{u}\n\n{text}"),
                Some(u) => u.clone(),
                None => text,
            };
            self.state(url, content);
        } else if !is_action {
            return Err(ImportError::new(
                "",
                "a state (`observation`, `url`) or an action (`action`, `action_type`, \
                 `raw_prediction`)",
            ));
        }
        if is_action {
            let raw = reasoning(s)?.unwrap_or_default().to_owned();
            let action = action_of(s, &raw)?;
            self.action(raw, action);
        }
        Ok(())
    }

    fn state(&mut self, url: Option<String>, content: String) {
        let id = self.next_id();
        let (call_id, tool) = match self.open_call.take() {
            Some((c, name)) => (Some(c), name),
            None => (None, START_TOOL.to_owned()),
        };
        let mut m = Message::new(id, Role::Tool, content);
        m.provenance = Provenance::Tool { name: tool.clone() };
        m.name = Some(tool);
        m.tool_call_id = call_id;
        self.push(m);
        if url.is_some() {
            self.last_url = url;
        }
    }

    fn action(&mut self, reasoning: String, action: Option<Action>) {
        let id = self.next_id();
        let mut m = Message::new(id.clone(), Role::Assistant, reasoning);
        self.open_call = None;
        if let Some(a) = action {
            if a.name == "stop" {
                self.stop_answer = Some(
                    a.arguments
                        .get("answer")
                        .map(value_text)
                        .unwrap_or_default(),
                );
            }
            let call_id = format!("{id}.call0");
            self.open_call = Some((call_id.clone(), a.name.clone()));
            m.tool_calls.push(ToolCall {
                id: call_id,
                name: a.name,
                arguments: Value::Object(a.arguments),
                span_id: None,
            });
            self.calls += 1;
        }
        self.push(m);
    }
}

/// One parsed browser action.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub name: String,
    pub arguments: Map<String, Value>,
}

/// A state's URL and observation text, if the step has either.
fn state_of(s: &Map<String, Value>) -> Result<Option<(Option<String>, String)>, ImportError> {
    let mut text = None;
    for key in ["observation", "obs", "state"] {
        match s.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(t)) => text = Some(t.clone()),
            Some(Value::Object(o)) => {
                text = Some(match o.get("text") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(t)) => t.clone(),
                    Some(other) => {
                        return Err(ImportError::new(
                            format!("{key}.text"),
                            format!("a string, found {}", kind_of(other)),
                        ))
                    }
                });
            }
            Some(other) => {
                return Err(ImportError::new(
                    key,
                    format!(
                        "a string or an object with `text`, found {}",
                        kind_of(other)
                    ),
                ))
            }
        }
        break;
    }
    let mut url = None;
    for key in ["url", "page_url"] {
        if s.get(key).is_some_and(|v| !v.is_null()) {
            url = Some(string_field(s, key)?.to_owned());
            break;
        }
    }
    if url.is_none() {
        if let Some(u) = s
            .get("info")
            .and_then(|i| i.get("page"))
            .and_then(|p| p.get("url"))
            .and_then(Value::as_str)
        {
            url = Some(u.to_owned());
        }
    }
    // On an `Action` dict, `url` is the goto target, not a page the agent saw.
    if text.is_none() && s.contains_key("action_type") {
        return Ok(None);
    }
    Ok(match (url, text) {
        (None, None) => None,
        (url, text) => Some((url, text.unwrap_or_default())),
    })
}

/// The model's raw output for an action step.
fn reasoning(s: &Map<String, Value>) -> Result<Option<&str>, ImportError> {
    for key in ["raw_prediction", "reasoning", "thought"] {
        match s.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(t)) => return Ok(Some(t)),
            Some(other) => {
                return Err(ImportError::new(
                    key,
                    format!("a string, found {}", kind_of(other)),
                ))
            }
        }
    }
    Ok(None)
}

/// The action of a step: an action string, an `Action` dict, or the raw prediction's.
fn action_of(s: &Map<String, Value>, raw: &str) -> Result<Option<Action>, ImportError> {
    for key in ["action", "parsed_action", "action_str"] {
        match s.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(a)) => return Ok(parse_action(a)),
            Some(Value::Object(dict)) if key == "action" => {
                return action_dict(dict).map_err(|e| e.within(key))
            }
            Some(other) => {
                return Err(ImportError::new(
                    key,
                    format!("an action string, found {}", kind_of(other)),
                ))
            }
        }
    }
    if s.contains_key("action_type") {
        return action_dict(s);
    }
    Ok(fenced_action(raw).and_then(parse_action))
}

/// The reference `ActionTypes`, by value.
const ACTION_TYPES: &[&str] = &[
    "none",
    "scroll",
    "press",
    "mouse_click",
    "keyboard_type",
    "mouse_hover",
    "click",
    "type",
    "hover",
    "tab_focus",
    "new_tab",
    "go_back",
    "go_forward",
    "goto",
    "close_tab",
    "check",
    "select_option",
    "stop",
    "clear",
    "upload",
];

/// The names `ActionTypes` members print with, mapped to the id-based action names.
fn action_type_name(name: &str) -> String {
    let name = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    match name.as_str() {
        "key_press" => "press".into(),
        "page_focus" => "tab_focus".into(),
        "goto_url" => "goto".into(),
        "page_close" => "close_tab".into(),
        _ => name,
    }
}

/// An `Action` dict: `action_type` and the fields that matter for its type.
fn action_dict(d: &Map<String, Value>) -> Result<Option<Action>, ImportError> {
    let name = match d.get("action_type") {
        Some(Value::Number(n)) => match n.as_u64().and_then(|i| ACTION_TYPES.get(i as usize)) {
            Some(name) => (*name).to_owned(),
            None => {
                return Err(ImportError::new(
                    "action_type",
                    format!("an action type 0..={}, found {n}", ACTION_TYPES.len() - 1),
                ))
            }
        },
        Some(Value::String(s)) if !s.trim().is_empty() => action_type_name(s.trim()),
        Some(other) => {
            return Err(ImportError::new(
                "action_type",
                format!("an action type (integer or name), found {}", kind_of(other)),
            ))
        }
        None => {
            // Only an action string inside the dict.
            for key in ["action_str", "parsed_action"] {
                if let Some(Value::String(a)) = d.get(key) {
                    return Ok(parse_action(a));
                }
            }
            return Err(ImportError::new("action_type", "an action type"));
        }
    };
    let mut arguments = Map::new();
    let keep: &[&str] = match name.as_str() {
        "click" | "hover" | "clear" | "check" => &["element_id", "element_role", "element_name"],
        "type" | "select_option" => &["element_id", "text", "element_role", "element_name"],
        "keyboard_type" => &["text"],
        "press" => &["key_comb"],
        "scroll" => &["direction"],
        "goto" => &["url"],
        "tab_focus" => &["page_number"],
        "stop" => &["answer"],
        "mouse_click" | "mouse_hover" => &["coords"],
        _ => &[],
    };
    for k in keep {
        match d.get(*k) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() && *k != "answer" => {}
            // Typed text kept as key ids needs the environment's keyboard table.
            Some(Value::Array(_)) if *k == "text" => {}
            Some(v) => {
                arguments.insert((*k).to_owned(), v.clone());
            }
        }
    }
    if name == "stop" && !arguments.contains_key("answer") {
        arguments.insert("answer".into(), json!(""));
    }
    if let Some(Value::String(code)) = d.get("pw_code").filter(|v| v.as_str() != Some("")) {
        arguments.insert("pw_code".into(), json!(code));
    }
    Ok(Some(Action { name, arguments }))
}

/// The first ```` ``` ````-fenced block of a model's output, as the reference agent extracts
/// its action.
pub fn fenced_action(raw: &str) -> Option<&str> {
    let start = raw.find("```")? + 3;
    let len = raw[start..].find("```")?;
    Some(raw[start..start + len].trim())
}

/// An id-based action string (`click [12]`, `type [3] [text] [1]`, `stop [answer]`, ...) as
/// the reference `create_id_based_action` reads it. `None` for an empty string; an unknown
/// verb keeps its text under `action`.
pub fn parse_action(text: &str) -> Option<Action> {
    let text = text.trim();
    let verb = match text.find('[') {
        Some(i) => text[..i].trim(),
        None => text.split_whitespace().next()?,
    };
    if verb.is_empty() {
        return None;
    }
    let rest = text[text.find(verb).unwrap_or(0) + verb.len()..].trim_start();
    let name = verb.to_ascii_lowercase();
    let mut arguments = Map::new();
    // `verb [x]`, with `x` running to the last `]` (the reference's greedy `(.+)`).
    let whole = || {
        rest.strip_prefix('[')
            .and_then(|r| r.rfind(']').map(|j| &r[..j]))
            .filter(|x| !x.is_empty())
    };
    // `verb [digits]`.
    let id = || {
        rest.strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(x, _)| x)
            .filter(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
    };
    match name.as_str() {
        "click" | "hover" | "clear" => {
            if let Some(e) = id() {
                arguments.insert("element_id".into(), json!(e));
            } else {
                arguments.insert("action".into(), json!(text));
            }
        }
        "type" => match parse_type(rest) {
            Some((e, typed, enter)) => {
                arguments.insert("element_id".into(), json!(e));
                arguments.insert("text".into(), json!(typed));
                arguments.insert("press_enter_after".into(), json!(enter));
            }
            None => {
                arguments.insert("action".into(), json!(text));
            }
        },
        "press" => match whole() {
            Some(k) => {
                arguments.insert("key_comb".into(), json!(k));
            }
            None => {
                arguments.insert("action".into(), json!(text));
            }
        },
        "scroll" => {
            let lower = rest.to_ascii_lowercase();
            let d = lower
                .trim_start_matches('[')
                .split(|c: char| c == ']' || c.is_whitespace())
                .next()
                .unwrap_or_default()
                .trim_start_matches("direction=");
            if d == "up" || d == "down" {
                arguments.insert("direction".into(), json!(d));
            } else {
                arguments.insert("action".into(), json!(text));
            }
        }
        "tab_focus" => match id().and_then(|p| p.parse::<u64>().ok()) {
            Some(p) => {
                arguments.insert("page_number".into(), json!(p));
            }
            None => {
                arguments.insert("action".into(), json!(text));
            }
        },
        "goto" => match whole() {
            Some(u) => {
                arguments.insert("url".into(), json!(u));
            }
            None => {
                arguments.insert("action".into(), json!(text));
            }
        },
        "stop" => {
            arguments.insert("answer".into(), json!(whole().unwrap_or_default()));
        }
        "new_tab" | "go_back" | "go_forward" | "close_tab" | "none" => {}
        _ => {
            arguments.insert("action".into(), json!(text));
        }
    }
    Some(Action { name, arguments })
}

/// `[id] [text] [0|1]` of a type action; the enter flag defaults to 1.
fn parse_type(rest: &str) -> Option<(&str, &str, bool)> {
    let r = rest.strip_prefix('[')?;
    let (id, r) = r.split_once(']')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let r = r.trim_start().strip_prefix('[')?;
    let (body, enter) = if let Some(b) = r.strip_suffix("] [1]").or(r.strip_suffix("][1]")) {
        (b, true)
    } else if let Some(b) = r.strip_suffix("] [0]").or(r.strip_suffix("][0]")) {
        (b, false)
    } else {
        (r.strip_suffix(']')?, true)
    };
    (!body.is_empty()).then_some((id, body, enter))
}

/// The URL of a state as `html2json.py` writes it: `"<url>\n\nobservation:\n<tree>"`.
fn dump_observation_url(text: &str) -> Option<&str> {
    let (url, _) = text.split_once("\n\nobservation:\n")?;
    Some(url.trim()).filter(|u| !u.is_empty())
}

/// A nested task config and the key it sits under.
type Nested<'a> = (&'static str, &'a Map<String, Value>);

/// The task config nested in a record, with the key it is under.
fn config_of(o: &Map<String, Value>) -> Result<Option<Nested<'_>>, ImportError> {
    for key in CONFIG_KEYS {
        match o.get(*key) {
            None | Some(Value::Null) => continue,
            Some(v) => return Ok(Some((key, as_object(v, key)?))),
        }
    }
    Ok(None)
}

fn first_key(o: &Map<String, Value>, keys: &[&'static str]) -> Option<&'static str> {
    keys.iter().copied().find(|k| o.contains_key(*k))
}

fn string_field<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a str, ImportError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Ok(""),
        Some(other) => Err(ImportError::new(
            key,
            format!("a string, found {}", kind_of(other)),
        )),
    }
}

/// `exact_match` and `must_include` references as expectations; `"N/A"` is not an answer.
fn expectations(meta: &Map<String, Value>) -> Option<Value> {
    let refs = meta
        .get("reference_answers")
        .or_else(|| meta.get("eval").and_then(|e| e.get("reference_answers")))?
        .as_object()?;
    let mut e = Map::new();
    if let Some(Value::String(exact)) = refs.get("exact_match") {
        if exact.trim() != "N/A" {
            e.insert("expected_response".into(), json!(exact));
        }
    }
    if let Some(Value::Array(facts)) = refs.get("must_include") {
        if !facts.is_empty() {
            e.insert("expected_facts".into(), Value::Array(facts.clone()));
        }
    }
    (!e.is_empty()).then_some(Value::Object(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> (String, Value) {
        let a = parse_action(text).expect("an action");
        (a.name, Value::Object(a.arguments))
    }

    #[test]
    fn id_based_actions_parse_as_the_reference_does() {
        let cases = [
            ("click [1234]", "click", json!({"element_id": "1234"})),
            ("hover[7]", "hover", json!({"element_id": "7"})),
            (
                "type [12] [hello [world]] [0]",
                "type",
                json!({"element_id": "12", "text": "hello [world]", "press_enter_after": false}),
            ),
            (
                "type [12] [mug]",
                "type",
                json!({"element_id": "12", "text": "mug", "press_enter_after": true}),
            ),
            (
                "press [Ctrl+Enter]",
                "press",
                json!({"key_comb": "Ctrl+Enter"}),
            ),
            ("scroll [down]", "scroll", json!({"direction": "down"})),
            (
                "scroll [direction=up]",
                "scroll",
                json!({"direction": "up"}),
            ),
            ("tab_focus [2]", "tab_focus", json!({"page_number": 2})),
            (
                "goto [http://a.example/x?q=[1]]",
                "goto",
                json!({"url": "http://a.example/x?q=[1]"}),
            ),
            (
                "stop [Emma [Lopez]]",
                "stop",
                json!({"answer": "Emma [Lopez]"}),
            ),
            ("stop", "stop", json!({"answer": ""})),
            ("go_back", "go_back", json!({})),
            ("click [abc]", "click", json!({"action": "click [abc]"})),
            ("dance [3]", "dance", json!({"action": "dance [3]"})),
        ];
        for (text, name, expected) in cases {
            assert_eq!(args(text), (name.to_owned(), expected), "{text}");
        }
        assert!(parse_action("   ").is_none());
        assert!(parse_action("[3]").is_none());
    }

    #[test]
    fn the_first_fenced_block_is_the_action() {
        let raw = "Let's think step-by-step. In summary, the next action I will perform is \
                   ```click [5]``` and later ```stop [x]```";
        assert_eq!(fenced_action(raw), Some("click [5]"));
        assert_eq!(fenced_action("no action here"), None);
        assert_eq!(fenced_action("```unterminated"), None);
    }

    #[test]
    fn action_dicts_use_the_reference_action_types() {
        let d = json!({"action_type": 13, "url": "http://a.example/", "element_id": "",
                       "text": [1, 2], "answer": ""});
        let a = action_dict(d.as_object().unwrap()).unwrap().unwrap();
        assert_eq!(a.name, "goto");
        assert_eq!(
            Value::Object(a.arguments),
            json!({"url": "http://a.example/"})
        );
        let d = json!({"action_type": "ACTION_TYPES.STOP", "answer": "42"});
        let a = action_dict(d.as_object().unwrap()).unwrap().unwrap();
        assert_eq!(
            (a.name.as_str(), a.arguments["answer"].clone()),
            ("stop", json!("42"))
        );
        let d = json!({"action_type": 99});
        assert_eq!(
            action_dict(d.as_object().unwrap()).unwrap_err().field,
            "action_type"
        );
    }
}

//! Format detection and the single entry point from a parsed JSON document to traces.

use crate::error::ImportError;
use crate::util::kind_of;
use crate::{anthropic, gaia, mlflow, openai, otlp, responses, tau, webarena};
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
    /// τ-bench results (an array of runs, or one run).
    Tau,
    /// τ²-bench results (`{tasks, simulations}`, or one simulation run).
    Tau2,
    /// GAIA submission lines (`{task_id, model_answer, reasoning_trace?}`).
    Gaia,
    /// WebArena results (`{task_id, answer, url, trajectory?}`, or `html2json.py`'s dump).
    Webarena,
    /// OpenAI Responses API / Agents SDK items (`message`, `function_call`,
    /// `function_call_output`, `reasoning`), as a list or `{items | input + output}`.
    Responses,
}

impl InputFormat {
    pub const NAMES: &'static [&'static str] = &[
        "auto",
        "openai",
        "anthropic",
        "mlflow",
        "otlp",
        "tau",
        "tau2",
        "gaia",
        "webarena",
        "responses",
    ];

    pub fn parse(s: &str) -> Option<InputFormat> {
        Some(match s {
            "auto" => InputFormat::Auto,
            "openai" => InputFormat::Openai,
            "anthropic" => InputFormat::Anthropic,
            "mlflow" => InputFormat::Mlflow,
            "otlp" => InputFormat::Otlp,
            "tau" => InputFormat::Tau,
            "tau2" => InputFormat::Tau2,
            "gaia" => InputFormat::Gaia,
            "webarena" => InputFormat::Webarena,
            "responses" => InputFormat::Responses,
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
            } else if tau::is_tau_result(o) {
                Some(InputFormat::Tau)
            } else if tau::is_tau2_results(o) || tau::is_tau2_simulation(o) {
                Some(InputFormat::Tau2)
            } else if gaia::is_gaia_submission(o) {
                Some(InputFormat::Gaia)
            } else if webarena::is_webarena_result(o)
                || webarena::is_webarena_dump(o)
                || webarena::is_task_config(o)
            {
                Some(InputFormat::Webarena)
            } else if responses::is_record(o) {
                Some(InputFormat::Responses)
            } else if let Some(Value::Array(msgs)) = o.get("messages").filter(|_| {
                !o.contains_key("spans") && o.get("data").is_none_or(|d| d.get("spans").is_none())
            }) {
                // A record of chat messages, whatever other fields it carries (`info`,
                // `system`): the messages say whose they are; a top-level `system` prompt is
                // Anthropic's unless a message is OpenAI's only.
                let anthropic = anthropic::looks_like(msgs)
                    || (o.contains_key("system") && !openai::looks_like(msgs));
                Some(if anthropic {
                    InputFormat::Anthropic
                } else {
                    InputFormat::Openai
                })
            } else if o.contains_key("info") || o.contains_key("spans") {
                Some(InputFormat::Mlflow)
            } else {
                None
            }
        }
        Value::Array(items) => {
            let first = items.first()?.as_object()?;
            if tau::is_tau_result(first) {
                Some(InputFormat::Tau)
            } else if tau::is_tau2_simulation(first) {
                Some(InputFormat::Tau2)
            } else if webarena::is_webarena_result(first) {
                Some(InputFormat::Webarena)
            } else if responses::looks_like(items) {
                Some(InputFormat::Responses)
            } else if first.contains_key("role") {
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
an MLflow trace (`info` and `data.spans`), an OTLP request (`resourceSpans`), \
a τ-bench run (`task_id`, `reward`, `traj`), τ²-bench results (`tasks`, `simulations`), \
a GAIA submission line (`task_id`, `model_answer`), Responses API items (`function_call`, \
`function_call_output`, `message`) or a WebArena result (`task_id` with \
`trajectory`, `answer` or `url`)";

impl InputFormat {
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Auto => "auto",
            InputFormat::Openai => "openai",
            InputFormat::Anthropic => "anthropic",
            InputFormat::Mlflow => "mlflow",
            InputFormat::Otlp => "otlp",
            InputFormat::Tau => "tau",
            InputFormat::Tau2 => "tau2",
            InputFormat::Gaia => "gaia",
            InputFormat::Webarena => "webarena",
            InputFormat::Responses => "responses",
        }
    }

    /// What a document of this format has, for error messages.
    fn marks(self) -> &'static str {
        match self {
            InputFormat::Auto => EXPECTED,
            InputFormat::Openai | InputFormat::Anthropic => {
                "a list of messages with `role`, or an object with a `messages` list"
            }
            InputFormat::Mlflow => {
                "an MLflow trace: an object with `info`, `data.spans` or `spans`"
            }
            InputFormat::Otlp => "an OTLP request: an object with `resourceSpans`",
            InputFormat::Tau => "a τ-bench run (`task_id`, `reward`, `traj`) or a list of them",
            InputFormat::Tau2 => "τ²-bench results (`tasks`, `simulations`) or simulation runs",
            InputFormat::Gaia => "a GAIA submission line (`task_id`, `model_answer`)",
            InputFormat::Responses => {
                "Responses API items (`message`, `function_call`, `function_call_output`), \
                 a list or an object with `items` or `input`/`output`"
            }
            InputFormat::Webarena => {
                "a WebArena result (`task_id` with `trajectory`, `answer` or `url`), task \
                 config or `html2json.py` dump"
            }
        }
    }
}

/// Whether `v` has the marks of `format`. A format given explicitly is checked, not
/// assumed: a document of another kind is rejected, never read as an empty trace.
pub fn fits(format: InputFormat, v: &Value) -> bool {
    let messages = |items: &[Value]| {
        items
            .iter()
            .all(|m| m.as_object().is_some_and(|o| o.contains_key("role")))
    };
    let mlflow = |o: &serde_json::Map<String, Value>| {
        o.get("info").is_some_and(Value::is_object)
            || o.get("spans").is_some_and(Value::is_array)
            || o.get("data")
                .and_then(|d| d.get("spans"))
                .is_some_and(Value::is_array)
    };
    let first = |items: &[Value]| items.first().and_then(Value::as_object).cloned();
    match (format, v) {
        (InputFormat::Auto, _) => detect(v).is_some(),
        (InputFormat::Openai | InputFormat::Anthropic, Value::Array(items)) => {
            !items.is_empty() && messages(items)
        }
        (InputFormat::Openai | InputFormat::Anthropic, Value::Object(o)) => o
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|m| messages(m)),
        (InputFormat::Mlflow, Value::Object(o)) => mlflow(o),
        (InputFormat::Mlflow, Value::Array(items)) => {
            !items.is_empty() && items.iter().all(|t| t.as_object().is_some_and(mlflow))
        }
        (InputFormat::Otlp, Value::Object(o)) => o.contains_key("resourceSpans"),
        (InputFormat::Tau, Value::Object(o)) => tau::is_tau_result(o),
        (InputFormat::Tau, Value::Array(items)) => {
            first(items).is_some_and(|o| tau::is_tau_result(&o))
        }
        (InputFormat::Tau2, Value::Object(o)) => {
            tau::is_tau2_results(o) || tau::is_tau2_simulation(o)
        }
        (InputFormat::Tau2, Value::Array(items)) => {
            first(items).is_some_and(|o| tau::is_tau2_simulation(&o))
        }
        (InputFormat::Gaia, Value::Object(o)) => gaia::is_gaia_submission(o),
        (InputFormat::Webarena, Value::Object(o)) => {
            webarena::is_webarena_result(o)
                || webarena::is_webarena_dump(o)
                || webarena::is_task_config(o)
        }
        (InputFormat::Webarena, Value::Array(items)) => {
            first(items).is_some_and(|o| webarena::is_webarena_result(&o))
        }
        (InputFormat::Responses, v) => responses::fits(v),
        _ => false,
    }
}

/// [`fits`] as an error naming the format, what it expected and what the input looks like.
fn check_fits(format: InputFormat, v: &Value) -> Result<(), ImportError> {
    if fits(format, v) {
        return Ok(());
    }
    let looks = match detect(v) {
        Some(f) => format!("it looks like {} input", f.name()),
        None => format!("found {}", kind_of(v)),
    };
    Err(ImportError::new(
        "",
        format!(
            "{} input, as the format was given explicitly: {}; {looks}",
            format.name(),
            format.marks()
        ),
    ))
}

/// An object with a `messages` list that also has the fields of another format, which
/// would read it without its messages: which of the two it is cannot be told, and reading
/// either would judge a conversation other than the one a reader of the other sees. The
/// formats whose own records hold `messages` (a τ²-bench simulation, a WebArena result)
/// read them and are not in doubt.
fn beside_messages(v: &Value, format: InputFormat) -> Option<ImportError> {
    let o = v.as_object()?;
    o.get("messages").filter(|m| m.is_array())?;
    let other = match format {
        InputFormat::Tau => "a τ-bench run (`task_id`, `reward`, `traj`)",
        InputFormat::Tau2 if !tau::is_tau2_simulation(o) => {
            "τ²-bench results (`tasks`, `simulations`)"
        }
        InputFormat::Mlflow => "an MLflow trace (`info`, `data.spans` or `spans`)",
        InputFormat::Otlp => "an OTLP request (`resourceSpans`)",
        _ => return None,
    };
    Some(ImportError::new(
        "messages",
        format!(
            "one trace format; found an object with a `messages` list that also has the fields of {other}, which is read without its messages: drop the fields of the format it is not, or give the format (--input-format)"
        ),
    ))
}

/// Turns one JSON document into the traces it holds (an OTLP request or an MLflow list may
/// hold several). `fallback_id` names traces whose source gives them no id. A document that
/// holds no trace (an OTLP request without spans, an empty list) is an error, but for the
/// files that sit beside runs in a benchmark's folder: the `results.json` of τ²-bench's
/// directory layout (its simulations are files of their own) and WebArena's task configs.
pub fn import_value(
    v: &Value,
    format: InputFormat,
    fallback_id: &str,
) -> Result<Vec<Trace>, ImportError> {
    let traces = import_any(v, format, fallback_id)?;
    let companion = v
        .as_object()
        .is_some_and(|o| tau::is_tau2_results(o) || webarena::is_task_config(o));
    if traces.is_empty() && !companion {
        return Err(ImportError::new(
            "",
            format!(
                "a document holding at least one trace; found {} holding none",
                kind_of(v)
            ),
        ));
    }
    Ok(traces)
}

fn import_any(
    v: &Value,
    format: InputFormat,
    fallback_id: &str,
) -> Result<Vec<Trace>, ImportError> {
    let format = match format {
        InputFormat::Auto => detect(v)
            .ok_or_else(|| match v.get("messages") {
                // A record whose messages are not a list: say so, not that no format fits.
                Some(m) if !m.is_array() => ImportError::new(
                    "messages",
                    format!("a list of chat messages; found {}", kind_of(m)),
                ),
                _ => ImportError::new("", format!("{EXPECTED}; found {}", kind_of(v))),
            })
            .and_then(|f| beside_messages(v, f).map_or(Ok(f), Err))?,
        f => {
            check_fits(f, v)?;
            f
        }
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
        (InputFormat::Webarena, v) => webarena::import(v, fallback_id),
        (InputFormat::Responses, Value::Array(list)) => {
            Ok(vec![responses::import_list(list, fallback_id)?])
        }
        (InputFormat::Responses, Value::Object(o)) => {
            Ok(vec![responses::import_record(o, fallback_id)?])
        }
        (InputFormat::Gaia, Value::Object(o)) => Ok(vec![gaia::import_submission(o, fallback_id)?]),
        (InputFormat::Tau, Value::Object(o)) => Ok(vec![tau::import_result(o, fallback_id)?]),
        (InputFormat::Tau, Value::Array(list)) => tau::import_results(list, fallback_id),
        (InputFormat::Tau2, Value::Object(o)) if tau::is_tau2_results(o) => {
            tau::import_tau2_results(o)
        }
        (InputFormat::Tau2, Value::Object(o)) => {
            Ok(vec![tau::import_tau2_simulation(o, None, fallback_id)?])
        }
        (InputFormat::Tau2, Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let at = format!("[{i}]");
                let o = crate::util::as_object(s, &at)?;
                tau::import_tau2_simulation(o, None, &format!("{fallback_id}#{i}"))
                    .map_err(|e| e.within(&at))
            })
            .collect(),
        (_, other) => Err(ImportError::new(
            "",
            format!("{EXPECTED}; found {}", kind_of(other)),
        )),
    }
}

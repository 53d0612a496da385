//! What a queue's items are: a stored trace, one span of a trace, a trace of an eval run,
//! or a pair of outputs to compare (two traces, or two texts with the prompt they answer).
//! Each item can keep the value the judge tied to the queue's schema gave it when the queue
//! was filled, so people can be measured against the judge.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One item of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<String>,
    /// The eval run whose result for `trace` is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<Pair>,
    /// The tied judge's value when the queue was filled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_value: Option<Value>,
}

/// Two outputs to compare: `a` and `b` are each a trace (`{"trace": id}`) or a text
/// (`{"text": …}`), answering `prompt` when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub a: Side,
    pub b: Side,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// An id an item may have or name: 1 to 512 characters, no control characters, and not `.`
/// or `..` (a URL path cannot name those: `/items/..` is the parent folder).
fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 512
        && !id.chars().any(char::is_control)
        && id != "."
        && id != ".."
}

/// What [`id_ok`] asks of an id, for errors.
const ID_RULE: &str = "an id of 1 to 512 characters, without control characters, not . or ..";

fn side(v: &Value, at: &str) -> Result<Side, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{at}: expected {{\"trace\": id}} or {{\"text\": …}}"))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "trace" | "text")) {
        return Err(format!("{at}.{k}: unknown member; expected trace or text"));
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{at}.{k}: expected a string")),
        }
    };
    let s = Side {
        trace: text("trace")?,
        text: text("text")?,
    };
    match (&s.trace, &s.text) {
        (Some(t), None) if id_ok(t) => Ok(s),
        (None, Some(t)) if !t.trim().is_empty() => Ok(s),
        (None, Some(_)) => Err(format!(
            "{at}.text: expected the output to compare, found none"
        )),
        (Some(_), None) => Err(format!("{at}.trace: expected {ID_RULE}")),
        _ => Err(format!(
            "{at}: expected exactly one of trace (an id) or text"
        )),
    }
}

/// Reads one item as given: a trace id, or an object with `trace` (and `span` or `run`), or
/// `pair`, and an optional `id`. `at` names it in errors (`items[3]`).
pub fn read_item(v: &Value, at: &str) -> Result<Item, String> {
    if let Value::String(t) = v {
        if !id_ok(t) {
            return Err(format!("{at}: expected a trace id: {ID_RULE}"));
        }
        return Ok(Item {
            id: t.clone(),
            trace: Some(t.clone()),
            span: None,
            run: None,
            pair: None,
            judge_value: None,
        });
    }
    let obj = v.as_object().ok_or_else(|| {
        format!("{at}: expected a trace id or an object with trace, span, run or pair")
    })?;
    if let Some(k) = obj.keys().find(|k| {
        !matches!(
            k.as_str(),
            "id" | "trace" | "span" | "run" | "pair" | "judge_value"
        )
    }) {
        return Err(format!(
            "{at}.{k}: unknown member; expected id, trace, span, run or pair"
        ));
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if id_ok(s) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{at}.{k}: expected {ID_RULE}")),
        }
    };
    let (trace, span, run) = (text("trace")?, text("span")?, text("run")?);
    let pair = match obj.get("pair") {
        None | Some(Value::Null) => None,
        Some(p) => {
            let o = p
                .as_object()
                .ok_or_else(|| format!("{at}.pair: expected {{prompt?, a, b}}"))?;
            if let Some(k) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "prompt" | "a" | "b"))
            {
                return Err(format!(
                    "{at}.pair.{k}: unknown member; expected prompt, a or b"
                ));
            }
            let prompt = match o.get("prompt") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(format!("{at}.pair.prompt: expected a string")),
            };
            let a = side(o.get("a").unwrap_or(&Value::Null), &format!("{at}.pair.a"))?;
            let b = side(o.get("b").unwrap_or(&Value::Null), &format!("{at}.pair.b"))?;
            if a == b {
                return Err(format!(
                    "{at}.pair.b: the same as a; a pair asks which of two outputs is better"
                ));
            }
            Some(Pair { prompt, a, b })
        }
    };
    if pair.is_some() == trace.is_some() {
        return Err(format!("{at}: expected either trace or pair"));
    }
    if span.is_some() && run.is_some() {
        return Err(format!("{at}: a span item cannot also name a run"));
    }
    let id = match (text("id")?, &pair) {
        (Some(id), _) => id,
        (None, Some(p)) => {
            let canon = serde_json::to_string(p).unwrap_or_default();
            let h = Sha256::digest(canon.as_bytes());
            format!(
                "pair-{}",
                h[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        }
        (None, None) => match (&trace, &span) {
            (Some(t), Some(s)) => format!("{t}/{s}"),
            (Some(t), None) => t.clone(),
            _ => unreachable!("trace is set when pair is not"),
        },
    };
    Ok(Item {
        id,
        trace,
        span,
        run,
        pair,
        judge_value: obj.get("judge_value").cloned(),
    })
}

/// Reads a list of items, refusing duplicate ids; errors name the item (`items[3]`).
pub fn read_items(values: &[Value]) -> Result<Vec<Item>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let item = read_item(v, &format!("items[{i}]"))?;
        if !seen.insert(item.id.clone()) {
            return Err(format!(
                "items[{i}]: the id {:?} is in the list twice",
                item.id
            ));
        }
        out.push(item);
    }
    Ok(out)
}

pub fn judge_feedback<'a>(result: &'a Value, judge: &str) -> Option<&'a Value> {
    result["feedback"]
        .as_array()?
        .iter()
        .find(|f| f["name"].as_str() == Some(judge))
}

/// The judge's value in a stored result, when it gave one.
pub fn judge_value(result: &str, judge: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(result).ok()?;
    judge_feedback(&v, judge)
        .map(|f| f["value"].clone())
        .filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_are_read_in_every_form_and_errors_name_the_member() {
        let t = read_item(&json!("t1"), "items[0]").unwrap();
        assert_eq!((t.id.as_str(), t.trace.as_deref()), ("t1", Some("t1")));
        let s = read_item(&json!({"trace": "t1", "span": "s9"}), "items[1]").unwrap();
        assert_eq!(s.id, "t1/s9");
        let p = json!({"pair": {"prompt": "hi", "a": {"text": "x"}, "b": {"trace": "t2"}}});
        let a = read_item(&p, "items[2]").unwrap();
        let b = read_item(&p, "items[3]").unwrap();
        assert!(a.id.starts_with("pair-") && a.id == b.id, "{}", a.id);
        for (bad, says) in [
            (json!(7), "items[0]: expected a trace id"),
            (
                json!({"trace": "t", "pair": {"a": {"text": "x"}, "b": {"text": "y"}}}),
                "items[0]: expected either",
            ),
            (json!({"tracee": "t"}), "items[0].tracee: unknown member"),
            (
                json!({"pair": {"a": {"text": "x"}, "b": {"text": "y", "trace": "t"}}}),
                "items[0].pair.b: expected exactly one",
            ),
            (json!({"pair": {"a": {"text": "x"}}}), "items[0].pair.b:"),
            (json!({"trace": ""}), "items[0].trace: expected an id"),
            (
                json!({"pair": {"a": {"text": "same"}, "b": {"text": "same"}}}),
                "items[0].pair.b: the same as a",
            ),
        ] {
            let e = read_item(&bad, "items[0]").unwrap_err();
            assert!(e.starts_with(says), "{bad}: {e}");
        }
    }
}

//! What a judge answers: its declared output type, the JSON schema asked of the model
//! (`{result, rationale}`), and the parsing of the answer, with repair of the usual damage
//! (code fences, prose around the object, trailing commas, `yes`/`no` words). An answer that
//! cannot be read or does not fit the type is an error, never a guess.

use serde_json::{json, Value};

/// The type of a judge's `result`.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputType {
    /// `"yes"` or `"no"`.
    YesNo,
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    /// One of a fixed list.
    OneOf(Vec<String>),
    Text,
}

/// Why a model's answer could not be used: what was wrong with it, and the part of the
/// answer that shows it. The model's words are shown only to whoever may read what a model
/// server answers ([`Unusable::shown`]); the model itself is told both when it is asked
/// again.
#[derive(Debug, Clone, PartialEq)]
pub struct Unusable {
    /// What was wrong, in the judge's words (no text of the model's).
    pub problem: String,
    /// An excerpt of the answer (or the part of it at fault), as the model wrote it.
    pub answer: Option<String>,
}

/// What an error says in place of a model's words it may not quote.
pub const ANSWER_NOT_SHOWN: &str = "(the model's answer is not shown)";

impl Unusable {
    /// A problem that quotes nothing of the answer.
    pub fn new(problem: impl Into<String>) -> Unusable {
        Unusable {
            problem: problem.into(),
            answer: None,
        }
    }

    /// A problem shown by `answer`, a part of what the model wrote.
    pub fn quoting(problem: impl Into<String>, answer: impl Into<String>) -> Unusable {
        Unusable {
            problem: problem.into(),
            answer: Some(answer.into()),
        }
    }

    /// The problem, with the model's words when `quote` and [`ANSWER_NOT_SHOWN`] in their
    /// place otherwise.
    pub fn shown(&self, quote: bool) -> String {
        match &self.answer {
            None => self.problem.clone(),
            Some(a) if quote => format!("{}: {a}", self.problem),
            Some(_) => format!("{} {ANSWER_NOT_SHOWN}", self.problem),
        }
    }
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown(true))
    }
}

/// A checked answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub result: Value,
    pub rationale: String,
    /// The answer needed repair before it parsed.
    pub repaired: bool,
}

impl OutputType {
    /// Parses `yes_no`, `bool`, `int`, `int 1..5`, `float`, `float 0..1`, `text` or
    /// `one of a, b, c`.
    pub fn parse(s: &str) -> Result<OutputType, String> {
        let s = s.trim();
        let expected = "expected yes_no, bool, int, int MIN..MAX, float, float MIN..MAX, text or `one of a, b, c`";
        if let Some(rest) = s.strip_prefix("one of") {
            let choices: Vec<String> = rest
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            if choices.len() < 2 {
                return Err(format!("output {s:?}: `one of` needs at least two choices"));
            }
            return Ok(OutputType::OneOf(choices));
        }
        let (head, range) = match s.split_once(' ') {
            Some((h, r)) => (h, Some(r.trim())),
            None => (s, None),
        };
        let bounds = |r: Option<&str>| -> Result<Option<(String, String)>, String> {
            match r {
                None => Ok(None),
                Some(r) => r
                    .split_once("..")
                    .map(|(a, b)| Some((a.trim().to_owned(), b.trim().to_owned())))
                    .ok_or_else(|| format!("output {s:?}: a range is written MIN..MAX")),
            }
        };
        match head {
            "yes_no" if range.is_none() => Ok(OutputType::YesNo),
            "bool" if range.is_none() => Ok(OutputType::Bool),
            "text" if range.is_none() => Ok(OutputType::Text),
            "int" => {
                let (min, max) = match bounds(range)? {
                    None => (i64::MIN, i64::MAX),
                    Some((a, b)) => (
                        a.parse()
                            .map_err(|_| format!("output {s:?}: {a:?} is not an integer"))?,
                        b.parse()
                            .map_err(|_| format!("output {s:?}: {b:?} is not an integer"))?,
                    ),
                };
                if min > max {
                    return Err(format!("output {s:?}: the range is empty"));
                }
                Ok(OutputType::Int { min, max })
            }
            "float" => {
                let (min, max) = match bounds(range)? {
                    None => (f64::NEG_INFINITY, f64::INFINITY),
                    Some((a, b)) => (
                        a.parse()
                            .map_err(|_| format!("output {s:?}: {a:?} is not a number"))?,
                        b.parse()
                            .map_err(|_| format!("output {s:?}: {b:?} is not a number"))?,
                    ),
                };
                if min > max {
                    return Err(format!("output {s:?}: the range is empty"));
                }
                Ok(OutputType::Float { min, max })
            }
            _ => Err(format!("output {s:?}: {expected}")),
        }
    }

    /// The JSON schema of the answer object.
    pub fn schema(&self) -> Value {
        let result = match self {
            OutputType::YesNo => json!({"type": "string", "enum": ["yes", "no"]}),
            OutputType::Bool => json!({"type": "boolean"}),
            OutputType::Int { min, max } => {
                let mut v = json!({"type": "integer"});
                if *min > i64::MIN {
                    v["minimum"] = json!(min);
                }
                if *max < i64::MAX {
                    v["maximum"] = json!(max);
                }
                v
            }
            OutputType::Float { min, max } => {
                let mut v = json!({"type": "number"});
                if min.is_finite() {
                    v["minimum"] = json!(min);
                }
                if max.is_finite() {
                    v["maximum"] = json!(max);
                }
                v
            }
            OutputType::OneOf(choices) => json!({"type": "string", "enum": choices}),
            OutputType::Text => json!({"type": "string"}),
        };
        json!({
            "type": "object",
            "properties": {
                "rationale": {"type": "string", "description": "Step-by-step reasoning, citing message ids."},
                "result": result,
            },
            "required": ["rationale", "result"],
            "additionalProperties": false,
        })
    }

    /// Checks (and normalises) a result value against the type.
    pub fn check(&self, v: &Value) -> Result<Value, Unusable> {
        let bad = |problem: String| Unusable::quoting(problem, v.to_string());
        match (self, v) {
            (OutputType::YesNo, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "yes" | "y" => Ok(json!("yes")),
                "no" | "n" => Ok(json!("no")),
                _ => Err(bad("the result is not yes or no".into())),
            },
            (OutputType::YesNo, Value::Bool(b)) => Ok(json!(if *b { "yes" } else { "no" })),
            (OutputType::Bool, Value::Bool(b)) => Ok(json!(b)),
            (OutputType::Bool, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" => Ok(json!(true)),
                "false" | "no" => Ok(json!(false)),
                _ => Err(bad("the result is not true or false".into())),
            },
            (OutputType::Int { min, max }, v) => {
                let n = match v {
                    Value::Number(n) => n
                        .as_i64()
                        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| bad("the result is not an integer".into()))?;
                if n < *min || n > *max {
                    return Err(bad(format!("the result is outside {min}..{max}")));
                }
                Ok(json!(n))
            }
            (OutputType::Float { min, max }, v) => {
                let n = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .filter(|f: &f64| f.is_finite())
                .ok_or_else(|| bad("the result is not a number".into()))?;
                if n < *min || n > *max {
                    return Err(bad(format!("the result is outside {min}..{max}")));
                }
                Ok(json!(n))
            }
            (OutputType::OneOf(choices), Value::String(s)) => choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(s.trim()))
                .map(|c| json!(c))
                .ok_or_else(|| bad(format!("the result is not one of {}", choices.join(", ")))),
            (OutputType::Text, Value::String(s)) => Ok(json!(s)),
            (t, _) => Err(bad(format!(
                "the result does not fit the output type {t:?}"
            ))),
        }
    }
}

/// Reads a model's answer: a JSON object `{result, rationale}`, possibly damaged.
/// An answer that names a key twice (`{"result": "unsafe", "result": "safe"}`) is unusable:
/// readers differ on which value counts, and the verdict must not depend on which.
pub fn parse_verdict(text: &str, ty: &OutputType) -> Result<Verdict, Unusable> {
    let not_object = || Unusable::quoting("the answer is not a JSON object", excerpt(text));
    let unusable = |e: serde_json::Error| match tribunal_core::json::duplicated_key(&e) {
        Some(key) => Unusable::quoting(
            format!("the answer names the key {key:?} twice"),
            excerpt(text),
        ),
        None => not_object(),
    };
    let (obj, repaired) = match tribunal_core::json::from_str(text.trim()) {
        Ok(v @ Value::Object(_)) => (v, false),
        Err(e) if tribunal_core::json::is_duplicate(&e) => return Err(unusable(e)),
        _ => (
            repair(text).map_err(unusable)?.ok_or_else(not_object)?,
            true,
        ),
    };
    let result = obj
        .get("result")
        .ok_or_else(|| Unusable::quoting("the answer has no `result`", excerpt(text)))?;
    let result = ty.check(result)?;
    let rationale = match obj.get("rationale") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Ok(Verdict {
        result,
        rationale,
        repaired,
    })
}

/// Finds the JSON object in damaged text: inside code fences or prose, with trailing commas.
/// An object that names a key twice is the error saying so.
fn repair(text: &str) -> Result<Option<Value>, serde_json::Error> {
    let strict = |t: &str| match tribunal_core::json::from_str(t) {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        Err(e) if tribunal_core::json::is_duplicate(&e) => Err(e),
        _ => Ok(None),
    };
    let (Some(start), Some(end)) = (text.find('{'), text.rfind('}')) else {
        return Ok(None);
    };
    if end <= start {
        return Ok(None);
    }
    let candidate = &text[start..=end];
    if let Some(v) = strict(candidate)? {
        return Ok(Some(v));
    }
    // Trailing commas before a closing brace or bracket.
    let mut cleaned = String::with_capacity(candidate.len());
    let chars: Vec<char> = candidate.chars().collect();
    let mut in_string = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            cleaned.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        cleaned.push(c);
    }
    strict(&cleaned)
}

/// The first 120 characters of a model's `text`, quoted, for an [`Unusable`] answer.
pub fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        format!("{t:?}…")
    } else {
        format!("{t:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verdict written twice is unusable, whichever comes last, also inside prose or code
    /// fences: read last-wins, `{"result": "unsafe", "result": "safe"}` was allowed.
    #[test]
    fn an_answer_that_names_a_key_twice_is_unusable() {
        let ty = OutputType::OneOf(vec!["safe".into(), "unsafe".into()]);
        for text in [
            r#"{"result": "unsafe", "result": "safe"}"#,
            r#"{"result": "safe", "rationale": "x", "result": "unsafe"}"#,
            "Here it is:\n```json\n{\"result\": \"unsafe\", \"result\": \"safe\",}\n```",
        ] {
            let e = parse_verdict(text, &ty).unwrap_err();
            assert!(
                e.problem.contains("\"result\" twice"),
                "{text}: {}",
                e.problem
            );
        }
        assert_eq!(
            parse_verdict(r#"{"result": "unsafe"}"#, &ty)
                .unwrap()
                .result,
            json!("unsafe")
        );
    }

    #[test]
    fn output_types_parse() {
        assert_eq!(OutputType::parse("yes_no").unwrap(), OutputType::YesNo);
        assert_eq!(
            OutputType::parse("int 1..5").unwrap(),
            OutputType::Int { min: 1, max: 5 }
        );
        assert_eq!(
            OutputType::parse("float 0..1").unwrap(),
            OutputType::Float { min: 0.0, max: 1.0 }
        );
        assert_eq!(
            OutputType::parse("one of [safe, unsafe]").unwrap(),
            OutputType::OneOf(vec!["safe".into(), "unsafe".into()])
        );
        assert!(OutputType::parse("int 5..1").unwrap_err().contains("empty"));
        assert!(OutputType::parse("percent")
            .unwrap_err()
            .contains("expected yes_no"));
        assert!(OutputType::parse("one of x").is_err());
    }

    #[test]
    fn answers_are_checked_against_the_type() {
        let cases: &[(&str, &str, Result<Value, ()>)] = &[
            (
                "yes_no",
                r#"{"result": "Yes", "rationale": "ok"}"#,
                Ok(json!("yes")),
            ),
            (
                "yes_no",
                r#"{"result": "maybe", "rationale": "?"}"#,
                Err(()),
            ),
            (
                "int 1..5",
                r#"{"result": 4, "rationale": ""}"#,
                Ok(json!(4)),
            ),
            ("int 1..5", r#"{"result": 9, "rationale": ""}"#, Err(())),
            (
                "float 0..1",
                r#"{"result": "0.25", "rationale": ""}"#,
                Ok(json!(0.25)),
            ),
            (
                "bool",
                r#"{"result": "false", "rationale": ""}"#,
                Ok(json!(false)),
            ),
            (
                "one of safe, unsafe",
                r#"{"result": "UNSAFE", "rationale": "S2"}"#,
                Ok(json!("unsafe")),
            ),
            ("text", r#"{"rationale": "no result"}"#, Err(())),
        ];
        for (ty, answer, expected) in cases {
            let got = parse_verdict(answer, &OutputType::parse(ty).unwrap());
            match expected {
                Ok(v) => assert_eq!(&got.unwrap().result, v, "{ty} {answer}"),
                Err(()) => assert!(got.is_err(), "{ty} {answer}: {got:?}"),
            }
        }
    }

    #[test]
    fn damaged_answers_are_repaired_or_rejected() {
        let ty = OutputType::YesNo;
        let fenced = "Here you go:\n```json\n{\"rationale\": \"fine\", \"result\": \"no\",}\n```";
        let v = parse_verdict(fenced, &ty).unwrap();
        assert!(v.repaired);
        assert_eq!(v.result, json!("no"));
        assert_eq!(v.rationale, "fine");
        let e = parse_verdict("I think the answer is yes.", &ty).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the answer is not a JSON object: \"I think the answer is yes.\""
        );
        assert_eq!(
            e.shown(false),
            "the answer is not a JSON object (the model's answer is not shown)"
        );
        let e = parse_verdict("{\"result\": \"perhaps\"}", &ty).unwrap_err();
        assert_eq!(e.to_string(), "the result is not yes or no: \"perhaps\"");
        assert!(!e.shown(false).contains("perhaps"), "{e:?}");
        assert!(parse_verdict("{\"result\": \"yes\"", &ty).is_err());
    }

    #[test]
    fn schema_names_result_and_rationale() {
        let s = OutputType::parse("int 1..5").unwrap().schema();
        assert_eq!(s["properties"]["result"]["minimum"], json!(1));
        assert_eq!(s["required"], json!(["rationale", "result"]));
    }
}

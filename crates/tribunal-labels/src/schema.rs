//! Label schemas: what a person is asked and which answers are valid. A stored value keeps
//! its type (a pass/fail is a boolean, a numeric label a number), so a boolean never comes
//! back as the string "true".

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of question a schema asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    /// Passes or fails: `true` / `false`.
    PassFail,
    /// One of the options, or (with `multiple`) any non-empty set of them. With `ordered`,
    /// the options are a scale in the order given (agreement is then weighted by distance).
    Categorical {
        options: Vec<String>,
        #[serde(default)]
        multiple: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ordered: bool,
    },
    /// A number within a range (inclusive).
    Numeric { min: f64, max: f64 },
    /// Free text.
    Text,
    /// Which of two outputs is better: `a`, `b` or `tie`.
    Pairwise,
}

/// A label schema of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub name: String,
    #[serde(flatten)]
    pub kind: Kind,
    /// What the person is told.
    #[serde(default)]
    pub instructions: String,
    /// Whether a comment may go with the label.
    #[serde(default)]
    pub comment: bool,
    /// The judge whose ground truth these labels are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
}

/// Why a schema or a value is not valid, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SchemaError {
    pub field: String,
    pub message: String,
}

fn err<T>(field: &str, message: impl Into<String>) -> Result<T, SchemaError> {
    Err(SchemaError {
        field: field.to_owned(),
        message: message.into(),
    })
}

impl Schema {
    /// Checks the schema itself.
    pub fn check(&self) -> Result<(), SchemaError> {
        // Names as judges are named: 1 to 128 letters, digits, `_` or `-`.
        let named = |n: &str| {
            !n.is_empty()
                && n.len() <= 128
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        };
        if !named(&self.name) {
            return err("name", "1 to 128 letters, digits, _ or -");
        }
        if self.judge.as_deref().is_some_and(|j| !named(j)) {
            return err("judge", "a judge's name: 1 to 128 letters, digits, _ or -");
        }
        match &self.kind {
            Kind::Categorical {
                options,
                multiple,
                ordered,
            } => {
                if *multiple && *ordered {
                    return err("ordered", "a scale takes one option, not several");
                }
                if options.len() < 2 {
                    return err("options", "at least two options");
                }
                let mut seen: Vec<&str> = Vec::new();
                for o in options {
                    if o.trim().is_empty() || seen.contains(&o.as_str()) {
                        return err(
                            "options",
                            format!("options must be distinct and not empty ({o:?})"),
                        );
                    }
                    seen.push(o);
                }
            }
            Kind::Numeric { min, max } if !(min.is_finite() && max.is_finite() && min < max) => {
                return err(
                    "min",
                    format!("expected finite min < max, found {min}..{max}"),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// The value as this schema stores it, or why it does not fit (naming `value`).
    pub fn value(&self, v: &Value) -> Result<Value, SchemaError> {
        match (&self.kind, v) {
            (Kind::PassFail, Value::Bool(_)) => Ok(v.clone()),
            // A `yes_no` judge's answers are pass and fail.
            (Kind::PassFail, Value::String(s))
                if matches!(s.as_str(), "pass" | "fail" | "yes" | "no") =>
            {
                Ok(Value::Bool(s == "pass" || s == "yes"))
            }
            (Kind::PassFail, _) => err(
                "value",
                "expected true or false (or \"pass\" / \"fail\", \"yes\" / \"no\")",
            ),
            (
                Kind::Categorical {
                    options,
                    multiple: false,
                    ..
                },
                Value::String(s),
            ) => {
                if options.contains(s) {
                    Ok(v.clone())
                } else {
                    err(
                        "value",
                        format!("expected one of {}, found {s:?}", options.join(", ")),
                    )
                }
            }
            (
                Kind::Categorical {
                    options,
                    multiple: true,
                    ..
                },
                Value::Array(list),
            ) => {
                let mut out: Vec<String> = Vec::new();
                for x in list {
                    match x.as_str() {
                        Some(s) if options.iter().any(|o| o == s) => {
                            if !out.iter().any(|o| o == s) {
                                out.push(s.to_owned());
                            }
                        }
                        _ => {
                            return err(
                                "value",
                                format!("every choice must be one of {}", options.join(", ")),
                            )
                        }
                    }
                }
                if out.is_empty() {
                    return err("value", "choose at least one option");
                }
                // Kept in the schema's order, so equal sets compare equal.
                out.sort_by_key(|s| options.iter().position(|o| o == s));
                Ok(Value::from(out))
            }
            (Kind::Categorical { multiple, .. }, _) => err(
                "value",
                if *multiple {
                    "expected a list of options"
                } else {
                    "expected one option (a string)"
                },
            ),
            (Kind::Numeric { min, max }, Value::Number(n)) => match n.as_f64() {
                Some(x) if x >= *min && x <= *max => Ok(v.clone()),
                _ => err(
                    "value",
                    format!("expected a number in {min}..{max}, found {n}"),
                ),
            },
            (Kind::Numeric { min, max }, _) => {
                err("value", format!("expected a number in {min}..{max}"))
            }
            (Kind::Text, Value::String(s)) if !s.trim().is_empty() => Ok(v.clone()),
            (Kind::Text, _) => err("value", "expected some text"),
            (Kind::Pairwise, Value::String(s)) if matches!(s.as_str(), "a" | "b" | "tie") => {
                Ok(v.clone())
            }
            (Kind::Pairwise, _) => err("value", "expected \"a\", \"b\" or \"tie\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(kind: Value) -> Schema {
        let mut v = json!({"name": "q", "instructions": "?"});
        v.as_object_mut()
            .unwrap()
            .extend(kind.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn values_keep_their_type_and_bad_ones_name_the_field() {
        let pf = schema(json!({"type": "pass_fail"}));
        assert_eq!(pf.value(&json!(true)).unwrap(), json!(true));
        assert_eq!(pf.value(&json!("pass")).unwrap(), json!(true));
        // A yes_no judge's answers.
        assert_eq!(pf.value(&json!("yes")).unwrap(), json!(true));
        assert_eq!(pf.value(&json!("no")).unwrap(), json!(false));
        assert!(pf.value(&json!("maybe")).is_err());
        assert_eq!(pf.value(&json!("true")).unwrap_err().field, "value");
        let cat = schema(
            json!({"type": "categorical", "options": ["good", "bad", "ugly"], "multiple": true}),
        );
        assert_eq!(
            cat.value(&json!(["ugly", "good", "good"])).unwrap(),
            json!(["good", "ugly"])
        );
        assert!(cat.value(&json!([])).is_err());
        assert!(cat.value(&json!("good")).is_err());
        let num = schema(json!({"type": "numeric", "min": 1, "max": 5}));
        assert_eq!(num.value(&json!(4)).unwrap(), json!(4));
        assert!(num.value(&json!(6)).is_err());
        assert!(num.value(&json!("4")).is_err());
        let pw = schema(json!({"type": "pairwise"}));
        assert!(pw.value(&json!("tie")).is_ok() && pw.value(&json!("c")).is_err());
        assert!(schema(json!({"type": "text"})).value(&json!(" ")).is_err());
    }

    #[test]
    fn bad_schemas_are_named() {
        assert_eq!(
            schema(json!({"type": "categorical", "options": ["a"]}))
                .check()
                .unwrap_err()
                .field,
            "options"
        );
        assert_eq!(
            schema(json!({"type": "numeric", "min": 5, "max": 1}))
                .check()
                .unwrap_err()
                .field,
            "min"
        );
        let mut s = schema(json!({"type": "text"}));
        s.name = "bad name".into();
        assert_eq!(s.check().unwrap_err().field, "name");
    }
}

//! The shape of the policy data a user gives for the pack's own sections.
//!
//! Rego compares values of different types without an error: a threshold written as the
//! string `"0.5"`, an allow-list written as one string, a limit's `max` written `"500"` or a
//! misspelt key (`deny` for `denied`) leave the rule reading them silently undefined, and the
//! trace it should stop is allowed. So every value a user gives under a section of the pack's
//! data (`tools`, `egress`, `secrets` …) is checked against the pack's defaults when the
//! policies are loaded: the same JSON type as the default, keys the pack reads, severities
//! the pack knows. Top-level keys the pack does not have are the user's own data and are
//! not checked.

use serde_json::Value;
use tribunal_core::Severity;

/// A document of user data is an object whose keys are merged into the data policies read:
/// anything else would take the place of all of it, the pack's defaults included, and
/// leave every rule reading them undefined.
pub fn document(user: &Value) -> Result<(), String> {
    match user {
        Value::Object(_) => Ok(()),
        other => Err(expected(
            "the data",
            "a JSON object (its keys are merged into data.tribunal.config)",
            other,
        )),
    }
}

/// Checks one document of user data against the pack's `defaults`; the error names the
/// path (`tools.limits.refund.amount.max`) and what was expected.
pub fn check(user: &Value, defaults: &Value) -> Result<(), String> {
    document(user)?;
    let (Value::Object(user), Value::Object(defaults)) = (user, defaults) else {
        return Ok(());
    };
    for (k, v) in user {
        if let Some(d) = defaults.get(k) {
            value(k, k, v, Some(d))?;
        }
    }
    Ok(())
}

/// Sections whose keys are the user's to choose (tool, agent, judge or word names), checked
/// against the pattern `<section>.*`.
const OPEN: &[&str] = &[
    "alignment.synonyms",
    "alignment.tools",
    "commands.files",
    "commands.severities",
    "pii.traced_kinds",
    "model_judges",
    "model_judges.*",
    "tools.agents",
    "tools.limits",
    "tools.limits.*",
];

/// `pat`: the path with the user's own keys as `*`; `at`: the path as written.
fn value(pat: &str, at: &str, v: &Value, d: Option<&Value>) -> Result<(), String> {
    match pat {
        // Read and checked with the tool classes.
        "tools.classes" => return Ok(()),
        "alignment.synonyms.*" | "pii.traced_kinds.*" => return strings(at, v),
        "provenance.severity" | "model_judges.*.*" | "tools.limits.*.*.severity" => {
            return severity(at, v, false)
        }
        "alignment.severity"
        | "alignment.tools.*"
        | "commands.severities.*"
        | "tools.definition_changed"
        | "tools.destructive_when_requested" => return severity(at, v, true),
        "commands.files.*" => {
            let o = object(at, v)?;
            for (k, e) in o {
                let at = format!("{at}.{k}");
                match k.as_str() {
                    "pattern" => match e {
                        Value::String(p) => {
                            regex::Regex::new(p).map_err(|err| {
                                format!("{at}: expected a regular expression: {err}")
                            })?;
                        }
                        other => {
                            return Err(expected(&at, "a regular expression (a string)", other))
                        }
                    },
                    "severity" => severity(&at, e, true)?,
                    _ => {
                        return Err(unknown(
                            &at[..at.len() - k.len() - 1],
                            k,
                            &["pattern", "severity"],
                        ))
                    }
                }
            }
            // A kind of the pack's own keeps its pattern when only its severity is given.
            if !o.contains_key("pattern") && d.is_none() {
                return Err(format!(
                    "{at}: expected a pattern (a regular expression of the paths)"
                ));
            }
            return Ok(());
        }
        "tools.agents.*" => {
            let o = object(at, v)?;
            for (k, e) in o {
                match k.as_str() {
                    "allowed_tools" => strings(&format!("{at}.{k}"), e)?,
                    _ => return Err(unknown(at, k, &["allowed_tools"])),
                }
            }
            return Ok(());
        }
        "tools.limits.*.*" => {
            let o = object(at, v)?;
            for (k, e) in o {
                match k.as_str() {
                    "max" | "min" => number(&format!("{at}.{k}"), e)?,
                    "severity" => severity(&format!("{at}.{k}"), e, false)?,
                    _ => return Err(unknown(at, k, &["max", "min", "severity"])),
                }
            }
            if !o.contains_key("max") && !o.contains_key("min") {
                return Err(format!("{at}: expected a limit with max or min (a number)"));
            }
            return Ok(());
        }
        _ => {}
    }
    if OPEN.contains(&pat) {
        for (k, e) in object(at, v)? {
            let d = d.and_then(|d| d.get(k));
            value(&format!("{pat}.*"), &format!("{at}.{k}"), e, d)?;
        }
        return Ok(());
    }
    let Some(d) = d else {
        return Ok(());
    };
    match d {
        Value::Object(known) => {
            for (k, e) in object(at, v)? {
                let at = format!("{at}.{k}");
                if let Some(d) = known.get(k) {
                    value(&format!("{pat}.{k}"), &at, e, Some(d))?;
                } else {
                    let keys: Vec<&str> = known.keys().map(String::as_str).collect();
                    let parent = &at[..at.len() - k.len() - 1];
                    return Err(unknown(parent, k, &keys));
                }
            }
            Ok(())
        }
        Value::Array(items) => match items.first() {
            None | Some(Value::String(_)) => strings(at, v),
            Some(item) => {
                let list = v.as_array().ok_or_else(|| expected(at, "a list", v))?;
                for (i, e) in list.iter().enumerate() {
                    value(pat, &format!("{at}[{i}]"), e, Some(item))?;
                }
                Ok(())
            }
        },
        Value::Number(_)
            if pat
                .rsplit('.')
                .next()
                .is_some_and(|k| k.ends_with("threshold")) =>
        {
            score(at, v)
        }
        Value::Number(_) => number(at, v),
        Value::Bool(_) => v
            .is_boolean()
            .then_some(())
            .ok_or_else(|| expected(at, "true or false", v)),
        Value::String(_) => v
            .is_string()
            .then_some(())
            .ok_or_else(|| expected(at, "a string", v)),
        Value::Null => Ok(()),
    }
}

fn object<'a>(at: &str, v: &'a Value) -> Result<&'a serde_json::Map<String, Value>, String> {
    v.as_object().ok_or_else(|| expected(at, "a table", v))
}

fn number(at: &str, v: &Value) -> Result<(), String> {
    v.is_number()
        .then_some(())
        .ok_or_else(|| expected(at, "a number", v))
}

/// A threshold on the detectors' scores, which run from 0 to 1: one above 1 would never
/// fire (the rule reading it silently off), one below 0 always.
fn score(at: &str, v: &Value) -> Result<(), String> {
    number(at, v)?;
    match v.as_f64() {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(()),
        _ => Err(expected(
            at,
            "a number from 0 to 1 (findings score from 0 to 1)",
            v,
        )),
    }
}

fn strings(at: &str, v: &Value) -> Result<(), String> {
    match v.as_array() {
        Some(list) => match list.iter().position(|e| !e.is_string()) {
            None => Ok(()),
            Some(i) => Err(expected(&format!("{at}[{i}]"), "a string", &list[i])),
        },
        None => Err(expected(at, "a list of strings", v)),
    }
}

fn severity(at: &str, v: &Value, off: bool) -> Result<(), String> {
    let known = v
        .as_str()
        .is_some_and(|s| Severity::parse(s).is_some() || (off && s == "off"));
    if known {
        return Ok(());
    }
    let names = if off {
        "block, escalate, warn or off"
    } else {
        "block, escalate or warn"
    };
    Err(expected(at, names, v))
}

fn expected(at: &str, what: &str, found: &Value) -> String {
    let found = match found {
        Value::String(s) => format!("the string {s:?}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("{b}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a table".into(),
        Value::Null => "nothing".into(),
    };
    format!("{at}: expected {what}, found {found}")
}

fn unknown(at: &str, key: &str, known: &[&str]) -> String {
    format!(
        "{at}: unknown key {key:?}; the pack reads {}",
        known.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(user: Value) -> String {
        check(&user, &crate::pack::default_data()).unwrap_err()
    }

    #[test]
    fn the_defaults_and_the_documented_settings_pass() {
        let d = crate::pack::default_data();
        check(&d, &d).unwrap();
        check(
            &json!({
                "tools": {
                    "denied": ["admin_console"],
                    "limits": {"refund": {"amount": {"max": 500, "severity": "escalate"}}},
                    "agents": {"support": {"allowed_tools": ["lookup_order"]}},
                    "classes": {"x": "read_only"},
                    "definition_changed": "off"
                },
                "egress": {"allowed_domains": ["example.com"]},
                "secrets": {"threshold": 0.7},
                "model_judges": {"my_judge": {"bad": "escalate"}},
                "alignment": {"tools": {"send_email": "off"}, "synonyms": {"invoice": ["bill"]}},
                "commands": {
                    "severities": {"git_discard_changes": "block", "helm_uninstall": "off"},
                    "files": {"shell_startup": {"severity": "off"}, "vault": {"pattern": "^/srv/vault/", "severity": "escalate"}}
                },
                "refunds": {"anything": ["the user's own data"]}
            }),
            &d,
        )
        .unwrap();
    }

    #[test]
    fn data_that_is_not_an_object_is_refused() {
        for v in [json!([1, 2]), json!("hello"), json!(null), json!(3)] {
            let e = err(v.clone());
            assert!(
                e.starts_with("the data: expected a JSON object"),
                "{v}: {e}"
            );
        }
    }

    #[test]
    fn values_of_the_wrong_type_and_misspelt_keys_are_named() {
        for (user, want) in [
            (
                json!({"commands": {"threshold": "high"}}),
                "commands.threshold: expected a number, found the string \"high\"",
            ),
            (
                json!({"secrets": {"threshold": "0.5"}}),
                "secrets.threshold: expected a number",
            ),
            (
                json!({"tools": {"denied": "admin_console"}}),
                "tools.denied: expected a list of strings, found the string",
            ),
            (
                json!({"tools": {"limits": {"refund": {"amount": {"max": "500"}}}}}),
                "tools.limits.refund.amount.max: expected a number",
            ),
            (
                json!({"tools": {"limits": {"refund": {"amount": {"maximum": 500}}}}}),
                "tools.limits.refund.amount: unknown key \"maximum\"",
            ),
            (
                json!({"tools": {"deny": ["x"]}}),
                "tools: unknown key \"deny\"",
            ),
            (
                json!({"tools": {"limits": {"refund": {"amount": {"max": 5, "severity": "blockk"}}}}}),
                "tools.limits.refund.amount.severity: expected block, escalate or warn",
            ),
            (
                json!({"commands": {"severities": {"rm_rf": "stop"}}}),
                "commands.severities.rm_rf: expected block, escalate, warn or off",
            ),
            (
                json!({"commands": {"severities": ["rm_rf"]}}),
                "commands.severities: expected a table",
            ),
            (
                json!({"commands": {"files": {"vault": {"pattern": "(^|/vault/", "severity": "block"}}}}),
                "commands.files.vault.pattern: expected a regular expression",
            ),
            (
                json!({"commands": {"files": {"vault": {"path": "^/srv/vault/"}}}}),
                "commands.files.vault: unknown key \"path\"",
            ),
            (
                json!({"commands": {"files": {"vault": {"severity": "escalate"}}}}),
                "commands.files.vault: expected a pattern",
            ),
            (
                json!({"commands": {"files": {"ssh_login": {"pattern": "x", "severity": "stop"}}}}),
                "commands.files.ssh_login.severity: expected block, escalate, warn or off",
            ),
            (
                json!({"provenance": {"severity": "off"}}),
                "provenance.severity: expected block, escalate or warn",
            ),
            (
                json!({"tools": {"agents": {"support": {"allowed": ["x"]}}}}),
                "tools.agents.support: unknown key \"allowed\"",
            ),
            (
                json!({"egress": {"allowed_domains": ["a.com", 7]}}),
                "egress.allowed_domains[1]: expected a string, found the number 7",
            ),
            (
                json!({"budget": {"max_steps": "200"}}),
                "budget.max_steps: expected a number",
            ),
            (
                json!({"secrets": {"threshold": 3}}),
                "secrets.threshold: expected a number from 0 to 1 (findings score from 0 to 1), found the number 3",
            ),
            (
                json!({"injection": {"flow_threshold": -0.5}}),
                "injection.flow_threshold: expected a number from 0 to 1",
            ),
            (
                json!({"model_judges": {"safety": {"unsafe": "stop"}}}),
                "model_judges.safety.unsafe: expected block, escalate or warn",
            ),
        ] {
            let got = err(user.clone());
            assert!(got.starts_with(want), "{user}: {got}");
        }
    }
}

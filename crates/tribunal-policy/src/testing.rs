//! Rego unit tests: every rule named `test_*` in a loaded module must evaluate to `true`.

use crate::{PolicyError, PolicyOptions, PolicySet, PolicySource};
use serde::Serialize;
use serde_json::Value;

/// The result of one `test_` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestOutcome {
    /// `data.<package>.<rule>`
    pub name: String,
    pub file: String,
    pub passed: bool,
    /// Why it failed: the value it produced or the evaluation error.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Compiles `policies` with `tests` (and their data) and runs every `test_` rule found in
/// `tests`, in file order.
pub fn run_policy_tests(
    policies: Vec<PolicySource>,
    tests: Vec<PolicySource>,
    data: &[Value],
) -> Result<Vec<TestOutcome>, PolicyError> {
    let mut all = policies;
    let test_files: Vec<(String, Vec<String>)> = tests
        .iter()
        .map(|s| (s.path.clone(), test_rule_names(&s.text)))
        .collect();
    all.extend(tests);
    let set = PolicySet::new(all, data, PolicyOptions::default())?;
    let mut engine = set.engine().clone();
    engine.set_input(regorus::Value::new_object());
    let mut outcomes = Vec::new();
    for source in set.sources() {
        let Some((_, names)) = test_files.iter().find(|(p, _)| p == &source.path) else {
            continue;
        };
        if names.is_empty() {
            continue;
        }
        let package = package_of(&source.text).ok_or_else(|| PolicyError::Invalid {
            path: source.path.clone(),
            message: "no package declaration".into(),
        })?;
        for name in names {
            let full = format!("data.{package}.{name}");
            let (passed, detail) = match engine.eval_rule(full.clone()) {
                Ok(regorus::Value::Bool(true)) => (true, String::new()),
                Ok(regorus::Value::Undefined) => (false, "undefined (a condition failed)".into()),
                Ok(other) => (false, format!("evaluated to {other}")),
                Err(e) => (false, format!("error: {e}")),
            };
            outcomes.push(TestOutcome {
                name: full,
                file: source.path.clone(),
                passed,
                detail,
            });
        }
    }
    Ok(outcomes)
}

fn test_rule_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if !l.starts_with("test_") {
            continue;
        }
        let name: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The package a module declares, as written (`a.b`, `a["b"]`): the words after `package`
/// up to the end of the line or a `#` comment outside a string.
pub fn package_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("package")?;
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        let package = without_comment(rest).trim();
        (!package.is_empty()).then(|| package.to_owned())
    })
}

/// `line` up to its `#` comment; a `#` inside a double-quoted string is not one.
fn without_comment(line: &str) -> &str {
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_pass_and_fail_per_test() {
        let policy = PolicySource {
            path: "p.rego".into(),
            text: "package p\nimport rego.v1\nbig if input.n > 10\n".into(),
        };
        let tests = PolicySource {
            path: "p_test.rego".into(),
            text: "package p_test\nimport rego.v1\nimport data.p\ntest_big if p.big with input as {\"n\": 11}\ntest_small_is_big if p.big with input as {\"n\": 1}\n".into(),
        };
        let out = run_policy_tests(vec![policy], vec![tests], &[]).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out[0].passed, "{out:?}");
        assert!(!out[1].passed);
        assert_eq!(out[1].name, "data.p_test.test_small_is_big");
    }

    #[test]
    fn the_package_name_leaves_out_a_trailing_comment() {
        assert_eq!(package_of("package foo # note").as_deref(), Some("foo"));
        assert_eq!(package_of("package\tfoo.bar#x").as_deref(), Some("foo.bar"));
        assert_eq!(
            package_of("# package nope\npackage a[\"b#c\"] # d").as_deref(),
            Some("a[\"b#c\"]")
        );
        assert_eq!(
            package_of("package a[\"q\\\"#\"]#e").as_deref(),
            Some("a[\"q\\\"#\"]")
        );
        assert_eq!(package_of("packages x\npackage # none"), None);

        let policy = PolicySource {
            path: "p.rego".into(),
            text: "package p # the policy\nimport rego.v1\nbig if input.n > 10\n".into(),
        };
        let tests = PolicySource {
            path: "p_test.rego".into(),
            text: "package p_test # tests of p\nimport rego.v1\nimport data.p\ntest_big if p.big with input as {\"n\": 11}\n".into(),
        };
        let out = run_policy_tests(vec![policy], vec![tests], &[]).unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].name, "data.p_test.test_big");
        assert!(out[0].passed, "{out:?}");
    }
}

#[cfg(test)]
mod pack_tests {
    use super::*;
    use crate::pack;

    #[test]
    fn the_default_pack_passes_its_own_tests() {
        let out = run_policy_tests(pack::sources(), pack::test_sources(), &[]).unwrap();
        assert!(
            out.len() >= 20,
            "expected the pack's tests to be found, got {}",
            out.len()
        );
        let failed: Vec<_> = out.iter().filter(|o| !o.passed).collect();
        assert!(failed.is_empty(), "failing pack tests: {failed:#?}");
    }
}

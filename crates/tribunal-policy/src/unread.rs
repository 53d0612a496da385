//! Rules a gate author meant the gate to read, written under names it does not read.
//!
//! The gate reads one thing from a module: its `violation` set. Rego written for other
//! engines decides under other names — `deny` and `warn` (Conftest), `allow` (OPA's
//! authorization examples), `violations`, `block`, `escalate` — and a module that decides
//! only under such a name would be loaded and never read: every trace allowed. A module of
//! the user's own that defines no `violation` (in any file of its package) but defines one
//! of those names is refused when the policies load, unless another module uses the rule
//! (then it is a helper, read through that module's `violation`).

/// Names that decide in other engines' conventions; `deny_`, `warn_` and `violation_`
/// followed by anything count too (Conftest reads those prefixes).
const DECIDING: [&str; 6] = ["deny", "allow", "warn", "violations", "block", "escalate"];
const DECIDING_PREFIXES: [&str; 3] = ["deny_", "warn_", "violation_"];

/// The name of the rule a line of Rego defines, when it starts a rule (`name contains`,
/// `name[`, `name if`, `name :=`, `default name := …`, …).
pub(crate) fn rule_name(line: &str) -> Option<&str> {
    let l = line.trim_start();
    let l = l.strip_prefix("default ").map_or(l, str::trim_start);
    let end = l
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(l.len());
    let (name, rest) = l.split_at(end);
    let starts_rule = rest.is_empty()
        || rest.starts_with([' ', '\t', '[', '{', ':', '=', '('])
            && !rest.trim_start().starts_with("==");
    (!name.is_empty() && starts_rule).then_some(name)
}

fn deciding(name: &str) -> bool {
    DECIDING.contains(&name)
        || DECIDING_PREFIXES
            .iter()
            .any(|p| name.len() > p.len() && name.starts_with(p))
        || misspells_violation(name)
}

/// Whether `name` is `violation` misspelt: another case, or a letter left out, added,
/// changed or swapped with its neighbour (`violaton`, `voilation`, `Violation`).
fn misspells_violation(name: &str) -> bool {
    const GATE: &[u8] = b"violation";
    if name == "violation" {
        return false;
    }
    // Another case of it is a misspelling too: the gate reads `violation` as written.
    let name = name.to_ascii_lowercase();
    let a = name.as_bytes();
    if a.len() + 1 < GATE.len() || a.len() > GATE.len() + 1 {
        return false;
    }
    // Edit distance with swaps of neighbours (optimal string alignment).
    let (n, m) = (a.len(), GATE.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=m).collect();
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != GATE[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == GATE[j - 2] && a[i - 2] == GATE[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[n][m] <= 1
}

/// The first rule of `text` under a deciding name, with its line (from 1).
fn first_deciding(text: &str) -> Option<(usize, &str)> {
    text.lines().enumerate().find_map(|(i, l)| {
        // Only lines that start at the module's top level define rules.
        if l.starts_with([' ', '\t']) {
            return None;
        }
        rule_name(l).filter(|n| deciding(n)).map(|n| (i + 1, n))
    })
}

/// Whether `text` refers to rule `name` of `package` (`data.a.b.name`, `b.name` after an
/// import of `data.a.b`, or `alias.name` after `import data.a.b as alias`).
fn refers_to(text: &str, package: &str, name: &str) -> bool {
    let full = package.strip_prefix("data.").unwrap_or(package);
    let last = full.rsplit('.').next().unwrap_or(full);
    let mut handles = vec![format!("data.{full}"), last.to_owned()];
    for l in text.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("import ") {
            if let Some((what, alias)) = rest.split_once(" as ") {
                if what.trim() == format!("data.{full}") {
                    handles.push(alias.trim().to_owned());
                }
            }
        }
    }
    handles.iter().any(|h| {
        let needle = format!("{h}.{name}");
        text.match_indices(&needle).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + needle.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

/// A module of the user's own (`(path, text, package)`) that decides under a name the gate
/// does not read: the message naming its file, line and rule. `gates` are the packages that
/// define `violation`; test files (`*_test.rego`) and the pack are not looked at.
pub(crate) fn check<'a>(
    modules: impl Iterator<Item = (&'a str, &'a str, &'a str)> + Clone,
    gates: &[String],
) -> Result<(), (String, String)> {
    for (path, text, package) in modules.clone() {
        if path.ends_with("_test.rego") || gates.iter().any(|g| g == package) {
            continue;
        }
        let Some((line, name)) = first_deciding(text) else {
            continue;
        };
        let used = modules
            .clone()
            .any(|(p, t, _)| p != path && refers_to(t, package, name));
        if !used {
            return Err((
                format!("{path}:{line}"),
                format!(
                    "rule `{name}` is not read by the gate: a gate decides through a `violation` set \
                     (entries {{\"rule\", \"severity\": \"block\" | \"escalate\" | \"warn\", \"message\"}}, \
                     or strings, which block), and this package defines none, so every trace would be \
                     allowed; name the set `violation`, or read `{name}` from a module that defines one"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mods: &[(&str, &str, &str)], gates: &[&str]) -> Result<(), (String, String)> {
        let gates: Vec<String> = gates.iter().map(|g| g.to_string()).collect();
        check(mods.iter().copied(), &gates)
    }

    #[test]
    fn rules_are_found_by_their_heads() {
        assert_eq!(rule_name("deny contains msg if {"), Some("deny"));
        assert_eq!(rule_name("deny[msg] {"), Some("deny"));
        assert_eq!(rule_name("default allow := false"), Some("allow"));
        assert_eq!(rule_name("allow if input.x"), Some("allow"));
        assert_eq!(rule_name("warn_size contains m if {"), Some("warn_size"));
        assert_eq!(rule_name("allow == true"), None);
        assert_eq!(rule_name("# deny everything"), None);
        assert!(deciding("deny_large") && !deciding("deny_") && !deciding("denylist"));
        assert!(!deciding("allowed_tools") && !deciding("violation"));
        for typo in [
            "violaton",
            "voilation",
            "violatoin",
            "Violation",
            "violatiion",
            "violatio",
        ] {
            assert!(deciding(typo), "{typo}");
        }
        for other in [
            "validation",
            "location",
            "violent",
            "relation",
            "isolation",
            "violator",
            "violating",
            "vocation",
            "vibration",
        ] {
            assert!(!deciding(other), "{other}");
        }
    }

    /// A gate whose set is misspelt was loaded and never read: every trace allowed.
    #[test]
    fn a_misspelt_violation_set_is_refused() {
        let text = "package x\nimport rego.v1\nviolaton contains \"no\" if true\n";
        let (at, message) = run(&[("typo/a.rego", text, "data.x")], &[]).unwrap_err();
        assert_eq!(at, "typo/a.rego:3");
        assert!(message.contains("`violaton`"), "{message}");
    }

    #[test]
    fn a_module_deciding_only_under_another_name_is_refused() {
        let text = "package mine\nimport rego.v1\n\ndeny contains msg if {\n  msg := \"no\"\n}\n";
        let (at, message) = run(&[("policies/mine.rego", text, "data.mine")], &[]).unwrap_err();
        assert_eq!(at, "policies/mine.rego:4");
        assert!(
            message.contains("`deny`") && message.contains("violation"),
            "{message}"
        );
        let opa = "package authz\n\ndefault allow := false\nallow if input.user == \"admin\"\n";
        let (at, _) = run(&[("p/authz.rego", opa, "data.authz")], &[]).unwrap_err();
        assert_eq!(at, "p/authz.rego:3");
    }

    #[test]
    fn gates_helpers_and_tests_pass() {
        // The package decides through `violation` (in this file or another of the package).
        let helper = "package mine\nallow if input.ok\n";
        assert!(run(&[("a.rego", helper, "data.mine")], &["data.mine"]).is_ok());
        // Another module reads the rule, by full path, by the package's last name or by an alias.
        for user in [
            "package g\nviolation contains \"x\" if not data.lib.allow\n",
            "package g\nimport data.lib\nviolation contains \"x\" if not lib.allow\n",
            "package g\nimport data.lib as l\nviolation contains \"x\" if not l.allow\n",
        ] {
            let mods = [
                ("lib.rego", "package lib\nallow if input.ok\n", "data.lib"),
                ("g.rego", user, "data.g"),
            ];
            assert!(run(&mods, &["data.g"]).is_ok(), "{user}");
        }
        // A mention of another rule with the same start is no use of it.
        let mods = [
            ("lib.rego", "package lib\nallow if input.ok\n", "data.lib"),
            (
                "g.rego",
                "package g\nviolation contains \"x\" if data.lib.allowed\n",
                "data.g",
            ),
        ];
        assert!(run(&mods, &["data.g"]).is_err());
        let test = "package mine_test\ndeny if true\n";
        assert!(run(&[("mine_test.rego", test, "data.mine_test")], &[]).is_ok());
        // Names that only start like a deciding one, and indented lines, are not rules.
        let other = "package x\nallowed_tools := [1]\nf(x) := y if {\n  deny := 1\n  y := x\n}\n";
        assert!(run(&[("x.rego", other, "data.x")], &[]).is_ok());
    }
}

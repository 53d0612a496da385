//! The `dangerous_commands` detector: destructive shell (recursive rm of / or ~, mkfs, dd to a
//! device, fork bombs, chmod -R 777 /, curl | sh, reverse shells, reading /etc/shadow, history
//! wiping), SQL (DROP, TRUNCATE, DELETE or UPDATE without WHERE, GRANT ALL) and code
//! (os.system, subprocess with shell=True, eval of input, unpickling) in tool-call arguments,
//! the pending step included. A finding's kind is its rule id; the rule's category (shell,
//! sql, code) lives in `rules/commands.toml`.

use super::rules::{resolve_overlaps, Cand, RuleSet, RuleSpec};
use super::{
    check_threshold, parse_rule_file, Combine, DetectorJudge, FileSettings, Hit, Scanner, Scope,
    PROVENANCES,
};
use crate::error::JudgeConfigError;
use crate::registry::params;
use crate::text::plain_excerpt;
use crate::Judge;
use serde::Deserialize;
use serde_json::Value;
use std::sync::LazyLock;

const KIND: &str = "dangerous_commands";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    settings: FileSettings,
    rule: Vec<RuleSpec>,
}

static RULES: LazyLock<Result<RuleFile, String>> =
    LazyLock::new(|| parse_rule_file("commands.toml", include_str!("../../rules/commands.toml")));

/// The prefilter literals of the built-in rules; `None` when the rule file does not parse.
pub(crate) fn builtin_literals() -> Option<Vec<Vec<u8>>> {
    Some(super::literals_of(&RULES.as_ref().ok()?.rule))
}

/// Settings of a `dangerous_commands` judge. Unset fields take the rule file's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsSettings {
    /// Rules added to the built-in ones; one with a built-in id replaces it.
    pub extra_rules: Vec<RuleSpec>,
    /// Rule ids to turn off.
    pub disable: Vec<String>,
    /// Findings scoring below this are not reported.
    pub threshold: Option<f64>,
    /// Only scan calls to these tools (default: every tool).
    pub tools: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    RmRecursive,
    SqlNoWhere,
}

const CHECKS: &[(&str, Check)] = &[
    ("rm_recursive", Check::RmRecursive),
    ("sql_no_where", Check::SqlNoWhere),
];

/// Finds dangerous commands in any text. Build once, scan many times (it is `Send + Sync`).
pub struct CommandScanner {
    rules: RuleSet<Check>,
    threshold: f64,
}

impl CommandScanner {
    /// Compiles the built-in rules adjusted by `settings`.
    pub fn new(settings: &CommandsSettings) -> Result<CommandScanner, JudgeConfigError> {
        CommandScanner::compile(KIND, settings)
    }

    fn compile(name: &str, s: &CommandsSettings) -> Result<CommandScanner, JudgeConfigError> {
        let err = |m: String| JudgeConfigError::invalid(name, m);
        let file = RULES.as_ref().map_err(|e| err(e.clone()))?;
        let rules =
            RuleSet::compile(&file.rule, &s.extra_rules, &s.disable, &[], CHECKS).map_err(err)?;
        let threshold = check_threshold(
            name,
            "threshold",
            s.threshold.unwrap_or(file.settings.threshold),
        )?;
        Ok(CommandScanner { rules, threshold })
    }

    /// Appends the dangerous commands found in `text` to `out`, sorted by position.
    /// Overlapping findings of the same category are merged (the higher score wins).
    ///
    /// A text with quotes or backslashes is also read as the shell reads its words once it
    /// has removed them (`r\m -rf /`, `'r''m' -rf /` and `"rm" -rf /` run `rm -rf /`); what
    /// is found there is reported at the same place in the text as written.
    pub fn scan(&self, text: &str, out: &mut Vec<Hit>) {
        let mut cands: Vec<Cand> = Vec::new();
        self.rules.for_each_match(text, |i, rule, s, e| {
            if rule.check.is_none_or(|c| passes(c, &text[s..e])) {
                cands.push(Cand {
                    rule: i,
                    start: s,
                    end: e,
                    score: rule.score,
                });
            }
        });
        if let Some((plain, origin)) = unquoted(text) {
            self.rules.for_each_match(&plain, |i, rule, s, e| {
                if rule.check.is_none_or(|c| passes(c, &plain[s..e])) {
                    cands.push(Cand {
                        rule: i,
                        start: origin[s],
                        end: origin[e - 1] + 1,
                        score: rule.score,
                    });
                }
            });
            cands.sort_by_key(|c| (c.start, c.end));
        }
        resolve_overlaps(&mut cands, |a, b| {
            self.rules.rule(a.rule).category == self.rules.rule(b.rule).category
        });
        self.rules.emit(&cands, self.threshold, out);
    }

    /// The category (`shell`, `sql`, `code`, or what an extra rule says) of a rule id.
    pub fn category(&self, id: &str) -> Option<&str> {
        self.rules.find(id).map(|r| &*r.category)
    }

    /// The same scanner reading each text alone, with an automaton of its own.
    #[cfg(test)]
    pub(crate) fn alone(mut self) -> CommandScanner {
        self.rules = self.rules.alone();
        self
    }

    /// Whether it reads texts through the pass the built-in detectors share.
    #[cfg(test)]
    pub(crate) fn shares_pass(&self) -> bool {
        self.rules.shares_pass()
    }

    /// Ids of the enabled rules.
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.ids()
    }

    /// The enabled regex rules, for running them without the prefilter (benchmarks).
    pub fn regexes(&self) -> Vec<(&str, &regex::Regex)> {
        self.rules.regexes()
    }
}

impl Scanner for CommandScanner {
    fn scan_text(&self, text: &str, out: &mut Vec<Hit>) {
        self.scan(text, out)
    }
}

/// `text` without the quotes and backslashes the shell removes from its words (every `'`
/// and `"`, a `\` before a letter, digit, `-` or `/`), with the place in `text` of each byte
/// kept; `None` when there are none.
fn unquoted(text: &str) -> Option<(String, Vec<usize>)> {
    let b = text.as_bytes();
    let dropped = |i: usize| match b[i] {
        b'\'' | b'"' => true,
        b'\\' => b
            .get(i + 1)
            .is_some_and(|n| n.is_ascii_alphanumeric() || matches!(n, b'-' | b'/')),
        _ => false,
    };
    if !(0..b.len()).any(dropped) {
        return None;
    }
    let mut plain = Vec::with_capacity(b.len());
    let mut origin = Vec::with_capacity(b.len());
    for (i, &byte) in b.iter().enumerate() {
        if !dropped(i) {
            plain.push(byte);
            origin.push(i);
        }
    }
    // Only ASCII bytes were taken out, so what is left is still UTF-8.
    let plain = String::from_utf8(plain).ok()?;
    Some((plain, origin))
}

fn passes(check: Check, m: &str) -> bool {
    match check {
        Check::RmRecursive => m.split_whitespace().any(|w| {
            w == "--recursive"
                || (w.starts_with('-') && !w.starts_with("--") && w.contains(['r', 'R']))
        }),
        Check::SqlNoWhere => !m
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|w| w.eq_ignore_ascii_case("where")),
    }
}

/// Builds a `dangerous_commands` judge. Settings: see [`CommandsSettings`].
pub fn build(name: &str, params_value: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: CommandsSettings = params(name, params_value)?;
    let scanner = CommandScanner::compile(name, &settings)?;
    let provenances: Vec<String> = PROVENANCES.iter().map(|p| (*p).to_owned()).collect();
    let scope = Scope::new(
        name,
        &provenances,
        &["arguments".to_owned()],
        settings.tools.clone(),
    )?;
    Ok(Box::new(DetectorJudge::new(
        name,
        scanner,
        scope,
        Combine::Max,
        plain_excerpt,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(passes(Check::RmRecursive, "rm -rf /"));
        assert!(passes(Check::RmRecursive, "rm --force --recursive ~"));
        assert!(!passes(Check::RmRecursive, "rm -f /"));
        assert!(passes(Check::SqlNoWhere, "DELETE FROM users"));
        assert!(!passes(Check::SqlNoWhere, "DELETE FROM users WHERE id = 1"));
        assert!(passes(Check::SqlNoWhere, "UPDATE t SET somewhere = 1"));
    }
}

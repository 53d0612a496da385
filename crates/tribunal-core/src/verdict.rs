//! Verdicts: the decision for one trace, from feedback and policy violations.

use crate::feedback::Feedback;
use serde::{Deserialize, Serialize};

/// What the gate says. Ordered from least to most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Escalate,
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Escalate => "escalate",
            Decision::Block => "block",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A violation's severity: what it does to the decision. `warn` is reported but allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warn,
    Escalate,
    Block,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "warn" | "warning" | "info" => Some(Severity::Warn),
            "escalate" => Some(Severity::Escalate),
            "block" | "deny" => Some(Severity::Block),
            _ => None,
        }
    }
    pub fn decision(self) -> Decision {
        match self {
            Severity::Warn => Decision::Allow,
            Severity::Escalate => Decision::Escalate,
            Severity::Block => Decision::Block,
        }
    }
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Stable rule id, e.g. `tribunal.c4.secret_in_arguments`.
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    /// Span, message or tool-call ids that show the problem.
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// The combined result of both judges for one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub decision: Decision,
    /// One line per violation that set or raised the decision.
    pub reasons: Vec<String>,
    pub violations: Vec<Violation>,
    pub feedback: Vec<Feedback>,
}

impl Verdict {
    /// The strictest severity wins; with no violation the decision is `allow`.
    pub fn combine(feedback: Vec<Feedback>, mut violations: Vec<Violation>) -> Verdict {
        violations.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(&b.rule)));
        let decision = violations
            .iter()
            .map(|v| v.severity.decision())
            .max()
            .unwrap_or(Decision::Allow);
        let reasons = violations
            .iter()
            .filter(|v| v.severity != Severity::Warn)
            .map(|v| format!("{}: {}", v.rule, v.message))
            .collect();
        Verdict {
            decision,
            reasons,
            violations,
            feedback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(rule: &str, s: Severity) -> Violation {
        Violation {
            rule: rule.into(),
            severity: s,
            message: "m".into(),
            evidence: vec![],
        }
    }

    #[test]
    fn strictest_severity_wins() {
        let verdict = Verdict::combine(
            vec![],
            vec![
                v("a", Severity::Warn),
                v("b", Severity::Block),
                v("c", Severity::Escalate),
            ],
        );
        assert_eq!(verdict.decision, Decision::Block);
        assert_eq!(verdict.violations[0].rule, "b");
        assert_eq!(verdict.reasons.len(), 2);
    }

    #[test]
    fn warnings_alone_allow() {
        let verdict = Verdict::combine(vec![], vec![v("a", Severity::Warn)]);
        assert_eq!(verdict.decision, Decision::Allow);
        assert!(verdict.reasons.is_empty());
        assert_eq!(Verdict::combine(vec![], vec![]).decision, Decision::Allow);
    }
}

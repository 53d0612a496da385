//! One trace in, one verdict out: every judge, then every gate, then the combination.

use serde::Serialize;
use std::sync::Arc;
use tribunal_core::{Feedback, Pending, Trace, Verdict};
use tribunal_formats::SourceRef;
use tribunal_judges::{Judge, JudgeInput};
use tribunal_policy::{Context, PolicyEvaluator, PolicySet};

/// The two judges, built once and shared by every worker.
pub struct Evaluator {
    judges: Vec<Box<dyn Judge>>,
    policies: PolicySet,
    context: Context,
}

/// The result for one trace, as reports and the store keep it.
#[derive(Debug, Clone, Serialize)]
pub struct TraceResult {
    pub trace_id: String,
    pub source: SourceRef,
    /// `allow`, `escalate` or `block`.
    pub verdict: tribunal_core::Decision,
    pub reasons: Vec<String>,
    pub feedback: Vec<Feedback>,
    pub violations: Vec<tribunal_core::Violation>,
    /// How long judging took (JUnit's `time`); not part of the stored result.
    #[serde(skip)]
    pub elapsed: std::time::Duration,
}

/// The rule of the violation a judge that gave no usable answer makes.
pub const JUDGE_ERROR: &str = "tribunal.judge_error";

impl TraceResult {
    /// The `tribunal.judge_error` violations: judges that gave no usable answer.
    pub fn judge_errors(&self) -> impl Iterator<Item = &tribunal_core::Violation> {
        self.violations.iter().filter(|v| v.rule == JUDGE_ERROR)
    }

    /// Whether a judge that is not optional gave no usable answer.
    pub fn judge_failed(&self) -> bool {
        self.judge_errors()
            .any(|v| v.severity != tribunal_core::Severity::Warn)
    }

    pub fn new(trace_id: String, source: SourceRef, v: Verdict) -> TraceResult {
        TraceResult {
            trace_id,
            source,
            verdict: v.decision,
            reasons: v.reasons,
            feedback: v.feedback,
            violations: v.violations,
            elapsed: std::time::Duration::ZERO,
        }
    }
}

impl Evaluator {
    pub fn new(
        judges: Vec<Box<dyn Judge>>,
        policies: PolicySet,
        context: Context,
    ) -> Arc<Evaluator> {
        Arc::new(Evaluator {
            judges,
            policies,
            context,
        })
    }

    /// How many traces are worth judging at once: judges that wait on a model want more in
    /// flight than there are cores.
    pub fn max_in_flight(&self) -> usize {
        self.judges
            .iter()
            .map(|j| j.max_in_flight())
            .max()
            .unwrap_or(0)
    }

    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The metrics judge's judges, in configuration order.
    pub fn judges(&self) -> &[Box<dyn Judge>] {
        &self.judges
    }

    /// The configured default context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// A policy evaluator for one thread.
    pub fn policy_evaluator(&self) -> PolicyEvaluator {
        self.policies.evaluator()
    }

    /// Runs every judge on the trace. A judge that panics is reported as an error on its
    /// feedback, never skipped.
    pub fn feedback(&self, trace: &Trace, pending: Option<&Pending>) -> Vec<Feedback> {
        let input = JudgeInput { trace, pending };
        let mut out = Vec::new();
        for j in &self.judges {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| j.judge(&input))) {
                Ok(f) => out.extend(f),
                Err(_) => out.push(Feedback::error(
                    j.name(),
                    j.name(),
                    "the judge failed unexpectedly on this trace",
                )),
            }
        }
        out
    }

    /// Judges, gates and combines.
    pub fn evaluate(
        &self,
        trace: &Trace,
        pending: Option<&Pending>,
        context: Option<&Context>,
        policy: &mut PolicyEvaluator,
    ) -> Verdict {
        let feedback = self.feedback(trace, pending);
        let context = context.unwrap_or(&self.context);
        let violations = policy.evaluate_trace(trace, pending, &feedback, context);
        Verdict::combine(feedback, violations)
    }

    /// The context from configuration, with the trace's own `agent`/`user` metadata over it.
    pub fn context_for(&self, trace: &Trace) -> Option<Context> {
        let agent = trace.metadata.get("agent").and_then(|v| v.as_str());
        let user = trace.metadata.get("user").and_then(|v| v.as_str());
        if agent.is_none() && user.is_none() {
            return None;
        }
        let mut c = self.context.clone();
        if let Some(a) = agent {
            c.agent = Some(a.to_owned());
        }
        if let Some(u) = user {
            c.user = Some(u.to_owned());
        }
        Some(c)
    }
}

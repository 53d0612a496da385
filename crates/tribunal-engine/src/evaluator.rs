//! One trace in, one verdict out: every judge, then every gate, then the combination.

use crate::pool::JudgePool;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use tribunal_core::{Feedback, Pending, Trace, Verdict};
use tribunal_formats::SourceRef;
use tribunal_judges::{Judge, JudgeInput};
use tribunal_policy::{Context, PolicyEvaluator, PolicySet};

/// The two judges, built once and shared by every worker and every held trace; decisions
/// are made through [`crate::Session::decide`].
pub struct Evaluator {
    judges: Vec<Box<dyn Judge>>,
    policies: PolicySet,
    /// Policies decided and reported beside the enforced ones, never enforced.
    shadow: Option<PolicySet>,
    context: Context,
    /// Policy evaluators ready for use (regorus engines are not shared between threads):
    /// one per thread deciding at once, made when first needed.
    pool: Mutex<Vec<PolicyEvaluator>>,
    shadow_pool: Mutex<Vec<PolicyEvaluator>>,
    /// The threads model judges run on under a deadline.
    judge_pool: JudgePool,
}

/// Judges that wait in the judge pool's queue per thread, at most.
const QUEUED_PER_THREAD: usize = 16;
/// The most threads an evaluator's judge pool runs.
pub const MAX_JUDGE_THREADS: usize = 256;

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
    /// The trace as judged (the trace model as JSON), when the run keeps traces
    /// ([`crate::RunOptions::keep_traces`]); stored beside the result, not in it.
    #[serde(skip)]
    pub trace: Option<String>,
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
            trace: None,
        }
    }
}

impl Evaluator {
    pub fn new(
        judges: Vec<Box<dyn Judge>>,
        policies: PolicySet,
        context: Context,
    ) -> Arc<Evaluator> {
        Evaluator::with_shadow(judges, policies, None, context)
    }

    /// An evaluator whose decisions also report what `shadow` policies would decide.
    pub fn with_shadow(
        judges: Vec<Box<dyn Judge>>,
        policies: PolicySet,
        shadow: Option<PolicySet>,
        context: Context,
    ) -> Arc<Evaluator> {
        // As many threads as the model judges may have calls in flight: more would only
        // wait on their clients' limits.
        let threads = judges
            .iter()
            .map(|j| j.max_in_flight())
            .sum::<usize>()
            .clamp(1, MAX_JUDGE_THREADS);
        Arc::new(Evaluator {
            judge_pool: JudgePool::new(threads, threads * QUEUED_PER_THREAD),
            judges,
            policies,
            shadow,
            context,
            pool: Mutex::new(Vec::new()),
            shadow_pool: Mutex::new(Vec::new()),
        })
    }

    /// The threads model judges run on when a decision has a deadline.
    pub fn judge_pool(&self) -> &JudgePool {
        &self.judge_pool
    }

    /// The shadow policies, when there are any.
    pub fn shadow(&self) -> Option<&PolicySet> {
        self.shadow.as_ref()
    }

    /// Runs `f` with a policy evaluator of the enforced policies taken from the pool.
    pub fn with_policy<T>(&self, f: impl FnOnce(&mut PolicyEvaluator) -> T) -> T {
        with_pooled(&self.pool, &self.policies, f)
    }

    /// Runs `f` with a policy evaluator of the shadow policies, when there are any.
    pub fn with_shadow_policy<T>(&self, f: impl FnOnce(&mut PolicyEvaluator) -> T) -> Option<T> {
        let set = self.shadow.as_ref()?;
        Some(with_pooled(&self.shadow_pool, set, f))
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

    /// A policy evaluator of the enforced policies for the caller to keep (tests comparing
    /// policy sets); decisions take theirs from the pool.
    pub fn policy_evaluator(&self) -> PolicyEvaluator {
        self.policies.evaluator()
    }

    /// Runs every judge on the trace. A judge that panics is reported as an error on its
    /// feedback, never skipped.
    pub fn feedback(&self, trace: &Trace, pending: Option<&Pending>) -> Vec<Feedback> {
        let input = JudgeInput { trace, pending };
        self.judges
            .iter()
            .flat_map(|j| crate::session::run_one(j.as_ref(), &input, None))
            .collect()
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

fn with_pooled<T>(
    pool: &Mutex<Vec<PolicyEvaluator>>,
    set: &PolicySet,
    f: impl FnOnce(&mut PolicyEvaluator) -> T,
) -> T {
    let taken = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut ev = taken.unwrap_or_else(|| set.evaluator());
    let out = f(&mut ev);
    pool.lock().unwrap_or_else(|p| p.into_inner()).push(ev);
    out
}

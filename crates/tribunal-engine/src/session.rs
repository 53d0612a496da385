//! An evaluation session: one trace that may grow between decisions, what every judge kept
//! of it, what the screen in front of the policy pack kept of it, and the evaluator that
//! left them. `tribunal eval`, `tribunal check`, `tribunal replay`, the OTLP scorer and the
//! gate all decide through [`Session::decide`], so a decision made again from the same trace,
//! pending step and context is the decision made the first time.
//!
//! A trace judged once (an evaluation run) is a session that decides once. The gate keeps a
//! session per held trace: an agent's new steps extend it ([`Session::extend`]) and the code
//! judges and the screen read only what is new.

use crate::evaluator::Evaluator;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tribunal_core::{
    Feedback, Heap, Message, Pending, Severity, SourceType, Trace, Verdict, Violation,
};
use tribunal_judges::{GrowState, Judge, JudgeInput};
use tribunal_policy::{Context, ScreenMemo};

/// The rule of the violation made when model judges do not answer within the budget.
pub const BUDGET_EXCEEDED: &str = "tribunal.budget_exceeded";

/// What the judges and the screen of one evaluator kept of a trace between decisions.
pub struct Kept {
    /// The evaluator whose judges left the states: another one (a reload) starts over.
    evaluator: Weak<Evaluator>,
    states: Vec<GrowState>,
    screen: ScreenMemo,
    /// Roughly the memory the states and the memo take, as of the last decision.
    bytes: usize,
}

impl Kept {
    /// What `evaluator` may use of `kept`: all of it when its own judges left it, else a
    /// fresh start.
    fn for_evaluator(kept: Option<Kept>, evaluator: &Arc<Evaluator>) -> Kept {
        let mut kept = kept
            .filter(|k| std::ptr::eq(k.evaluator.as_ptr(), Arc::as_ptr(evaluator)))
            .unwrap_or_else(|| Kept {
                evaluator: Arc::downgrade(evaluator),
                states: Vec::new(),
                screen: ScreenMemo::default(),
                bytes: 0,
            });
        kept.states.resize_with(evaluator.judges().len(), || None);
        kept
    }

    /// Roughly how many bytes of memory the judges' states and the screen's memo take,
    /// with what they point to: what a holder of sessions counts against its limit.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn measure(&mut self, evaluator: &Evaluator) -> usize {
        let states: usize = evaluator
            .judges()
            .iter()
            .zip(&self.states)
            .map(|(j, s)| j.state_bytes(s))
            .sum();
        std::mem::size_of::<Kept>()
            + self.states.capacity() * std::mem::size_of::<GrowState>()
            + states
            + self.screen.heap()
    }

    /// Whether the states were left by `evaluator`'s judges.
    pub fn is_for(&self, evaluator: &Arc<Evaluator>) -> bool {
        std::ptr::eq(self.evaluator.as_ptr(), Arc::as_ptr(evaluator))
    }
}

/// How long model judges may take, and what it means when they do not answer in time.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub limit: Duration,
    /// The severity of `tribunal.budget_exceeded` when a late judge is not optional.
    pub late: Severity,
}

/// What one decision is asked about.
#[derive(Default, Clone)]
pub struct Ask {
    /// The step the agent is about to take, when it is being gated before it happens.
    pub pending: Option<Arc<Pending>>,
    /// The context to decide in; by default the configured one with the trace's own
    /// `agent`/`user` metadata over it.
    pub context: Option<Context>,
    /// A deadline for model judges; none: they take as long as they take.
    pub budget: Option<Budget>,
}

/// One decision.
pub struct Decided {
    pub verdict: Verdict,
    /// The shadow policies' decision, when the evaluator has shadow policies.
    pub shadow: Option<Verdict>,
    /// Model judges that did not answer within the budget.
    pub late: Vec<String>,
    /// The context the decision was made in.
    pub context: Context,
}

/// A trace and what was kept of it between decisions.
pub struct Session {
    trace: Arc<Trace>,
    kept: Option<Kept>,
}

impl Session {
    /// A session for a trace seen for the first time.
    pub fn new(trace: impl Into<Arc<Trace>>) -> Session {
        Session {
            trace: trace.into(),
            kept: None,
        }
    }

    /// A session over a trace whose first messages were judged before, with what was kept
    /// of them then (the judges check that the states cover no more than the trace has).
    pub fn resume(trace: Arc<Trace>, kept: Option<Kept>) -> Session {
        Session { trace, kept }
    }

    pub fn trace(&self) -> &Arc<Trace> {
        &self.trace
    }

    /// The trace and what was kept of it, to hold until the next decision.
    pub fn into_parts(self) -> (Arc<Trace>, Option<Kept>) {
        (self.trace, self.kept)
    }

    /// Adds an agent's new messages to the trace (in place unless another reader still
    /// holds it); what the judges kept stays valid because the trace only grew.
    pub fn extend(&mut self, messages: impl IntoIterator<Item = Message>) {
        Arc::make_mut(&mut self.trace).messages.extend(messages);
    }

    /// Judges the trace with `ask`'s pending step: code judges from what they kept, model
    /// judges under the budget (on the evaluator's judge pool, so the slowest bounds the
    /// wait), then the enforced and shadow policies. Blocks for as long as model judges run:
    /// call it off an async runtime's workers when the evaluator has model judges.
    pub fn decide(&mut self, evaluator: &Arc<Evaluator>, ask: Ask) -> Decided {
        let mut kept = Kept::for_evaluator(self.kept.take(), evaluator);
        let decided = decide(evaluator, &self.trace, ask, Some(&mut kept));
        kept.bytes = kept.measure(evaluator);
        self.kept = Some(kept);
        decided
    }

    /// [`Session::decide`] for a trace decided once (an evaluation run, a check, a replay):
    /// the same decision, without keeping what the judges and the screen read for a next
    /// call.
    pub fn decide_once(self, evaluator: &Arc<Evaluator>, ask: Ask) -> Decided {
        let mut kept = self
            .kept
            .filter(|k| k.is_for(evaluator))
            .map(|k| Kept::for_evaluator(Some(k), evaluator));
        decide(evaluator, &self.trace, ask, kept.as_mut())
    }
}

/// One decision of `trace`; with `kept`, code judges and the screen go on from it and leave
/// what they read there.
fn decide(
    evaluator: &Arc<Evaluator>,
    trace: &Arc<Trace>,
    ask: Ask,
    mut kept: Option<&mut Kept>,
) -> Decided {
    let context = ask
        .context
        .or_else(|| evaluator.context_for(trace))
        .unwrap_or_else(|| evaluator.context().clone());
    let (feedback, late) = judge(
        evaluator,
        trace,
        &ask.pending,
        ask.budget,
        kept.as_mut().map(|k| &mut k.states[..]),
    );
    let pending = ask.pending.as_deref();
    let policies = evaluator.policies();
    let mut violations = evaluator.with_policy(|p| match kept {
        Some(k) => p.evaluate_grown(&mut k.screen, trace, pending, &feedback, &context),
        None => p.evaluate_trace(trace, pending, &feedback, &context),
    });
    let shadow = evaluator.with_shadow_policy(|p| {
        Verdict::combine(
            Vec::new(),
            p.evaluate_trace(trace, pending, &feedback, &context),
        )
    });
    if let Some(budget) = ask.budget {
        // A late judge already has its `tribunal.judge_error`; the budget's own violation
        // follows the gate's fail mode unless every late judge is optional.
        let errors = policies.judge_errors();
        if late
            .iter()
            .any(|name| errors.severity(name) != Severity::Warn)
        {
            violations.push(Violation {
                rule: BUDGET_EXCEEDED.into(),
                severity: budget.late,
                message: format!(
                    "model judges {} did not answer within the {} ms budget; the gate's fail mode applies",
                    late.join(", "),
                    budget.limit.as_millis()
                ),
                evidence: Vec::new(),
            });
        }
    }
    Decided {
        verdict: Verdict::combine(feedback, violations),
        shadow,
        late,
        context,
    }
}

/// Code judges inline, from what they kept when `states` are given; model judges inline
/// without a budget, on the evaluator's judge pool with one. Feedback in judge order; late
/// judges (not answered in time, or refused by a full pool) as errors.
fn judge(
    evaluator: &Arc<Evaluator>,
    trace: &Arc<Trace>,
    pending: &Option<Arc<Pending>>,
    budget: Option<Budget>,
    mut states: Option<&mut [GrowState]>,
) -> (Vec<Feedback>, Vec<String>) {
    let input = JudgeInput {
        trace,
        pending: pending.as_deref(),
    };
    let judges = evaluator.judges();
    let mut out: Vec<Feedback> = Vec::with_capacity(judges.len());
    let deadline = budget.map(|b| Instant::now() + b.limit);
    // Model judges waited for: where their feedback goes in `out`, their index.
    let mut waiting = Vec::new();
    let (tx, rx) = mpsc::channel::<(usize, Vec<Feedback>)>();
    for (i, j) in judges.iter().enumerate() {
        let deadline = match deadline {
            Some(d) if j.max_in_flight() > 0 => d,
            _ => {
                // Model judges keep nothing between calls.
                let state = states
                    .as_mut()
                    .filter(|_| j.max_in_flight() == 0)
                    .and_then(|s| s.get_mut(i));
                out.extend(run_one(j.as_ref(), &input, state));
                continue;
            }
        };
        let (ev, t, p, tx) = (
            evaluator.clone(),
            trace.clone(),
            pending.clone(),
            tx.clone(),
        );
        let submitted = evaluator.judge_pool().submit(deadline, move || {
            let input = JudgeInput {
                trace: &t,
                pending: p.as_deref(),
            };
            let _ = tx.send((i, run_one(ev.judges()[i].as_ref(), &input, None)));
        });
        // A judge the pool cannot take now is late like one that did not answer.
        if submitted.is_ok() {
            waiting.push((out.len(), i, true));
        } else {
            waiting.push((out.len(), i, false));
        }
    }
    drop(tx);
    let mut late = Vec::new();
    if let (Some(budget), Some(deadline)) = (budget, deadline.filter(|_| !waiting.is_empty())) {
        let mut answered: Vec<Option<Vec<Feedback>>> = vec![None; judges.len()];
        let mut left = waiting.iter().filter(|w| w.2).count();
        while left > 0 {
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match rx.recv_timeout(wait) {
                Ok((i, f)) => {
                    answered[i] = Some(f);
                    left -= 1;
                }
                Err(_) => break,
            }
        }
        // In judge order: from the last, so earlier places do not move.
        for (at, i, taken) in waiting.into_iter().rev() {
            let name = judges[i].name();
            let f = answered[i].take().unwrap_or_else(|| {
                late.push(name.to_owned());
                let message = if taken {
                    format!(
                        "no answer within the {} ms budget",
                        budget.limit.as_millis()
                    )
                } else {
                    format!(
                        "not started within the {} ms budget: every judge thread is busy",
                        budget.limit.as_millis()
                    )
                };
                vec![model_error(name, &message)]
            });
            out.splice(at..at, f);
        }
        late.reverse();
    }
    (out, late)
}

/// One judge's feedback; `grown` is what it kept of the trace, for code judges. A judge that
/// panics is reported as an error on its feedback, never skipped.
pub(crate) fn run_one(
    j: &dyn Judge,
    input: &JudgeInput,
    grown: Option<&mut GrowState>,
) -> Vec<Feedback> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match grown {
        Some(state) => j.judge_grown(input, state),
        None => j.judge(input),
    }))
    .unwrap_or_else(|_| {
        vec![Feedback::error(
            j.name(),
            j.name(),
            "the judge failed unexpectedly on this trace",
        )]
    })
}

fn model_error(name: &str, message: &str) -> Feedback {
    let mut f = Feedback::error(name, name, message);
    f.source.source_type = SourceType::LlmJudge;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluator() -> Arc<Evaluator> {
        Evaluator::new(
            tribunal_judges::default_judges(),
            tribunal_policy::PolicySet::new(Vec::new(), &[], Default::default()).unwrap(),
            Default::default(),
        )
    }

    #[test]
    fn kept_states_serve_only_the_evaluator_that_left_them() {
        let (a, b) = (evaluator(), evaluator());
        let n = a.judges().len();
        let mut kept = Kept::for_evaluator(None, &a);
        assert_eq!(kept.states.len(), n, "one state per judge");
        kept.states[0] = Some(Box::new(7usize));
        let again = Kept::for_evaluator(Some(kept), &a);
        assert!(again.states[0].is_some(), "the same evaluator continues");
        assert!(again.is_for(&a) && !again.is_for(&b));
        // A reloaded configuration (another evaluator) starts over.
        let other = Kept::for_evaluator(Some(again), &b);
        assert!(other.states.iter().all(|s| s.is_none()));
        assert_eq!(other.states.len(), b.judges().len());
    }
}

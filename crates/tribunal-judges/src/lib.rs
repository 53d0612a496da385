//! The metrics judge: code metrics and detectors, each a [`Judge`] that returns
//! [`Feedback`] for a trace (and the step it is about to take, if any).
//!
//! Adding a judge means one file in `metrics/` or `detectors/` and one line in
//! [`registry::BUILTINS`].

pub mod agent;
pub mod detectors;
pub mod error;
pub mod llm;
pub mod metrics;
pub mod registry;
pub mod text;

pub use error::JudgeConfigError;
pub use registry::{
    build_judge, build_versioned, build_versioned_as, check_definition, default_judges, JudgeSpec,
    BUILTINS,
};
use tribunal_core::{Feedback, Pending, Trace};

/// What a judge looks at.
#[derive(Debug, Clone, Copy)]
pub struct JudgeInput<'a> {
    pub trace: &'a Trace,
    /// The proposed next step, when the trace is being gated before it happens.
    pub pending: Option<&'a Pending>,
}

/// A scorer. Judges are built once from configuration and shared across threads.
pub trait Judge: Send + Sync {
    /// The instance name (the config table name); feedback names start with it.
    fn name(&self) -> &str;
    /// How many calls this judge can usefully have in flight (judges that wait on a
    /// model); 0 for judges that only compute.
    fn max_in_flight(&self) -> usize {
        0
    }

    /// Gives a judge that calls a model the cache to remember its answers in, so a repeated
    /// call is answered without the provider. Judges that call no model ignore it.
    fn set_response_cache(
        &mut self,
        _cache: std::sync::Arc<dyn tribunal_llm::ResponseCache>,
    ) -> Result<(), JudgeConfigError> {
        Ok(())
    }

    /// Scores one trace. A judge with nothing to say (no expectations to compare with, say)
    /// returns no feedback; a judge that fails returns feedback with `error` set.
    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback>;

    /// [`Judge::judge`] for a caller that sends the same texts again and again (the gate,
    /// called before every step of an agent with the conversation so far): the judge may
    /// keep what it computed per text between calls. The feedback is the same.
    fn judge_memo(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        self.judge(input)
    }

    /// [`Judge::judge_memo`] for a trace that grows between calls (the gate holds an agent's
    /// trace and appends its new steps): `state` is what this judge left in it on an earlier
    /// call, when the trace's messages then were the first messages of `input.trace`,
    /// unchanged; or `None`. A judge that keeps per-message work there (detectors, loop
    /// detection) then reads only the new messages and the pending step. The feedback is the
    /// same as [`Judge::judge`]'s. A state of another judge, or one that covers more
    /// messages than the trace has, is not trusted: the judge starts over.
    fn judge_grown(&self, input: &JudgeInput<'_>, state: &mut GrowState) -> Vec<Feedback> {
        let _ = state;
        self.judge_memo(input)
    }

    /// Roughly how many bytes `state` (left by this judge's [`Judge::judge_grown`]) takes,
    /// with what it points to: what a holder of growing traces counts against its memory
    /// limit. A judge that keeps no state of its own never sees one.
    fn state_bytes(&self, state: &GrowState) -> usize {
        // A state of a judge that does not say: counted at a fixed size.
        state.as_ref().map_or(0, |_| 256)
    }
}

/// What a judge keeps of one growing trace between calls; see [`Judge::judge_grown`].
pub type GrowState = Option<Box<dyn std::any::Any + Send + Sync>>;

/// [`Judge::state_bytes`] of a state of type `S` (a state of another type: a fixed size).
pub fn state_bytes<S: tribunal_core::Heap + 'static>(state: &GrowState) -> usize {
    state.as_ref().map_or(0, |s| match s.downcast_ref::<S>() {
        Some(s) => std::mem::size_of::<S>() + tribunal_core::size::ALLOCATION + s.heap(),
        None => 256,
    })
}

/// Takes the state of type `S` out of `state` when it covers at most `messages` messages
/// (by `covered`), else gives a fresh one; the judge puts it back when done.
pub fn take_state<S: Default + Send + Sync + 'static>(
    state: &mut GrowState,
    messages: usize,
    covered: impl Fn(&S) -> usize,
) -> Box<S> {
    match state.take().and_then(|s| s.downcast::<S>().ok()) {
        Some(s) if covered(&s) <= messages => s,
        _ => Box::default(),
    }
}

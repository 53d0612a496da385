//! The optimizer interface and the alignment run around it. An optimizer sees only the
//! train split; the run scores the starting and the aligned judge on the held-out split and
//! checks that no held-out label found its way into the aligned definition.
//!
//! Adding an optimizer: one file in `optimizers/` implementing [`Optimizer`], and one line
//! in [`OPTIMIZERS`].

use crate::data::{Example, LabelType, Split};
use crate::model::{Answer, Candidate, JudgeModel, ModelError, Reflector, Usage};
use crate::optimizers;
use crate::report::{difference, scores, Interval, Outcome, Scores};
use serde::{Deserialize, Serialize};

/// What an optimizer may use.
pub struct Context<'a> {
    pub judge: &'a mut dyn JudgeModel,
    pub reflector: &'a mut dyn Reflector,
    pub label_type: &'a LabelType,
    /// Calls and tokens spent so far (judge and reflection).
    pub usage: Usage,
    pub seed: u64,
}

impl Context<'_> {
    /// Judges each item with `candidate` (leaving each item's own label out of the memory).
    pub fn evaluate(
        &mut self,
        candidate: &Candidate,
        items: &[Example],
    ) -> Result<Vec<Outcome>, ModelError> {
        evaluate(
            self.judge,
            self.label_type,
            candidate,
            items,
            &mut self.usage,
        )
    }

    pub fn reflect(&mut self, prompt: &str) -> Result<String, ModelError> {
        let (text, usage) = self.reflector.reflect(prompt)?;
        self.usage.add(&usage);
        Ok(text)
    }
}

/// Judges each item; answers are normalized to the label type (an answer that does not fit
/// counts as no answer).
pub fn evaluate(
    judge: &mut dyn JudgeModel,
    ty: &LabelType,
    candidate: &Candidate,
    items: &[Example],
    usage: &mut Usage,
) -> Result<Vec<Outcome>, ModelError> {
    let mut out = Vec::with_capacity(items.len());
    for e in items {
        let mut answer = judge.judge(&candidate.without(&e.id), e)?;
        usage.add(&answer.usage);
        if let Some(v) = answer.value.take() {
            match ty.normalize(&v) {
                Ok(n) => answer.value = Some(n),
                Err(why) => answer.error = Some(format!("unusable answer: {why}")),
            }
        }
        out.push(Outcome {
            id: e.id.clone(),
            expected: e.label.clone(),
            answer,
        });
    }
    Ok(out)
}

/// Agreement of outcomes (0 for none).
pub fn agreement(outcomes: &[Outcome]) -> f64 {
    if outcomes.is_empty() {
        return 0.0;
    }
    outcomes.iter().filter(|o| o.agrees()).count() as f64 / outcomes.len() as f64
}

/// An alignment method.
pub trait Optimizer {
    /// Its name on the command line.
    fn name(&self) -> &'static str;
    /// A better candidate than `start` for `train`, or `start` itself.
    fn optimize(
        &self,
        start: &Candidate,
        train: &[Example],
        cx: &mut Context<'_>,
    ) -> Result<Optimized, ModelError>;
}

/// An optimizer's result with what it did, in words for the lineage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimized {
    pub candidate: Candidate,
    pub notes: Vec<String>,
}

/// Makes an optimizer with its default settings.
pub type MakeOptimizer = fn() -> Box<dyn Optimizer>;

/// The optimizers, by name.
pub const OPTIMIZERS: &[(&str, MakeOptimizer)] = &[
    ("memory", || Box::new(optimizers::memory::Memory::default())),
    ("instructions", || {
        Box::new(optimizers::instructions::Instructions::default())
    }),
    ("isotonic", || Box::new(optimizers::isotonic::Isotonic)),
];

pub fn optimizer(name: &str) -> Option<Box<dyn Optimizer>> {
    OPTIMIZERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f())
}

/// The outcome of an alignment run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aligned {
    pub optimizer: String,
    pub candidate: Candidate,
    pub notes: Vec<String>,
    pub train_ids: Vec<String>,
    pub held_out_ids: Vec<String>,
    pub before: Scores,
    pub after: Scores,
    /// After minus before on the held-out split; `None` with the reason in `notes` when it
    /// cannot be computed.
    pub difference: Option<Interval>,
    /// Spent by the optimizer (on train).
    pub usage_optimizing: Usage,
    /// Spent scoring both versions on the held-out split.
    pub usage_scoring: Usage,
}

/// Why an alignment run stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlignError {
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("no held-out labels to score on; use a larger --holdout")]
    NoHeldOut,
    #[error("the aligned judge holds held-out label {0}: refusing to report")]
    Leak(String),
    /// Neither version gave one usable answer on the held-out labels: there is nothing to
    /// compare, and reporting the figures would say the judges disagree with everyone.
    #[error("the judge gave no usable answer on any of the {items} held-out labels, before or after aligning (first: {first})")]
    Unanswered { items: usize, first: String },
}

/// Runs `optimizer` on the train split from `start`, then scores both on the held-out
/// split.
pub fn align(
    optimizer: &dyn Optimizer,
    start: &Candidate,
    split: &Split,
    judge: &mut dyn JudgeModel,
    reflector: &mut dyn Reflector,
    label_type: &LabelType,
    seed: u64,
) -> Result<Aligned, AlignError> {
    if split.held_out.is_empty() {
        return Err(AlignError::NoHeldOut);
    }
    let mut cx = Context {
        judge,
        reflector,
        label_type,
        usage: Usage::default(),
        seed,
    };
    let optimized = optimizer.optimize(start, &split.train, &mut cx)?;
    let usage_optimizing = cx.usage;
    if let Some(m) = optimized
        .candidate
        .alignment
        .examples
        .iter()
        .find(|m| split.held_out.iter().any(|h| h.id == m.id))
    {
        return Err(AlignError::Leak(m.id.clone()));
    }
    let mut usage_scoring = Usage::default();
    let before = evaluate(
        judge_of(&mut cx),
        label_type,
        start,
        &split.held_out,
        &mut usage_scoring,
    )?;
    let after = evaluate(
        judge_of(&mut cx),
        label_type,
        &optimized.candidate,
        &split.held_out,
        &mut usage_scoring,
    )?;
    if before
        .iter()
        .chain(&after)
        .all(|o| o.answer.value.is_none())
    {
        let first = before
            .iter()
            .chain(&after)
            .find_map(|o| o.answer.error.clone())
            .unwrap_or_else(|| "no reason given".into());
        return Err(AlignError::Unanswered {
            items: split.held_out.len(),
            first,
        });
    }
    let mut notes = optimized.notes;
    let diff = match difference(&before, &after, seed) {
        Ok(d) => Some(d),
        Err(e) => {
            notes.push(format!("no interval of the difference: {e}"));
            None
        }
    };
    Ok(Aligned {
        optimizer: optimizer.name().to_owned(),
        candidate: optimized.candidate,
        notes,
        train_ids: split.train.iter().map(|e| e.id.clone()).collect(),
        held_out_ids: split.held_out.iter().map(|e| e.id.clone()).collect(),
        before: scores(&before),
        after: scores(&after),
        difference: diff,
        usage_optimizing,
        usage_scoring,
    })
}

fn judge_of<'a>(cx: &'a mut Context<'_>) -> &'a mut dyn JudgeModel {
    &mut *cx.judge
}

/// A short description of a disagreement for a reflection prompt.
pub fn describe(item: &Example, answer: &Answer) -> String {
    let mut s = format!(
        "Inputs: {}\nReply: {}\nExpert answer: {}\n",
        crate::memory::text_of(&item.inputs),
        crate::memory::text_of(&item.outputs),
        crate::memory::text_of(&item.label)
    );
    if let Some(r) = &item.rationale {
        s.push_str(&format!("Expert reason: {r}\n"));
    }
    match &answer.value {
        Some(v) => s.push_str(&format!(
            "Judge answered: {} ({})\n",
            crate::memory::text_of(v),
            answer.rationale
        )),
        None => s.push_str(&format!(
            "Judge gave no usable answer: {}\n",
            answer.error.as_deref().unwrap_or("no reason given")
        )),
    }
    s
}

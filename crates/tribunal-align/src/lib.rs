//! Aligning a judge to expert labels, and knowing when not to trust it. This crate is pure
//! (no I/O, no clock; randomness is seeded): model calls go through the [`model::JudgeModel`]
//! and [`model::Reflector`] traits, which the command line implements with real models.
//!
//! [`data`]: labels to examples (unusable labels counted and skipped), the stratified seeded
//! split, and refusals when the labels cannot support a claim. [`optimizer`]: the
//! [`optimizer::Optimizer`] interface, the alignment run (optimize on train, score before and
//! after on held-out) and the registry; [`optimizers`] has one file per optimizer (`memory`,
//! `instructions`, `isotonic` with the monotone map of [`isotonic`]). [`memory`]: guidelines and worked examples added to a judge's prompt, with
//! [`bm25`] to find the examples. [`report`]: agreement, Cohen's κ, the confusion matrix and a
//! bootstrap interval of the difference. [`calibrate`]: trust-or-escalate thresholds by
//! fixed-sequence testing.

pub mod bm25;
pub mod calibrate;
pub mod data;
pub mod isotonic;
pub mod memory;
pub mod model;
pub mod optimizer;
pub mod optimizers;
pub mod report;
pub mod rng;

pub use data::{Dataset, Example, LabelRecord, LabelType, Minimums, Refusal, Split};
pub use memory::Alignment;
pub use model::{Answer, Candidate, JudgeModel, ModelError, Reflector, Usage};
pub use optimizer::{align, optimizer, AlignError, Aligned, Optimizer, OPTIMIZERS};

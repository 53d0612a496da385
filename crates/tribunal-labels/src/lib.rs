//! Human labels and how far they can be trusted. This crate is pure (no I/O, no clock): the
//! store holds labels, this crate computes from them.
//!
//! [`schema`]: label schemas (pass/fail, categorical, numeric, text, pairwise) and typed
//! values. [`queue`]: who labels what next (overlap, locks that time out, skips, gold items,
//! blind mode) and which items go to review. [`items`]: what an item is (a trace, a span, a
//! run's trace, a pair). [`state`]: a queue's state rebuilt from the store's record of what
//! people did, what they settled on, and the labels written out. [`figures`]: a queue's
//! agreement and quality figures.
//!
//! [`agreement`]: percent agreement, Cohen's κ (unweighted, linear and quadratic weights for
//! ordered labels), Fleiss' κ, Krippendorff's α (nominal, ordinal, interval; missing labels
//! allowed), and a seeded bootstrap interval for any of them. A figure that cannot be
//! computed from its input (one category, one rating per item, no items) is
//! [`agreement::NotComputable`] with the reason, never a NaN.

pub mod agreement;
pub mod figures;
pub mod items;
pub mod queue;
pub mod schema;
pub mod state;

//! Code metrics: deterministic measurements of a trace (counts, latency, usage, cost,
//! matching against expectations, schema validity, tool-call correctness, loops, trajectory
//! precision and recall, redundant calls, unrecovered errors, steps to completion).
//!
//! Every metric follows the same contract: settings are a typed struct read with
//! [`crate::registry::params`] (unknown settings are errors), feedback is named after the
//! judge instance, a metric with nothing to measure returns no feedback, and one that
//! cannot compute returns [`tribunal_core::Feedback::error`] rather than a guess.

pub mod counts;
pub mod json_schema;
pub mod latency;
pub mod loops;
pub mod matching;
pub mod reward_model;
pub mod tool_calls;
pub mod trajectory;
pub mod usage;
pub(crate) mod util;

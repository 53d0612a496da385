//! The heart of Tribunal: the normalized trace model every importer produces, the feedback
//! every judge returns, and the verdict logic that combines them.
//!
//! This crate is pure: no I/O, no async, no clock. Everything here is plain data plus the
//! functions that derive one piece of it from another.

pub mod feedback;
pub mod json;
pub mod pending;
pub mod redact;
pub mod shell;
pub mod size;
pub mod terminal;
pub mod trace;
pub mod verdict;

pub use feedback::{Feedback, FeedbackSource, Finding, Location, ModelUsage, SourceType};
pub use pending::Pending;
pub use size::Heap;
pub use trace::{
    Assessment, Message, Provenance, Role, Span, SpanKind, SpanStatus, TokenUsage, ToolCall,
    ToolDef, Trace,
};
pub use verdict::{Decision, Severity, Verdict, Violation};

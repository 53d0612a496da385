//! Agent-as-a-judge: judges that investigate a whole execution trace with read-only tools
//! instead of reading it pasted into one prompt.
//!
//! `tools` answers the model's questions about one trace (pure); `answer` defines the final
//! answer (`submit_verdict`) and checks it, ids included, against the trace; `investigate`
//! runs the tool loop over any [`investigate::ChatModel`] within turn, token and time limits;
//! `judge` turns configuration into the `agent`, `requirements` and `failure_attribution`
//! judge kinds (and `llm` judges whose instructions use `{{ trace }}`).

pub mod answer;
pub mod investigate;
pub mod judge;
pub mod tools;

pub use answer::{AnswerKind, FinalAnswer, SUBMIT};
pub use investigate::{investigate, ChatModel, Effort, Failure, Limits, Outcome, Task};
pub use tools::TraceTools;

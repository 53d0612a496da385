//! The pure half of LLM-as-a-judge: prompts built from a judge's instructions with the
//! judged trace quoted as data, and verdicts parsed and checked against the judge's declared
//! output type. Calling a model lives in `tribunal-llm`.

pub mod constitution;
mod embed;
pub mod judge;
pub(crate) mod model;
pub mod output;
pub mod presets;
pub mod prompt;
mod trust;

pub use model::ClientTrust;
pub use output::{parse_verdict, OutputType, Unusable, Verdict, ANSWER_NOT_SHOWN};
pub use prompt::{JudgePrompt, PromptTemplate, TEMPLATE_VARIABLES};
pub use trust::sampled_confidence;

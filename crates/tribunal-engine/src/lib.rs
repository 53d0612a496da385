//! The evaluation engine: reads configuration, builds the two judges, and runs them over
//! traces, streaming and in parallel, producing results in input order and the reports
//! (table, JSON, JSONL, JUnit) that CI systems read.

pub mod config;
pub mod evaluator;
mod html;
pub mod judge_toml;
pub mod pool;
pub mod report;
pub mod run;
pub mod session;

pub use config::{Config, ConfigError};
pub use evaluator::{Evaluator, TraceResult};
pub use pool::JudgePool;
pub use run::{run_eval, Event, RunOptions, Summary};
pub use session::{Ask, Budget, Decided, Kept, Session};

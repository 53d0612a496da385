//! Importers: every supported wire format becomes a [`tribunal_core::Trace`] here, once.
//! Nothing downstream knows whether a trace came from OTLP, MLflow, a chat log or a
//! benchmark's results file (τ-bench, τ²-bench, GAIA, WebArena).
//!
//! Adding a format means one module in this folder and one arm in [`InputFormat`].

pub mod anthropic;
pub mod continuation;
pub mod detect;
pub mod error;
pub mod gaia;
pub mod mlflow;
pub mod native;
pub mod openai;
pub mod openai_row;
pub mod otlp;
pub mod pending;
pub mod reader;
pub mod responses;
pub mod spans;
pub mod tau;
mod util;
pub mod webarena;

pub use continuation::Continuation;
pub use detect::{detect, fits, import_value, InputFormat};
pub use error::ImportError;
pub use pending::import_pending;
pub use reader::{read_paths, RawItem, ReadError, SourceRef};

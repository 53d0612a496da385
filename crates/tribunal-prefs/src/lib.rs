//! Preference data and reward models.
//!
//! - [`constitution`]: constitutions (principles with critique and revision requests),
//!   versioned by content hash, and the preference records their critiques and comparisons
//!   make.
//! - [`record`]: a preference record (prompt, chosen, rejected, labels, provenance) and its
//!   content id.
//! - [`formats`]: TRL, hh-rlhf, UltraFeedback-binarized and the record's own JSONL, read
//!   from any `BufRead` and written to any `Write`; a bad row is rejected with its line and
//!   field while the others go in.
//! - [`features`]: the hashed features a reply is scored on.
//! - [`model`]: the Bradley–Terry reward model (pairwise logistic loss with margin and soft
//!   labels), its seeded training and its JSON file.
//! - [`eval`]: pairwise accuracy beside a length-only baseline and chance, a seeded
//!   bootstrap interval, per-subset and best-of-N accuracy.
//!
//! Nothing here reads a clock, a file or the network: callers pass readers and writers in.
//! Training is deterministic for a seed.

pub mod constitution;
pub mod eval;
pub mod features;
pub mod formats;
pub mod model;
pub mod record;
mod rng;

pub use constitution::{Constitution, ConstitutionError, Principle};
pub use eval::{best_of_n, evaluate, holdout_split, Accuracy, BestOfN, BestOfNGroup, Evaluation};
pub use features::FeatureSettings;
pub use formats::{
    export, import, ExportError, Exported, Format, ImportError, Imported, RejectedRow,
};
pub use model::{ModelError, RewardModel, TrainSettings, TrainSummary};
pub use record::{Message, PreferenceRecord, Provenance, ProvenanceKind, Turns};

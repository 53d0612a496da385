//! Configuration errors for judges: they name the judge, the setting and the valid choices.

use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum JudgeConfigError {
    #[error("judges.{name}: unknown judge kind {kind:?}; valid kinds: {valid}")]
    UnknownKind {
        name: String,
        kind: String,
        valid: String,
    },
    #[error("judges.{name}: {message}")]
    Invalid { name: String, message: String },
}

impl JudgeConfigError {
    pub fn invalid(name: &str, message: impl Into<String>) -> JudgeConfigError {
        JudgeConfigError::Invalid {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

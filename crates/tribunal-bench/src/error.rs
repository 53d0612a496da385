//! Errors of the loaders and scorers. Every error names the file, the line when it is known,
//! the field (as a JSON path inside the item) and what was expected there.

use thiserror::Error;

/// A results, answers or task file that cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadError {
    /// The file or directory could not be read.
    #[error("{file}: {message}")]
    Io { file: String, message: String },
    /// The text is not JSON.
    #[error("{file}:{line}:{column}: invalid JSON: {message}")]
    Json {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// Valid JSON, but a field is missing or has the wrong type.
    #[error("{}{field}: expected {expected}", at(file, *line))]
    Field {
        file: String,
        line: Option<u64>,
        field: String,
        expected: String,
    },
    /// Well-formed items that do not fit together (duplicates, unknown tasks, no items).
    #[error("{}{message}", at(file, *line))]
    Invalid {
        file: String,
        line: Option<u64>,
        message: String,
    },
}

fn at(file: &str, line: Option<u64>) -> String {
    match line {
        Some(l) => format!("{file}:{l}: "),
        None => format!("{file}: "),
    }
}

impl LoadError {
    pub(crate) fn io(file: impl Into<String>, e: impl std::fmt::Display) -> LoadError {
        LoadError::Io {
            file: file.into(),
            message: e.to_string(),
        }
    }

    pub(crate) fn invalid(
        file: impl Into<String>,
        line: Option<u64>,
        message: impl Into<String>,
    ) -> LoadError {
        LoadError::Invalid {
            file: file.into(),
            line,
            message: message.into(),
        }
    }

    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            LoadError::Io { file, .. }
            | LoadError::Json { file, .. }
            | LoadError::Field { file, .. }
            | LoadError::Invalid { file, .. } => file,
        }
    }

    /// The line the error is about, when known.
    pub fn line(&self) -> Option<u64> {
        match self {
            LoadError::Io { .. } => None,
            LoadError::Json { line, .. } => Some(*line),
            LoadError::Field { line, .. } | LoadError::Invalid { line, .. } => *line,
        }
    }
}

/// An LLM grader that could not give a grade.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("LLM grader: {0}")]
pub struct GraderError(pub String);

/// Items that load but cannot be scored together.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScoreError {
    #[error("no results to score")]
    Empty,
    /// A result for a task the reference file does not have.
    #[error("{at}: task {task_id:?} is not in {reference}")]
    UnknownTask {
        task_id: String,
        /// `file:line` of the result.
        at: String,
        /// What was searched (the answers file, the task configs).
        reference: String,
    },
}

//! Import errors name the field that was wrong and what was expected there.

/// A document that is valid JSON but not a valid trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// JSON path of the offending field, e.g. `messages[2].tool_calls[0].function.name`.
    pub field: String,
    pub expected: String,
}

impl std::error::Error for ImportError {}

/// `field: expected what`, or `expected what` for the document itself.
impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "expected {}", self.expected)
        } else {
            write!(f, "{}: expected {}", self.field, self.expected)
        }
    }
}

impl ImportError {
    pub fn new(field: impl Into<String>, expected: impl Into<String>) -> ImportError {
        ImportError {
            field: field.into(),
            expected: expected.into(),
        }
    }

    /// Prefix the field path with the enclosing field.
    pub fn within(mut self, parent: &str) -> ImportError {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

//! One file per optimizer; each is listed in [`crate::optimizer::OPTIMIZERS`].

pub mod instructions;
pub mod isotonic;
pub mod memory;

use serde_json::Value;

/// The JSON object in a model's answer (the text may wrap it in prose or a code fence).
pub(crate) fn json_in(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end < start {
        return None;
    }
    serde_json::from_str(&text[start..=end]).ok()
}

/// How many disagreements a reflection prompt shows at most.
pub(crate) const MAX_CASES: usize = 12;

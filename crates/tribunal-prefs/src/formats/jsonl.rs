//! The preference record itself, one a line, every field.

use super::{field, finite, required, to_line, FieldError};
use crate::record::PreferenceRecord;
use serde_json::{Map, Value};

const FIELDS: &[&str] = &[
    "prompt",
    "chosen",
    "rejected",
    "margin",
    "soft_label",
    "tie",
    "score_chosen",
    "score_rejected",
    "prompt_id",
    "subset",
    "provenance",
];

pub(super) fn read(row: &Map<String, Value>) -> Result<PreferenceRecord, FieldError> {
    if let Some(unknown) = row.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err((unknown.clone(), "unknown field".into()));
    }
    let soft_label = field::<f64>(row, "soft_label")?;
    if let Some(p) = soft_label {
        if !(0.0..=1.0).contains(&p) {
            return Err(("soft_label".into(), format!("{p} is not in [0, 1]")));
        }
    }
    Ok(PreferenceRecord {
        prompt: field(row, "prompt")?.unwrap_or_default(),
        chosen: required(row, "chosen")?,
        rejected: required(row, "rejected")?,
        margin: field(row, "margin")?,
        soft_label,
        tie: field(row, "tie")?.unwrap_or(false),
        score_chosen: field(row, "score_chosen")?,
        score_rejected: field(row, "score_rejected")?,
        prompt_id: field(row, "prompt_id")?,
        subset: field(row, "subset")?,
        provenance: field(row, "provenance")?.unwrap_or_default(),
    })
}

pub(super) fn write(r: &PreferenceRecord) -> Result<String, FieldError> {
    finite("margin", r.margin)?;
    finite("soft_label", r.soft_label)?;
    finite("score_chosen", r.score_chosen)?;
    finite("score_rejected", r.score_rejected)?;
    to_line(r)
}

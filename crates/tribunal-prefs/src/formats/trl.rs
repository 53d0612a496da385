//! TRL's preference formats. Explicit prompt: `{prompt, chosen, rejected}`. Implicit
//! prompt: `{chosen, rejected}`, both holding the prompt; the shared beginning (messages,
//! or text up to a word boundary) becomes the prompt. Each of the three is plain text or a
//! list of `{role, content}` messages. An optional `margin` is kept.

use super::{field, finite, required, split_messages, split_text, to_line, FieldError};
use crate::record::{PreferenceRecord, Turns};
use serde::Serialize;
use serde_json::{Map, Value};

pub(super) fn read(row: &Map<String, Value>) -> Result<PreferenceRecord, FieldError> {
    let chosen: Turns = required(row, "chosen")?;
    let rejected: Turns = required(row, "rejected")?;
    let margin = field::<f64>(row, "margin")?;
    let prompt: Option<Turns> = field(row, "prompt")?;
    let (prompt, chosen, rejected) = match prompt {
        Some(p) => (p, chosen, rejected),
        None => match (chosen, rejected) {
            (Turns::Text(c), Turns::Text(r)) => {
                let (p, c, r) = split_text(&c, &r);
                (
                    Turns::Text(p.to_string()),
                    Turns::Text(c.to_string()),
                    Turns::Text(r.to_string()),
                )
            }
            (Turns::Messages(c), Turns::Messages(r)) => {
                let (p, c, r) = split_messages(c, r);
                (Turns::Messages(p), Turns::Messages(c), Turns::Messages(r))
            }
            _ => {
                return Err((
                    "rejected".into(),
                    "chosen and rejected must both be text or both be messages".into(),
                ))
            }
        },
    };
    let mut r = PreferenceRecord::new(prompt, chosen, rejected);
    r.margin = margin;
    Ok(r)
}

#[derive(Serialize)]
struct Row<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a Turns>,
    chosen: Turns,
    rejected: Turns,
    #[serde(skip_serializing_if = "Option::is_none")]
    margin: Option<f64>,
}

pub(super) fn write(r: &PreferenceRecord, explicit: bool) -> Result<String, FieldError> {
    let margin = finite("margin", r.margin)?;
    if explicit {
        return to_line(&Row {
            prompt: Some(&r.prompt),
            chosen: r.chosen.clone(),
            rejected: r.rejected.clone(),
            margin,
        });
    }
    let join = |reply: &Turns, name: &str| -> Result<Turns, FieldError> {
        match (&r.prompt, reply) {
            (Turns::Text(p), Turns::Text(c)) => Ok(Turns::Text(format!("{p}{c}"))),
            (Turns::Messages(p), Turns::Messages(c)) => {
                let mut all = p.clone();
                all.extend(c.iter().cloned());
                Ok(Turns::Messages(all))
            }
            (p, Turns::Messages(c)) if p.is_empty() => Ok(Turns::Messages(c.clone())),
            (p, Turns::Text(c)) if p.is_empty() => Ok(Turns::Text(c.clone())),
            _ => Err((
                name.to_string(),
                "the prompt and the reply must both be text or both be messages".into(),
            )),
        }
    };
    let chosen = join(&r.chosen, "chosen")?;
    let rejected = join(&r.rejected, "rejected")?;
    if matches!(
        (&chosen, &rejected),
        (Turns::Text(_), Turns::Messages(_)) | (Turns::Messages(_), Turns::Text(_))
    ) {
        return Err((
            "rejected".into(),
            "chosen and rejected must both be text or both be messages".into(),
        ));
    }
    to_line(&Row {
        prompt: None,
        chosen,
        rejected,
        margin,
    })
}

/// Whether a record written with an implicit prompt reads back as itself: the prompt is the
/// replies' shared beginning up to a word boundary, so text replies that begin alike, or a
/// prompt that does not end where a word does, would come back as another record.
pub(super) fn reads_back_implicit(r: &PreferenceRecord) -> bool {
    match (&r.prompt, &r.chosen, &r.rejected) {
        (Turns::Text(p), Turns::Text(c), Turns::Text(j)) => {
            let (c, j) = (format!("{p}{c}"), format!("{p}{j}"));
            split_text(&c, &j).0 == p
        }
        _ => true,
    }
}

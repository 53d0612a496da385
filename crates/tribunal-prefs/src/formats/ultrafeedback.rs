//! UltraFeedback-binarized rows (`HuggingFaceH4/ultrafeedback_binarized`): `prompt` (a
//! string), `prompt_id`, `chosen` and `rejected` as message lists that begin with the
//! prompt's messages, `messages` (the chosen conversation, not read), `score_chosen` and
//! `score_rejected`. Replies that do not begin with the prompt are read as replies to
//! `prompt` as one user message.

use super::{field, finite, required, split_messages, to_line, FieldError};
use crate::record::{Message, PreferenceRecord, Turns};
use serde::Serialize;
use serde_json::{Map, Value};

pub(super) fn read(row: &Map<String, Value>) -> Result<PreferenceRecord, FieldError> {
    let prompt: String = required(row, "prompt")?;
    let chosen: Vec<Message> = required(row, "chosen")?;
    let rejected: Vec<Message> = required(row, "rejected")?;
    let (p, c, r) = split_messages(chosen, rejected);
    let (p, c, r) = if p.is_empty() && c.first().is_none_or(|m| m.role != "user") {
        (vec![Message::new("user", &prompt)], c, r)
    } else {
        match p.last() {
            Some(m) if m.role == "user" && m.content == prompt => (p, c, r),
            _ => {
                return Err((
                    "prompt".into(),
                    "is not the last shared message of chosen and rejected".into(),
                ))
            }
        }
    };
    for (name, reply) in [("chosen", &c), ("rejected", &r)] {
        if reply.is_empty() {
            return Err((name.to_string(), "no reply after the prompt".into()));
        }
    }
    let mut rec = PreferenceRecord::new(Turns::Messages(p), Turns::Messages(c), Turns::Messages(r));
    rec.prompt_id = field(row, "prompt_id")?;
    rec.score_chosen = field(row, "score_chosen")?;
    rec.score_rejected = field(row, "score_rejected")?;
    Ok(rec)
}

#[derive(Serialize)]
struct Row<'a> {
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_id: Option<&'a str>,
    chosen: &'a [Message],
    rejected: &'a [Message],
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    score_chosen: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score_rejected: Option<f64>,
}

pub(super) fn write(r: &PreferenceRecord) -> Result<String, FieldError> {
    let prompt = r.prompt.to_messages("user");
    let Some(last) = prompt.last() else {
        return Err(("prompt".into(), "UltraFeedback rows need a prompt".into()));
    };
    if last.role != "user" {
        return Err(("prompt".into(), "must end with a user message".into()));
    }
    let conversation = |reply: &Turns, name: &str| -> Result<Vec<Message>, FieldError> {
        let reply = reply.to_messages("assistant");
        if reply.first().is_none_or(|m| m.role == "user") {
            return Err((
                name.to_string(),
                "must begin with a message that is not the user's".into(),
            ));
        }
        let mut all = prompt.clone();
        all.extend(reply);
        Ok(all)
    };
    if r.chosen.to_messages("assistant").first() == r.rejected.to_messages("assistant").first() {
        return Err((
            "rejected".into(),
            "begins with the same message as chosen".into(),
        ));
    }
    let chosen = conversation(&r.chosen, "chosen")?;
    let rejected = conversation(&r.rejected, "rejected")?;
    to_line(&Row {
        prompt: &last.content,
        prompt_id: r.prompt_id.as_deref(),
        chosen: &chosen,
        rejected: &rejected,
        messages: &chosen,
        score_chosen: finite("score_chosen", r.score_chosen)?,
        score_rejected: finite("score_rejected", r.score_rejected)?,
    })
}

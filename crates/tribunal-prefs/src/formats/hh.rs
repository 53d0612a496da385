//! Anthropic's hh-rlhf rows: `{"chosen": T, "rejected": T}` where each transcript is
//! `"\n\nHuman: …\n\nAssistant: …"`. Both transcripts share every turn but the last
//! reply(s); the shared turns become the prompt (roles `user` and `assistant`), the rest
//! the replies. A marker is `\n\nHuman:` or `\n\nAssistant:` followed by one space (which
//! is not part of the content); a message whose content holds a marker cannot be written.

use super::{required, split_messages, to_line, FieldError};
use crate::record::{Message, PreferenceRecord, Turns};
use serde::Serialize;
use serde_json::{Map, Value};

const HUMAN: &str = "\n\nHuman:";
const ASSISTANT: &str = "\n\nAssistant:";

pub(super) fn read(row: &Map<String, Value>) -> Result<PreferenceRecord, FieldError> {
    let chosen: String = required(row, "chosen")?;
    let rejected: String = required(row, "rejected")?;
    let c = parse(&chosen).map_err(|e| ("chosen".to_string(), e))?;
    let r = parse(&rejected).map_err(|e| ("rejected".to_string(), e))?;
    let (prompt, c, r) = split_messages(c, r);
    for (name, reply) in [("chosen", &c), ("rejected", &r)] {
        if reply.last().map(|m| m.role.as_str()) != Some("assistant") {
            return Err((
                name.to_string(),
                "the transcript does not end with an Assistant turn".into(),
            ));
        }
    }
    Ok(PreferenceRecord::new(
        Turns::Messages(prompt),
        Turns::Messages(c),
        Turns::Messages(r),
    ))
}

/// The next marker at or after `from`: (its start, its role, its length).
fn next_marker(t: &str, from: usize) -> Option<(usize, &'static str, usize)> {
    let h = t[from..]
        .find(HUMAN)
        .map(|i| (from + i, "user", HUMAN.len()));
    let a = t[from..]
        .find(ASSISTANT)
        .map(|i| (from + i, "assistant", ASSISTANT.len()));
    match (h, a) {
        (Some(h), Some(a)) => Some(if h.0 <= a.0 { h } else { a }),
        (h, a) => h.or(a),
    }
}

fn parse(t: &str) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    let Some((start, mut role, mut len)) = next_marker(t, 0) else {
        return Err("no `\\n\\nHuman:` or `\\n\\nAssistant:` turn".into());
    };
    if start != 0 {
        return Err("text before the first `\\n\\nHuman:` or `\\n\\nAssistant:`".into());
    }
    let mut pos = 0;
    loop {
        let body = pos + len;
        let next = next_marker(t, body);
        let end = next.map(|n| n.0).unwrap_or(t.len());
        let content = &t[body..end];
        let content = content.strip_prefix(' ').unwrap_or(content);
        out.push(Message::new(role, content));
        match next {
            Some((p, r, l)) => {
                pos = p;
                role = r;
                len = l;
            }
            None => return Ok(out),
        }
    }
}

fn render(messages: &[Message], field: &str) -> Result<String, FieldError> {
    let mut s = String::new();
    for m in messages {
        let marker = match m.role.as_str() {
            "user" | "human" => HUMAN,
            "assistant" => ASSISTANT,
            other => {
                return Err((
                    field.to_string(),
                    format!("role `{other}` (hh-rlhf has only user and assistant turns)"),
                ))
            }
        };
        if m.content.contains(HUMAN) || m.content.contains(ASSISTANT) {
            return Err((
                field.to_string(),
                "content holds a `\\n\\nHuman:` or `\\n\\nAssistant:` marker".into(),
            ));
        }
        s.push_str(marker);
        s.push(' ');
        s.push_str(&m.content);
    }
    Ok(s)
}

#[derive(Serialize)]
struct Row {
    chosen: String,
    rejected: String,
}

pub(super) fn write(r: &PreferenceRecord) -> Result<String, FieldError> {
    let prompt = r.prompt.to_messages("user");
    let transcript = |reply: &Turns, name: &str| -> Result<String, FieldError> {
        let reply = reply.to_messages("assistant");
        if reply.last().map(|m| m.role.as_str()) != Some("assistant") {
            return Err((name.to_string(), "must end with an assistant reply".into()));
        }
        let mut all = prompt.clone();
        all.extend(reply);
        render(&all, name)
    };
    to_line(&Row {
        chosen: transcript(&r.chosen, "chosen")?,
        rejected: transcript(&r.rejected, "rejected")?,
    })
}

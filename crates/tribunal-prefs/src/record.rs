//! A preference record: a prompt (plain text or a conversation), the reply people (or a
//! model, or a constitution) preferred, the one they did not, the strength of that
//! preference and where it came from.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// A prompt or a reply: plain text, or a list of messages (TRL's "conversational" form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Turns {
    Text(String),
    Messages(Vec<Message>),
}

impl<'de> Deserialize<'de> for Turns {
    /// Text or a list of messages, with the message's own error (a missing `content`, an
    /// unknown field) rather than "no variant matched".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Turns::Text(s)),
            v @ serde_json::Value::Array(_) => Vec::<Message>::deserialize(v)
                .map(Turns::Messages)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected text or a list of {{role, content}} messages, found {}",
                match other {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Number(_) => "a number",
                    _ => "an object",
                }
            ))),
        }
    }
}

impl Default for Turns {
    fn default() -> Self {
        Turns::Messages(Vec::new())
    }
}

impl Turns {
    pub fn is_empty(&self) -> bool {
        match self {
            Turns::Text(t) => t.is_empty(),
            Turns::Messages(m) => m.is_empty(),
        }
    }

    /// The text, messages joined by a newline.
    pub fn text(&self) -> String {
        match self {
            Turns::Text(t) => t.clone(),
            Turns::Messages(m) => {
                let parts: Vec<&str> = m.iter().map(|m| m.content.as_str()).collect();
                parts.join("\n")
            }
        }
    }

    /// The last message's text (the whole text for plain text): what a reply answers.
    pub fn last_text(&self) -> &str {
        match self {
            Turns::Text(t) => t,
            Turns::Messages(m) => m.last().map(|m| m.content.as_str()).unwrap_or(""),
        }
    }

    /// As messages: plain text becomes one message with `role`.
    pub fn to_messages(&self, role: &str) -> Vec<Message> {
        match self {
            Turns::Text(t) if t.is_empty() => Vec::new(),
            Turns::Text(t) => vec![Message::new(role, t)],
            Turns::Messages(m) => m.clone(),
        }
    }
}

/// Who or what stated the preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvenanceKind {
    Human,
    Model,
    Constitution,
    #[default]
    Import,
}

/// Which reply the annotator saw first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderShown {
    ChosenFirst,
    RejectedFirst,
}

/// Where a preference came from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub kind: ProvenanceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constitution_version: Option<String>,
    /// The name of the constitution that made it (with `constitution_version`, tells a
    /// record made by an older version of the same constitution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constitution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_shown: Option<OrderShown>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_trace_ids: Vec<String>,
    /// A model asked in both orders gave answers that flip with the order (position bias):
    /// the pair says more about the model than about the replies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inconsistent: bool,
}

/// One pairwise preference. `chosen` is the reply preferred over `rejected` (for a soft
/// label below 0.5, the other way round).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PreferenceRecord {
    /// What both replies answer; empty when the replies stand alone.
    pub prompt: Turns,
    pub chosen: Turns,
    pub rejected: Turns,
    /// How much better `chosen` is, in the score's units (the margin of the loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// Probability that `chosen` is better (1.0 when absent, 0.5 for a tie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_label: Option<f64>,
    /// The annotator judged the replies equally good.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tie: bool,
    /// Scores given to each reply by the source (UltraFeedback's `score_chosen`,
    /// `score_rejected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_chosen: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_rejected: Option<f64>,
    /// The source's id for the prompt (UltraFeedback's `prompt_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<String>,
    /// A named part of the data (for per-subset accuracy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(default)]
    pub provenance: Provenance,
}

impl PreferenceRecord {
    /// The same preference stated the other way round: the replies (and their scores)
    /// swapped, the soft label `1 - p`; a margin, which measures how much better `chosen`
    /// is, no longer applies and is dropped.
    pub fn turned(&self) -> PreferenceRecord {
        PreferenceRecord {
            chosen: self.rejected.clone(),
            rejected: self.chosen.clone(),
            soft_label: self.soft_label.map(|p| 1.0 - p),
            margin: None,
            score_chosen: self.score_rejected,
            score_rejected: self.score_chosen,
            ..self.clone()
        }
    }

    pub fn new(prompt: Turns, chosen: Turns, rejected: Turns) -> Self {
        PreferenceRecord {
            prompt,
            chosen,
            rejected,
            ..Default::default()
        }
    }

    /// The probability that `chosen` is better, as training uses it: the soft label, else
    /// 0.5 for a tie, else 1.
    pub fn target(&self) -> f64 {
        match (self.soft_label, self.tie) {
            (Some(p), _) => p,
            (None, true) => 0.5,
            (None, false) => 1.0,
        }
    }

    /// SHA-256 (hex) over the prompt and the two replies, each as messages (plain text
    /// counts as one `user` message for the prompt, one `assistant` message for a reply), in
    /// a tagged, length-prefixed encoding. Labels and provenance are not part of it, so the
    /// same pair judged twice has one id, and converting between formats keeps it.
    pub fn content_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"tribunal-prefs/pair/v1");
        for (tag, turns, role) in [
            (b'p', &self.prompt, "user"),
            (b'c', &self.chosen, "assistant"),
            (b'r', &self.rejected, "assistant"),
        ] {
            let messages = turns.to_messages(role);
            h.update([tag]);
            h.update((messages.len() as u64).to_le_bytes());
            for m in &messages {
                for s in [&m.role, &m.content] {
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
            }
        }
        hex(&h.finalize())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

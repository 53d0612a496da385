//! `reward_model`: a reward model trained with `tribunal rm train` (Bradley–Terry over
//! preference pairs, `tribunal-prefs`) scores the agent's reply given the user's last
//! message. The reply is the pending reply when there is one, else the last assistant
//! message with text; a trace with neither gets no feedback from it. The score is the model's reward (higher is preferred); policies read it
//! as `input.scores.NAME.value`.
//!
//! Pairwise (`against = "expected_response"`, or another expectations key, or
//! `"previous_reply"`): the reply is compared with a second one, the trace's expected
//! response or the assistant's reply before it, and the value is the probability that the
//! reply is preferred, σ(reward(reply) − reward(other)). A trace without the second reply
//! gets no feedback from it.

use crate::{error::JudgeConfigError, registry, Judge, JudgeInput};
use serde::Deserialize;
use serde_json::Value;
use tribunal_core::{Feedback, Role};
use tribunal_prefs::{RewardModel, Turns};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The model file `tribunal rm train` wrote.
    path: String,
    /// Compare the reply with a second one: `previous_reply`, or an expectations key such
    /// as `expected_response`.
    #[serde(default)]
    against: Option<String>,
}

pub fn build(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let Settings { path, against } = registry::params(name, params)?;
    if against.as_deref().is_some_and(|a| a.trim().is_empty()) {
        return Err(JudgeConfigError::invalid(
            name,
            "against: `previous_reply` or an expectations key such as `expected_response`",
        ));
    }
    if path.is_empty() {
        return Err(JudgeConfigError::invalid(
            name,
            "path: the reward model file (`tribunal rm train … -o rm.json`) is required",
        ));
    }
    let file = std::fs::File::open(&path)
        .map_err(|e| JudgeConfigError::invalid(name, format!("path: cannot open {path}: {e}")))?;
    let model = RewardModel::load(std::io::BufReader::new(file)).map_err(|e| {
        JudgeConfigError::invalid(name, format!("path: {path} is not a reward model: {e}"))
    })?;
    let trained_on = model
        .training
        .as_ref()
        .map(|t| {
            format!(
                "trained on {} pairs, data {}",
                t.pairs,
                &t.data_hash[..t.data_hash.len().min(12)]
            )
        })
        .unwrap_or_else(|| "untrained".to_owned());
    Ok(Box::new(RewardJudge {
        name: name.to_owned(),
        model,
        trained_on,
        against,
    }))
}

struct RewardJudge {
    name: String,
    model: RewardModel,
    trained_on: String,
    against: Option<String>,
}

impl RewardJudge {
    /// The second reply a pairwise judge compares with, and what it is.
    fn other(&self, input: &JudgeInput<'_>, reply_id: &str) -> Option<(String, String)> {
        let against = self.against.as_deref()?;
        if against == "previous_reply" {
            let trace = input.trace;
            let mut replies = trace
                .messages
                .iter()
                .rev()
                .filter(|m| m.role == Role::Assistant && !m.content.trim().is_empty())
                .filter(|m| m.id != reply_id);
            return replies
                .next()
                .map(|m| (m.content.clone(), format!("the previous reply {}", m.id)));
        }
        let v = input.trace.expectations.as_ref()?.get(against)?;
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => return None,
            other => other.to_string(),
        };
        Some((text, format!("expectations.{against}")))
    }
}

impl Judge for RewardJudge {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        // No reply yet (a pending tool call, say): nothing to score, and nothing failed, so
        // no feedback, as other judges do when they do not apply.
        let Some(Reply { text, id, prompt }) = reply(input) else {
            return Vec::new();
        };
        if self.against.is_some() {
            let Some((other, what)) = self.other(input, &id) else {
                return Vec::new();
            };
            let prompt = Turns::Text(prompt);
            let (a, b) = (
                self.model.score(&prompt, &Turns::Text(text)),
                self.model.score(&prompt, &Turns::Text(other)),
            );
            let p = tribunal_prefs::model::sigmoid(a - b);
            return vec![Feedback::code(&self.name, &self.name, p)
                .with_rationale(format!(
                    "the reply {id} is preferred to {what} with probability {p:.4} (rewards {a:.4} and {b:.4}; {})",
                    self.trained_on
                ))
                .with_evidence(vec![id])];
        }
        let score = self.model.score(&Turns::Text(prompt), &Turns::Text(text));
        vec![Feedback::code(&self.name, &self.name, score)
            .with_rationale(format!(
                "reward {score:.4} for the reply {id} ({})",
                self.trained_on
            ))
            .with_evidence(vec![id])]
    }
}

/// The reply a judge of replies reads: the pending reply when there is one, else the last
/// assistant message with text, with the user's last message as its prompt.
pub(crate) struct Reply {
    pub text: String,
    /// `pending` or the message's id.
    pub id: String,
    pub prompt: String,
}

pub(crate) fn reply(input: &JudgeInput<'_>) -> Option<Reply> {
    let trace = input.trace;
    let (text, id) = match input.pending.filter(|p| !p.content.trim().is_empty()) {
        Some(p) => (p.content.clone(), tribunal_core::Pending::ID.to_owned()),
        None => trace
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant && !m.content.trim().is_empty())
            .map(|m| (m.content.clone(), m.id.clone()))?,
    };
    let prompt = trace
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
        .unwrap_or_default();
    Some(Reply { text, id, prompt })
}

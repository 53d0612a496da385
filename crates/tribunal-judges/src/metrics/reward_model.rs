//! `reward_model`: a reward model trained with `tribunal rm train` (Bradley–Terry over
//! preference pairs, `tribunal-prefs`) scores the agent's reply given the user's last
//! message. The reply is the pending reply when there is one, else the last assistant
//! message with text; a trace with neither gets no feedback from it. The score is the model's reward (higher is preferred); policies read it
//! as `input.scores.NAME.value`.

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
}

pub fn build(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let Settings { path } = registry::params(name, params)?;
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
    }))
}

struct RewardJudge {
    name: String,
    model: RewardModel,
    trained_on: String,
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

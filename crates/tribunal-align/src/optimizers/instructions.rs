//! `instructions`: a reflection model proposes rewrites of the judge's instructions from the
//! cases where it disagreed with the experts; each rewrite is scored on the train split and
//! the best is kept only when it agrees with the experts more often than the current
//! instructions. A rewrite that drops or adds template variables is not tried.

use super::{json_in, MAX_CASES};
use crate::data::Example;
use crate::model::{Candidate, ModelError};
use crate::optimizer::{agreement, describe, Context, Optimized, Optimizer};
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
pub struct Instructions {
    /// Rewrites proposed (and scored).
    pub candidates: usize,
}

impl Default for Instructions {
    fn default() -> Self {
        Instructions { candidates: 3 }
    }
}

/// The `{{ name }}` variables a template uses.
pub fn variables(template: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        rest = &rest[i + 2..];
        let Some(j) = rest.find("}}") else { break };
        let name: String = rest[..j]
            .trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
        rest = &rest[j + 2..];
    }
    out
}

impl Optimizer for Instructions {
    fn name(&self) -> &'static str {
        "instructions"
    }

    fn optimize(
        &self,
        start: &Candidate,
        train: &[Example],
        cx: &mut Context<'_>,
    ) -> Result<Optimized, ModelError> {
        let mut notes = Vec::new();
        let current = cx.evaluate(start, train)?;
        let base = agreement(&current);
        notes.push(format!("current instructions: train agreement {base:.3}"));
        let mut best = (base, start.clone());
        let wanted = variables(&start.instructions);
        let wrong: Vec<String> = current
            .iter()
            .zip(train)
            .filter(|(o, _)| !o.agrees())
            .take(MAX_CASES)
            .map(|(o, e)| describe(e, &o.answer))
            .collect();
        if wrong.is_empty() {
            notes.push("no disagreement on train: instructions kept".into());
            return Ok(Optimized {
                candidate: start.clone(),
                notes,
            });
        }
        let mut tried: Vec<String> = Vec::new();
        for round in 0..self.candidates {
            let mut prompt = format!(
                "A judge follows these instructions (a template; keep every {{{{ variable }}}} exactly as written):\n\n{}\n\nIn these cases it disagreed with expert reviewers:\n\n{}\n",
                start.instructions,
                wrong.join("\n")
            );
            if !tried.is_empty() {
                prompt
                    .push_str("\nThese rewrites were proposed already; propose a different one:\n");
                for t in &tried {
                    prompt.push_str(&format!("---\n{t}\n"));
                }
            }
            prompt.push_str("\nRewrite the instructions so the judge reaches the experts' answers in cases like these. Answer with only a JSON object {\"instructions\": \"...\"}.");
            let text = cx.reflect(&prompt)?;
            let Some(proposal) = json_in(&text)
                .and_then(|v| {
                    v.get("instructions")
                        .and_then(|s| s.as_str())
                        .map(str::to_owned)
                })
                .filter(|s| !s.trim().is_empty())
            else {
                notes.push(format!(
                    "rewrite {}: no instructions in the answer",
                    round + 1
                ));
                continue;
            };
            if variables(&proposal) != wanted {
                notes.push(format!(
                    "rewrite {}: changes the template variables; not tried",
                    round + 1
                ));
                tried.push(proposal);
                continue;
            }
            let candidate = Candidate {
                instructions: proposal.clone(),
                alignment: start.alignment.clone(),
            };
            let score = agreement(&cx.evaluate(&candidate, train)?);
            notes.push(format!("rewrite {}: train agreement {score:.3}", round + 1));
            if score > best.0 {
                best = (score, candidate);
            }
            tried.push(proposal);
        }
        if best.0 > base {
            notes.push(format!(
                "kept the rewrite with train agreement {:.3}",
                best.0
            ));
        } else {
            notes.push("no rewrite beat the current instructions: kept".into());
        }
        Ok(Optimized {
            candidate: best.1,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_variables_are_found() {
        let v = variables(
            "Judge {{ outputs }} for {{inputs}} {% if x %}{{ outputs | upper }}{% endif %}",
        );
        assert_eq!(v.into_iter().collect::<Vec<_>>(), ["inputs", "outputs"]);
    }
}

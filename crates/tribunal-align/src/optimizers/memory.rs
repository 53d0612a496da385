//! `memory`: the judge remembers the train labels. At judge time the `k` most similar
//! remembered cases (BM25 over inputs and reply) are shown as worked examples with the
//! experts' answers and reasons; and a reflection model distils guidelines from the cases
//! the judge got wrong, appended to the instructions. Aligning again with more (or fewer)
//! labels updates the memory in place and reflects only on the cases that are new.

use super::{json_in, MAX_CASES};
use crate::data::Example;
use crate::model::{Candidate, ModelError};
use crate::optimizer::{describe, Context, Optimized, Optimizer};

#[derive(Debug, Clone)]
pub struct Memory {
    /// Worked examples shown per judged item.
    pub k: usize,
    /// Guidelines asked for per reflection.
    pub max_guidelines: usize,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            k: 4,
            max_guidelines: 5,
        }
    }
}

impl Optimizer for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn optimize(
        &self,
        start: &Candidate,
        train: &[Example],
        cx: &mut Context<'_>,
    ) -> Result<Optimized, ModelError> {
        let mut candidate = start.clone();
        let mut notes = Vec::new();
        let incremental = !candidate.alignment.examples.is_empty();
        if !incremental {
            candidate.alignment.k = self.k;
        }
        let synced = candidate.alignment.sync(train);
        notes.push(format!(
            "memory: {} examples ({} added, {} removed, {} changed), k = {}",
            candidate.alignment.examples.len(),
            synced.added.len(),
            synced.removed.len(),
            synced.updated.len(),
            candidate.alignment.k
        ));
        // Reflect on the cases new to the memory (all of them the first time), judged with
        // the memory of the others.
        let fresh: Vec<Example> = train
            .iter()
            .filter(|e| synced.added.contains(&e.id) || synced.updated.contains(&e.id))
            .cloned()
            .collect();
        let outcomes = cx.evaluate(&candidate, &fresh)?;
        let wrong: Vec<String> = outcomes
            .iter()
            .zip(&fresh)
            .filter(|(o, _)| !o.agrees())
            .take(MAX_CASES)
            .map(|(o, e)| describe(e, &o.answer))
            .collect();
        notes.push(format!(
            "judged {} new train cases with the memory: {} disagreed with the experts",
            fresh.len(),
            outcomes.iter().filter(|o| !o.agrees()).count()
        ));
        if wrong.is_empty() {
            return Ok(Optimized { candidate, notes });
        }
        let mut prompt = format!(
            "A judge follows these instructions:\n\n{}\n",
            candidate.instructions
        );
        if !candidate.alignment.guidelines.is_empty() {
            prompt.push_str("\nIt already has these guidelines:\n");
            for g in &candidate.alignment.guidelines {
                prompt.push_str(&format!("- {g}\n"));
            }
        }
        prompt.push_str(&format!(
            "\nIn these cases it disagreed with expert reviewers:\n\n{}\nWrite at most {} short, general guidelines that would have led the judge to the experts' answers. Do not mention the individual cases. Answer with only a JSON object {{\"guidelines\": [\"...\"]}}.",
            wrong.join("\n"),
            self.max_guidelines
        ));
        let text = cx.reflect(&prompt)?;
        let proposed: Vec<String> = match json_in(&text).and_then(|v| v.get("guidelines").cloned())
        {
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|g| g.as_str())
                .map(|g| g.trim().to_owned())
                .filter(|g| !g.is_empty())
                .collect(),
            _ => {
                notes.push(
                    "the reflection model's answer had no guidelines list; none added".into(),
                );
                Vec::new()
            }
        };
        let mut added = 0;
        for g in proposed.into_iter().take(self.max_guidelines) {
            if !candidate.alignment.guidelines.contains(&g) {
                candidate.alignment.guidelines.push(g);
                added += 1;
            }
        }
        notes.push(format!("guidelines: {added} added from reflection"));
        Ok(Optimized { candidate, notes })
    }
}

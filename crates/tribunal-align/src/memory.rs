//! What alignment adds to a judge: guidelines appended to its instructions and an episodic
//! memory of labelled examples, of which the `k` most like the judged item (BM25 over the
//! judge's inputs and the reply) are shown as worked examples. The same rendering is used
//! while aligning and when the aligned judge runs, so a judge is scored on exactly the
//! prompt it will get.

use crate::bm25::Index;
use crate::data::Example;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Text of a JSON value: a string as it is, anything else as compact JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One remembered example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remembered {
    pub id: String,
    pub inputs: String,
    #[serde(default)]
    pub outputs: String,
    pub label: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

impl Remembered {
    /// The text an item is found by: its inputs and reply.
    pub fn text(&self) -> String {
        format!("{} {}", self.inputs, self.outputs)
    }
}

impl From<&Example> for Remembered {
    fn from(e: &Example) -> Self {
        Remembered {
            id: e.id.clone(),
            inputs: text_of(&e.inputs),
            outputs: text_of(&e.outputs),
            label: e.label.clone(),
            rationale: e.rationale.clone(),
        }
    }
}

fn default_k() -> usize {
    4
}

/// The alignment part of a judge's settings (`alignment = {...}` of an `llm` judge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Alignment {
    /// Appended to the instructions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guidelines: Vec<String>,
    /// How many remembered examples are shown.
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Remembered>,
    /// Find similar examples by this embeddings model (`openai:/text-embedding-3-small`,
    /// `ollama:/nomic-embed-text`) instead of BM25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<String>,
    /// Maps a numeric answer to the experts' scale (from the `isotonic` optimizer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_map: Option<crate::isotonic::ValueMap>,
}

/// What [`Alignment::sync`] changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Synced {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub updated: Vec<String>,
}

impl Alignment {
    pub fn is_empty(&self) -> bool {
        self.guidelines.is_empty() && self.examples.is_empty() && self.value_map.is_none()
    }

    /// Makes the memory hold exactly `train`: new labels are added, labels no longer given
    /// are removed, changed labels replaced; guidelines are kept.
    pub fn sync(&mut self, train: &[Example]) -> Synced {
        let mut out = Synced::default();
        self.examples.retain(|m| {
            let keep = train.iter().any(|e| e.id == m.id);
            if !keep {
                out.removed.push(m.id.clone());
            }
            keep
        });
        for e in train {
            let new = Remembered::from(e);
            match self.examples.iter_mut().find(|m| m.id == e.id) {
                Some(m) if *m == new => {}
                Some(m) => {
                    *m = new;
                    out.updated.push(e.id.clone());
                }
                None => {
                    self.examples.push(new);
                    out.added.push(e.id.clone());
                }
            }
        }
        out
    }

    /// The remembered examples most like `query`, best first, leaving out `exclude`.
    pub fn nearest(&self, query: &str, exclude: Option<&str>) -> Vec<&Remembered> {
        let pool: Vec<&Remembered> = self
            .examples
            .iter()
            .filter(|m| Some(m.id.as_str()) != exclude)
            .collect();
        let docs: Vec<String> = pool.iter().map(|m| m.text()).collect();
        let index = Index::new(docs.iter().map(String::as_str));
        index
            .top(query, self.k)
            .into_iter()
            .map(|i| pool[i])
            .collect()
    }

    /// The `k` remembered examples whose vectors (`vectors[i]` for `examples[i]`) are most
    /// like `query` by cosine similarity, best first; ties keep the examples' order.
    pub fn nearest_by_vectors<V: AsRef<[f32]>>(
        &self,
        query: &[f32],
        vectors: &[V],
        exclude: Option<&str>,
    ) -> Vec<&Remembered> {
        let mut scored: Vec<(f64, usize)> = self
            .examples
            .iter()
            .zip(vectors)
            .enumerate()
            .filter(|(_, (m, _))| Some(m.id.as_str()) != exclude)
            .map(|(i, (_, v))| (cosine(query, v.as_ref()), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(self.k)
            .map(|(_, i)| &self.examples[i])
            .collect()
    }

    /// The text added after the judge's rendered instructions for an item whose inputs and
    /// reply read `query` (examples found by BM25). `quote` quotes untrusted text (trace
    /// content) as the judge's prompts do.
    pub fn prompt_addition(
        &self,
        query: &str,
        exclude: Option<&str>,
        quote: &dyn Fn(&str, &str) -> String,
    ) -> String {
        self.render(&self.nearest(query, exclude), quote)
    }

    /// The guidelines and the worked examples `near`, as added to the prompt.
    pub fn render(&self, near: &[&Remembered], quote: &dyn Fn(&str, &str) -> String) -> String {
        let mut out = String::new();
        if !self.guidelines.is_empty() {
            out.push_str("\n\nGuidelines from expert reviewers:\n");
            for g in &self.guidelines {
                out.push_str(&format!("- {g}\n"));
            }
        }
        if !near.is_empty() {
            out.push_str(
                "\n\nWorked examples: similar cases experts labelled, with their answers and reasons.\n",
            );
            for (i, m) in near.iter().enumerate() {
                out.push_str(&format!(
                    "\nExample {}:\n{}\n{}\nExpert answer: {}\n",
                    i + 1,
                    quote("example_inputs", &m.inputs),
                    quote("example_outputs", &m.outputs),
                    text_of(&m.label)
                ));
                if let Some(r) = &m.rationale {
                    out.push_str(&format!("Expert reason: {r}\n"));
                }
            }
            out.push_str("\nNow judge the case above in the same way.");
        }
        out
    }
}

/// Cosine similarity; 0 for a zero vector or vectors of different lengths.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ex(id: &str, inputs: &str, label: bool) -> Example {
        Example {
            id: id.into(),
            inputs: json!(inputs),
            outputs: json!("ok"),
            label: json!(label),
            rationale: Some(format!("because {id}")),
        }
    }

    #[test]
    fn memory_updates_without_starting_over_and_shows_the_nearest() {
        let mut m = Alignment {
            guidelines: vec!["Refunds after 30 days fail.".into()],
            k: 1,
            examples: Vec::new(),
            embeddings: None,
            value_map: None,
        };
        let s = m.sync(&[
            ex("a", "refund laptop 40 days", false),
            ex("b", "shipping address", true),
        ]);
        assert_eq!(s.added, ["a", "b"]);
        let s = m.sync(&[
            ex("b", "shipping address", true),
            ex("c", "refund phone 10 days", true),
        ]);
        assert_eq!(
            (s.added, s.removed),
            (vec!["c".to_owned()], vec!["a".to_owned()])
        );
        assert_eq!(m.guidelines.len(), 1);
        let q = |n: &str, t: &str| format!("[{n}] {t}");
        let text = m.prompt_addition("refund a phone", None, &q);
        assert!(text.contains("- Refunds after 30 days fail."), "{text}");
        assert!(
            text.contains("[example_inputs] refund phone 10 days") && text.contains("because c"),
            "{text}"
        );
        assert!(!text.contains("shipping"), "{text}");
        // Leave-one-out: an item never sees its own label.
        let text = m.prompt_addition("refund a phone", Some("c"), &q);
        assert!(!text.contains("because c"), "{text}");
        // By vectors: the nearest by cosine, whatever the words.
        let vectors = [vec![1.0f32, 0.0], vec![0.6, 0.8]];
        let near = m.nearest_by_vectors(&[0.0, 1.0], &vectors, None);
        assert_eq!(
            near.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        let near = m.nearest_by_vectors(&[0.0, 1.0], &vectors, Some("c"));
        assert_eq!(
            near.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }
}

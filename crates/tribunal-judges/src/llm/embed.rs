//! Text embeddings for finding an aligned judge's most similar remembered examples, when
//! its alignment names an embeddings model. Vectors are kept per model, endpoint and text
//! for the life of the process (bounded), so a remembered example is embedded once however
//! often the judge is rebuilt, and each judged item costs one call.

use super::model::{ClientSettings, ModelHandle};
use crate::error::JudgeConfigError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Vectors kept at most; past it the memo starts over.
const MAX_KEPT: usize = 50_000;

type Memo = Mutex<HashMap<[u8; 32], Arc<Vec<f32>>>>;

fn memo() -> &'static Memo {
    static MEMO: OnceLock<Memo> = OnceLock::new();
    MEMO.get_or_init(Memo::default)
}

pub(super) struct Embedder {
    handle: ModelHandle,
    /// Identifies the model and endpoint in memo keys.
    scope: String,
}

impl Embedder {
    pub fn new(name: &str, s: &ClientSettings<'_>) -> Result<Embedder, JudgeConfigError> {
        let handle = ModelHandle::new(name, s, "tribunal-embed")?;
        let scope = format!("{}\u{0}{}", handle.model, handle.client.base_url());
        Ok(Embedder { handle, scope })
    }

    fn key(&self, text: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.scope.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.finalize().into()
    }

    /// One vector per text, asking the model only for texts not seen before.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Arc<Vec<f32>>>, String> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| self.key(t)).collect();
        let missing: Vec<(usize, String)> = {
            let kept = memo()
                .lock()
                .map_err(|_| "embeddings memo poisoned".to_owned())?;
            keys.iter()
                .enumerate()
                .filter(|(_, k)| !kept.contains_key(*k))
                .map(|(i, _)| (i, texts[i].clone()))
                .collect()
        };
        let mut fresh: HashMap<usize, Arc<Vec<f32>>> = HashMap::new();
        if !missing.is_empty() {
            let asked: Vec<String> = missing.iter().map(|(_, t)| t.clone()).collect();
            let vectors = self
                .handle
                .block_on(|| self.handle.client.embed(&asked))
                .ok_or_else(|| "the embeddings call failed unexpectedly".to_owned())?
                .map_err(|e| format!("embeddings model: {e}"))?;
            let mut kept = memo()
                .lock()
                .map_err(|_| "embeddings memo poisoned".to_owned())?;
            if kept.len() + vectors.len() > MAX_KEPT {
                kept.clear();
            }
            for ((i, _), v) in missing.iter().zip(vectors) {
                let v = Arc::new(v);
                kept.insert(keys[*i], v.clone());
                fresh.insert(*i, v);
            }
        }
        let kept = memo()
            .lock()
            .map_err(|_| "embeddings memo poisoned".to_owned())?;
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                fresh
                    .get(&i)
                    .or_else(|| kept.get(k))
                    .cloned()
                    .ok_or_else(|| "an embedding went missing".to_owned())
            })
            .collect()
    }
}

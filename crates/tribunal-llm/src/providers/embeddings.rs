//! Text embeddings: OpenAI's `POST {base}/embeddings` (`{model, input: [..]}` answered by
//! `data[].{index, embedding}`, also any compatible server) and Ollama's `POST {host}/api/embed`
//! (`{model, input}` answered by `embeddings`). Anthropic has no embeddings endpoint.

use super::{secret_header, Target, Wire};
use crate::uri::Provider;
use serde::Deserialize;
use serde_json::json;

pub(crate) fn encode(target: &Target<'_>, texts: &[String]) -> Result<Wire, String> {
    let (url, body) =
        match target.model.provider() {
            Provider::OpenAi => (
                format!("{}/embeddings", target.base_url),
                json!({"model": target.model.model(), "input": texts}),
            ),
            Provider::Ollama => (
                format!("{}/api/embed", target.base_url),
                json!({"model": target.model.model(), "input": texts}),
            ),
            Provider::Anthropic => return Err(
                "anthropic has no embeddings endpoint; name an openai: or ollama: embeddings model"
                    .into(),
            ),
        };
    let mut headers = Vec::new();
    if let (Some(key), Provider::OpenAi) = (target.key, target.model.provider()) {
        headers.push(secret_header(
            "authorization",
            format!("Bearer {}", key.expose()),
        )?);
    }
    Ok(Wire { url, headers, body })
}

#[derive(Deserialize)]
struct OpenAiAnswer {
    data: Vec<OpenAiItem>,
}

#[derive(Deserialize)]
struct OpenAiItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct OllamaAnswer {
    embeddings: Vec<Vec<f32>>,
}

/// One vector per input text, in the inputs' order.
pub(crate) fn decode(
    provider: Provider,
    body: &[u8],
    count: usize,
) -> Result<Vec<Vec<f32>>, String> {
    let vectors = match provider {
        Provider::OpenAi => {
            let answer: OpenAiAnswer = serde_json::from_slice(body)
                .map_err(|e| format!("not an embeddings answer: {e}"))?;
            let mut slots: Vec<Option<Vec<f32>>> = vec![None; count];
            for (i, item) in answer.data.into_iter().enumerate() {
                let at = item.index.unwrap_or(i);
                let slot = slots.get_mut(at).ok_or_else(|| {
                    format!("embedding index {at} out of range for {count} inputs")
                })?;
                *slot = Some(item.embedding);
            }
            slots
                .into_iter()
                .enumerate()
                .map(|(i, v)| v.ok_or_else(|| format!("no embedding for input {i}")))
                .collect::<Result<Vec<_>, _>>()?
        }
        Provider::Ollama => {
            let answer: OllamaAnswer = serde_json::from_slice(body)
                .map_err(|e| format!("not an embeddings answer: {e}"))?;
            answer.embeddings
        }
        Provider::Anthropic => return Err("anthropic has no embeddings endpoint".into()),
    };
    if vectors.len() != count {
        return Err(format!("{} embeddings for {count} inputs", vectors.len()));
    }
    if let Some(dim) = vectors.first().map(Vec::len) {
        if dim == 0 || vectors.iter().any(|v| v.len() != dim) {
            return Err("embeddings of different or zero lengths".into());
        }
    }
    Ok(vectors)
}

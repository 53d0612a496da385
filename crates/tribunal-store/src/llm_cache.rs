//! The store as the response cache of model judges: one row per answered request in
//! `llm_cache`, keyed by [`tribunal_llm::cache_key`] (model, endpoint, parameters and prompts), holding
//! the answer as JSON. Re-running an evaluation then asks the provider nothing it was already
//! asked.
//!
//! Judges call the cache from their own runtime; every query is spawned on the store's
//! runtime, so the pool's connections only ever live there.

use crate::{Store, StoreError};
use sqlx::Row;
use tokio::runtime::Handle;
use tribunal_llm::{BoxFuture, CacheError, CacheKey, ChatResponse, ResponseCache};

impl Store {
    /// The cached answer stored under `key`, as JSON text.
    pub async fn cached_response(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT response FROM llm_cache WHERE cache_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("response")?),
            None => None,
        })
    }

    /// Stores `response` (JSON text) under `key`, replacing what was there.
    pub async fn put_cached_response(
        &self,
        key: &str,
        model: &str,
        response: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO llm_cache (cache_key, model, response, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (cache_key) DO UPDATE SET model = excluded.model,
                response = excluded.response, created_at = excluded.created_at",
        )
        .bind(key)
        .bind(model)
        .bind(response)
        .bind(crate::clock::now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many answers the cache holds.
    pub async fn cached_response_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM llm_cache")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// A [`ResponseCache`] over a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreCache {
    store: Store,
    runtime: Handle,
    /// The project whose answers these are, when the store is shared by several: each
    /// project's entries are its own, so one cannot learn from a hit what another asked.
    scope: Option<String>,
}

impl StoreCache {
    /// A cache in `store`, whose queries run on `runtime`: the runtime the store is used
    /// from, which must keep running while judges use the cache (a multi-thread runtime, or
    /// one whose thread is inside `block_on`).
    pub fn new(store: Store, runtime: Handle) -> StoreCache {
        StoreCache {
            store,
            runtime,
            scope: None,
        }
    }

    /// [`StoreCache::new`] for one project of a store that holds several: it neither sees
    /// nor gives the answers cached for another project.
    pub fn for_project(store: Store, runtime: Handle, project: &str) -> StoreCache {
        StoreCache {
            scope: Some(project.to_owned()),
            ..StoreCache::new(store, runtime)
        }
    }

    /// The row key of `key` in this cache.
    fn row_key(&self, key: &CacheKey) -> String {
        match &self.scope {
            None => key.as_str().to_owned(),
            // A project name never holds a line break; the key is hex.
            Some(project) => format!("{project}\n{}", key.as_str()),
        }
    }
}

fn cache_error(e: impl std::fmt::Display) -> CacheError {
    CacheError(format!("response cache: {e}"))
}

impl ResponseCache for StoreCache {
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<ChatResponse>, CacheError>> {
        let store = self.store.clone();
        let owned = self.row_key(key);
        let task = self
            .runtime
            .spawn(async move { store.cached_response(&owned).await });
        Box::pin(async move {
            let text = task.await.map_err(cache_error)?.map_err(cache_error)?;
            // An entry that no longer parses (written by another version) is a miss; the
            // fresh answer replaces it.
            Ok(text.and_then(|t| serde_json::from_str::<ChatResponse>(&t).ok()))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        response: &'a ChatResponse,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        let mut stored = response.clone();
        stored.cached = false;
        let text = serde_json::to_string(&stored);
        let store = self.store.clone();
        let owned = self.row_key(key);
        let model = response.model.to_string();
        Box::pin(async move {
            let text = text.map_err(cache_error)?;
            self.runtime
                .spawn(async move { store.put_cached_response(&owned, &model, &text).await })
                .await
                .map_err(cache_error)?
                .map_err(cache_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tribunal_llm::{cache_key, ChatRequest, ModelUri, Usage};

    const BASE: &str = "https://api.openai.com/v1";

    fn answer(model: &ModelUri, text: &str) -> ChatResponse {
        ChatResponse {
            model: model.clone(),
            text: text.to_owned(),
            json: serde_json::from_str(text).ok(),
            usage: Usage {
                input_tokens: 120,
                output_tokens: 20,
            },
            latency: Duration::from_millis(250),
            stop_reason: Some("stop".into()),
            tool_calls: Vec::new(),
            attempts: 2,
            cached: false,
            logprobs: None,
        }
    }

    #[tokio::test]
    async fn answers_survive_reopening_and_unparsable_rows_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = Store::open(path.to_str().unwrap()).await.unwrap();
        let cache: Arc<dyn ResponseCache> =
            Arc::new(StoreCache::new(store.clone(), Handle::current()));
        let model: ModelUri = "openai:/gpt-4o-mini".parse().unwrap();
        let key = cache_key(&model, BASE, &ChatRequest::new("Is it sunny?"));
        let other = cache_key(&model, BASE, &ChatRequest::new("Is it raining?"));
        assert_eq!(cache.get(&key).await.unwrap(), None);

        let first = answer(&model, r#"{"rationale": "yes", "result": "yes"}"#);
        cache.put(&key, &first).await.unwrap();
        assert_eq!(cache.get(&key).await.unwrap(), Some(first.clone()));
        assert_eq!(cache.get(&other).await.unwrap(), None);
        // A second answer for the same request replaces the first.
        let second = answer(&model, r#"{"rationale": "no", "result": "no"}"#);
        cache.put(&key, &second).await.unwrap();
        assert_eq!(cache.get(&key).await.unwrap(), Some(second.clone()));
        assert_eq!(store.cached_response_count().await.unwrap(), 1);
        store.close().await;

        let store = Store::open(path.to_str().unwrap()).await.unwrap();
        let cache = StoreCache::new(store.clone(), Handle::current());
        assert_eq!(cache.get(&key).await.unwrap(), Some(second));
        store
            .put_cached_response(other.as_str(), "openai:/gpt-4o-mini", "{not json")
            .await
            .unwrap();
        assert_eq!(cache.get(&other).await.unwrap(), None);
    }

    /// Projects sharing a store do not share answers: a hit would tell one project what
    /// another asked a model.
    #[tokio::test]
    async fn each_project_reads_its_own_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("c.db").to_str().unwrap())
            .await
            .unwrap();
        let cache = |p: &str| StoreCache::for_project(store.clone(), Handle::current(), p);
        let (a, b) = (cache("a"), cache("b"));
        let model: ModelUri = "openai:/gpt-4o-mini".parse().unwrap();
        let key = cache_key(&model, BASE, &ChatRequest::new("Was this trace safe?"));
        let said = answer(&model, r#"{"rationale": "a's", "result": "yes"}"#);
        a.put(&key, &said).await.unwrap();
        assert_eq!(a.get(&key).await.unwrap(), Some(said.clone()));
        assert_eq!(b.get(&key).await.unwrap(), None);
        let unscoped = StoreCache::new(store.clone(), Handle::current());
        assert_eq!(unscoped.get(&key).await.unwrap(), None);
        // A second project's answer to the same request leaves the first's alone.
        let other = answer(&model, r#"{"rationale": "b's", "result": "no"}"#);
        b.put(&key, &other).await.unwrap();
        assert_eq!(a.get(&key).await.unwrap(), Some(said));
        assert_eq!(b.get(&key).await.unwrap(), Some(other));
    }

    #[tokio::test]
    async fn a_closed_store_is_an_error_not_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("c.db").to_str().unwrap())
            .await
            .unwrap();
        let cache = StoreCache::new(store.clone(), Handle::current());
        store.close().await;
        let model: ModelUri = "openai:/gpt-4o-mini".parse().unwrap();
        let key = cache_key(&model, BASE, &ChatRequest::new("x"));
        let err = cache.get(&key).await.unwrap_err().to_string();
        assert!(err.starts_with("response cache: store"), "{err}");
    }
}

//! A model judge's connection to its model, shared by every judge kind that asks one
//! (`llm`, `agent`, `requirements`, `failure_attribution`): the client built from the
//! judge's settings (limits, retries, timeout, key, base URL, optional response cache) and a
//! small runtime of its own, which the judge's synchronous `judge` call blocks on.

use crate::error::JudgeConfigError;
use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tribunal_llm::{
    ClientConfig, LlmClient, ModelUri, Origin, RateLimits, ResponseCache, RetryPolicy,
};

/// What the model clients of the judges being built may do: who chose their settings (a
/// definition sent in a request to a server is [`Origin::Request`]: the environment's key is
/// not sent to a base URL it gave) and whether their errors may quote what a model server
/// answered. See [`crate::registry::build_versioned_as`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTrust {
    pub origin: Origin,
    pub quote_answers: bool,
}

impl ClientTrust {
    /// A definition of the operator's (configuration file, command line): trusted.
    pub const OPERATOR: ClientTrust = ClientTrust {
        origin: Origin::Operator,
        quote_answers: true,
    };
}

thread_local! {
    /// The trust of the judges built on this thread now; [`ClientTrust::OPERATOR`] outside
    /// [`with_trust`].
    static TRUST: Cell<ClientTrust> = const { Cell::new(ClientTrust::OPERATOR) };
    /// Whether the judges built on this thread now are built only to check their
    /// definitions (see [`definition_only`]).
    static DEFINITION_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `build` with the thread's `cell` set to `value`, and sets it back afterwards (also
/// when `build` panics).
fn with_set<V: Copy + 'static, T>(
    cell: &'static std::thread::LocalKey<Cell<V>>,
    value: V,
    build: impl FnOnce() -> T,
) -> T {
    struct Restore<V: Copy + 'static>(&'static std::thread::LocalKey<Cell<V>>, V);
    impl<V: Copy + 'static> Drop for Restore<V> {
        fn drop(&mut self) {
            self.0.with(|t| t.set(self.1));
        }
    }
    let _restore = Restore(cell, cell.with(|t| t.replace(value)));
    build()
}

/// Runs `build` with model clients that need no key: the judges it builds check a
/// definition that runs elsewhere (stored here, run by a server that has the provider's
/// key), and are never asked anything.
pub(crate) fn definition_only<T>(build: impl FnOnce() -> T) -> T {
    with_set(&DEFINITION_ONLY, true, build)
}

/// Runs `build` with the model clients it makes set up by `trust`.
pub(crate) fn with_trust<T>(trust: ClientTrust, build: impl FnOnce() -> T) -> T {
    with_set(&TRUST, trust, build)
}

/// The settings every model judge has.
pub(crate) struct ClientSettings<'a> {
    pub model: Option<&'a str>,
    pub base_url: Option<&'a str>,
    pub api_key_env: Option<&'a str>,
    pub timeout_ms: Option<u64>,
    pub max_retries: Option<u32>,
    pub concurrency: Option<usize>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

pub(crate) struct ModelHandle {
    pub model: ModelUri,
    /// Calls in flight at once (the judge's `max_in_flight`).
    pub concurrency: usize,
    /// Whether the judge's errors may quote what the model answered (an answer it could
    /// not use); see [`ClientTrust`].
    pub quote_answers: bool,
    pub client: LlmClient,
    /// Kept to rebuild the client when a response cache is attached.
    config: ClientConfig,
    /// `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl ModelHandle {
    /// The client for judge `name`; its runtime's threads are called `thread_name`.
    pub fn new(
        name: &str,
        s: &ClientSettings<'_>,
        thread_name: &str,
    ) -> Result<ModelHandle, JudgeConfigError> {
        let invalid = |m: String| JudgeConfigError::invalid(name, m);
        let model = match s.model {
            Some(m) => ModelUri::parse(m).map_err(|e| invalid(format!("model: {e}")))?,
            None => tribunal_llm::default_model().map_err(|e| invalid(format!("model: {e}")))?,
        };
        let concurrency = s.concurrency.unwrap_or(8).max(1);
        let mut config = ClientConfig::new(model.clone())
            .with_timeout(Duration::from_millis(s.timeout_ms.unwrap_or(60_000).max(1)))
            .with_limits(RateLimits {
                max_concurrency: concurrency,
                requests_per_minute: s.requests_per_minute,
                tokens_per_minute: s.tokens_per_minute,
            })
            .with_retry(RetryPolicy {
                max_retries: s.max_retries.unwrap_or(4),
                ..RetryPolicy::default()
            });
        let trust = TRUST.with(Cell::get);
        config = config.with_origin(trust.origin);
        if !trust.quote_answers {
            config = config.without_quoted_answers();
        }
        if let Some(url) = s.base_url {
            config = config.with_base_url(url.to_owned());
        }
        let definition_only = DEFINITION_ONLY.with(Cell::get);
        if let Some(var) = s.api_key_env {
            if std::env::var(var).map_or(true, |v| v.trim().is_empty()) {
                if !definition_only {
                    return Err(invalid(format!(
                        "api_key_env: the variable {var} is not set"
                    )));
                }
            } else {
                config = config.with_api_key_env(var);
            }
        }
        let client = match LlmClient::new(config.clone()) {
            // The key is needed where the judge runs, not here.
            Err(tribunal_llm::LlmError::MissingApiKey { .. }) if definition_only => {
                LlmClient::new(config.clone().with_api_key("unused"))
            }
            built => built,
        }
        .map_err(|e| invalid(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(thread_name)
            .enable_all()
            .build()
            .map_err(|e| invalid(format!("cannot start the model client: {e}")))?;
        Ok(ModelHandle {
            model,
            concurrency,
            quote_answers: trust.quote_answers,
            client,
            config,
            runtime: Some(runtime),
        })
    }

    /// Answers repeated requests from `cache` from now on.
    pub fn set_cache(
        &mut self,
        name: &str,
        cache: Arc<dyn ResponseCache>,
    ) -> Result<(), JudgeConfigError> {
        self.client = LlmClient::new(self.config.clone())
            .map_err(|e| JudgeConfigError::invalid(name, e.to_string()))?
            .with_cache(cache);
        Ok(())
    }

    /// Runs the future `make` returns to completion on the judge's runtime. Blocking is not
    /// allowed on a thread that is inside another runtime, so there it runs on a thread of
    /// its own. `None` when that thread panicked.
    pub fn block_on<F, T>(&self, make: impl FnOnce() -> F + Send) -> Option<T>
    where
        F: Future<Output = T>,
        T: Send,
    {
        let rt = self.runtime.as_ref()?;
        let call = || rt.block_on(make());
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(call).join()).ok()
        } else {
            Some(call())
        }
    }
}

impl Drop for ModelHandle {
    /// Without waiting: a judge may be dropped on an async thread (a server swapping
    /// configurations, say), where waiting for a runtime is not allowed. Calls are
    /// synchronous, so nothing is left running on it by then.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

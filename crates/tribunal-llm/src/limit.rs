//! Client-side rate limits: a semaphore bounding calls in flight, and token buckets for
//! requests per minute and (estimated) tokens per minute. Each attempt, retries included,
//! takes a slot and its share of both buckets. A `Retry-After` from the provider pauses every
//! call of the client, not only the one that received it.

use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Calls in flight at once (at least 1).
    pub max_concurrency: usize,
    pub requests_per_minute: Option<u32>,
    /// Estimated as prompt characters / 4 plus `max_tokens`; corrected by reported usage.
    pub tokens_per_minute: Option<u32>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            max_concurrency: 8,
            requests_per_minute: None,
            tokens_per_minute: None,
        }
    }
}

/// A token bucket holding up to `capacity`, refilled at `capacity` per minute.
#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    fn per_minute(capacity: u32) -> Self {
        let capacity = f64::from(capacity.max(1));
        TokenBucket {
            capacity,
            per_second: capacity / 60.0,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    fn refill(&self, state: &mut (f64, Instant)) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.per_second).min(self.capacity);
        state.1 = now;
    }

    /// Waits until `amount` (capped at the capacity) is available, then takes it.
    async fn take(&self, amount: f64) {
        let amount = amount.min(self.capacity);
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                self.refill(&mut state);
                if state.0 >= amount {
                    state.0 -= amount;
                    return;
                }
                (amount - state.0) / self.per_second
            };
            sleep(Duration::from_secs_f64(wait.max(0.001))).await;
        }
    }

    /// Gives back (positive) or charges (negative) tokens; the balance may go into debt down
    /// to minus the capacity.
    fn adjust(&self, delta: f64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.refill(&mut state);
        state.0 = (state.0 + delta).clamp(-self.capacity, self.capacity);
    }
}

/// Shared by every call of one client.
#[derive(Debug)]
pub struct RateLimiter {
    slots: Arc<Semaphore>,
    requests: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
    /// Set when a provider says "retry after": every call waits until then, not only the one
    /// that was told.
    paused_until: Mutex<Option<Instant>>,
}

/// Holds one concurrency slot until dropped.
#[derive(Debug)]
pub struct RatePermit {
    _slot: Option<OwnedSemaphorePermit>,
}

impl RateLimiter {
    pub fn new(limits: &RateLimits) -> Self {
        RateLimiter {
            slots: Arc::new(Semaphore::new(limits.max_concurrency.max(1))),
            requests: limits.requests_per_minute.map(TokenBucket::per_minute),
            tokens: limits.tokens_per_minute.map(TokenBucket::per_minute),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits for a request token, `estimated_tokens` tokens and a free slot.
    pub async fn acquire(&self, estimated_tokens: u64) -> RatePermit {
        let resume = *self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(resume) = resume {
            tokio::time::sleep_until(resume).await;
        }
        if let Some(bucket) = &self.requests {
            bucket.take(1.0).await;
        }
        if let Some(bucket) = &self.tokens {
            bucket.take(estimated_tokens as f64).await;
        }
        // The semaphore is never closed, so this is always `Some`.
        let slot = Arc::clone(&self.slots).acquire_owned().await.ok();
        RatePermit { _slot: slot }
    }

    /// Holds back every call for `wait` (a provider's `Retry-After`).
    pub fn pause(&self, wait: Duration) {
        let resume = Instant::now() + wait;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if paused.is_none_or(|current| current < resume) {
            *paused = Some(resume);
        }
    }

    /// Corrects the tokens-per-minute bucket once the real usage is known.
    pub fn settle(&self, estimated_tokens: u64, actual_tokens: u64) {
        if let Some(bucket) = &self.tokens {
            bucket.adjust(estimated_tokens as f64 - actual_tokens as f64);
        }
    }
}

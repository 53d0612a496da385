//! A circuit breaker: after `failure_threshold` consecutive failures (5xx, timeouts, dropped
//! connections) calls fail fast for `cool_down`; then one probe is let through (half-open) and
//! its outcome closes or re-opens the circuit. Any answered request other than a 5xx counts
//! as a success: the provider is up.

use std::sync::{Mutex, PoisonError};
use tokio::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit; 0 disables the breaker.
    pub failure_threshold: u32,
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// The breaker's state, for observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, failures: u32 },
    HalfOpen { probing: bool, failures: u32 },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub failures: u32,
    pub retry_in: Duration,
}

/// Permission for one attempt; report its outcome with [`BreakerPermit::success`] or
/// [`BreakerPermit::failure`]. Dropped without a report (the caller gave up), a half-open probe
/// hands its turn to the next caller.
#[derive(Debug)]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    done: bool,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until, .. } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>, Rejected> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => {}
            State::Open { until, failures } => {
                let now = Instant::now();
                if now < until {
                    return Err(Rejected {
                        failures,
                        retry_in: until - now,
                    });
                }
                *state = State::HalfOpen {
                    probing: true,
                    failures,
                };
            }
            State::HalfOpen {
                probing: true,
                failures,
            } => {
                return Err(Rejected {
                    failures,
                    retry_in: Duration::ZERO,
                });
            }
            State::HalfOpen {
                probing: false,
                failures,
            } => {
                *state = State::HalfOpen {
                    probing: true,
                    failures,
                };
            }
        }
        Ok(BreakerPermit {
            breaker: self,
            done: false,
        })
    }

    fn record(&self, failed: bool) {
        let mut state = self.lock();
        if !failed {
            *state = State::Closed { failures: 0 };
            return;
        }
        let threshold = self.config.failure_threshold;
        let failures = match *state {
            State::Closed { failures }
            | State::Open { failures, .. }
            | State::HalfOpen { failures, .. } => failures.saturating_add(1),
        };
        let half_open = matches!(*state, State::HalfOpen { .. });
        *state = if threshold > 0 && (half_open || failures >= threshold) {
            State::Open {
                until: Instant::now() + self.config.cool_down,
                failures,
            }
        } else {
            State::Closed { failures }
        };
    }
}

impl BreakerPermit<'_> {
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(false);
    }

    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(true);
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.breaker.lock();
            if let State::HalfOpen { failures, .. } = *state {
                *state = State::HalfOpen {
                    probing: false,
                    failures,
                };
            }
        }
    }
}

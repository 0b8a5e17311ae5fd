//! A circuit breaker per plugin: after `failures` consecutive failed calls the plugin is *open*
//! and every call takes the `on-unavailable` fallback at once (no waiting out a timeout per
//! client); after `cool-down` one probe call is let through, and its result closes or re-opens it.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The breaker's state, as reported to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// One probe call is in flight; the others fail fast.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// One plugin's circuit breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` (≥ 1) consecutive failures for `cool_down`.
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cool_down,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go out now. In the half-open state only the first caller (the probe)
    /// gets `true`.
    pub(crate) fn try_acquire(&self) -> bool {
        let mut state = self.state.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => false,
        }
    }

    /// Records a successful call: closes the breaker. Returns true if it was not closed before.
    pub(crate) fn on_success(&self) -> bool {
        let mut state = self.state.lock();
        let reopened = !matches!(*state, State::Closed { .. });
        *state = State::Closed { failures: 0 };
        reopened
    }

    /// Records a failed call. Returns true if this failure opened the breaker.
    pub(crate) fn on_failure(&self) -> bool {
        let mut state = self.state.lock();
        match *state {
            State::Closed { failures } if failures + 1 < self.threshold => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::Open { .. } => false,
            _ => {
                *state = State::Open {
                    until: Instant::now() + self.cool_down,
                };
                true
            }
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> BreakerState {
        match *self.state.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_probes() {
        let breaker = Breaker::new(3, Duration::from_secs(5));
        assert!(!breaker.on_failure());
        assert!(!breaker.on_failure());
        assert!(breaker.on_failure(), "third consecutive failure opens");
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.try_acquire());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(breaker.try_acquire(), "the probe goes out");
        assert!(!breaker.try_acquire(), "only one probe");
        assert!(breaker.on_failure(), "a failed probe re-opens");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(breaker.try_acquire());
        assert!(breaker.on_success());
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(1));
        breaker.on_failure();
        breaker.on_success();
        assert!(!breaker.on_failure());
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}

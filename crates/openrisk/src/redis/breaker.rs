//! The one circuit-breaker policy in front of every Redis connection.
//!
//! Invariant: after `OPEN_AFTER` failures in a row no call is made for `OPEN_FOR`; then one probe
//! goes through (half-open), and its success closes the breaker.
//!
//! Orderings: `failures` and `probing` are `Relaxed`. Each is a counter or flag read on its own,
//! publishing no other memory; the instant the breaker opened is kept under a lock. A race between
//! two callers costs at most one extra probe or one extra failure counted, which the policy
//! tolerates by design (it is a heuristic, not a lock).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
const OPEN_AFTER: u32 = 3;
/// How long an open breaker lets no call through before one probe.
const OPEN_FOR: Duration = Duration::from_millis(500);

#[derive(Default)]
pub(super) struct Breaker {
    failures: AtomicU32,
    opened_at: Mutex<Option<Instant>>,
    probing: AtomicBool,
}

/// `closed`, `open` or `half-open`, as `cache_breaker_state` reports it (0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl Breaker {
    fn opened_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.opened_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        match *self.opened_at() {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() < OPEN_FOR => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go through now.
    pub fn allow(&self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            // One probe at a time.
            BreakerState::HalfOpen => !self.probing.swap(true, Relaxed),
        }
    }

    pub fn succeeded(&self) {
        self.failures.store(0, Relaxed);
        self.probing.store(false, Relaxed);
        *self.opened_at() = None;
    }

    /// Counts a failure; returns whether the breaker (re)opened.
    pub fn failed(&self) -> bool {
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if !(self.probing.swap(false, Relaxed) || failures >= OPEN_AFTER) {
            return false;
        }
        let mut opened_at = self.opened_at();
        if opened_at.is_none() {
            tracing::warn!("redis: not answering; the cache goes on without it");
        }
        *opened_at = Some(Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_repeated_failures_and_a_successful_probe_closes_it() {
        let breaker = Breaker::default();
        assert!(!breaker.failed());
        assert!(!breaker.failed());
        assert!(breaker.failed());
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow());
        *breaker.opened_at() = Some(Instant::now() - OPEN_FOR);
        assert!(breaker.allow(), "one probe");
        assert!(!breaker.allow(), "only one");
        breaker.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}

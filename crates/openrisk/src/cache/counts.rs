//! Lookups counted by namespace, tier and outcome: a hit costs one atomic add, and the monitor
//! publishes the counts as `cache_requests_total`.
//!
//! Orderings: every count is `Relaxed`. Each is a monotonic counter read on its own; no other
//! memory is published through it, and a reader only needs some recent value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::settings::Namespace;

/// Which cache tier a count is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    L1,
    L2,
    /// Organizations' registers in memory (see `register`).
    Register,
}

impl Tier {
    const ALL: [Tier; 3] = [Tier::L1, Tier::L2, Tier::Register];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
            Tier::Register => "register",
        }
    }
}

/// How one lookup in one tier ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    Bypass,
    Error,
}

impl Outcome {
    const ALL: [Outcome; 4] = [Outcome::Hit, Outcome::Miss, Outcome::Bypass, Outcome::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
            Outcome::Error => "error",
        }
    }
}

pub struct Counts(Vec<[[AtomicU64; 4]; 3]>);

impl Default for Counts {
    fn default() -> Self {
        Counts(
            Namespace::ALL
                .iter()
                .map(|_| std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        )
    }
}

/// How many lookups of a namespace in a tier had an outcome.
pub type LookupCount = (Namespace, Tier, Outcome, u64);

impl Counts {
    pub fn add(&self, namespace: Namespace, tier: Tier, outcome: Outcome) {
        self.0[namespace.index()][tier as usize][outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn get(&self, namespace: Namespace, tier: Tier, outcome: Outcome) -> u64 {
        self.0[namespace.index()][tier as usize][outcome as usize].load(Relaxed)
    }

    /// Every count so far.
    pub fn all(&self) -> impl Iterator<Item = LookupCount> + '_ {
        Namespace::ALL.iter().flat_map(move |&namespace| {
            Tier::ALL.into_iter().flat_map(move |tier| {
                Outcome::ALL
                    .into_iter()
                    .map(move |outcome| (namespace, tier, outcome, self.get(namespace, tier, outcome)))
            })
        })
    }
}

//! Each organization's share of L1. Once L1 is nearly full, an organization holding more than an
//! equal share of it among those with entries in it keeps what it holds, but what it adds next is
//! not kept in L1 (it is still served, and stored in Redis): a tenant flooding L1 with distinct
//! queries can then not push out another's hot entries. While there is room, or when a single
//! organization uses L1, no one is held back.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

#[derive(Default)]
pub(super) struct Shares {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// What each key in L1 was charged, and to whom.
    charged: HashMap<u128, (Uuid, u64)>,
    /// Bytes in L1 per organization.
    usage: HashMap<Uuid, u64>,
    total: u64,
}

impl Shares {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// L1 holds `weight` bytes of `org` under `key` now (a new entry, or one that grew).
    pub fn charge(&self, key: u128, org: Uuid, weight: u64) {
        let mut state = self.state();
        if let Some((before, old)) = state.charged.insert(key, (org, weight)) {
            state.release_from(before, old);
        }
        *state.usage.entry(org).or_default() += weight;
        state.total += weight;
    }

    /// `key` left L1.
    pub fn release(&self, key: u128) {
        let mut state = self.state();
        if let Some((org, weight)) = state.charged.remove(&key) {
            state.release_from(org, weight);
        }
    }

    /// Whether L1 (of `capacity` bytes) is nearly full and `org` holds more than an equal share
    /// of it among the organizations in it.
    pub fn over_share(&self, org: Uuid, capacity: u64) -> bool {
        let state = self.state();
        let nearly_full = state.total >= capacity / 10 * 9;
        let holders = state.usage.len().max(1) as u64;
        nearly_full
            && state
                .usage
                .get(&org)
                .is_some_and(|used| *used > capacity / holders)
    }
}

impl State {
    fn release_from(&mut self, org: Uuid, weight: u64) {
        self.total = self.total.saturating_sub(weight);
        if let Some(used) = self.usage.get_mut(&org) {
            *used = used.saturating_sub(weight);
            if *used == 0 {
                self.usage.remove(&org);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_over_an_equal_share_of_a_full_l1_is_told_so() {
        let shares = Shares::default();
        let (flood, victim) = (Uuid::now_v7(), Uuid::now_v7());
        shares.charge(1, flood, 700);
        shares.charge(2, victim, 50);
        assert!(
            !shares.over_share(flood, 1000),
            "with room left, no one is held back"
        );
        // A key charged again (its entry grew) counts once, at its new weight.
        shares.charge(1, flood, 900);
        assert!(shares.over_share(flood, 1000));
        assert!(!shares.over_share(victim, 1000));
        shares.release(2);
        assert!(!shares.over_share(flood, 1000), "alone, it may use all of L1");
        shares.release(1);
        shares.charge(3, victim, 600);
        shares.charge(4, flood, 350);
        assert!(shares.over_share(victim, 1000));
        assert!(!shares.over_share(flood, 1000));
    }
}

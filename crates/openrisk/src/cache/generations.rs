//! What this process knows of each scope's generation; the shared value lives in Redis.
//!
//! A generation is a random number, never a count: Redis may drop it at any time (eviction, a
//! flush, a restart), and whoever finds it missing draws a new one. A value once replaced never
//! comes back, so no loss can make an older entry reachable again. An item's generation combines
//! its namespace's and its own, so either one's change voids the item's entries.
//!
//! Invariant: a value read from Redis is kept only if its scope was neither invalidated nor
//! forgotten while it was being read. Every change to a scope's knowledge draws a new `version`,
//! and a read stores what it found only under the version it began with: no read that began
//! before a write can install the generation that write replaced.
//!
//! Orderings: `versions` is `Relaxed`: it only has to hand out unique values, which any
//! read-modify-write on one atomic does. The map is behind a lock, which orders every change to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::keys::generation_key;
use super::scope::Scope;
use crate::redis::{Redis, Unavailable};

/// How many item generations this process keeps in mind before forgetting them all (the next
/// reader of each asks Redis again): they are many, and each is cheap to look up again.
const KNOWN_ITEMS: usize = 100_000;

pub struct Generations {
    known: RwLock<HashMap<Scope, Known>>,
    /// Source of `Known::version`: unique for the life of the process.
    versions: AtomicU64,
    /// The request path's connection; `None` without Redis (generations are then this process's).
    redis: Option<Arc<Redis>>,
}

/// A generation as this process knows it.
struct Known {
    generation: Option<u64>,
    version: u64,
    /// The read of Redis under way for this version: concurrent readers share it.
    reading: Option<Arc<tokio::sync::OnceCell<Result<u64, Unavailable>>>>,
}

impl Generations {
    pub fn new(redis: Option<Arc<Redis>>) -> Self {
        Generations {
            known: RwLock::default(),
            versions: AtomicU64::new(0),
            redis,
        }
    }

    /// The scope's current generation. `item_lifetime`: how long an item's generation lives in
    /// Redis (as long as its longest entry); a namespace's lives until it is replaced.
    pub async fn current(&self, scope: Scope, item_lifetime: Duration) -> Result<u64, Unavailable> {
        let own = self.of(scope, item_lifetime).await?;
        match scope.item {
            None => Ok(own),
            // Both random: their combination changes whenever either does.
            Some(_) => Ok(self.of(scope.whole(), item_lifetime).await? ^ own.rotate_left(32)),
        }
    }

    /// The generation this process holds for `scope`, if any (nothing is read from Redis).
    pub fn known(&self, scope: Scope) -> Option<u64> {
        self.read().get(&scope).and_then(|known| known.generation)
    }

    async fn of(&self, scope: Scope, item_lifetime: Duration) -> Result<u64, Unavailable> {
        if let Some(generation) = self.known(scope) {
            return Ok(generation);
        }
        // Boxed, so that a generation known already does not carry a read of Redis's state.
        Box::pin(self.learn(scope, item_lifetime)).await
    }

    /// The scope's generation as Redis holds it, remembered unless its version changed meanwhile.
    async fn learn(&self, scope: Scope, item_lifetime: Duration) -> Result<u64, Unavailable> {
        let (version, reading) = {
            let mut known = self.write();
            if scope.item.is_some() && known.len() >= KNOWN_ITEMS {
                // Forgetting is always safe: a read of Redis under way then keeps nothing.
                known.retain(|scope, _| scope.item.is_none());
            }
            let entry = known.entry(scope).or_insert_with(|| Known {
                generation: None,
                version: self.versions.fetch_add(1, Relaxed),
                reading: None,
            });
            if let Some(generation) = entry.generation {
                return Ok(generation);
            }
            (entry.version, entry.reading.get_or_insert_default().clone())
        };
        let lifetime = scope.item.map(|_| item_lifetime);
        let shared = *reading.get_or_init(|| self.shared(scope, lifetime)).await;
        // Kept only under the version the read began with; used by this request either way, as
        // any read that overlaps a write may be. A failed read is not kept: the next reader asks
        // again.
        if let Some(entry) = self.write().get_mut(&scope)
            && entry.version == version
        {
            entry.generation = shared.ok();
            entry.reading = None;
        }
        shared
    }

    /// The generation in Redis, or a new one if it has none (never used, evicted, flushed).
    async fn shared(&self, scope: Scope, lifetime: Option<Duration>) -> Result<u64, Unavailable> {
        let drawn = rand::random::<u64>();
        let Some(redis) = &self.redis else {
            return Ok(drawn);
        };
        let held = redis
            .get_or_init(&generation_key(scope), &drawn.to_string(), lifetime)
            .await?;
        held.parse().map_err(|_| Unavailable)
    }

    /// Drops what this process knows of the `scopes`' generations, so that the next reader asks
    /// Redis and a read of Redis under way keeps nothing; returns their new versions.
    pub fn forget(&self, scopes: &[Scope]) -> Vec<u64> {
        let mut known = self.write();
        scopes
            .iter()
            .map(|&scope| {
                let version = self.versions.fetch_add(1, Relaxed);
                let forgotten = Known {
                    generation: None,
                    version,
                    reading: None,
                };
                known.insert(scope, forgotten);
                version
            })
            .collect()
    }

    /// Takes the generations this process's own write stored in Redis, for the namespaces whose
    /// knowledge is still at the `versions` `forget` returned (no later write came in meanwhile).
    pub fn install(&self, scopes: &[Scope], versions: &[u64], generations: &[u64]) {
        let mut known = self.write();
        for ((scope, &version), &generation) in scopes.iter().zip(versions).zip(generations) {
            if scope.item.is_none()
                && let Some(entry) = known.get_mut(scope)
                && entry.version == version
            {
                entry.generation = Some(generation);
                entry.version = self.versions.fetch_add(1, Relaxed);
            }
        }
    }

    /// Forgets every generation (a new epoch, or a subscription that may have missed messages).
    pub fn clear(&self) {
        self.write().clear();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Scope, Known>> {
        self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Scope, Known>> {
        self.known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

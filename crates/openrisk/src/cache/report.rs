//! What `GET /api/v1/admin/cache` reports.

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;
use uuid::Uuid;

use super::{Cache, Namespace, Scope};

impl Cache {
    /// What `GET /api/v1/admin/cache` shows, with `org`'s generations.
    pub async fn report(&self, org: Uuid) -> CacheReport {
        let l2 = match &self.l2 {
            Some(l2) => Some(l2.usage().await.ok()),
            None => None,
        };
        let mut namespaces = Vec::new();
        for &namespace in Namespace::ALL {
            let counts = &self.counts[namespace.index()];
            let tier = |t: usize| {
                let [hits, misses, bypasses, errors] = std::array::from_fn(|r| counts[t][r].load(Relaxed));
                TierCounts {
                    hits,
                    misses,
                    hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
                    bypasses,
                    errors,
                }
            };
            namespaces.push(NamespaceReport {
                namespace,
                ttl_seconds: self.settings.ttl(namespace).as_secs(),
                generation: self
                    .read_generations()
                    .get(&Scope::namespace(org, namespace))
                    .and_then(|known| known.generation)
                    .map(|generation| format!("{generation:016x}")),
                l1: tier(0),
                l2: tier(1),
            });
        }
        self.l1.run_pending_tasks().await;
        CacheReport {
            enabled: self.enabled(),
            redis: self.redis_state().await,
            l1: TierUsage {
                entries: Some(self.l1.entry_count()),
                bytes: Some(self.l1.weighted_size()),
                max_bytes: Some(self.settings.l1_max_bytes),
            },
            l2: l2.map(|usage| TierUsage {
                entries: usage.map(|(keys, _)| keys),
                bytes: usage.map(|(_, bytes)| bytes),
                max_bytes: None,
            }),
            namespaces,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CacheReport {
    pub enabled: bool,
    /// `up`, `down` or `disabled`.
    pub redis: &'static str,
    pub l1: TierUsage,
    /// Absent without Redis. Counts the whole Redis database.
    pub l2: Option<TierUsage>,
    pub namespaces: Vec<NamespaceReport>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TierUsage {
    pub entries: Option<u64>,
    pub bytes: Option<u64>,
    pub max_bytes: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NamespaceReport {
    pub namespace: Namespace,
    pub ttl_seconds: u64,
    /// This organization's current generation, an opaque value (absent until first used, and
    /// after each invalidation until the next read).
    pub generation: Option<String>,
    pub l1: TierCounts,
    pub l2: TierCounts,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TierCounts {
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: Option<f64>,
    pub bypasses: u64,
    pub errors: u64,
}

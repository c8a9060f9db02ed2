//! What `GET /api/v1/admin/cache` reports.

use serde::Serialize;
use uuid::Uuid;

use super::counts::{Counts, Outcome, Tier};
use super::generations::Generations;
use super::scope::Scope;
use super::settings::{CacheSettings, Namespace};
use super::tiers::Tiers;
use crate::redis::{Redis, RedisState};

impl CacheReport {
    /// The report, with `org`'s generations; `redis` is the request path's connection, if any.
    pub async fn of(
        settings: &CacheSettings,
        tiers: &Tiers,
        generations: &Generations,
        redis: Option<&Redis>,
        org: Uuid,
    ) -> CacheReport {
        let connection = redis;
        let redis = RedisState::of(connection).await;
        let (counts, l1) = (&tiers.counts, tiers.l1_usage().await);
        let l2 = match connection {
            Some(redis) => Some(redis.usage().await.ok()),
            None => None,
        };
        let namespaces = Namespace::ALL
            .iter()
            .map(|&namespace| NamespaceReport {
                namespace,
                ttl_seconds: settings.ttl(namespace).as_secs(),
                generation: generations
                    .known(Scope::namespace(org, namespace))
                    .map(|generation| format!("{generation:016x}")),
                l1: TierCounts::of(counts, namespace, Tier::L1),
                l2: TierCounts::of(counts, namespace, Tier::L2),
            })
            .collect();
        CacheReport {
            enabled: settings.enabled,
            redis,
            l1: TierUsage {
                entries: Some(l1.0),
                bytes: Some(l1.1),
                max_bytes: Some(settings.l1_max_bytes),
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

impl TierCounts {
    fn of(counts: &Counts, namespace: Namespace, tier: Tier) -> TierCounts {
        let count = |outcome| counts.get(namespace, tier, outcome);
        let (hits, misses) = (count(Outcome::Hit), count(Outcome::Miss));
        TierCounts {
            hits,
            misses,
            hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
            bypasses: count(Outcome::Bypass),
            errors: count(Outcome::Error),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CacheReport {
    pub enabled: bool,
    pub redis: RedisState,
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

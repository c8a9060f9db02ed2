//! How the cache answered a read: one value, rendered as `X-Cache` and as `Cache-Status`
//! (RFC 9211).

use std::sync::Arc;

use super::entry::Entry;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// The cache is off, or not trusted now: the handler answered.
    Bypass,
    /// The client asked for a fresh answer (`no-cache`); `stored` when it was cached for others.
    Refreshed {
        stored: bool,
    },
    Hit(HitFrom),
    /// Computed by this request; `stored` when it was cached.
    Miss {
        stored: bool,
    },
}

/// Which tier a hit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitFrom {
    L1,
    /// Past its TTL, within the grace period: served while one task recomputes it.
    L1Stale,
    L2,
    /// Computed from the organization's register in memory, without the database.
    Register,
}

impl CacheStatus {
    /// The `X-Cache` value.
    pub fn x_cache(self) -> &'static str {
        match self {
            CacheStatus::Bypass | CacheStatus::Refreshed { .. } => "BYPASS",
            CacheStatus::Hit(_) => "HIT",
            CacheStatus::Miss { .. } => "MISS",
        }
    }

    /// The `Cache-Status` value.
    pub fn cache_status(self) -> &'static str {
        match self {
            CacheStatus::Bypass => "OpenRisk; fwd=bypass",
            CacheStatus::Refreshed { stored: true } => "OpenRisk; fwd=request; stored",
            CacheStatus::Refreshed { stored: false } => "OpenRisk; fwd=request",
            CacheStatus::Hit(HitFrom::L1) => "OpenRisk; hit; detail=l1",
            CacheStatus::Hit(HitFrom::L1Stale) => "OpenRisk; hit; detail=l1-stale",
            CacheStatus::Hit(HitFrom::L2) => "OpenRisk; hit; detail=l2",
            CacheStatus::Hit(HitFrom::Register) => "OpenRisk; hit; detail=register",
            CacheStatus::Miss { stored: true } => "OpenRisk; fwd=miss; stored",
            CacheStatus::Miss { stored: false } => "OpenRisk; fwd=miss",
        }
    }
}

/// What `Cache::serve` answers with.
pub enum Served<R> {
    /// A cached answer, or one just stored, under `key`.
    Entry {
        entry: Arc<Entry>,
        key: u128,
        status: CacheStatus,
    },
    /// The handler's own answer, not cached.
    Uncached { answer: R, status: CacheStatus },
}

impl<R> Served<R> {
    pub fn status(&self) -> CacheStatus {
        match self {
            Served::Entry { status, .. } | Served::Uncached { status, .. } => *status,
        }
    }
}

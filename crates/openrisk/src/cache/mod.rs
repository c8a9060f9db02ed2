//! The response and query cache, a facade over parts that each own their state: `generations`
//! (with the version guard), `coherence` (trust now; the epochs every key carries), `tiers` (L1,
//! L2, single flight, stale-while-revalidate, codings), `invalidator` and `replication` (a write's
//! invalidation; the channel every replica follows), `principals`, `changes` (each organization's
//! numbered risk changes) and `register` (registers in memory, kept current by those changes).
//!
//! A write replaces the generations of what it changed before its response, so later reads miss
//! the stale entries; the risk lists keep their pages through changes that leave them as they were.

mod acks;
mod changes;
mod coding;
mod coherence;
mod counts;
mod entry;
mod generations;
mod invalidation;
mod invalidator;
mod keys;
mod origin;
pub mod policy;
mod principals;
mod register;
mod replication;
mod report;
mod scope;
mod settings;
mod shares;
mod status;
#[cfg(test)]
mod tests;
mod tiers;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::auth::Principal;
use crate::domain::coverage::RiskChange;
use crate::redis::{Redis, Role};
use crate::store::{Store, StoreError};

pub use coding::Coding;
pub use counts::{LookupCount, Outcome, Tier};
pub use entry::Entry;
pub use invalidation::Mutation;
pub use origin::{Admit, Origin, ReadRequest};
pub use register::{Current, Registered};
pub use report::{CacheReport, NamespaceReport, TierCounts, TierUsage};
pub use scope::Scope;
pub use settings::{CacheSettings, Namespace};
pub use status::{CacheStatus, HitFrom, Served};

use changes::ChangeLog;
use coherence::Coherence;
use generations::Generations;
use register::Registers;
use tiers::{STALE_GRACE, Tiers};

pub struct Cache {
    settings: Arc<CacheSettings>,
    /// The request path's Redis connection, shared with the tiers and generations.
    redis: Option<Arc<Redis>>,
    coherence: Arc<Coherence>,
    generations: Arc<Generations>,
    tiers: Arc<Tiers>,
    invalidator: invalidator::Invalidator,
    principals: principals::Principals,
    changes: Arc<ChangeLog>,
    registers: Arc<Registers>,
}

impl Cache {
    pub fn new(settings: CacheSettings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let url = settings.redis_url.as_deref();
        let connect = |url| Redis::connect(url, Role::Requests, settings.redis_timeout).map(Arc::new);
        let redis = url.map(connect).transpose()?;
        let changes = Arc::new(ChangeLog::default());
        let coherence = Arc::new(Coherence::new(url.is_some()));
        let generations = Arc::new(Generations::new(redis.clone()));
        let parts = (coherence.clone(), generations.clone(), changes.clone());
        let invalidator = invalidator::Invalidator::new(url, settings.redis_timeout, parts)?;
        Ok(Cache {
            coherence,
            generations,
            tiers: Arc::new(Tiers::new(settings.clone(), redis.clone(), changes.clone())),
            registers: Arc::new(Registers::new(settings.register_max_rows, &changes, &redis)),
            changes,
            invalidator,
            principals: Default::default(),
            redis,
            settings,
        })
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Whether cached values may be used now (see `coherence`).
    pub fn trusted(&self) -> bool {
        self.coherence.trusted()
    }

    /// The scope's current generation; `None` when the cache is off or the generation cannot be
    /// known (Redis unavailable, or invalidations possibly missed): then nothing may be cached or
    /// served from the cache.
    async fn generation(&self, scope: Scope) -> Option<u64> {
        if !self.enabled() || !self.coherence.trusted() {
            return None;
        }
        let item_lifetime = self.settings.ttl(scope.namespace) + STALE_GRACE;
        let generation = self.generations.current(scope, item_lifetime).await;
        if generation.is_err() {
            self.tiers.counts.add(scope.namespace, Tier::L2, Outcome::Error);
        }
        generation.ok()
    }

    /// Serves a cacheable read: from the cache when it may, else from `origin`, storing what it
    /// answers when allowed.
    pub async fn serve<O: Origin>(
        &self,
        scope: Scope,
        read: &ReadRequest<'_>,
        origin: O,
    ) -> Served<O::Uncached> {
        let Some(generation) = self.generation(scope).await else {
            return self.tiers.bypass(scope, origin).await;
        };
        let key = keys::read_key(self.coherence.key_epoch(), scope, generation, read);
        Tiers::serve(&self.tiers, scope, key, read.refresh, origin).await
    }

    /// `org`'s register, current through every change this replica knows, when it is held and
    /// the cache may be trusted now (see `register`); else the store answers.
    pub async fn register(&self, store: &Arc<dyn Store>, org: Uuid) -> Option<Current> {
        if !self.registers.enabled() {
            return None;
        }
        // Before the generations, as for keys: a register is never credited with a newer epoch.
        let epoch = self.coherence.key_epoch();
        let risks = self.generation(Scope::namespace(org, Namespace::Risks)).await?;
        let details = self
            .generation(Scope::namespace(org, Namespace::RiskDetails))
            .await?;
        self.registers.current(org, [epoch, risks, details], store).await
    }

    /// A served entry's body in `coding`, made once per entry.
    pub async fn encoded(&self, key: u128, entry: &Arc<Entry>, coding: Coding) -> Option<bytes::Bytes> {
        self.tiers.encoded(key, entry, coding).await
    }

    /// What every successful write does (from HTTP or the command line): makes what `mutation`
    /// changed unreachable. `risk`: the risk it changed, if known; `change`: what it did to it.
    pub async fn after_write(
        &self,
        org: Uuid,
        mutation: Mutation,
        risk: Option<Uuid>,
        change: Option<RiskChange>,
    ) {
        let stale = mutation.affects(risk);
        let change = change.map(Arc::new);
        self.invalidator
            .invalidate(org, &stale.namespaces, &stale.items(org), change)
            .await
    }

    /// Makes every cached value of the organization's `namespaces` and of the `items`
    /// unreachable, here and on every replica (see `invalidator`).
    pub async fn invalidate(&self, org: Uuid, namespaces: &[Namespace], items: &[Scope]) {
        self.invalidator.invalidate(org, namespaces, items, None).await
    }

    /// The principal a token stands for, cached in the `auth` namespace of its organization so
    /// that any user or token change there is seen by the next request.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<Principal>, Arc<StoreError>> {
        if !self.enabled() {
            return store.authenticate(token_hash, now).await.map_err(Arc::new);
        }
        // Before the generation: an entry is never credited with a newer epoch than its generation.
        let epoch = self.coherence.key_epoch();
        let token = principals::Token::new(store, token_hash, now, epoch);
        let generation = |scope| self.generation(scope);
        self.principals.authenticate(&self.tiers, token, generation).await
    }

    /// Follows the invalidation channel until `stop` (see `replication`); nothing without Redis.
    pub fn follow_invalidations(
        &self,
        stop: CancellationToken,
    ) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
        let Some(url) = self.settings.redis_url.clone() else {
            return Ok(None);
        };
        let follower = replication::Follower {
            coherence: self.coherence.clone(),
            generations: self.generations.clone(),
            tiers: self.tiers.clone(),
            changes: self.changes.clone(),
        };
        follower.spawn(url, self.settings.redis_timeout, stop).map(Some)
    }

    /// Takes the database's data epoch: after a restore from a backup, nothing cached from the
    /// data before it is served again.
    pub fn adopt_data_epoch(&self, epoch: u64) {
        if self.coherence.adopt_data_epoch(epoch) {
            self.generations.clear();
            self.changes.clear();
            self.registers.clear();
            self.tiers.clear_l1();
        }
    }

    /// Waits (at most `limit`) until the cache trusts its L1, so that a starting replica serves
    /// from the cache from its first request when Redis answers.
    pub async fn wait_until_trusted(&self, limit: Duration) {
        self.coherence
            .wait_until_trusted(self.redis.as_deref(), limit)
            .await
    }

    /// The request path's Redis connection, for its state; `None` without Redis.
    pub fn redis(&self) -> Option<&Redis> {
        self.redis.as_deref()
    }

    /// Every lookup count so far, and L1's entries and bytes, for the metrics.
    pub fn usage(&self) -> (impl Iterator<Item = LookupCount> + '_, (u64, u64)) {
        (self.tiers.counts.all(), self.tiers.l1_usage_now())
    }

    /// What `GET /api/v1/admin/cache` shows, with `org`'s generations.
    pub async fn report(&self, org: Uuid) -> CacheReport {
        let (settings, tiers, generations) = (&self.settings, &self.tiers, &self.generations);
        CacheReport::of(settings, tiers, generations, self.redis.as_deref(), org).await
    }
}

//! The tiers: L1 in process (moka, weighed in bytes, each organization held to its share once it
//! is nearly full) and L2 in Redis, with single flight on a miss, stale-while-revalidate, and each
//! entry's content codings made once.
//!
//! Invariant: an entry is found only under the key it was stored with, and keys carry every
//! generation and epoch that can void it (`keys`); an entry that knows what it covers is also
//! served only while no change logged since its computation began may alter it (`changes`).
//! A miss runs its origin once however many requests miss the key at the same moment.
//!
//! Orderings: the only atomic here, `get_or_fill`'s `source`, is `Relaxed`: it is written by the
//! fill future and read after awaiting it, in the same task. Shared state (L1, the shares, the
//! refresh set) has locks or moka's own synchronization.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::changes::ChangeLog;
use super::coding::Coding;
use super::counts::{Counts, Outcome, Tier};
use super::entry::Entry;
use super::keys::entry_key;
use super::origin::{Admit, Origin};
use super::scope::Scope;
use super::settings::CacheSettings;
use super::shares::Shares;
use super::status::{CacheStatus, HitFrom, Served};
use crate::redis::Redis;

/// How long past its TTL an entry may still be served while it is recomputed in the background
/// (stale-while-revalidate), so that a hot key's expiry does not stall its readers.
pub const STALE_GRACE: Duration = Duration::from_secs(15);

/// Where `get_or_fill` found its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    L1,
    L2,
    Filled,
    Register,
}

pub struct Tiers {
    settings: Arc<CacheSettings>,
    l1: moka::future::Cache<u128, Arc<Entry>>,
    shares: Arc<Shares>,
    /// The request path's connection.
    l2: Option<Arc<Redis>>,
    pub counts: Counts,
    /// Keys whose stale entry is being recomputed.
    refreshing: Mutex<HashSet<u128>>,
    changes: Arc<ChangeLog>,
}

struct EntryTtl;

/// An entry leaves L1 a grace period after it goes stale, however often it was put back (a
/// refresh puts a new entry, a new content coding the same one, weighed again).
impl Expiry<u128, Arc<Entry>> for EntryTtl {
    fn expire_after_create(&self, _: &u128, entry: &Arc<Entry>, now: Instant) -> Option<Duration> {
        Some(lifetime(entry, now))
    }

    fn expire_after_update(
        &self,
        _: &u128,
        entry: &Arc<Entry>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(lifetime(entry, now))
    }
}

fn lifetime(entry: &Entry, now: Instant) -> Duration {
    let fresh_until = entry.fresh_until.unwrap_or(now + entry.ttl);
    fresh_until.saturating_duration_since(now) + STALE_GRACE
}

impl Tiers {
    pub fn new(settings: Arc<CacheSettings>, l2: Option<Arc<Redis>>, changes: Arc<ChangeLog>) -> Self {
        let shares = Arc::new(Shares::default());
        let (charge, release) = (shares.clone(), shares.clone());
        let l1 = moka::future::Cache::builder()
            .max_capacity(settings.l1_max_bytes)
            .weigher(move |key, entry: &Arc<Entry>| {
                let weight = entry.weight();
                charge.charge(*key, entry.org, weight.into());
                weight
            })
            .eviction_listener(move |key, _, cause| {
                // A replaced entry's key was charged again by the weigher.
                if cause != moka::notification::RemovalCause::Replaced {
                    release.release(*key);
                }
            })
            .expire_after(EntryTtl)
            .build();
        Tiers {
            settings,
            l1,
            shares,
            l2,
            counts: Counts::default(),
            refreshing: Mutex::default(),
            changes,
        }
    }

    fn l1_enabled(&self) -> bool {
        self.settings.l1_max_bytes > 0
    }

    /// The answer under `key`: a fresh L1 entry at once; else a stale one (recomputed in the
    /// background), L2, or `origin`. With `refresh` (the client's `no-cache`), `origin` answers
    /// and its answer replaces the entry.
    pub async fn serve<O: Origin>(
        self: &Arc<Self>,
        scope: Scope,
        key: u128,
        refresh: bool,
        origin: O,
    ) -> Served<O::Uncached> {
        let mut found = match refresh || !self.l1_enabled() {
            true => None,
            false => self.l1.get(&key).await,
        };
        if found
            .as_ref()
            .is_some_and(|entry| !self.current(scope.org, entry))
        {
            // A change since made it stale: computed again, as a miss.
            self.l1.invalidate(&key).await;
            found = None;
        }
        if let Some(entry) = found.as_ref().filter(|entry| !entry.is_stale()) {
            self.counts.add(scope.namespace, Tier::L1, Outcome::Hit);
            let entry = Arc::clone(entry);
            let status = CacheStatus::Hit(HitFrom::L1);
            return Served::Entry { entry, key, status };
        }
        // Boxed, so that its state does not make every hit's future larger.
        Box::pin(self.serve_past_l1(scope, key, refresh, found, origin)).await
    }

    /// `origin`'s answer, the cache left alone (it cannot be trusted now).
    pub async fn bypass<O: Origin>(&self, scope: Scope, origin: O) -> Served<O::Uncached> {
        self.counts.add(scope.namespace, Tier::L1, Outcome::Bypass);
        Served::Uncached {
            answer: origin.pass().await,
            status: CacheStatus::Bypass,
        }
    }

    /// Whether no change logged since `entry` was computed may alter it.
    fn current(&self, org: Uuid, entry: &Entry) -> bool {
        let Some(coverage) = &entry.coverage else {
            return true;
        };
        match self.changes.since(org, entry.checked_through()) {
            Some((head, changes)) if !changes.iter().any(|change| coverage.changed_by(change)) => {
                entry.checked(head);
                true
            }
            _ => false,
        }
    }

    async fn serve_past_l1<O: Origin>(
        self: &Arc<Self>,
        scope: Scope,
        key: u128,
        refresh: bool,
        stale: Option<Arc<Entry>>,
        origin: O,
    ) -> Served<O::Uncached> {
        // Read before anything is computed: every change an answer may lack numbers higher.
        let Ok(number) = self.changes.head(self.l2.as_deref(), scope.org).await else {
            return self.bypass(scope, origin).await;
        };
        let admit = self.admit(scope);
        if refresh {
            self.counts.add(scope.namespace, Tier::L1, Outcome::Bypass);
            return match origin.fill(admit).await {
                Ok(entry) => {
                    let entry = self.store(scope, key, entry.numbered(number)).await;
                    let status = CacheStatus::Refreshed { stored: true };
                    Served::Entry { entry, key, status }
                }
                Err(answer) => Served::Uncached {
                    answer,
                    status: CacheStatus::Refreshed { stored: false },
                },
            };
        }
        if let Some(entry) = stale {
            self.counts.add(scope.namespace, Tier::L1, Outcome::Hit);
            self.refresh_in_background(scope, key, number, origin);
            let status = CacheStatus::Hit(HitFrom::L1Stale);
            return Served::Entry { entry, key, status };
        }
        // L1 was looked up already: `found` had nothing fresh.
        let fill = async move { Ok::<_, O::Uncached>(origin.fill(admit).await?.numbered(number)) };
        match self.fill_once(scope, key, fill).await {
            Ok((entry, source)) => {
                let status = match source {
                    Source::L1 => CacheStatus::Hit(HitFrom::L1),
                    Source::L2 => CacheStatus::Hit(HitFrom::L2),
                    Source::Register => CacheStatus::Hit(HitFrom::Register),
                    Source::Filled => CacheStatus::Miss { stored: true },
                };
                Served::Entry { entry, key, status }
            }
            Err(answer) => Served::Uncached {
                answer: Arc::unwrap_or_clone(answer),
                status: CacheStatus::Miss { stored: false },
            },
        }
    }

    /// Recomputes `key`'s stale entry in one background task, unless one is under way.
    fn refresh_in_background<O: Origin>(self: &Arc<Self>, scope: Scope, key: u128, number: u64, origin: O) {
        if !lock(&self.refreshing).insert(key) {
            return;
        }
        let (tiers, admit) = (Arc::clone(self), self.admit(scope));
        tokio::spawn(async move {
            if let Ok(entry) = origin.fill(admit).await {
                tiers.store(scope, key, entry.numbered(number)).await;
            }
            lock(&tiers.refreshing).remove(&key);
        });
    }

    fn admit(&self, scope: Scope) -> Admit {
        Admit {
            max_body: self.settings.max_body_bytes,
            ttl: self.settings.ttl(scope.namespace),
        }
    }

    /// The value under `key`: from L1, else as `fill_once` finds it.
    async fn get_or_fill<E>(
        &self,
        scope: Scope,
        key: u128,
        fill: impl Future<Output = Result<Entry, E>>,
    ) -> Result<(Arc<Entry>, Source), Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        // A hit takes the short way: no single-flight machinery.
        if self.l1_enabled()
            && let Some(entry) = self.l1.get(&key).await
        {
            self.counts.add(scope.namespace, Tier::L1, Outcome::Hit);
            return Ok((entry, Source::L1));
        }
        self.fill_once(scope, key, fill).await
    }

    /// The value under `key`, missing from L1 a moment ago: from L2, else `fill`, run once however
    /// many callers miss the key at the same time (the others wait for its result, or find what
    /// another stored meanwhile). `fill`'s errors are not cached.
    async fn fill_once<E>(
        &self,
        scope: Scope,
        key: u128,
        fill: impl Future<Output = Result<Entry, E>>,
    ) -> Result<(Arc<Entry>, Source), Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        const FROM_L1: u8 = 0;
        const FROM_L2: u8 = 1;
        const FILLED: u8 = 2;
        const FROM_REGISTER: u8 = 3;
        let source = AtomicU8::new(FROM_L1);
        let result = self
            .l1
            .try_get_with(key, async {
                if let Some(entry) = self.l2_get(scope, key).await
                    && self.current(scope.org, &entry)
                {
                    source.store(FROM_L2, Relaxed);
                    return Ok(Arc::new(Entry {
                        org: scope.org,
                        ..entry
                    }));
                }
                let entry = Entry {
                    org: scope.org,
                    ..fill.await?
                };
                source.store(
                    if entry.from_register {
                        FROM_REGISTER
                    } else {
                        FILLED
                    },
                    Relaxed,
                );
                let entry = Arc::new(entry.fresh_from_now());
                self.l2_set(scope, key, &entry);
                Ok(entry)
            })
            .await;
        // L1 off: it only joined concurrent lookups. Over its share: served, not kept.
        if !self.l1_enabled() || self.over_share(scope.org) {
            self.l1.invalidate(&key).await;
        }
        let (outcome, source) = match source.load(Relaxed) {
            FROM_L1 => (Outcome::Hit, Source::L1),
            FROM_L2 => (Outcome::Miss, Source::L2),
            FROM_REGISTER => (Outcome::Miss, Source::Register),
            _ => (Outcome::Miss, Source::Filled),
        };
        self.counts.add(scope.namespace, Tier::L1, outcome);
        if source == Source::Register {
            self.counts.add(scope.namespace, Tier::Register, Outcome::Hit);
        }
        result.map(|entry| (entry, source))
    }

    /// Stores a value computed outside `fill_once` (a refresh).
    async fn store(&self, scope: Scope, key: u128, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(
            Entry {
                org: scope.org,
                ..entry
            }
            .fresh_from_now(),
        );
        self.l2_set(scope, key, &entry);
        if self.l1_enabled() && !self.over_share(scope.org) {
            self.l1.insert(key, entry.clone()).await;
        }
        entry
    }

    /// `entry`'s body in `coding`, made once per entry: the L1 copy keeps it, weighed again.
    /// `None` when the body could not be encoded (then send it as it is).
    pub async fn encoded(&self, key: u128, entry: &Arc<Entry>, coding: Coding) -> Option<Bytes> {
        let (encoded, made) = entry.encoded(coding);
        if made && self.l1_enabled() {
            // Put back only if the key still holds this entry, not one stored meanwhile.
            let same = Arc::clone(entry);
            self.l1
                .entry(key)
                .and_compute_with(|current| {
                    let keep = current.is_some_and(|current| Arc::ptr_eq(current.value(), &same));
                    std::future::ready(match keep {
                        true => moka::ops::compute::Op::Put(same),
                        false => moka::ops::compute::Op::Nop,
                    })
                })
                .await;
        }
        encoded
    }

    /// A typed value computed by `compute`, cached in `scope` under `key`, with the same tiers and
    /// single flight as responses.
    pub async fn get_or_set<T, E, Fut>(
        &self,
        scope: Scope,
        key: u128,
        compute: impl Fn() -> Fut,
    ) -> Result<T, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        let ttl = self.settings.ttl(scope.namespace);
        let (entry, _) = self
            .get_or_fill(scope, key, async {
                let value = compute().await?;
                Ok(Entry::of_value(value, ttl))
            })
            .await?;
        match entry.value::<T>() {
            Some(value) => Ok(value),
            // Bytes from another version, or a value that did not serialize: computed again.
            None => compute().await.map_err(Arc::new),
        }
    }

    /// Whether `org` holds more than its share of L1 (see `shares`).
    fn over_share(&self, org: Uuid) -> bool {
        self.shares.over_share(org, self.settings.l1_max_bytes)
    }

    async fn l2_get(&self, scope: Scope, key: u128) -> Option<Entry> {
        let l2 = self.l2.as_ref()?;
        let (entry, outcome) = match l2.get(&entry_key(scope.org, key)).await {
            Ok(Some(bytes)) => match Entry::decode(&bytes, self.settings.ttl(scope.namespace)) {
                Some(entry) => (Some(entry), Outcome::Hit),
                None => (None, Outcome::Error),
            },
            Ok(None) => (None, Outcome::Miss),
            Err(_) => (None, Outcome::Error),
        };
        self.counts.add(scope.namespace, Tier::L2, outcome);
        entry
    }

    /// Writes to L2 in the background: a miss does not wait for Redis. An answer from a register
    /// stays out: every replica answers from its own.
    fn l2_set(&self, scope: Scope, key: u128, entry: &Entry) {
        if let Some(l2) = self.l2.as_ref().filter(|_| !entry.from_register) {
            let (l2, bytes, ttl) = (l2.clone(), entry.encode(), entry.ttl);
            tokio::spawn(async move {
                let _ = l2.set(&entry_key(scope.org, key), &bytes, ttl).await;
            });
        }
    }

    /// Drops every L1 entry (a new epoch made them unreachable anyway).
    pub fn clear_l1(&self) {
        self.l1.invalidate_all();
    }

    /// L1 entries and bytes, once pending evictions have run.
    pub async fn l1_usage(&self) -> (u64, u64) {
        self.l1.run_pending_tasks().await;
        self.l1_usage_now()
    }

    /// L1 entries and bytes, as last counted.
    pub fn l1_usage_now(&self) -> (u64, u64) {
        (self.l1.entry_count(), self.l1.weighted_size())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

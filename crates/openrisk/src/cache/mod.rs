//! The response and query cache: L1 in process (moka, weighed in bytes), L2 in Redis (shared by
//! replicas). Keys carry the organization and its namespace's generation; a write replaces the
//! generations of the namespaces it affects (`invalidation`), after its commit and before its
//! response, so every later read builds a new key and misses the stale entries, which then
//! expire by TTL. Concurrent misses on one key compute once.
//!
//! A generation is a random number, never a count: Redis may drop it at any time (eviction, a
//! flush, a restart), and whoever finds it missing draws a new one. A value once replaced never
//! comes back, so no loss can make an older entry reachable again.

mod acks;
mod coding;
mod entry;
mod invalidation;
mod keys;
pub mod policy;
pub mod rate_limit;
mod redis;
mod replication;
mod report;
mod settings;
mod shares;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use moka::Expiry;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::auth::Principal;
use crate::store::{Store, StoreError};

pub use coding::Coding;
pub use entry::Entry;
pub use invalidation::Mutation;
pub use report::{CacheReport, NamespaceReport, TierCounts, TierUsage};
pub use settings::{CacheSettings, Namespace};

use keys::{entry_key, generation_key};
use shares::Shares;

/// Which cache answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    L1,
    L2,
}

/// How a lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Hit(Tier),
    /// Computed (and stored, if cacheable) by this request.
    Miss,
}

/// An organization's namespace, or one item of it: where a value lives and what invalidates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub org: Uuid,
    pub namespace: Namespace,
    /// An item's values carry the namespace's generation and the item's own.
    pub item: Option<Uuid>,
}

impl Scope {
    pub fn namespace(org: Uuid, namespace: Namespace) -> Self {
        Scope {
            org,
            namespace,
            item: None,
        }
    }

    pub fn item(org: Uuid, namespace: Namespace, item: Uuid) -> Self {
        Scope {
            org,
            namespace,
            item: Some(item),
        }
    }

    fn whole(self) -> Self {
        Scope { item: None, ..self }
    }
}

struct KnownPrincipal {
    principal: Principal,
    epoch: u64,
    generation: u64,
}

/// How many times `CACHE_REDIS_TIMEOUT_MS` a write's invalidation may take in Redis. Under CPU
/// saturation Redis calls queue behind the load: the reads' time-out then sends reads to the
/// database, but the writes' must not turn a slow Redis into lost invalidations.
const INVALIDATION_PATIENCE: u32 = 10;

/// How many item generations this process keeps in mind before forgetting them all (the next
/// reader of each asks Redis again): they are many, and each is cheap to look up again.
const KNOWN_ITEMS: usize = 100_000;

const RESULTS: [&str; 4] = ["hit", "miss", "bypass", "error"];

#[derive(Clone, Copy)]
enum Outcome {
    Hit,
    Miss,
    Bypass,
    Error,
}

pub struct Cache {
    settings: CacheSettings,
    l1: moka::future::Cache<u128, Arc<Entry>>,
    shares: Arc<Shares>,
    l2: Option<Arc<redis::Redis>>,
    /// Redis for writes' invalidations: a connection of its own, so that they do not queue behind
    /// the reads' traffic, and more patient (`INVALIDATION_PATIENCE`), because an invalidation that
    /// times out costs every replica its whole cache (a new epoch), while a read that times out
    /// only goes to the database.
    invalidations: Option<redis::Redis>,
    /// This process's view of each namespace's generation (the shared value lives in Redis).
    generations: RwLock<HashMap<Scope, Known>>,
    /// Source of `Known::version`: unique for the life of the process.
    versions: AtomicU64,
    /// The principal behind each token hash, as last read: valid while the epoch and its
    /// organization's `auth` generation are the ones it was read under, so that a request known
    /// already costs one lookup and still sees any change to its user or token.
    principals: moka::future::Cache<Vec<u8>, Arc<KnownPrincipal>>,
    /// Lookups by namespace, tier and outcome (`RESULTS`).
    counts: Vec<[[AtomicU64; 4]; 2]>,
    /// Keys whose stale entry is being recomputed.
    refreshing: std::sync::Mutex<std::collections::HashSet<u128>>,
    /// Part of every key; a new epoch voids every earlier entry (see `replication`).
    epoch: AtomicU64,
    /// The database's data epoch, also part of every key: a restore from a backup draws a new one,
    /// which voids every entry cached from the data before it.
    data_epoch: AtomicU64,
    /// Whether this replica follows the invalidation channel and has settled its epoch.
    following: AtomicBool,
    /// An invalidation that did not reach Redis or the channel: Redis may still hold the replaced
    /// generation and other replicas may have missed it, so nothing cached is trusted until the
    /// epoch has been renewed.
    lost_invalidations: AtomicBool,
    /// Names this process's own invalidations on the channel.
    replica_id: u64,
    /// The other replicas, and the acknowledgements this replica's writes wait for.
    acks: acks::Acks,
    /// Since when Redis has been failing this replica (unset while the cache is trusted).
    failing_since: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A generation as this process knows it. `version` changes whenever the scope is invalidated or
/// forgotten, so that a read of Redis that began before cannot store the value it found.
struct Known {
    generation: Option<u64>,
    version: u64,
    /// The read of Redis under way for this version: concurrent readers share it.
    reading: Option<Arc<tokio::sync::OnceCell<Option<u64>>>>,
}

/// How long past its TTL an entry may still be served while it is recomputed in the background
/// (stale-while-revalidate), so that a hot key's expiry does not stall its readers.
pub const STALE_GRACE: Duration = Duration::from_secs(15);

struct EntryTtl;

/// An entry leaves L1 a grace period after it goes stale, however often it was put back (a
/// refresh puts a new entry, a new content coding the same one, weighed again).
impl Expiry<u128, Arc<Entry>> for EntryTtl {
    fn expire_after_create(&self, _: &u128, entry: &Arc<Entry>, now: std::time::Instant) -> Option<Duration> {
        Some(lifetime(entry, now))
    }

    fn expire_after_update(
        &self,
        _: &u128,
        entry: &Arc<Entry>,
        now: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(lifetime(entry, now))
    }
}

fn lifetime(entry: &Entry, now: std::time::Instant) -> Duration {
    let fresh_until = entry.fresh_until.unwrap_or(now + entry.ttl);
    fresh_until.saturating_duration_since(now) + STALE_GRACE
}

impl Cache {
    pub fn new(settings: CacheSettings) -> anyhow::Result<Self> {
        let shares = Arc::new(Shares::default());
        let l2 = match &settings.redis_url {
            Some(url) => Some(Arc::new(redis::Redis::new(url, settings.redis_timeout)?)),
            None => None,
        };
        let invalidations = match &settings.redis_url {
            Some(url) => Some(redis::Redis::new(
                url,
                settings.redis_timeout * INVALIDATION_PATIENCE,
            )?),
            None => None,
        };
        Ok(Cache {
            l1: {
                let (charge, release) = (shares.clone(), shares.clone());
                moka::future::Cache::builder()
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
                    .build()
            },
            shares,
            l2,
            invalidations,
            generations: RwLock::default(),
            versions: AtomicU64::new(0),
            principals: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            counts: Namespace::ALL
                .iter()
                .map(|_| std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            refreshing: Default::default(),
            epoch: AtomicU64::new(0),
            data_epoch: AtomicU64::new(0),
            following: AtomicBool::new(false),
            lost_invalidations: AtomicBool::new(false),
            replica_id: rand::random(),
            acks: acks::Acks::default(),
            failing_since: Default::default(),
            settings,
        })
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Whether cached values may be used now: without Redis always; with Redis only while this
    /// replica follows the invalidation channel and every invalidation it made reached Redis.
    pub fn trusted(&self) -> bool {
        self.l2.is_none() || (self.following.load(Relaxed) && !self.lost_invalidations.load(Relaxed))
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// Counts a lookup; the monitor publishes the counts as `cache_requests_total`, so a hit
    /// costs one atomic add.
    fn count(&self, namespace: Namespace, tier: Tier, outcome: Outcome) {
        self.counts[namespace.index()][tier as usize][outcome as usize].fetch_add(1, Relaxed);
    }

    /// Every lookup count so far: namespace, tier (`l1`, `l2`), result (`RESULTS`), count.
    pub fn lookup_counts(&self) -> impl Iterator<Item = (Namespace, &'static str, &'static str, u64)> + '_ {
        Namespace::ALL.iter().flat_map(move |&namespace| {
            let counts = &self.counts[namespace.index()];
            [(Tier::L1, "l1"), (Tier::L2, "l2")]
                .into_iter()
                .flat_map(move |(tier, tier_name)| {
                    RESULTS.iter().enumerate().map(move |(outcome, result)| {
                        let count = counts[tier as usize][outcome].load(Relaxed);
                        (namespace, tier_name, *result, count)
                    })
                })
        })
    }

    /// Counts a request that skipped the cache.
    pub fn count_bypass(&self, namespace: Namespace) {
        self.count(namespace, Tier::L1, Outcome::Bypass);
    }

    /// The scope's current generation (an item's combines its namespace's and its own); `None`
    /// when it cannot be known (Redis unavailable, or invalidations possibly missed), in which case
    /// nothing may be cached or served from the cache.
    pub async fn generation(&self, scope: Scope) -> Option<u64> {
        if !self.trusted() {
            return None;
        }
        let own = self.known_generation(scope).await?;
        match scope.item {
            None => Some(own),
            // Both random: their combination changes whenever either does.
            Some(_) => Some(self.known_generation(scope.whole()).await? ^ own.rotate_left(32)),
        }
    }

    async fn known_generation(&self, scope: Scope) -> Option<u64> {
        if let Some(generation) = self.read_generations().get(&scope).and_then(|k| k.generation) {
            return Some(generation);
        }
        // Boxed, so that a generation known already does not carry a read of Redis's state.
        Box::pin(self.learn_generation(scope)).await
    }

    /// The scope's generation as Redis holds it, remembered unless an invalidation came in
    /// meanwhile.
    async fn learn_generation(&self, scope: Scope) -> Option<u64> {
        let (version, reading) = {
            let mut generations = self.write_generations();
            if scope.item.is_some() && generations.len() >= KNOWN_ITEMS {
                // Forgetting is always safe: a read of Redis under way then keeps nothing.
                generations.retain(|scope, _| scope.item.is_none());
            }
            let known = generations.entry(scope).or_insert_with(|| Known {
                generation: None,
                version: self.versions.fetch_add(1, Relaxed),
                reading: None,
            });
            if let Some(generation) = known.generation {
                return Some(generation);
            }
            (known.version, known.reading.get_or_insert_default().clone())
        };
        let shared = *reading.get_or_init(|| self.shared_generation(scope)).await;
        // Kept only if no invalidation came in meanwhile; used by this request either way, as
        // any read that overlaps a write may be.
        let mut generations = self.write_generations();
        if let Some(known) = generations.get_mut(&scope)
            && known.version == version
        {
            known.generation = shared;
            known.reading = None;
        }
        shared
    }

    /// The generation in Redis, or a new one if it has none (never used, evicted, flushed).
    async fn shared_generation(&self, scope: Scope) -> Option<u64> {
        let drawn = rand::random::<u64>();
        let Some(l2) = &self.l2 else {
            return Some(drawn);
        };
        // An item's generation lives as long as its longest entry; the namespace's, until replaced.
        let lifetime = scope
            .item
            .map(|_| self.settings.ttl(scope.namespace) + STALE_GRACE);
        let held = l2
            .get_or_init(&generation_key(scope), &drawn.to_string(), lifetime)
            .await;
        let generation = held.ok().and_then(|held| held.parse().ok());
        if generation.is_none() {
            self.count(scope.namespace, Tier::L2, Outcome::Error);
        }
        generation
    }

    /// What every successful write does, from HTTP or elsewhere (the command line): makes what
    /// `mutation` changed unreachable. `risk` is the risk the write changed, when known.
    pub async fn after_write(&self, org: Uuid, mutation: Mutation, risk: Option<Uuid>) {
        let stale = mutation.affects(risk);
        let items: Vec<Scope> = stale
            .risk
            .map(|risk| Scope::item(org, Namespace::RiskDetails, risk))
            .into_iter()
            .collect();
        self.invalidate(org, &stale.namespaces, &items).await;
    }

    /// Makes every cached value of the organization's `namespaces` and of the `items` unreachable,
    /// here and, through the invalidation channel, on every replica: the namespaces' generations
    /// are replaced in Redis by new random values (or deleted, when Redis is too full to store
    /// them: the next reader then draws new ones), the items' are deleted, and every replica is
    /// told to forget what it knows of them.
    pub async fn invalidate(&self, org: Uuid, namespaces: &[Namespace], items: &[Scope]) {
        let scopes: Vec<Scope> = namespaces
            .iter()
            .map(|&namespace| Scope::namespace(org, namespace))
            .chain(items.iter().copied())
            .collect();
        // Forgotten first: a write that completes meanwhile here forgets again, so that this
        // write does not install its generations over the later one's below.
        let versions = self.forget(&scopes);
        let replacements: Vec<u64> = scopes.iter().map(|_| rand::random()).collect();
        let token = rand::random::<u64>();
        let acknowledged = self.acks.expect(self.replica_id, token);
        let (delivered, replaced) = match &self.invalidations {
            None => (true, true),
            Some(l2) => {
                let pairs: Vec<(String, String)> = scopes
                    .iter()
                    .zip(&replacements)
                    .filter(|(scope, _)| scope.item.is_none())
                    .map(|(&scope, generation)| (generation_key(scope), generation.to_string()))
                    .collect();
                let replaced = pairs.is_empty() || l2.set_values(&pairs).await.is_ok();
                let keys: Vec<String> = pairs.into_iter().map(|(key, _)| key).collect();
                // An item's generation is deleted, not replaced: it must keep its time to live.
                let item_keys: Vec<String> = items.iter().map(|&item| generation_key(item)).collect();
                let stored = (item_keys.is_empty() || l2.delete(&item_keys).await.is_ok())
                    && (replaced || l2.delete(&keys).await.is_ok());
                let message = replication::Message::Forget {
                    org,
                    namespaces: namespaces.to_vec(),
                    items: items
                        .iter()
                        .filter_map(|scope| Some((scope.namespace, scope.item?)))
                        .collect(),
                    from: self.replica_id,
                    token,
                };
                let delivered = stored && l2.publish(replication::CHANNEL, &message.encode()).await.is_ok();
                (delivered, replaced)
            }
        };
        if !delivered {
            // No reader here may find the old generation in Redis again.
            self.lost_invalidations.store(true, Relaxed);
        }
        if !(delivered && replaced) {
            // What readers here found in Redis before it changed, they must not keep.
            self.forget(&scopes);
        } else {
            // This replica's next read needs no trip to Redis, unless a later write came in.
            let mut generations = self.write_generations();
            for ((scope, version), generation) in scopes.iter().zip(versions).zip(replacements) {
                if scope.item.is_none()
                    && let Some(known) = generations.get_mut(scope)
                    && known.version == version
                {
                    known.generation = Some(generation);
                    known.version = self.versions.fetch_add(1, Relaxed);
                }
            }
        }
        for namespace in namespaces {
            metrics::counter!("cache_invalidations_total", "namespace" => namespace.as_str()).increment(1);
        }
        match acknowledged {
            Some(acknowledged) if delivered => {
                if !self.acks.wait(token, acknowledged).await {
                    metrics::counter!("cache_invalidation_ack_timeouts_total").increment(1);
                }
            }
            _ => self.acks.abandon(token),
        }
        if !delivered {
            // Other replicas may still trust entries this write made stale, until their own
            // checks of Redis fail: answer once they have.
            let noticed =
                self.failing_since() + replication::failure_noticed_within(self.settings.redis_timeout);
            tokio::time::sleep_until(noticed.into()).await;
        }
    }

    /// Drops this process's knowledge of the `scopes`' generations, so that the next reader asks
    /// Redis and a read of Redis under way does not keep what it finds; returns their versions.
    fn forget(&self, scopes: &[Scope]) -> Vec<u64> {
        let mut generations = self.write_generations();
        scopes
            .iter()
            .map(|&scope| {
                let version = self.versions.fetch_add(1, Relaxed);
                generations.insert(
                    scope,
                    Known {
                        generation: None,
                        version,
                        reading: None,
                    },
                );
                version
            })
            .collect()
    }

    /// When this replica first saw Redis fail, now if it had not yet.
    fn failing_since(&self) -> std::time::Instant {
        *self.failure().get_or_insert_with(std::time::Instant::now)
    }

    /// Redis answers again and the cache is trusted.
    fn recovered(&self) {
        *self.failure() = None;
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        self.failing_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_generations(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Scope, Known>> {
        self.generations
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_generations(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Scope, Known>> {
        self.generations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `entry`'s body in `coding`, made once per entry: the L1 copy keeps it, weighed again.
    /// `None` when the body could not be encoded (then send it as it is).
    pub async fn encoded(&self, key: u128, entry: &Arc<Entry>, coding: Coding) -> Option<Bytes> {
        let (encoded, made) = entry.encoded(coding);
        if made && self.settings.l1_max_bytes > 0 {
            // Put back only if the key still holds this entry, not one stored meanwhile.
            let same = Arc::clone(entry);
            self.l1
                .entry(key)
                .and_compute_with(|current| {
                    let keep = current.is_some_and(|current| Arc::ptr_eq(current.value(), &same));
                    std::future::ready(if keep {
                        moka::ops::compute::Op::Put(same)
                    } else {
                        moka::ops::compute::Op::Nop
                    })
                })
                .await;
        }
        encoded
    }

    /// The value under `key`: from L1, else L2, else `fill` — run once however many callers miss
    /// the key at the same time (the others wait for its result). `fill`'s errors are not cached.
    pub async fn get_or_fill<E>(
        &self,
        scope: Scope,
        key: u128,
        fill: impl Future<Output = Result<Entry, E>>,
    ) -> Result<(Arc<Entry>, Lookup), Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        const FROM_L1: u8 = 0;
        const FROM_L2: u8 = 1;
        const FILLED: u8 = 2;
        // A hit takes the short way: no single-flight machinery.
        if self.settings.l1_max_bytes > 0
            && let Some(entry) = self.l1.get(&key).await
        {
            self.count(scope.namespace, Tier::L1, Outcome::Hit);
            return Ok((entry, Lookup::Hit(Tier::L1)));
        }
        let source = AtomicU8::new(FROM_L1);
        let result = self
            .l1
            .try_get_with(key, async {
                if let Some(entry) = self.l2_get(scope, key).await {
                    source.store(FROM_L2, Relaxed);
                    return Ok(Arc::new(Entry {
                        org: scope.org,
                        ..entry
                    }));
                }
                source.store(FILLED, Relaxed);
                let entry = Arc::new(
                    Entry {
                        org: scope.org,
                        ..fill.await?
                    }
                    .fresh_from_now(),
                );
                self.l2_set(scope, key, &entry);
                Ok(entry)
            })
            .await;
        // L1 off: it only joined concurrent lookups. Over its share: served, not kept.
        if self.settings.l1_max_bytes == 0 || self.over_share(scope.org) {
            self.l1.invalidate(&key).await;
        }
        let lookup = match source.load(Relaxed) {
            FROM_L1 => {
                self.count(scope.namespace, Tier::L1, Outcome::Hit);
                Lookup::Hit(Tier::L1)
            }
            FROM_L2 => {
                self.count(scope.namespace, Tier::L1, Outcome::Miss);
                Lookup::Hit(Tier::L2)
            }
            _ => {
                self.count(scope.namespace, Tier::L1, Outcome::Miss);
                Lookup::Miss
            }
        };
        result.map(|entry| (entry, lookup))
    }

    /// The fresh entry under `key` in L1, counted as a hit; `None` (and not counted) otherwise.
    pub async fn fresh_in_l1(&self, namespace: Namespace, key: u128) -> Option<Arc<Entry>> {
        if self.settings.l1_max_bytes == 0 {
            return None;
        }
        let entry = self.l1.get(&key).await.filter(|entry| !entry.is_stale())?;
        self.count(namespace, Tier::L1, Outcome::Hit);
        Some(entry)
    }

    /// Claims the background refresh of `key`'s stale entry: `false` if one is under way.
    pub fn begin_refresh(&self, key: u128) -> bool {
        self.refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key)
    }

    pub fn end_refresh(&self, key: u128) {
        self.refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// Stores a value computed outside `get_or_fill` (a refresh).
    pub async fn store(&self, scope: Scope, key: u128, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(
            Entry {
                org: scope.org,
                ..entry
            }
            .fresh_from_now(),
        );
        self.l2_set(scope, key, &entry);
        if self.settings.l1_max_bytes > 0 && !self.over_share(scope.org) {
            self.l1.insert(key, entry.clone()).await;
        }
        entry
    }

    /// Whether `org` holds more than its share of L1 (see `shares`).
    fn over_share(&self, org: Uuid) -> bool {
        self.shares.over_share(org, self.settings.l1_max_bytes)
    }

    async fn l2_get(&self, scope: Scope, key: u128) -> Option<Entry> {
        let l2 = self.l2.as_ref()?;
        match l2.get(&entry_key(scope.org, key)).await {
            Ok(Some(bytes)) => {
                let entry = Entry::decode(&bytes, self.settings.ttl(scope.namespace));
                let outcome = if entry.is_some() {
                    Outcome::Hit
                } else {
                    Outcome::Error
                };
                self.count(scope.namespace, Tier::L2, outcome);
                entry
            }
            Ok(None) => {
                self.count(scope.namespace, Tier::L2, Outcome::Miss);
                None
            }
            Err(_) => {
                self.count(scope.namespace, Tier::L2, Outcome::Error);
                None
            }
        }
    }

    /// Writes to L2 in the background: a miss does not wait for Redis.
    fn l2_set(&self, scope: Scope, key: u128, entry: &Entry) {
        if let Some(l2) = &self.l2 {
            let (l2, bytes, ttl) = (l2.clone(), entry.encode(), entry.ttl);
            tokio::spawn(async move {
                let _ = l2.set(&entry_key(scope.org, key), &bytes, ttl).await;
            });
        }
    }

    /// A typed value computed by `compute`, cached in `scope` at `generation` (read by the caller)
    /// under `parts`, with the same tiers and single flight as responses.
    async fn get_or_set<T, E, Fut>(
        &self,
        scope: Scope,
        generation: u64,
        parts: &[&[u8]],
        compute: impl Fn() -> Fut,
    ) -> Result<T, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        let ttl = self.settings.ttl(scope.namespace);
        let key = self.key(scope, generation, parts);
        let (entry, _) = self
            .get_or_fill(scope, key, async {
                let value = compute().await?;
                let entry = Entry {
                    content_type: "application/json".into(),
                    // A value that does not serialize is stored empty, and recomputed below.
                    body: serde_json::to_vec(&value).unwrap_or_default().into(),
                    ttl,
                    ..Entry::default()
                };
                let _ = entry.decoded.set(Arc::new(value));
                Ok(entry)
            })
            .await?;
        if let Some(value) = entry.decoded.get().and_then(|v| v.downcast_ref::<T>()) {
            return Ok(value.clone());
        }
        // From L2: decoded once, then kept decoded in L1.
        match serde_json::from_slice::<T>(&entry.body) {
            Ok(value) => {
                let _ = entry.decoded.set(Arc::new(value.clone()));
                Ok(value)
            }
            Err(_) => compute().await.map_err(Arc::new),
        }
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
        // Read before the generation: an entry is never credited with an epoch newer than the
        // generation it was read under.
        let epoch = self.key_epoch();
        let known = self.principals.get(token_hash).await;
        let org = match &known {
            // A token's organization never changes.
            Some(known) => known.principal.organization_id,
            None => match store.authenticate(token_hash, now).await.map_err(Arc::new)? {
                Some(principal) => principal.organization_id,
                None => return Ok(None),
            },
        };
        let scope = Scope::namespace(org, Namespace::Auth);
        let Some(generation) = self.generation(scope).await else {
            self.count_bypass(Namespace::Auth);
            return store.authenticate(token_hash, now).await.map_err(Arc::new);
        };
        let principal = match known {
            Some(known) if known.epoch == epoch && known.generation == generation => {
                self.count(Namespace::Auth, Tier::L1, Outcome::Hit);
                Some(known.principal.clone())
            }
            // Boxed, so that a request known already does not carry a lookup's state.
            _ => Box::pin(self.read_principal(store, token_hash, now, scope, generation, epoch)).await?,
        };
        Ok(principal.filter(|p| p.expires_at.is_none_or(|at| at > now)))
    }

    /// The principal behind `token_hash` through the `auth` namespace at `generation`, remembered
    /// in `principals`.
    async fn read_principal(
        &self,
        store: &dyn Store,
        token_hash: &[u8],
        now: DateTime<Utc>,
        scope: Scope,
        generation: u64,
        epoch: u64,
    ) -> Result<Option<Principal>, Arc<StoreError>> {
        let principal: Option<Principal> = self
            .get_or_set(scope, generation, &[b"token", token_hash], || {
                store.authenticate(token_hash, now)
            })
            .await?;
        match &principal {
            Some(principal) => {
                let known = KnownPrincipal {
                    principal: principal.clone(),
                    epoch,
                    generation,
                };
                self.principals.insert(token_hash.to_vec(), Arc::new(known)).await
            }
            None => self.principals.invalidate(token_hash).await,
        }
        Ok(principal)
    }

    /// `up`, `down` or `disabled` (no Redis configured).
    pub async fn redis_state(&self) -> &'static str {
        match &self.l2 {
            None => "disabled",
            Some(l2) if l2.ping().await.is_ok() => "up",
            Some(_) => "down",
        }
    }

    /// Each Redis server's memory limit and eviction policy; `None` without Redis or when it does
    /// not answer.
    pub async fn redis_memory(&self) -> Option<Vec<redis::MemoryPolicy>> {
        self.l2.as_ref()?.memory().await.ok()
    }

    /// The breaker in front of Redis (closed without Redis).
    pub fn breaker_state(&self) -> redis::BreakerState {
        self.l2
            .as_ref()
            .map_or(redis::BreakerState::Closed, |l2| l2.breaker_state())
    }

    /// L1 entries and bytes, for the metrics.
    pub fn l1_usage(&self) -> (u64, u64) {
        (self.l1.entry_count(), self.l1.weighted_size())
    }
}

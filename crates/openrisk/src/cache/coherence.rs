//! Whether this replica may trust what it has cached, and the epochs every key carries.
//!
//! Invariant: with Redis configured, cached values are used only while this replica follows the
//! invalidation channel (`following`) and no invalidation of its own failed to reach Redis and
//! the channel (`lost_invalidations`). Keys carry two epochs: Redis's (renewed whenever Redis may
//! hold generations older than the data: a lost invalidation, a restart, a failover) and the
//! database's data epoch (renewed by every restore from a backup). A new epoch makes every
//! earlier entry unreachable, in L1 and in whatever Redis still holds.
//!
//! Orderings: every atomic here is `Relaxed`. Each is a value read on its own: no other memory is
//! published through it. What a flag guards, the generation map, has its own lock; and a write's
//! response leaves only after its flag is set, through system calls that order memory, so a
//! request that starts after that response sees the flag.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::acks::Acks;

pub struct Coherence {
    redis_configured: bool,
    /// Part of every key; a new epoch voids every earlier entry.
    epoch: AtomicU64,
    /// The database's data epoch, also part of every key: a restore from a backup draws a new
    /// one, which voids every entry cached from the data before it.
    data_epoch: AtomicU64,
    /// Whether this replica follows the invalidation channel and has settled its epoch.
    following: AtomicBool,
    /// An invalidation that did not reach Redis or the channel: Redis may still hold the replaced
    /// generation and other replicas may have missed it, so nothing cached is trusted until the
    /// epoch has been renewed.
    lost_invalidations: AtomicBool,
    /// Since when Redis has been failing this replica (unset while the cache is trusted).
    failing_since: Mutex<Option<Instant>>,
    /// Names this process's own invalidations on the channel.
    pub replica_id: u64,
    /// The other replicas, and the acknowledgements this replica's writes wait for.
    pub acks: Acks,
}

impl Coherence {
    pub fn new(redis_configured: bool) -> Self {
        Coherence {
            redis_configured,
            epoch: AtomicU64::new(0),
            data_epoch: AtomicU64::new(0),
            following: AtomicBool::new(false),
            lost_invalidations: AtomicBool::new(false),
            failing_since: Mutex::default(),
            replica_id: rand::random(),
            acks: Acks::default(),
        }
    }

    /// Waits (at most `limit`) until cached values may be used, so that a starting replica serves
    /// from the cache from its first request when Redis answers.
    pub async fn wait_until_trusted(&self, redis: Option<&crate::redis::Redis>, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        if let Some(redis) = redis {
            let _ = tokio::time::timeout(limit, redis.ping()).await;
        }
        while !self.trusted() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Whether cached values may be used now: without Redis always; with Redis only while this
    /// replica follows the channel and every invalidation it made reached Redis.
    pub fn trusted(&self) -> bool {
        !self.redis_configured || (self.following.load(Relaxed) && !self.lost_invalidations.load(Relaxed))
    }

    /// What every key carries of the two epochs.
    pub fn key_epoch(&self) -> u64 {
        self.epoch.load(Relaxed) ^ self.data_epoch.load(Relaxed)
    }

    /// Takes Redis's epoch; returns whether it changed (then every earlier entry is void).
    pub fn adopt_epoch(&self, epoch: u64) -> bool {
        self.epoch.swap(epoch, Relaxed) != epoch
    }

    /// Takes the database's data epoch; returns whether it changed.
    pub fn adopt_data_epoch(&self, epoch: u64) -> bool {
        self.data_epoch.swap(epoch, Relaxed) != epoch
    }

    /// The follower subscribed and settled its epoch: Redis answers and the cache is trusted.
    pub fn start_following(&self) {
        *self.failure() = None;
        self.following.store(true, Relaxed);
    }

    /// The follower lost its subscription (or never had it).
    pub fn stop_following(&self) {
        self.following.store(false, Relaxed);
        self.mark_failing();
    }

    /// An invalidation of this replica did not reach Redis or the channel.
    pub fn lose_invalidation(&self) {
        self.lost_invalidations.store(true, Relaxed);
    }

    pub fn invalidation_lost(&self) -> bool {
        self.lost_invalidations.load(Relaxed)
    }

    /// Clears the loss flag for an epoch renewal about to cover it; returns whether it was set.
    /// A loss reported from here on is not covered, and sets the flag again.
    pub fn take_lost_invalidation(&self) -> bool {
        self.lost_invalidations.swap(false, Relaxed)
    }

    /// Records that Redis fails this replica, from now unless already recorded; returns since
    /// when it has been failing.
    pub fn mark_failing(&self) -> Instant {
        *self.failure().get_or_insert_with(Instant::now)
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.failing_since.lock().unwrap_or_else(|p| p.into_inner())
    }
}

//! Per-token rate limits: GCRA (the generic cell rate algorithm: a token may make `burst` requests
//! at once, then one every `1 / per_second`), shared by all replicas through Redis, and kept by
//! each replica on its own while Redis is away (the limit then holds per replica).
//!
//! A request does not call Redis: a replica takes a lease of a few cells from the shared state
//! and spends it locally, asking again when it is spent or a moment old. A lease is as large as
//! the replica used last time, doubled when it was spent (at most a quarter of the burst), so that
//! a token busy on one replica costs a Redis call every few dozen requests, and a token used
//! rarely wastes no more than one cell.
//!
//! Expensive operations (exports, and the summary when it is not cached) also have a stricter
//! limit of their own and a cap on how many of one organization's run at once on a replica.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::redis::{Redis, Role};

/// How long a request may wait for its organization's turn.
const TURN_WAIT: Duration = Duration::from_secs(5);

/// How long a lease's cells may be spent.
const LEASE_FOR: Duration = Duration::from_millis(250);

/// Cells left and when the first may be taken again, per Redis, by the same arithmetic as `gcra`.
/// `KEYS[1]`: the token's theoretical arrival time (µs); `ARGV`: interval (µs), burst, cells
/// wanted. Returns cells granted, cells left after them, and microseconds until one is free when
/// none was granted.
const GCRA_SCRIPT: &str = r#"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local free = math.floor((now + burst * interval - tat) / interval)
if free <= 0 then
  return {0, 0, tat + interval - (now + burst * interval)}
end
local granted = math.min(want, free)
tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return {granted, free - granted, 0}
"#;

/// A limit: `burst` at once, then `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub per_second: f64,
    pub burst: u32,
}

impl Limit {
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitSettings {
    /// Every authenticated request; `None`: no limit.
    pub requests: Option<Limit>,
    /// Exports and uncached summaries, on top of `requests`.
    pub expensive: Option<Limit>,
    /// Expensive operations of one organization running at once on a replica; 0: no cap.
    pub expensive_concurrency: u32,
    /// Requests of one organization handled at once on a replica; 0: no cap. More wait their
    /// turn, in order, for up to `TURN_WAIT`: one organization's flood cannot take every worker
    /// and database connection from the others.
    pub concurrency_per_org: u32,
    /// Failed authentications from one client address, counted by each replica on its own;
    /// `None`: no limit. Past it, the address's requests with a token are refused before any
    /// lookup, so guessing tokens costs the database nothing.
    pub failed_authentications: Option<Limit>,
    /// Expensive operations of one token running at once on a replica; 0: no cap. Below the
    /// organization's cap, so that no one token can hold all of its organization's places.
    pub expensive_concurrency_per_token: u32,
}

/// The places an expensive operation holds until it is dropped: its organization's and its
/// token's.
pub struct Running {
    _places: [Option<OwnedSemaphorePermit>; 2],
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limited {
    /// The limit's burst, or the concurrency cap.
    pub limit: u32,
    /// When to try again.
    pub retry_after: Duration,
    /// When the whole burst is available again.
    pub reset: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Requests,
    Expensive,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Requests => "r",
            Class::Expensive => "x",
        }
    }
}

/// Cells this replica took from the shared state and has not spent.
#[derive(Default)]
struct Lease {
    left: u32,
    granted: u32,
    until: Option<Instant>,
    /// Without Redis: this token's theoretical arrival time, kept here.
    local_tat: Option<Instant>,
}

pub struct RateLimiter {
    settings: RateLimitSettings,
    redis: Option<Redis>,
    /// Read on every request: a map that looks up without waiting, and a lock held for a few
    /// instructions, never across a call to Redis.
    leases: moka::sync::Cache<(Class, Uuid), Arc<Mutex<Lease>>>,
    /// Places by organization, and by token.
    running: moka::future::Cache<(Scope, Uuid), Arc<Semaphore>>,
    /// Each organization's turns to be handled: read on every request, so a plain map behind a
    /// lock held for a lookup (organizations are few, and their entries small).
    turns: RwLock<HashMap<Uuid, Arc<Semaphore>>>,
    /// Per client address: the theoretical arrival time of its failed authentications.
    failures: moka::sync::Cache<IpAddr, Arc<Mutex<Option<Instant>>>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Organization,
    Token,
}

impl RateLimiter {
    pub fn new(settings: RateLimitSettings, redis: Option<(&str, Duration)>) -> anyhow::Result<Self> {
        Ok(RateLimiter {
            settings,
            redis: redis
                .map(|(url, timeout)| Redis::connect(url, Role::Limits, timeout))
                .transpose()?,
            // A token idle this long has its whole burst back anyway.
            leases: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            running: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            turns: RwLock::default(),
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        })
    }

    /// A turn for a request of `org`, held until it is dropped; refused when the organization's
    /// earlier requests leave none within `TURN_WAIT`.
    pub async fn turn(&self, org: Uuid) -> Result<Option<OwnedSemaphorePermit>, Limited> {
        let cap = self.settings.concurrency_per_org;
        if cap == 0 {
            return Ok(None);
        }
        let known = self
            .turns
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&org)
            .cloned();
        let turns = known.unwrap_or_else(|| {
            let mut turns = self
                .turns
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            turns
                .entry(org)
                .or_insert_with(|| Arc::new(Semaphore::new(cap as usize)))
                .clone()
        });
        if let Ok(turn) = turns.clone().try_acquire_owned() {
            return Ok(Some(turn));
        }
        let waiting = metrics::gauge!("http_requests_waiting_for_turn");
        waiting.increment(1.0);
        let turn = tokio::time::timeout(TURN_WAIT, turns.acquire_owned()).await;
        waiting.decrement(1.0);
        match turn {
            Ok(Ok(turn)) => Ok(Some(turn)),
            _ => Err(Limited {
                limit: cap,
                retry_after: Duration::from_secs(1),
                reset: Duration::from_secs(1),
            }),
        }
    }

    /// Whether `client` may have a token looked up: not while its failed authentications are
    /// over their limit.
    pub fn may_authenticate(&self, client: IpAddr) -> Result<(), Limited> {
        let (Some(limit), Some(slot)) = (self.settings.failed_authentications, self.failures.get(&client))
        else {
            return Ok(());
        };
        // Tried on a copy: asking spends nothing.
        let mut tat = *lock(&slot);
        gcra(&mut tat, Instant::now(), limit).map_err(|wait| Limited {
            limit: limit.burst,
            retry_after: wait,
            reset: wait + limit.interval() * limit.burst.saturating_sub(1),
        })
    }

    /// Counts a failed authentication from `client`.
    pub fn authentication_failed(&self, client: IpAddr) {
        if let Some(limit) = self.settings.failed_authentications {
            let slot = self.failures.get_with(client, Arc::default);
            let _ = gcra(&mut lock(&slot), Instant::now(), limit);
        }
    }

    /// Counts a request of `token`.
    pub async fn request(&self, token: Uuid) -> Result<(), Limited> {
        match self.settings.requests {
            Some(limit) => self.take(Class::Requests, token, limit).await,
            None => Ok(()),
        }
    }

    /// Counts an expensive operation of `token`, and holds one of its organization's places and
    /// one of the token's for it until `Running` is dropped.
    pub async fn expensive(&self, org: Uuid, token: Uuid) -> Result<Running, Limited> {
        if let Some(limit) = self.settings.expensive {
            self.take(Class::Expensive, token, limit).await?;
        }
        // The token's place first: a token at its cap takes none of its organization's.
        let token_place = self
            .place(Scope::Token, token, self.settings.expensive_concurrency_per_token)
            .await?;
        let org_place = self
            .place(Scope::Organization, org, self.settings.expensive_concurrency)
            .await?;
        Ok(Running {
            _places: [token_place, org_place],
        })
    }

    async fn place(&self, scope: Scope, id: Uuid, cap: u32) -> Result<Option<OwnedSemaphorePermit>, Limited> {
        if cap == 0 {
            return Ok(None);
        }
        let places = self
            .running
            .get_with((scope, id), async { Arc::new(Semaphore::new(cap as usize)) })
            .await;
        places.try_acquire_owned().map(Some).map_err(|_| Limited {
            limit: cap,
            retry_after: Duration::from_secs(1),
            reset: Duration::from_secs(1),
        })
    }

    async fn take(&self, class: Class, token: Uuid, limit: Limit) -> Result<(), Limited> {
        let slot = self.leases.get_with((class, token), Arc::default);
        let want = {
            let mut lease = lock(&slot);
            if lease.left > 0 && lease.until.is_some_and(|until| Instant::now() < until) {
                lease.left -= 1;
                return Ok(());
            }
            match class {
                Class::Expensive => 1,
                Class::Requests if lease.left == 0 && lease.granted > 0 => {
                    lease.granted.saturating_mul(2).min(limit.burst / 4)
                }
                // Renewals at the same time may have left more cells than the last grant.
                Class::Requests => lease.granted.saturating_sub(lease.left),
            }
            .max(1)
        };
        let shared = match &self.redis {
            Some(redis) => redis
                .eval_integers(
                    GCRA_SCRIPT,
                    &format!("openrisk:{{rl:{token}}}:{}", class.as_str()),
                    &[
                        (limit.interval().as_micros() as i64).max(1),
                        i64::from(limit.burst),
                        i64::from(want),
                    ],
                )
                .await
                .ok()
                .filter(|answer| answer.len() == 3),
            None => None,
        };
        let now = Instant::now();
        let mut lease = lock(&slot);
        let (granted, retry_after_us) = match shared {
            Some(answer) => (u32::try_from(answer[0]).unwrap_or(0), answer[2].max(0) as u64),
            // Redis away, or none: this replica's own account.
            None => match gcra(&mut lease.local_tat, now, limit) {
                Ok(()) => (1, 0),
                Err(wait) => (0, wait.as_micros() as u64),
            },
        };
        lease.granted = granted;
        if granted == 0 {
            lease.left = 0;
            let retry_after = Duration::from_micros(retry_after_us);
            return Err(Limited {
                limit: limit.burst,
                retry_after,
                reset: retry_after + limit.interval() * limit.burst.saturating_sub(1),
            });
        }
        // Requests that renewed at the same time each add their cells.
        lease.left = lease.left.saturating_add(granted - 1);
        lease.until = Some(now + LEASE_FOR);
        Ok(())
    }
}

fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One cell of `limit` at `now`, against the theoretical arrival time `tat`; or how long until one
/// is free.
fn gcra(tat: &mut Option<Instant>, now: Instant, limit: Limit) -> Result<(), Duration> {
    let interval = limit.interval();
    let arrival = tat.map_or(now, |tat| tat.max(now));
    let allowed_until = now + interval * limit.burst;
    let next = arrival + interval;
    if next > allowed_until {
        return Err(next - allowed_until);
    }
    *tat = Some(next);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let limit = Limit {
            per_second: 10.0,
            burst: 5,
        };
        let start = Instant::now();
        let mut tat = None;
        for _ in 0..5 {
            assert!(gcra(&mut tat, start, limit).is_ok());
        }
        let wait = gcra(&mut tat, start, limit).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(gcra(&mut tat, start + wait, limit).is_ok());
        assert!(gcra(&mut tat, start + wait, limit).is_err());
        // Idle for a while: the whole burst again, no more.
        let later = start + Duration::from_secs(10);
        for _ in 0..5 {
            assert!(gcra(&mut tat, later, limit).is_ok());
        }
        assert!(gcra(&mut tat, later, limit).is_err());
    }
}

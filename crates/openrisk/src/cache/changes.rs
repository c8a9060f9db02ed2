//! Each organization's recent risk changes, numbered in one order for every replica, so that a
//! cached page of the risk list is kept through the writes that leave it as it was and dropped at
//! the first that may not (see docs/cache.md, "Writes that cost what they changed").
//!
//! Numbers come from one Redis counter per organization (`number`), incremented after the write's
//! commit; a counter that Redis lost starts again from Redis's clock in microseconds, above every
//! number it gave before. An answer computed after reading `head` reflects every change up to it.
//!
//! Invariant: `since` vouches for an entry only when this replica holds every change numbered
//! after the entry's, up to the highest it has applied, and has known the organization's numbers
//! since before the entry's (it is anchored at or below it). Otherwise the entry is stale. A
//! replica anchors an organization by reading its counter, after subscribing to the channel the
//! changes travel on: every later number then reaches it.
//!
//! Orderings: the logs, and the counters kept without Redis, are behind a lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use crate::domain::coverage::RiskChange;
use crate::redis::{Redis, Unavailable};

/// Changes kept per organization; an entry older than the oldest kept is stale.
const KEPT: usize = 256;

/// Increments the counter; a counter that was missing starts from Redis's clock in microseconds,
/// so that numbers keep increasing across its loss.
const NUMBER: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  local now = redis.call('TIME')
  n = tonumber(now[1]) * 1000000 + tonumber(now[2])
  redis.call('SET', KEYS[1], n)
end
return {n}
";

/// The counter's value; a missing counter is started from Redis's clock, so that the first change
/// numbered after it follows it with no gap.
const ANCHOR: &str = r"
local n = redis.call('GET', KEYS[1])
if not n then
  local now = redis.call('TIME')
  n = tonumber(now[1]) * 1000000 + tonumber(now[2])
  redis.call('SET', KEYS[1], n)
end
return {tonumber(n)}
";

#[derive(Default)]
pub struct ChangeLog {
    logs: RwLock<HashMap<Uuid, Log>>,
}

/// One organization's changes as this replica knows them.
#[derive(Default)]
struct Log {
    changes: BTreeMap<u64, Arc<RiskChange>>,
    /// The highest number applied.
    head: u64,
    /// Numbers at or below it may be missing from `changes`: entries numbered below it are stale.
    floor: u64,
    /// Whether `floor` is known: until the counter has been read, changes are recorded but vouch
    /// for nothing.
    anchored: bool,
    /// Without Redis, the organization's counter: this process is the only one.
    issued: u64,
}

impl ChangeLog {
    /// The organization's highest applied number, anchoring it first if need be; `Err` when Redis
    /// cannot say.
    pub async fn head(&self, redis: Option<&Redis>, org: Uuid) -> Result<u64, Unavailable> {
        if let Some(log) = self.read().get(&org).filter(|log| log.anchored) {
            return Ok(log.head);
        }
        // From here on, changes are recorded: none that arrives while the counter is read is lost.
        self.write().entry(org).or_default();
        let anchor = match redis {
            Some(redis) => {
                let answer = redis.eval_integers(ANCHOR, &counter_key(org), &[]).await?;
                let anchor = answer.first().copied().ok_or(Unavailable)?;
                u64::try_from(anchor).map_err(|_| Unavailable)?
            }
            None => self.read().get(&org).map_or(0, |log| log.issued),
        };
        let mut logs = self.write();
        let log = logs.entry(org).or_default();
        if !log.anchored {
            // Changes up to the counter's value are in every answer computed from now on.
            log.changes = log.changes.split_off(&(anchor + 1));
            log.floor = log.floor.max(anchor);
            log.head = log.head.max(anchor);
            log.anchored = true;
        }
        Ok(log.head)
    }

    /// A number for a change of `org`, after its commit.
    pub async fn number(&self, redis: Option<&Redis>, org: Uuid) -> Result<u64, Unavailable> {
        let Some(redis) = redis else {
            let mut logs = self.write();
            let log = logs.entry(org).or_default();
            log.issued += 1;
            return Ok(log.issued);
        };
        let answer = redis.eval_integers(NUMBER, &counter_key(org), &[]).await?;
        let number = answer.first().copied().ok_or(Unavailable)?;
        u64::try_from(number).map_err(|_| Unavailable)
    }

    /// Records change `number` of `org`. An organization this replica has not read has nothing
    /// cached that could need it.
    pub fn apply(&self, org: Uuid, number: u64, change: Arc<RiskChange>) {
        let mut logs = self.write();
        let Some(log) = logs.get_mut(&org) else {
            return;
        };
        if log.anchored && number <= log.floor {
            return;
        }
        log.changes.insert(number, change);
        log.head = log.head.max(number);
        while log.changes.len() > KEPT {
            if let Some((oldest, _)) = log.changes.pop_first() {
                log.floor = oldest;
            }
        }
    }

    /// The changes of `org` numbered after `number`, with the highest number applied; `None`
    /// when some of them may be missing here (not yet received, lost, or older than the log).
    pub fn since(&self, org: Uuid, number: u64) -> Option<(u64, Vec<Arc<RiskChange>>)> {
        let logs = self.read();
        let log = logs.get(&org).filter(|log| log.anchored)?;
        if number < log.floor {
            return None;
        }
        if number >= log.head {
            return Some((log.head, Vec::new()));
        }
        let changes: Vec<Arc<RiskChange>> = log.changes.range(number + 1..).map(|(_, c)| c.clone()).collect();
        (changes.len() as u64 == log.head - number).then_some((log.head, changes))
    }

    /// Whether changes of `org` numbered after `number` may be gone from this replica for good:
    /// the log does not reach back that far, or it must be anchored again.
    pub fn forgotten(&self, org: Uuid, number: u64) -> bool {
        let logs = self.read();
        logs.get(&org)
            .is_none_or(|log| !log.anchored || number < log.floor)
    }

    /// Forgets every organization's changes (the channel may have missed some, or Redis's numbers
    /// are not the ones known): each is anchored again on its next read.
    pub fn clear(&self) {
        self.write().clear();
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Uuid, Log>> {
        self.logs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Uuid, Log>> {
        self.logs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn counter_key(org: Uuid) -> String {
    format!("openrisk:{{{org}}}:changes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> Arc<RiskChange> {
        Arc::new(RiskChange::touched(Uuid::now_v7()))
    }

    #[tokio::test]
    async fn an_entry_is_vouched_for_only_with_every_change_since_it() {
        let log = ChangeLog::default();
        let org = Uuid::now_v7();
        assert_eq!(log.since(org, 0), None, "not anchored");
        log.apply(org, 1, change());
        assert_eq!(log.head(None, org).await.ok(), Some(0));
        assert_eq!(log.since(org, 0).map(|(_, c)| c.len()), Some(0));
        let first = log.number(None, org).await.unwrap();
        log.apply(org, first, change());
        assert_eq!(log.since(org, 0).map(|(_, c)| c.len()), Some(1));
        assert_eq!(log.since(org, first).map(|(_, c)| c.len()), Some(0));
        // Number 3 arrives before 2: entries before 2 cannot be vouched for until it comes.
        log.apply(org, first + 2, change());
        assert_eq!(log.since(org, first), None);
        assert_eq!(log.since(org, first + 2).map(|(_, c)| c.len()), Some(0));
        log.apply(org, first + 1, change());
        assert_eq!(log.since(org, first).map(|(_, c)| c.len()), Some(2));
        assert_eq!(log.head(None, org).await.ok(), Some(first + 2));
        // An entry from a replica further on is vouched for by what this one knows.
        assert_eq!(log.since(org, first + 10).map(|(_, c)| c.len()), Some(0));
        // Only the last changes are kept.
        for n in 0..KEPT as u64 {
            log.apply(org, first + 3 + n, change());
        }
        assert_eq!(log.since(org, first), None);
        assert!(log.since(org, first + 3).is_some());
        log.clear();
        assert_eq!(log.since(org, first + 3), None);
    }

    #[tokio::test]
    async fn without_redis_each_organization_counts_its_own_changes() {
        let log = ChangeLog::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let start = log.head(None, a).await.ok();
        log.head(None, b).await.unwrap();
        for _ in 0..3 {
            for org in [a, b] {
                let number = log.number(None, org).await.unwrap();
                log.apply(org, number, change());
            }
        }
        // Another organization's writes leave no gap in this one's numbers.
        assert_eq!(log.since(a, start.unwrap()).map(|(_, c)| c.len()), Some(3));
    }
}

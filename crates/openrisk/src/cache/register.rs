//! Each organization's register held in memory, its risks with their mitigations, kept current by
//! the numbered changes every write logs (`changes`): a read model from which any page of the risk
//! list, any search, any risk, the dashboard's figures and the summary are answered without the
//! database, as the store would answer them (`domain::evaluation`, `domain::dashboard`).
//!
//! Invariant: a register is used only while the key epoch and its organization's `risks` and
//! `risk_details` generations are those it was loaded under (what voids a cached answer voids it),
//! and this replica holds every change numbered after the register's number; it applies them
//! first. It is loaded after reading the generations and the change number, so it holds every
//! change up to that number (each is numbered after its commit) and perhaps later ones, which
//! applying again leaves as they are: a write's copy of a risk replaces only an older version, a
//! risk read again from the store replaces no newer one, and a deleted risk never comes back.
//!
//! Orderings: `used` and `size` are `Relaxed`, hints for choosing what to evict. The registers,
//! the set being loaded, the organizations not to load yet and how long each has been behind are
//! behind locks.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tokio::sync::{OwnedRwLockReadGuard, RwLock, Semaphore};
use uuid::Uuid;

use super::changes::ChangeLog;
use crate::domain::coverage::RiskChange;
use crate::domain::dashboard::Stats;
use crate::domain::evaluation::folded_search_text;
use crate::domain::figures::{Count, Figures};
use crate::domain::list::{Page, RiskListQuery};
use crate::domain::mitigation::Mitigation;
use crate::domain::org::Organization;
use crate::domain::report::OverdueMitigation;
use crate::domain::risk::{Risk, RiskStatus};
use crate::redis::Redis;
use crate::store::{RegisterRows, Store, StoreError};

/// How long an organization too large for the budget is left to the database before trying again.
const TOO_LARGE_FOR: Duration = Duration::from_secs(300);
/// How long after a failed load (the database or Redis failing) the next may start.
const FAILED_FOR: Duration = Duration::from_secs(5);
/// How long a register may wait for changes still on their way before it is loaded again: longer
/// means one was lost (a replica died between numbering and publishing, a counter restarted).
const BEHIND_FOR: Duration = Duration::from_secs(1);

pub struct Registers {
    /// The most rows (risks and mitigations) held in all organizations; 0: none is held.
    max_rows: usize,
    held: Mutex<HashMap<Uuid, Arc<Held>>>,
    loading: Mutex<HashSet<Uuid>>,
    /// One load at a time: a replica starting cold does not read every register at once.
    loads: Semaphore,
    /// Organizations not to load again before a moment: too large, or their last load failed.
    not_before: Mutex<HashMap<Uuid, Instant>>,
    clock: AtomicU64,
    changes: Arc<ChangeLog>,
    /// The request path's connection, to anchor the change log.
    redis: Option<Arc<Redis>>,
}

/// One organization's register, and what it was loaded under.
struct Held {
    /// The key epoch and the `risks` and `risk_details` generations.
    generations: [u64; 3],
    register: Arc<RwLock<Register>>,
    /// Its rows, as last counted.
    size: AtomicUsize,
    /// Since when the log has lacked changes it needs, if it does.
    behind_since: Mutex<Option<Instant>>,
    used: AtomicU64,
}

struct Register {
    /// The change number through which it is current.
    number: u64,
    /// Never changes once created.
    organization: Organization,
    risks: HashMap<Uuid, Kept>,
    deleted: HashSet<Uuid>,
    /// The figures of `risks` and their mitigations, counted as each is added or taken away.
    figures: Figures,
}

struct Kept {
    risk: Risk,
    folded: Option<Box<str>>,
    mitigations: Vec<Mitigation>,
}

/// The note on a response answered from a register current through this change number: the
/// cache counts it a hit, and keeps it out of Redis (every replica holds registers of its own).
#[derive(Clone, Copy, Debug)]
pub struct Registered(pub u64);

/// A register read while current; answers are current through `number`.
pub struct Current {
    register: OwnedRwLockReadGuard<Register>,
}

impl Current {
    /// The change number the answers are current through.
    pub fn number(&self) -> u64 {
        self.register.number
    }

    /// The page the store would answer; `None` when only the database can decide it.
    pub fn page(&self, query: &RiskListQuery) -> Option<Page<Risk>> {
        let risks = self.register.risks.values();
        query.evaluate(risks.map(|kept| (&kept.risk, kept.folded.as_deref())))
    }

    /// The risk, if the organization has it.
    pub fn risk(&self, id: Uuid) -> Option<&Risk> {
        self.register.risks.get(&id).map(|kept| &kept.risk)
    }

    /// The dashboard's statistics on `today`.
    pub fn stats(&self, today: NaiveDate) -> Stats {
        self.register.figures.stats(today)
    }

    /// The matrix's counts of the risks with one of `statuses`.
    pub fn matrix(&self, statuses: &[RiskStatus]) -> Vec<(i32, i32, i64)> {
        self.register.figures.matrix(statuses)
    }

    /// The `limit` highest open risks, in the store's order.
    pub fn top_risks(&self, limit: usize) -> Vec<Risk> {
        let top = self.register.figures.top_risks(limit);
        top.filter_map(|id| self.risk(id).cloned()).collect()
    }

    /// The first `limit` mitigations overdue on `today`, in the store's order.
    pub fn overdue_mitigations(&self, today: NaiveDate, limit: usize) -> Vec<OverdueMitigation> {
        let overdue = self.register.figures.overdue_mitigations(today, limit);
        overdue
            .filter_map(|(mitigation, risk)| {
                let kept = self.register.risks.get(&risk)?;
                let mitigation = kept.mitigations.iter().find(|m| m.id == mitigation)?;
                let risk = &kept.risk;
                let (mitigation, reference, title) =
                    (mitigation.clone(), risk.reference.clone(), risk.title.clone());
                Some(OverdueMitigation::new(mitigation, reference, title, today))
            })
            .collect()
    }

    pub fn organization(&self) -> &Organization {
        &self.register.organization
    }
}

impl Registers {
    pub fn new(max_rows: usize, changes: &Arc<ChangeLog>, redis: &Option<Arc<Redis>>) -> Self {
        Registers {
            max_rows,
            held: Mutex::default(),
            loading: Mutex::default(),
            loads: Semaphore::new(1),
            not_before: Mutex::default(),
            clock: AtomicU64::new(0),
            changes: changes.clone(),
            redis: redis.clone(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_rows > 0
    }

    /// `org`'s register, current through every change this replica holds, if it is held under
    /// `generations`; else `None`, and a load begins in the background when worth it.
    pub async fn current(
        self: &Arc<Self>,
        org: Uuid,
        generations: [u64; 3],
        store: &Arc<dyn Store>,
    ) -> Option<Current> {
        let Some(held) = lock(&self.held).get(&org).cloned() else {
            self.load_in_background(org, generations, store);
            return None;
        };
        if held.generations != generations {
            self.replace(org, generations, store);
            return None;
        }
        held.used.store(self.clock.fetch_add(1, Relaxed), Relaxed);
        let register = held.register.clone().read_owned().await;
        match self.changes.since(org, register.number) {
            Some((_, changes)) if changes.is_empty() => {
                *lock(&held.behind_since) = None;
                return Some(Current { register });
            }
            Some(_) => drop(register),
            None => return self.behind(&held, org, register.number, generations, store),
        }
        let mut register = held.register.clone().write_owned().await;
        // Another reader may have applied them meanwhile.
        let Some((head, changes)) = self.changes.since(org, register.number) else {
            return self.behind(&held, org, register.number, generations, store);
        };
        *lock(&held.behind_since) = None;
        for change in changes {
            register.apply(&change, org, &**store).await.ok()?;
        }
        register.number = head;
        held.size.store(register.rows(), Relaxed);
        Some(Current {
            register: register.downgrade(),
        })
    }

    /// A register the log cannot bring up to date: the database answers. It is loaded again when
    /// the changes it lacks are gone from the log, or have not come for `BEHIND_FOR`; until then
    /// they are taken to be on their way.
    fn behind(
        self: &Arc<Self>,
        held: &Held,
        org: Uuid,
        number: u64,
        generations: [u64; 3],
        store: &Arc<dyn Store>,
    ) -> Option<Current> {
        let since = *lock(&held.behind_since).get_or_insert_with(Instant::now);
        if self.changes.forgotten(org, number) || since.elapsed() > BEHIND_FOR {
            self.replace(org, generations, store);
        }
        None
    }

    fn replace(self: &Arc<Self>, org: Uuid, generations: [u64; 3], store: &Arc<dyn Store>) {
        lock(&self.held).remove(&org);
        self.load_in_background(org, generations, store);
    }

    /// Loads `org`'s register in one background task, unless one is under way, or it was found
    /// too large for the budget or its load failed a short while ago.
    fn load_in_background(self: &Arc<Self>, org: Uuid, generations: [u64; 3], store: &Arc<dyn Store>) {
        if lock(&self.not_before)
            .get(&org)
            .is_some_and(|moment| Instant::now() < *moment)
        {
            return;
        }
        if !lock(&self.loading).insert(org) {
            return;
        }
        let (registers, store) = (Arc::clone(self), Arc::clone(store));
        tokio::spawn(async move {
            let outcome = match registers.loads.acquire().await {
                Ok(_turn) => registers.load(org, generations, &*store).await,
                Err(_) => Load::Failed,
            };
            if let Some(pause) = outcome.pause() {
                lock(&registers.not_before).insert(org, Instant::now() + pause);
            }
            metrics::counter!("cache_register_loads_total", "outcome" => outcome.as_str()).increment(1);
            lock(&registers.loading).remove(&org);
        });
    }

    async fn load(&self, org: Uuid, generations: [u64; 3], store: &dyn Store) -> Load {
        // Before the rows: every change up to this number is in them.
        let Ok(number) = self.changes.head(self.redis.as_deref(), org).await else {
            return Load::Failed;
        };
        let (Ok(rows), Ok(organization)) = (store.register(org, None).await, store.organization(org).await)
        else {
            return Load::Failed;
        };
        if rows.risks.len() + rows.mitigations.len() > self.max_rows {
            return Load::TooLarge;
        }
        let register = Register::of(number, organization, rows);
        let size = register.rows();
        let held = Arc::new(Held {
            generations,
            register: Arc::new(RwLock::new(register)),
            size: AtomicUsize::new(size),
            behind_since: Mutex::default(),
            used: AtomicU64::new(self.clock.fetch_add(1, Relaxed)),
        });
        let mut all = lock(&self.held);
        self.make_room(&mut all, size);
        all.insert(org, held);
        metrics::gauge!("cache_register_organizations").set(all.len() as f64);
        Load::Loaded
    }

    /// Drops the least recently used registers until `size` more rows fit the budget.
    fn make_room(&self, all: &mut HashMap<Uuid, Arc<Held>>, size: usize) {
        let count = |held: &Arc<Held>| held.size.load(Relaxed);
        let mut total: usize = all.values().map(count).sum();
        while total + size > self.max_rows {
            let Some((&oldest, held)) = all.iter().min_by_key(|(_, held)| held.used.load(Relaxed)) else {
                return;
            };
            total = total.saturating_sub(count(held));
            all.remove(&oldest);
        }
    }

    /// Forgets every register (a new data epoch).
    pub fn clear(&self) {
        lock(&self.held).clear();
    }
}

impl Register {
    fn of(number: u64, organization: Organization, rows: RegisterRows) -> Self {
        let mut register = Register {
            number,
            organization,
            risks: HashMap::with_capacity(rows.risks.len()),
            deleted: HashSet::new(),
            figures: Figures::default(),
        };
        for risk in rows.risks {
            register.insert(Kept::new(risk, Vec::new()));
        }
        // A mitigation whose risk was created after the risks were read comes with its risk's
        // change.
        for mitigation in rows.mitigations {
            if let Some(kept) = register.risks.get_mut(&mitigation.risk_id) {
                register.figures.count_mitigation(&mitigation, Count::Add);
                kept.mitigations.push(mitigation);
            }
        }
        register
    }

    /// Its risks and their mitigations.
    fn rows(&self) -> usize {
        self.risks.len()
            + self
                .risks
                .values()
                .map(|kept| kept.mitigations.len())
                .sum::<usize>()
    }

    /// Applies one logged change. A risk not held is read again from the store, with its
    /// mitigations: it may be new, or deleted before the register was read by a delete numbered
    /// earlier. So is a risk whose change touched only its mitigations.
    async fn apply(&mut self, change: &RiskChange, org: Uuid, store: &dyn Store) -> Result<(), StoreError> {
        let id = change.id;
        match (&change.before, &change.after) {
            (Some(_), None) => self.delete(id),
            (_, Some(after)) if self.risks.contains_key(&id) => self.put(after.clone(), Newer::Only),
            // Read after every change applied so far: the newest state of its version.
            _ => {
                let rows = store.register(org, Some(id)).await?;
                match rows.risks.into_iter().next() {
                    Some(risk) => self.read_again(risk, rows.mitigations),
                    None => self.delete(id),
                }
            }
        }
        Ok(())
    }

    /// Keeps a write's copy of `risk` unless it was deleted or what is held is as new or newer
    /// (`Newer::Only`): its mitigation count may be older than one read since.
    fn put(&mut self, risk: Risk, replaces: Newer) {
        if self.deleted.contains(&risk.id) {
            return;
        }
        let held = self.risks.get(&risk.id).map(|kept| kept.risk.version);
        let replace = match replaces {
            Newer::Only => held.is_none_or(|held| risk.version > held),
            Newer::OrSame => held.is_none_or(|held| risk.version >= held),
        };
        if replace {
            let mitigations = self.remove(risk.id).map(|kept| kept.mitigations);
            self.insert(Kept::new(risk, mitigations.unwrap_or_default()));
        }
    }

    /// Keeps `risk` and its `mitigations` as just read from the store: no state held is newer.
    fn read_again(&mut self, risk: Risk, mitigations: Vec<Mitigation>) {
        let id = risk.id;
        self.put(risk, Newer::OrSame);
        if let Some(mut kept) = self.remove(id) {
            kept.mitigations = mitigations;
            self.insert(kept);
        }
    }

    fn delete(&mut self, id: Uuid) {
        self.remove(id);
        self.deleted.insert(id);
    }

    /// Every change to `risks` goes through `insert` and `remove`, which keep `figures` counted.
    fn insert(&mut self, kept: Kept) {
        self.count(&kept, Count::Add);
        if let Some(replaced) = self.risks.insert(kept.risk.id, kept) {
            self.count(&replaced, Count::Remove);
        }
    }

    fn remove(&mut self, id: Uuid) -> Option<Kept> {
        let kept = self.risks.remove(&id)?;
        self.count(&kept, Count::Remove);
        Some(kept)
    }

    fn count(&mut self, kept: &Kept, count: Count) {
        self.figures.count_risk(&kept.risk, count);
        for mitigation in &kept.mitigations {
            self.figures.count_mitigation(mitigation, count);
        }
    }
}

/// How a load ended.
#[derive(Clone, Copy)]
enum Load {
    Loaded,
    /// More risks than the whole budget.
    TooLarge,
    /// The database or Redis failed.
    Failed,
}

impl Load {
    fn as_str(self) -> &'static str {
        match self {
            Load::Loaded => "loaded",
            Load::TooLarge => "too_large",
            Load::Failed => "failed",
        }
    }

    /// How long before the organization may be loaded again.
    fn pause(self) -> Option<Duration> {
        match self {
            Load::Loaded => None,
            Load::TooLarge => Some(TOO_LARGE_FOR),
            Load::Failed => Some(FAILED_FOR),
        }
    }
}

/// Which version of a risk replaces the one held.
enum Newer {
    Only,
    OrSame,
}

impl Kept {
    fn new(risk: Risk, mitigations: Vec<Mitigation>) -> Self {
        let folded = folded_search_text(&risk).map(String::into_boxed_str);
        Kept {
            risk,
            folded,
            mitigations,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

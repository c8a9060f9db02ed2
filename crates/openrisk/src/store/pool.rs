//! Connection pool instrumentation. sqlx counts open and idle connections; what else an operator
//! needs (waiters, acquire waits, time-outs, connections opened and closed by reason) is recorded
//! here: around acquisition, and in the pool's connection hooks.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::{Connection, Database, Pool};

use super::PoolSettings;
use super::pool_status::{ACQUIRE_WAIT_BUCKETS, AcquireWait, BUCKETS, ClosedConnections, PoolStatus};
use super::sql::non_zero;

/// How far back the acquire-wait percentiles look.
const WAIT_WINDOW: Duration = Duration::from_secs(60);
/// How often the window moves on: the percentiles cover the last `WAIT_WINDOW`, give or take this.
const WINDOW_STEP: Duration = Duration::from_secs(1);
/// A connection given back within this long is handed out again without a liveness check: the
/// pool library checked it as it came back.
pub const RECENTLY_USED: Duration = Duration::from_millis(500);

/// When a query last found its connection broken, in microseconds since `EPOCH` (0: never).
/// A loss is rarely alone (the server restarted, or ended every session), so from then on every
/// connection given back before it is checked before use, however recently it was used.
static LAST_LOSS: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn micros_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(*EPOCH).as_micros() as u64
}

/// Notes that a query found its connection broken (see `LAST_LOSS`).
pub fn note_connection_lost() {
    LAST_LOSS.fetch_max(micros_since_epoch(Instant::now()).max(1), Relaxed);
}

tokio::task_local! {
    /// Set while a read runs again after its connection broke (see `checking_connections`).
    static CHECK_BEFORE_USE: ();
}

/// Runs `work` with every connection it acquires checked before use, however recently it came
/// back. A read that runs again because its connection broke must not meet a second connection
/// the server ended at the same moment: one whose query had just finished came back after the
/// loss was noted, so it counts as fresh.
pub async fn checking_connections<F: Future>(work: F) -> F::Output {
    CHECK_BEFORE_USE.scope((), work).await
}

/// Whether a connection idle for `idle_for` can skip the liveness check.
fn fresh(idle_for: Duration) -> bool {
    if idle_for >= RECENTLY_USED {
        return false;
    }
    let given_back = Instant::now().checked_sub(idle_for).map_or(0, micros_since_epoch);
    given_back > LAST_LOSS.load(Relaxed)
}

/// Counters shared by every pool of one store (SQLite's reader pool and its writer).
pub struct PoolStats {
    acquires: AtomicU64,
    waiting: AtomicU64,
    timeouts: AtomicU64,
    opened: AtomicU64,
    closed_lifetime: AtomicU64,
    closed_broken: AtomicU64,
    /// Never reported lower than before, though it is derived (see `closed`).
    closed_idle: AtomicU64,
    waits: [AtomicU64; BUCKETS],
    /// Wait counts as they were at recent moments, oldest first: the window's baseline.
    history: Mutex<VecDeque<(Instant, [u64; BUCKETS])>>,
}

impl Default for PoolStats {
    fn default() -> Self {
        PoolStats {
            acquires: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            closed_lifetime: AtomicU64::new(0),
            closed_broken: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
            waits: std::array::from_fn(|_| AtomicU64::new(0)),
            history: Mutex::new(VecDeque::from([(Instant::now(), [0; BUCKETS])])),
        }
    }
}

impl PoolStats {
    /// Runs `acquire`, counted as a waiter meanwhile, then records how long it waited (in these
    /// stats and in `histogram`) and whether it timed out.
    pub async fn timed_acquire<T>(
        &self,
        histogram: &metrics::Histogram,
        acquire: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let started = Instant::now();
        let waiting = Waiting::enter(&self.waiting);
        let result = acquire.await;
        drop(waiting);
        let waited = started.elapsed();
        self.record_wait(waited, matches!(result, Err(sqlx::Error::PoolTimedOut)));
        histogram.record(waited.as_secs_f64());
        result
    }

    fn record_wait(&self, waited: Duration, timed_out: bool) {
        self.acquires.fetch_add(1, Relaxed);
        if timed_out {
            self.timeouts.fetch_add(1, Relaxed);
        }
        let seconds = waited.as_secs_f64();
        let bucket = ACQUIRE_WAIT_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.waits[bucket].fetch_add(1, Relaxed);
    }

    fn wait_counts(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.waits[i].load(Relaxed))
    }

    /// Acquire waits within the last `WAIT_WINDOW`.
    fn recent_waits(&self) -> [u64; BUCKETS] {
        let now = self.wait_counts();
        let mut history = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if history.back().is_none_or(|(at, _)| at.elapsed() >= WINDOW_STEP) {
            history.push_back((Instant::now(), now));
        }
        while history.len() > 1 && history.front().is_some_and(|(at, _)| at.elapsed() > WAIT_WINDOW) {
            history.pop_front();
        }
        let baseline = history.front().map(|(_, counts)| *counts).unwrap_or([0; BUCKETS]);
        std::array::from_fn(|i| now[i].saturating_sub(baseline[i]))
    }

    /// Connections closed, by reason. Lifetime and broken closes are counted where they happen;
    /// the pool library closes idle connections without a hook, so those are what remains of
    /// the connections ever opened once the open and the otherwise closed are taken away.
    fn closed(&self, open_now: u64) -> ClosedConnections {
        let lifetime = self.closed_lifetime.load(Relaxed);
        let broken = self.closed_broken.load(Relaxed);
        let idle = self
            .opened
            .load(Relaxed)
            .saturating_sub(open_now + lifetime + broken);
        ClosedConnections {
            lifetime,
            broken,
            idle: self.closed_idle.fetch_max(idle, Relaxed).max(idle),
        }
    }
}

/// Counts a waiting acquire until it completes or is cancelled.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A sqlx pool whose acquisitions and connections are counted in `PoolStats`. Clones share it.
pub struct MeteredPool<DB: Database> {
    pool: Pool<DB>,
    stats: Arc<PoolStats>,
    acquire_wait: metrics::Histogram,
    probe: Arc<Probe<DB>>,
}

impl<DB: Database> Clone for MeteredPool<DB> {
    fn clone(&self) -> Self {
        MeteredPool {
            pool: self.pool.clone(),
            stats: self.stats.clone(),
            acquire_wait: self.acquire_wait.clone(),
            probe: self.probe.clone(),
        }
    }
}

/// A connection of its own, outside the pool, for health checks. Through the pool a check would
/// wait, as requests do, for the pool to reconnect (up to the acquire time-out) and then report
/// a database that was away as up; on its own connection it sees the database as it is: a refused
/// or lost connection at once, a stalled server as a check that does not finish.
struct Probe<DB: Database> {
    options: <DB::Connection as Connection>::Options,
    connection: tokio::sync::Mutex<Option<DB::Connection>>,
}

impl<DB: Database> Probe<DB> {
    async fn check(&self) -> Result<(), sqlx::Error> {
        let mut slot = self.connection.lock().await;
        // Out of its slot while in use: a check cancelled half-way leaves no connection behind
        // in an unknown state.
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => DB::Connection::connect_with(&self.options).await?,
        };
        connection.ping().await?;
        *slot = Some(connection);
        Ok(())
    }
}

impl<DB: Database> MeteredPool<DB> {
    /// The pool's status, whose stats it shares with `writer` (SQLite's writer) if any.
    pub fn status(
        &self,
        settings: &PoolSettings,
        writer: Option<&Pool<DB>>,
        server_max_connections: Option<u32>,
    ) -> PoolStatus {
        let options = self.pool.options();
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX).min(size);
        let writer_size = writer.map_or(0, Pool::size);
        let stats = &self.stats;
        PoolStatus {
            size,
            idle,
            in_use: size - idle,
            max_open: options.get_max_connections(),
            min_idle: options.get_min_connections(),
            max_lifetime_seconds: non_zero(settings.max_lifetime).map(|d| d.as_secs()),
            max_idle_time_seconds: options.get_idle_timeout().map(|d| d.as_secs()),
            acquire_timeout_seconds: options.get_acquire_timeout().as_secs_f64(),
            writers: u32::from(writer.is_some()),
            server_max_connections,
            waiters: stats.waiting.load(Relaxed),
            acquires: stats.acquires.load(Relaxed),
            acquire_timeouts: stats.timeouts.load(Relaxed),
            acquire_wait: AcquireWait::of(&stats.recent_waits()),
            connections_opened: stats.opened.load(Relaxed),
            connections_closed: stats.closed(u64::from(size) + u64::from(writer_size)),
        }
    }

    /// Opens the pool and warms it up (see `warm_up`) with `warm` connections, at least one.
    /// The connection lifetime and the
    /// liveness check on acquire are enforced by hooks rather than by sqlx, so that each close is
    /// counted with its reason.
    pub async fn connect(
        options: PoolOptions<DB>,
        connect: <DB::Connection as Connection>::Options,
        stats: Arc<PoolStats>,
        max_lifetime: Option<Duration>,
        warm: u32,
    ) -> Result<Self, sqlx::Error> {
        let expired = move |age: Duration| max_lifetime.is_some_and(|max| age > max);
        let (on_connect, on_acquire, on_release) = (stats.clone(), stats.clone(), stats.clone());
        let pool = options
            .max_lifetime(None)
            .test_before_acquire(false)
            .after_connect(move |_, _| {
                on_connect.opened.fetch_add(1, Relaxed);
                Box::pin(async { Ok(()) })
            })
            .before_acquire(move |conn, meta| {
                let stats = on_acquire.clone();
                Box::pin(async move {
                    if expired(meta.age) {
                        stats.closed_lifetime.fetch_add(1, Relaxed);
                        return Ok(false);
                    }
                    // Still in a transaction after it came back: its COMMIT and then its ROLLBACK
                    // failed (SQLite rolls back by itself on a full disk, so the ROLLBACK finds
                    // nothing to end). Every later BEGIN on it would fail: replace it.
                    if conn.is_in_transaction() {
                        stats.closed_broken.fetch_add(1, Relaxed);
                        return Ok(false);
                    }
                    // An idle connection may have been dropped by the server: check before use,
                    // unless it came back (checked) moments ago and no loss was seen since.
                    if !fresh(meta.idle_for) && conn.ping().await.is_err() {
                        stats.closed_broken.fetch_add(1, Relaxed);
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .after_release(move |_, meta| {
                let retire = expired(meta.age);
                if retire {
                    on_release.closed_lifetime.fetch_add(1, Relaxed);
                }
                Box::pin(async move { Ok(!retire) })
            })
            .connect_lazy_with(connect.clone());
        warm_up(&pool, warm.max(1)).await?;
        Ok(MeteredPool {
            pool,
            stats,
            acquire_wait: metrics::histogram!("db_pool_acquire_duration_seconds"),
            probe: Arc::new(Probe {
                options: connect,
                connection: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// A connection for the store operation `operation`, counting the wait for it and whether it
    /// timed out; the time it is held is recorded under that operation when it goes back. Within
    /// `checking_connections`, it is known to be alive (see `acquire_for_write`).
    pub async fn acquire(&self, operation: &'static str) -> Result<Held<DB>, sqlx::Error> {
        if CHECK_BEFORE_USE.try_with(|_| ()).is_ok() {
            return self.acquire_for_write(operation).await;
        }
        self.acquire_unchecked(operation).await
    }

    async fn acquire_unchecked(&self, operation: &'static str) -> Result<Held<DB>, sqlx::Error> {
        let conn = self
            .stats
            .timed_acquire(&self.acquire_wait, self.pool.acquire())
            .await?;
        Ok(Held {
            conn,
            since: Instant::now(),
            held: metrics::histogram!("db_query_duration_seconds", "operation" => operation),
        })
    }

    /// A connection for a write, known to be alive. A read that finds its connection dead runs
    /// again, but a write is not retried (the server may have committed before the connection
    /// broke), so it must not start on a connection that died while idle, however briefly.
    pub async fn acquire_for_write(&self, operation: &'static str) -> Result<Held<DB>, sqlx::Error> {
        let mut held = self.acquire_unchecked(operation).await?;
        if held.conn.ping().await.is_err() {
            // Then the others given back before now are checked too (see `LAST_LOSS`).
            note_connection_lost();
            self.stats.closed_broken.fetch_add(1, Relaxed);
            held.conn.close_on_drop();
            drop(held);
            held = self.acquire_unchecked(operation).await?;
        }
        Ok(held)
    }

    /// Checks that the database answers now, on a connection outside the pool (see `Probe`).
    pub async fn probe(&self) -> Result<(), sqlx::Error> {
        self.probe.check().await
    }

    /// The pool itself, for start-up work (migrations, warm-up) that is not traffic.
    pub fn inner(&self) -> &Pool<DB> {
        &self.pool
    }
}

/// Opens `count` connections at once and holds them until all are open, then returns them to the
/// pool: distinct, ready connections before the service takes its first request. Opening many at
/// once can take longer than one acquire may wait (a short acquire time-out, a busy server), so
/// each one is retried until `WARM_UP_LIMIT`.
async fn warm_up<DB: Database>(pool: &sqlx::Pool<DB>, count: u32) -> Result<(), sqlx::Error> {
    let started = std::time::Instant::now();
    let open_one = || async {
        loop {
            match pool.acquire().await {
                Err(sqlx::Error::PoolTimedOut) if started.elapsed() < WARM_UP_LIMIT => continue,
                result => return result,
            }
        }
    };
    let connections = futures_util::future::try_join_all((0..count).map(|_| open_one())).await?;
    drop(connections);
    Ok(())
}

/// How long start-up may spend opening the warm connections.
const WARM_UP_LIMIT: Duration = Duration::from_secs(30);

/// A pooled connection that records how long it was held when it goes back.
pub struct Held<DB: Database> {
    conn: PoolConnection<DB>,
    since: Instant,
    held: metrics::Histogram,
}

impl<DB: Database> Deref for Held<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for Held<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Database> Drop for Held<DB> {
    fn drop(&mut self) {
        self.held.record(self.since.elapsed().as_secs_f64());
    }
}

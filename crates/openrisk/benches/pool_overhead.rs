//! What the pool instrumentation costs per acquire: stock sqlx pools against `MeteredPool`, in
//! one run, on SQLite and (with `BENCH_DATABASE_URL`) PostgreSQL; and the instrumentation alone.
//!
//! `cargo bench --bench pool_overhead`

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolOptions;
use sqlx::{Connection, Database, Executor, Pool};

use openrisk::store::pool::{MeteredPool, PoolStats};

const ACQUIRES: u32 = 20_000;
const ROUNDS: usize = 15;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // Installed globally as the first in the process: the pools record into it.
    openrisk::telemetry::metrics::Metrics::new()?;
    bookkeeping().await;
    let dir = tempfile::tempdir()?;
    let sqlite = sqlx::sqlite::SqliteConnectOptions::from_str(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))?
    .create_if_missing(true);
    compare::<sqlx::Sqlite>("sqlite", sqlite).await?;
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        compare::<sqlx::Postgres>("postgres", sqlx::postgres::PgConnectOptions::from_str(&url)?).await?;
    } else {
        println!("postgres: set BENCH_DATABASE_URL to include it");
    }
    Ok(())
}

/// The instrumentation alone, around an acquire that completes at once: the waiter count, two
/// clock reads, the stats' bucket and the two histogram records (acquire wait, time held).
async fn bookkeeping() {
    let stats = PoolStats::default();
    let histogram = metrics::histogram!("bench_acquire_seconds");
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..ACQUIRES * 10 {
            let _ = stats
                .timed_acquire(&histogram, async { Ok::<_, sqlx::Error>(()) })
                .await;
            histogram.record(0.001);
        }
        rounds.push(started.elapsed() / (ACQUIRES * 10));
    }
    println!(
        "instrumentation alone: median {:?} per acquire ({ROUNDS} rounds of {})",
        median(rounds),
        ACQUIRES * 10
    );
}

/// Median time per acquire (and `SELECT 1` on it) over `ROUNDS`, the two pools taking turns.
async fn compare<DB: Database>(
    name: &str,
    connect: <DB::Connection as Connection>::Options,
) -> anyhow::Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let options = || PoolOptions::<DB>::new().max_connections(4).min_connections(4);
    let stock: Pool<DB> = options().connect_with(connect.clone()).await?;
    let metered = MeteredPool::connect(options(), connect, Arc::default(), None, 4).await?;
    let (mut plain, mut instrumented) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..ACQUIRES {
            let mut conn = stock.acquire().await?;
            conn.execute("SELECT 1").await?;
        }
        plain.push(started.elapsed() / ACQUIRES);
        let started = Instant::now();
        for _ in 0..ACQUIRES {
            let mut conn = metered.acquire("bench").await?;
            conn.execute("SELECT 1").await?;
        }
        instrumented.push(started.elapsed() / ACQUIRES);
    }
    // Rounds are paired (run back to back), so drifting machine load cancels out.
    let mut differences: Vec<f64> = plain
        .iter()
        .zip(&instrumented)
        .map(|(p, i)| i.as_secs_f64() - p.as_secs_f64())
        .collect();
    differences.sort_by(f64::total_cmp);
    let ns = |seconds: f64| seconds * 1e9;
    let (plain, instrumented) = (median(plain), median(instrumented));
    println!(
        "{name}: acquire + SELECT 1, median of {ROUNDS} rounds of {ACQUIRES}: sqlx pool {plain:?}, \
         metered pool {instrumented:?}; metered minus sqlx per acquire: median {:+.0} ns \
         (rounds range {:+.0} to {:+.0} ns), {:+.1} %",
        ns(differences[ROUNDS / 2]),
        ns(differences[0]),
        ns(differences[ROUNDS - 1]),
        differences[ROUNDS / 2] / plain.as_secs_f64() * 100.0
    );
    Ok(())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

//! The background monitor: every second it publishes the pool's, the cache's, the database's and
//! the process's state as metrics and logs each pool health warning when it appears (and at most
//! once a minute while it lasts) and when it clears.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::redis::{BreakerState, Redis, RedisState};
use crate::store::{PoolStatus, PoolWarning, READY_TIMEOUT, Store};

const EVERY: Duration = Duration::from_secs(1);
/// How often a warning that persists is logged again.
const REPEAT_AFTER: Duration = Duration::from_secs(60);

/// What the monitor samples.
pub struct Watched {
    pub store: Arc<dyn Store>,
    /// Replicas sharing the database (for the server-limit warning).
    pub replicas: u32,
    pub cache: Arc<Cache>,
    pub metrics: PrometheusHandle,
}

/// Runs until `stop` is cancelled.
pub async fn run(watched: Watched, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut logged: HashMap<&'static str, Instant> = HashMap::new();
    let process = metrics_process::Collector::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let status = watched.store.pool_status();
        let warnings = status.warnings(watched.replicas);
        publish(&status, &warnings);
        log_changes(&warnings, &mut logged);
        publish_cache(&watched.cache).await;
        let ready = tokio::time::timeout(READY_TIMEOUT, watched.store.ping()).await;
        metrics::gauge!("openrisk_ready").set(f64::from(u8::from(matches!(ready, Ok(Ok(()))))));
        process.collect();
        watched.metrics.run_upkeep();
    }
}

fn publish(status: &PoolStatus, warnings: &[PoolWarning]) {
    metrics::gauge!("db_pool_connections", "state" => "idle").set(status.idle);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(status.in_use);
    metrics::gauge!("db_pool_max_connections").set(status.max_open);
    metrics::gauge!("db_pool_min_idle_connections").set(status.min_idle);
    metrics::gauge!("db_pool_waiters").set(status.waiters as f64);
    metrics::counter!("db_pool_acquires_total").absolute(status.acquires);
    metrics::counter!("db_pool_acquire_timeouts_total").absolute(status.acquire_timeouts);
    metrics::counter!("db_pool_connections_opened_total").absolute(status.connections_opened);
    let closed = &status.connections_closed;
    for (reason, count) in [
        ("lifetime", closed.lifetime),
        ("idle", closed.idle),
        ("broken", closed.broken),
    ] {
        metrics::counter!("db_pool_connections_closed_total", "reason" => reason).absolute(count);
    }
    for code in PoolWarning::CODES {
        let on = warnings.iter().any(|w| w.code == code);
        metrics::gauge!("db_pool_warning", "code" => code).set(f64::from(u8::from(on)));
    }
}

async fn publish_cache(cache: &Cache) {
    let (counts, (entries, bytes)) = cache.usage();
    for (namespace, tier, outcome, count) in counts {
        metrics::counter!("cache_requests_total", "namespace" => namespace.as_str(), "tier" => tier.as_str(),
            "result" => outcome.as_str())
        .absolute(count);
    }
    metrics::gauge!("cache_entries", "tier" => "l1").set(entries as f64);
    metrics::gauge!("cache_bytes", "tier" => "l1").set(bytes as f64);
    let up = RedisState::of(cache.redis()).await == RedisState::Up;
    metrics::gauge!("cache_redis_up").set(f64::from(u8::from(up)));
    metrics::gauge!("cache_breaker_state")
        .set(cache.redis().map_or(BreakerState::Closed, Redis::breaker_state) as u8 as f64);
    metrics::gauge!("cache_subscription_up").set(f64::from(u8::from(cache.trusted())));
}

fn log_changes(warnings: &[PoolWarning], logged: &mut HashMap<&'static str, Instant>) {
    for warning in warnings {
        let due = logged
            .get(warning.code)
            .is_none_or(|at| at.elapsed() >= REPEAT_AFTER);
        if due {
            tracing::warn!(code = warning.code, "connection pool: {}", warning.message);
            logged.insert(warning.code, Instant::now());
        }
    }
    logged.retain(|code, _| {
        let holds = warnings.iter().any(|w| w.code == *code);
        if !holds {
            tracing::info!(code, "connection pool: warning cleared");
        }
        holds
    });
}

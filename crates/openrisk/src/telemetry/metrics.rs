//! Prometheus metrics: one recorder per process, rendered by `GET /metrics`.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::ACQUIRE_WAIT_BUCKETS;

/// Buckets (seconds) for the time a request holds a database connection.
const QUERY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's metrics recorder (once; later calls return the same handle). Call it
/// before metrics are first touched: handles taken earlier record nowhere.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("db_pool_acquire_duration_seconds".into()),
            &ACQUIRE_WAIT_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full("db_query_duration_seconds".into()), &QUERY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        // Lost a race with another caller: theirs is the recorder in use.
        return HANDLE
            .get()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("another metrics recorder is installed"));
    }
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The `# HELP` lines (Prometheus tooling rejects metrics without them).
fn describe() {
    describe_gauge!(
        "db_pool_connections",
        "Open database connections by state (idle, in_use)."
    );
    describe_gauge!(
        "db_pool_max_connections",
        "The pool's configured maximum of open connections."
    );
    describe_gauge!(
        "db_pool_min_idle_connections",
        "Connections the pool keeps open even when idle."
    );
    describe_gauge!("db_pool_waiters", "Requests waiting for a database connection.");
    describe_counter!("db_pool_acquires_total", "Connections handed out by the pool.");
    describe_counter!(
        "db_pool_acquire_timeouts_total",
        "Acquires that gave up after the acquire time-out (answered 503)."
    );
    describe_counter!("db_pool_connections_opened_total", "Database connections opened.");
    describe_counter!(
        "db_pool_connections_closed_total",
        "Database connections closed, by reason (lifetime, idle, broken)."
    );
    describe_gauge!(
        "db_pool_warning",
        "1 while the pool health warning `code` holds, else 0."
    );
    describe_histogram!(
        "db_pool_acquire_duration_seconds",
        Unit::Seconds,
        "Time spent waiting for a database connection, apart from the queries run on it."
    );
    describe_counter!(
        "cache_requests_total",
        "Cache lookups by namespace, tier (l1, l2) and result (hit, miss, bypass, error)."
    );
    describe_gauge!("cache_entries", "Entries held by the cache tier.");
    describe_gauge!("cache_bytes", Unit::Bytes, "Bytes held by the cache tier.");
    describe_counter!(
        "cache_invalidations_total",
        "Generation bumps (invalidations) by namespace."
    );
    describe_counter!(
        "cache_invalidation_ack_timeouts_total",
        "Writes that answered before every other replica had acknowledged their invalidation."
    );
    describe_gauge!("cache_redis_up", "1 while Redis (L2) answers, else 0.");
    describe_gauge!(
        "cache_breaker_state",
        "The circuit breaker in front of Redis: 0 closed, 1 open, 2 half-open."
    );
    describe_histogram!(
        "db_query_duration_seconds",
        Unit::Seconds,
        "Time a database connection was held, by operation (query on PostgreSQL; read or write on SQLite)."
    );
}

//! Prometheus metrics: one recorder per process, rendered by `GET /metrics`.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::http::{DURATION_BUCKETS, SIZE_BUCKETS};
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
        .set_buckets_for_metric(
            Matcher::Full("http_server_request_duration_seconds".into()),
            &DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Suffix("_body_size_bytes".into()), &SIZE_BUCKETS)?
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

/// `openrisk_build_info{version, backend}`, always 1: joins any series to the running version.
pub fn build_info(backend: &'static str) {
    let version = env!("CARGO_PKG_VERSION");
    metrics::gauge!("openrisk_build_info", "version" => version, "backend" => backend).set(1.0);
}

/// The `# HELP` lines (Prometheus tooling rejects metrics without them).
fn describe() {
    metrics_process::Collector::default().describe();
    describe_gauge!(
        "openrisk_build_info",
        "Always 1; labels name the version and the storage backend."
    );
    describe_gauge!(
        "openrisk_ready",
        "1 while the database answers (what /health/ready reports), else 0."
    );
    describe_histogram!(
        "http_server_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a request, by method, route template and status."
    );
    describe_gauge!("http_server_active_requests", "Requests being answered.");
    describe_histogram!(
        "http_server_request_body_size_bytes",
        Unit::Bytes,
        "Sizes of request bodies that declare their length."
    );
    describe_histogram!(
        "http_server_response_body_size_bytes",
        Unit::Bytes,
        "Sizes of response bodies known before sending (streamed exports are not counted)."
    );
    describe_gauge!(
        "cache_subscription_up",
        "1 while the invalidation channel is followed (the cache is trusted), else 0."
    );
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
        "Database work by store operation: one observation per statement or transaction, timed from connection acquired to released."
    );
}

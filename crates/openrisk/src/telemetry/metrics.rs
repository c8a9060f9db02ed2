//! Prometheus metrics: each application records into a recorder of its own, rendered by its
//! `GET /metrics`, so that several applications in one process (tests) do not mix their figures.
//!
//! The `metrics` macros record into the recorder in scope: the application's requests and tasks
//! run inside `Metrics::scope`. The first application of a process also becomes the process's
//! global recorder, for work that runs outside any scope (detached tasks).

use std::future::Future;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics::{describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::http::{DURATION_BUCKETS, InScope, SIZE_BUCKETS, SharedRecorder};
use crate::store::ACQUIRE_WAIT_BUCKETS;

/// Buckets (seconds) for the time a request holds a database connection.
const QUERY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One application's recorder and the handle that renders it.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let recorder = Arc::new(
            PrometheusBuilder::new()
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
                .build_recorder(),
        );
        let metrics = Metrics {
            handle: recorder.handle(),
            recorder,
        };
        metrics.in_scope(describe);
        static GLOBAL: OnceLock<()> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            // Taken already (an embedding program's own): detached work records there instead.
            let _ = metrics::set_global_recorder(Forward(metrics.recorder.clone()));
        });
        Ok(metrics)
    }

    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }

    /// Runs `f` with this application's recorder in scope.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self.recorder.as_ref(), f)
    }

    /// `future`, polled with this application's recorder in scope.
    pub fn scope<F: Future>(&self, future: F) -> InScope<F> {
        InScope::new(self.shared(), future)
    }

    /// The recorder, for the router to serve each request with it in scope.
    pub fn shared(&self) -> SharedRecorder {
        self.recorder.clone()
    }
}

/// The process's global recorder: the first application's.
struct Forward(Arc<PrometheusRecorder>);

impl Recorder for Forward {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, metadata)
    }
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
        "http_requests_waiting_for_turn",
        "Requests waiting for their organization's turn (RATE_LIMIT_CONCURRENCY_PER_ORG)."
    );
    describe_connections();
    describe_pool();
    describe_cache();
}

fn describe_connections() {
    describe_gauge!("http_connections_open", "Client connections open.");
    describe_counter!(
        "http_connections_refused_total",
        "Connections answered 503 and closed at a cap (`cap`: total, per_ip)."
    );
    describe_counter!(
        "http_connections_evicted_total",
        "Connections that had sent no request, closed to make room for a newcomer at a cap."
    );
    describe_counter!(
        "http_connections_timed_out_total",
        "Connections closed while `waiting_for` a request (its head, or the next one) or for the client to read (client_read)."
    );
    describe_counter!(
        "http_accept_errors_total",
        "Failures to accept a connection other than the client's own (descriptors run out)."
    );
}

fn describe_pool() {
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
    describe_histogram!(
        "db_query_duration_seconds",
        Unit::Seconds,
        "Database work by store operation: one observation per statement or transaction, timed from connection acquired to released."
    );
}

fn describe_cache() {
    describe_gauge!(
        "cache_subscription_up",
        "1 while the invalidation channel is followed (the cache is trusted), else 0."
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
}

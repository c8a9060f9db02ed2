//! What every handler reads: the application's state, and the limits every request is held to.

use std::sync::Arc;
use std::time::Duration;

use super::compression::CompressionSettings;
use crate::cache::Cache;
use crate::domain::marketplace::Catalog;
use crate::limits::RateLimiter;
use crate::store::{PoolSettings, Store};

/// Request bodies above this answer 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A request still running after this answers 503, so no client waits forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    /// The pool settings the store was opened with.
    pub pool: Arc<PoolSettings>,
    /// Replicas expected to share the database.
    pub replicas: u32,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The hash of `METRICS_TOKEN`: when set, `/metrics` answers only requests bearing it.
    pub metrics_token: Option<Arc<Vec<u8>>>,
    pub cache: Arc<Cache>,
    pub compression: CompressionSettings,
    pub limits: Arc<RateLimiter>,
}

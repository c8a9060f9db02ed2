//! `/health/live` and `/health/ready`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::routes::Routes;
use super::state::AppState;
use crate::cache::policy::uncached;
use crate::redis::RedisState;
use crate::store::READY_TIMEOUT;

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ok`, `degraded` (still serving) or `down`.
    status: &'static str,
    #[schema(value_type = Object)]
    database: serde_json::Value,
    #[schema(value_type = Object)]
    cache: serde_json::Value,
}

pub fn routes() -> Routes {
    Routes::new()
        .add(routes!(live), uncached())
        .add(routes!(ready), uncached())
}

#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, description = "The process runs")))]
async fn live() -> StatusCode {
    StatusCode::OK
}

#[utoipa::path(
    get, path = "/health/ready", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness, description = "The database does not answer"))
)]
async fn ready(State(state): State<AppState>) -> Response {
    let started = std::time::Instant::now();
    let ping = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let pool = state.store.pool_status();
    let warnings = pool.warnings(state.replicas);
    let (status, code, database) = match ping {
        Ok(Ok(())) => (
            "ok",
            StatusCode::OK,
            serde_json::json!({"status": "up", "latency_ms": elapsed_ms}),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: database down");
            (
                "down",
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "down", "error": "query failed"}),
            )
        }
        Err(_) => (
            "down",
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "down", "error": "timed out"}),
        ),
    };
    // The pool's state goes with every answer: when the database is away, it shows what the
    // pool is left with (broken connections closed, waiters queued).
    let mut database = database;
    database["backend"] = state.store.backend().into();
    database["warnings"] = serde_json::to_value(&warnings).unwrap_or_default();
    database["pool"] = serde_json::to_value(&pool).unwrap_or_default();
    let redis = RedisState::of(state.cache.redis()).await;
    let redis_memory = match state.cache.redis() {
        Some(redis) => redis.memory().await.ok(),
        None => None,
    };
    // Redis down, or the invalidation channel not followed: still serving, without the cache.
    let degraded = redis == RedisState::Down || !state.cache.trusted();
    let cache = serde_json::json!({
        "enabled": state.cache.enabled(),
        "redis": redis,
        "trusted": state.cache.trusted(),
        "redis_memory": redis_memory,
        "status": if !state.cache.enabled() { "disabled" } else if degraded { "degraded" } else { "up" },
    });
    let status = if status == "ok" && state.cache.enabled() && degraded {
        "degraded"
    } else {
        status
    };
    (
        code,
        axum::Json(Readiness {
            status,
            database,
            cache,
        }),
    )
        .into_response()
}

//! `/api/v1/admin`: operating the service. The pool's and the cache's reports count for every
//! organization, so they are the system token's; an organization's admin invalidates its own
//! cache entries.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{Admin, Auth, JsonBody, QueryParams, RequestBody, System};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::policy::{uncached, writes_nothing_cached};
use crate::cache::{CacheReport, Namespace};
use crate::domain::validation::Violations;
use crate::store::{PoolStatus, PoolWarning};

#[derive(Serialize, ToSchema)]
pub struct PoolReport {
    /// `default`, `high-throughput` or `low-latency`.
    mode: &'static str,
    /// Settings that overrode the mode's preset.
    overridden: Vec<&'static str>,
    /// What the running pool applies, read back from it.
    pool: PoolStatus,
    warnings: Vec<PoolWarning>,
}

pub fn routes() -> Routes {
    Routes::new()
        .add(routes!(pool), uncached())
        .add(routes!(cache), uncached())
        .add(routes!(invalidate_cache), writes_nothing_cached())
}

#[utoipa::path(
    get, path = "/api/v1/admin/pool", tag = "operations",
    responses((status = 200, body = PoolReport),
        (status = 403, body = Problem, description = "Not a system token: the pool serves every organization")),
    security(("bearer" = []))
)]
async fn pool(
    State(state): State<AppState>,
    _auth: Auth<System>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(&[])?;
    let pool = state.store.pool_status();
    Ok(respond::json(&PoolReport {
        mode: state.pool.mode.as_str(),
        overridden: state.pool.overridden.clone(),
        warnings: pool.warnings(state.replicas),
        pool,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/admin/cache", tag = "operations",
    responses((status = 200, body = CacheReport),
        (status = 403, body = Problem, description = "Not a system token: the counts are every organization's")),
    security(("bearer" = []))
)]
async fn cache(
    State(state): State<AppState>,
    auth: Auth<System>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(&[])?;
    Ok(respond::json(&state.cache.report(auth.organization_id).await))
}

/// Namespaces to invalidate, or all of them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invalidation {
    #[serde(default)]
    namespaces: Vec<Namespace>,
    #[serde(default)]
    all: bool,
}

impl RequestBody for Invalidation {}

/// Written out: the rule "`namespaces` or `all: true`, not both" is one the derive cannot state.
impl utoipa::PartialSchema for Invalidation {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let namespace = serde_json::json!({"$ref": "#/components/schemas/Namespace"});
        serde_json::from_value(serde_json::json!({
            "description": "Namespaces to invalidate, or all of them.",
            "oneOf": [
                {"type": "object", "additionalProperties": false, "required": ["namespaces"],
                 "properties": {
                    "namespaces": {"type": "array", "items": namespace, "minItems": 1},
                    "all": {"type": "boolean", "enum": [false]}}},
                {"type": "object", "additionalProperties": false, "required": ["all"],
                 "properties": {
                    "namespaces": {"type": "array", "items": namespace, "maxItems": 0},
                    "all": {"type": "boolean", "enum": [true]}}},
            ],
        }))
        .unwrap_or_default()
    }
}

impl utoipa::ToSchema for Invalidation {}

#[derive(Serialize, ToSchema)]
pub struct Invalidated {
    namespaces: Vec<Namespace>,
}

#[utoipa::path(
    post, path = "/api/v1/admin/cache/invalidate", tag = "operations",
    request_body = Invalidation,
    responses((status = 200, body = Invalidated), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn invalidate_cache(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    JsonBody(body): JsonBody<Invalidation>,
) -> ApiResult<Response> {
    let namespaces = match (body.all, body.namespaces.is_empty()) {
        (true, true) => Namespace::ALL.to_vec(),
        (false, false) => body.namespaces,
        _ => {
            return Err(Violations::single("namespaces", "give either namespaces or all: true").into());
        }
    };
    // This organization's entries only: its generations move, no one else's.
    state
        .cache
        .invalidate(auth.organization_id, &namespaces, &[])
        .await;
    Ok(respond::json(&Invalidated { namespaces }))
}

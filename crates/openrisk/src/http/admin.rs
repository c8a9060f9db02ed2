//! `/api/v1/admin`: operating the service (admin).

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, Problem};
use super::extract::{Admin, Auth, QueryParams};
use super::respond;
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

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pool))
}

#[utoipa::path(
    get, path = "/api/v1/admin/pool", tag = "operations",
    responses((status = 200, body = PoolReport), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
async fn pool(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
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

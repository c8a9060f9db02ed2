//! `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use utoipa_axum::routes;

use super::authentication::bearer_token;
use super::error::{ApiError, ApiResult, Problem};
use super::routes::Routes;
use super::state::AppState;
use crate::cache::policy::uncached;
use crate::domain::auth::hash_token;

pub fn routes() -> Routes {
    Routes::new().add(routes!(metrics), uncached())
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain"),
        (status = 401, body = Problem, description = "`METRICS_TOKEN` is set and the request does not bear it")),
)]
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    if let Some(expected) = &state.metrics_token
        && bearer_token(&headers).is_none_or(|token| hash_token(token) != **expected)
    {
        return Err(ApiError::Unauthorized);
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    ))
}

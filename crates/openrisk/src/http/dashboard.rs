//! `/api/v1/dashboard`: register-wide figures, from the organization's register when the cache
//! holds it (all but the timeline, which reads the risks' history), else computed by the database.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, QueryParams, Register, Viewer};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::policy::cached_per_day;
use crate::cache::{Namespace, Registered};
use crate::domain::dashboard::{self, Matrix, Stats, Timeline, TopRisks};

pub fn routes() -> Routes {
    Routes::new()
        .add(routes!(stats), cached_per_day(Namespace::Dashboard))
        .add(routes!(matrix), cached_per_day(Namespace::Dashboard))
        .add(routes!(timeline), cached_per_day(Namespace::Dashboard))
        .add(routes!(top_risks), cached_per_day(Namespace::Dashboard))
}

#[utoipa::path(
    get, path = "/api/v1/dashboard/stats", tag = "dashboard",
    responses((status = 200, body = Stats), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
async fn stats(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Register(register): Register,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(&[])?;
    let today = Utc::now().date_naive();
    let org = auth.organization_id;
    let (stats, registered) = match register {
        Some(r) => (r.stats(today), Some(Registered(r.number()))),
        None => {
            let (risks, mitigations) = tokio::try_join!(
                state.store.risk_groups(org, today),
                state.store.mitigation_groups(org, today)
            )?;
            (Stats::from_groups(&risks, &mitigations), None)
        }
    };
    Ok(respond::noting_any(respond::json(&stats), registered))
}

#[utoipa::path(
    get, path = "/api/v1/dashboard/matrix", tag = "dashboard",
    params(("status" = Option<Vec<crate::domain::risk::RiskStatus>>, Query, explode = true,
        description = "Count risks with any of these statuses instead of the open ones (`open`, `in_progress`)")),
    responses((status = 200, body = Matrix, description = "`cells[likelihood - 1][impact - 1]`"), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
async fn matrix(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Register(register): Register,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    let statuses = Matrix::statuses(&params)?;
    let (counts, registered) = match register {
        Some(r) => (r.matrix(&statuses), Some(Registered(r.number()))),
        None => (
            state.store.risk_matrix(auth.organization_id, &statuses).await?,
            None,
        ),
    };
    Ok(respond::noting_any(
        respond::json(&Matrix::from_counts(&counts)),
        registered,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/dashboard/timeline", tag = "dashboard",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 365, description = "Default 30; the last day is today (UTC)")),
    responses((status = 200, body = Timeline), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
async fn timeline(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    let days = Timeline::days(&params)?;
    let today = Utc::now().date_naive();
    let since = dashboard::timeline_start(today, days);
    let activity = state.store.daily_activity(auth.organization_id, since).await?;
    Ok(respond::json(&Timeline::from_activity(since, today, &activity)))
}

#[utoipa::path(
    get, path = "/api/v1/dashboard/top-risks", tag = "dashboard",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 50, description = "Default 10")),
    responses((status = 200, body = TopRisks), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
async fn top_risks(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Register(register): Register,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    let limit = dashboard::top_risks_limit(&params)?;
    let (items, registered) = match register {
        Some(r) => {
            let items = r.top_risks(usize::try_from(limit).unwrap_or(0));
            (items, Some(Registered(r.number())))
        }
        None => (state.store.top_risks(auth.organization_id, limit).await?, None),
    };
    Ok(respond::noting_any(
        respond::json(&TopRisks { items }),
        registered,
    ))
}

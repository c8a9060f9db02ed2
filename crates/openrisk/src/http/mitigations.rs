//! Mitigations of a risk: `/api/v1/risks/{id}/mitigations` and `/api/v1/mitigations/{id}`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{Analyst, Auth, IfMatch, JsonBody, NoQuery, PathId, QueryParams, RequestBody, Viewer};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::policy::cached;
use crate::cache::{Mutation, Namespace};
use crate::domain::coverage::RiskChange;
use crate::domain::list::{Page, PageRequest};
use crate::domain::mitigation::{self, Mitigation, MitigationPatch, NewMitigation};
use crate::domain::validation::Violations;
use crate::store::guarded;

impl RequestBody for NewMitigation {
    const READ_ONLY: &'static [&'static str] = mitigation::READ_ONLY_FIELDS;

    fn violations(&self) -> Violations {
        self.clone().validate().err().unwrap_or_default()
    }
}
impl RequestBody for MitigationPatch {
    const READ_ONLY: &'static [&'static str] = mitigation::READ_ONLY_FIELDS;
}

pub fn routes() -> Routes {
    Routes::new()
        .add(
            routes!(list_mitigations, create_mitigation),
            cached(Namespace::RiskDetails).and_invalidates(Mutation::Mitigation),
        )
        .add(
            routes!(get_mitigation, update_mitigation, delete_mitigation),
            cached(Namespace::Mitigations).and_invalidates(Mutation::Mitigation),
        )
}

#[utoipa::path(
    get, path = "/api/v1/risks/{id}/mitigations", tag = "mitigations",
    params(("id" = uuid::Uuid, Path, description = "The risk"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Default 50"), ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]+$", description = "Opaque: the `next_cursor` of the previous page")),
    responses((status = 200, body = Page<Mitigation>), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn list_mitigations(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    PathId(risk_id): PathId,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(PageRequest::<uuid::Uuid>::PARAMS)?;
    let page = PageRequest::from_params(&params)?;
    let mitigations = state
        .store
        .mitigations(auth.organization_id, risk_id, &page)
        .await?;
    Ok(respond::json(&mitigations))
}

#[utoipa::path(
    post, path = "/api/v1/risks/{id}/mitigations", tag = "mitigations", request_body = NewMitigation,
    params(("id" = uuid::Uuid, Path, description = "The risk")),
    responses((status = 201, body = Mitigation, description = "Created", headers(("Location" = String, description = "The new mitigation's URL"))), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_mitigation(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    PathId(risk_id): PathId,
    JsonBody(body): JsonBody<NewMitigation>,
) -> ApiResult<Response> {
    let fields = body.validate()?;
    let mitigation = state
        .store
        .create_mitigation(auth.organization_id, risk_id, fields)
        .await?;
    let response = respond::created(format!("/api/v1/mitigations/{}", mitigation.id), &mitigation);
    // The risk's mitigation count changed, nothing else of it.
    Ok(respond::noting(response, RiskChange::touched(risk_id)))
}

#[utoipa::path(
    get, path = "/api/v1/mitigations/{id}", tag = "mitigations",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Mitigation), (status = 304, description = "Not modified"), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_mitigation(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    _: NoQuery,
    PathId(id): PathId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mitigation = state.store.mitigation(auth.organization_id, id).await?;
    Ok(respond::versioned(&headers, &mitigation))
}

#[utoipa::path(
    patch, path = "/api/v1/mitigations/{id}", tag = "mitigations", request_body = MitigationPatch,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Entity tags from `ETag` (`\"…\"`, comma-separated), or `*`: the write happens only if one names the current version")),
    responses((status = 200, body = Mitigation), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn update_mitigation(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    PathId(id): PathId,
    IfMatch(precondition): IfMatch,
    JsonBody(patch): JsonBody<MitigationPatch>,
) -> ApiResult<Response> {
    let now = crate::domain::now();
    let edit = guarded(precondition, move |current: &Mitigation| {
        Ok(current.updated(patch.apply(&current.fields())?, now))
    });
    let mitigation = state
        .store
        .update_mitigation(auth.organization_id, id, edit)
        .await?;
    let response = respond::versioned(&HeaderMap::new(), &mitigation);
    Ok(respond::noting(response, RiskChange::touched(mitigation.risk_id)))
}

#[utoipa::path(
    delete, path = "/api/v1/mitigations/{id}", tag = "mitigations",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Entity tags from `ETag` (`\"…\"`, comma-separated), or `*`: the write happens only if one names the current version")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = []))
)]
async fn delete_mitigation(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    PathId(id): PathId,
    IfMatch(precondition): IfMatch,
) -> ApiResult<Response> {
    let deleted = state
        .store
        .delete_mitigation(auth.organization_id, id, &precondition)
        .await?;
    let response = StatusCode::NO_CONTENT.into_response();
    Ok(respond::noting(response, RiskChange::touched(deleted.risk_id)))
}

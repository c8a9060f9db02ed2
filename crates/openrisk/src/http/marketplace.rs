//! `/api/v1/marketplace`: the connector catalog and this organization's installations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{Admin, Auth, JsonBody, NoQuery, PathId, QueryParams, RequestBody, Viewer};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::policy::{cached, cached_for_everyone};
use crate::cache::{Mutation, Namespace};
use crate::domain::list::{Page, PageRequest};
use crate::domain::marketplace::{
    self, Catalog, Connector, Installation, InstallationPatch, NewInstallation,
};

impl RequestBody for NewInstallation {
    const READ_ONLY: &'static [&'static str] = marketplace::READ_ONLY_FIELDS;
}
impl RequestBody for InstallationPatch {
    const READ_ONLY: &'static [&'static str] = &["id", "connector", "created_at", "updated_at"];
}

#[derive(Serialize, ToSchema)]
pub struct Connectors {
    items: Vec<Connector>,
}

pub fn routes() -> Routes {
    Routes::new()
        // The catalog is the same public document for every tenant, changed only by a release.
        .add(
            routes!(list_connectors),
            cached_for_everyone(Namespace::Marketplace),
        )
        .add(
            routes!(get_connector),
            cached_for_everyone(Namespace::Marketplace),
        )
        .add(
            routes!(list_installations, create_installation),
            cached(Namespace::Marketplace).and_invalidates(Mutation::Installation),
        )
        .add(
            routes!(get_installation, update_installation, delete_installation),
            cached(Namespace::Marketplace).and_invalidates(Mutation::Installation),
        )
}

#[utoipa::path(
    get, path = "/api/v1/marketplace/connectors", tag = "marketplace",
    params(("category" = Option<marketplace::ConnectorCategory>, Query)),
    responses((status = 200, body = Connectors), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
async fn list_connectors(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    let category = Catalog::category_param(&params)?;
    let items = state.catalog.connectors(category).into_iter().cloned().collect();
    Ok(respond::json(&Connectors { items }))
}

#[utoipa::path(
    get, path = "/api/v1/marketplace/connectors/{slug}", tag = "marketplace",
    params(("slug" = String, Path)),
    responses((status = 200, body = Connector), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_connector(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    _: NoQuery,
    Path(slug): Path<String>,
) -> ApiResult<Response> {
    let connector = state.catalog.connector(&slug).ok_or(ApiError::NotFound)?;
    Ok(respond::json(connector))
}

#[utoipa::path(
    get, path = "/api/v1/marketplace/installations", tag = "marketplace",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Default 50"), ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]+$", description = "Opaque: the `next_cursor` of the previous page")),
    responses((status = 200, body = Page<Installation>, description = "Secrets read `\"********\"`")),
    security(("bearer" = []))
)]
async fn list_installations(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(PageRequest::<Uuid>::PARAMS)?;
    let page = state
        .store
        .installations(auth.organization_id, &PageRequest::from_params(&params)?)
        .await?;
    Ok(respond::json(&page.map(|i| state.catalog.masked(i))))
}

#[utoipa::path(
    post, path = "/api/v1/marketplace/installations", tag = "marketplace", request_body = NewInstallation,
    responses((status = 201, body = Installation), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "The connector is already installed"),
        (status = 422, body = Problem, description = "`config` breaks the connector's schema; each failing path is named")),
    security(("bearer" = []))
)]
async fn create_installation(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    JsonBody(body): JsonBody<NewInstallation>,
) -> ApiResult<Response> {
    let installation = state
        .catalog
        .install(body, Uuid::now_v7(), crate::domain::now())?;
    state
        .store
        .create_installation(auth.organization_id, &installation)
        .await?;
    Ok(respond::created_json(&state.catalog.masked(installation)))
}

#[utoipa::path(
    get, path = "/api/v1/marketplace/installations/{id}", tag = "marketplace",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Installation), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_installation(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    _: NoQuery,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let installation = state.store.installation(auth.organization_id, id).await?;
    Ok(respond::json(&state.catalog.masked(installation)))
}

#[utoipa::path(
    patch, path = "/api/v1/marketplace/installations/{id}", tag = "marketplace", request_body = InstallationPatch,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Installation), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn update_installation(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    PathId(id): PathId,
    JsonBody(patch): JsonBody<InstallationPatch>,
) -> ApiResult<Response> {
    let catalog = state.catalog.clone();
    let now = crate::domain::now();
    let edit = Box::new(move |current: &Installation| Ok(catalog.patched(current, patch, now)?));
    let installation = state
        .store
        .update_installation(auth.organization_id, id, edit)
        .await?;
    Ok(respond::json(&state.catalog.masked(installation)))
}

#[utoipa::path(
    delete, path = "/api/v1/marketplace/installations/{id}", tag = "marketplace",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Uninstalled"), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn delete_installation(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    state.store.delete_installation(auth.organization_id, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

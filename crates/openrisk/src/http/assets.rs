//! `/api/v1/assets`.

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
use crate::domain::asset::{self, Asset, AssetPatch, NewAsset};
use crate::domain::list::{Page, PageRequest};
use crate::domain::validation::Violations;
use crate::store::guarded;

impl RequestBody for NewAsset {
    const READ_ONLY: &'static [&'static str] = asset::READ_ONLY_FIELDS;

    fn violations(&self) -> Violations {
        self.clone().validate().err().unwrap_or_default()
    }
}
impl RequestBody for AssetPatch {
    const READ_ONLY: &'static [&'static str] = asset::READ_ONLY_FIELDS;
}

pub fn routes() -> Routes {
    Routes::new()
        .add(
            routes!(list_assets, create_asset),
            cached(Namespace::Assets).and_invalidates(Mutation::Asset),
        )
        .add(
            routes!(get_asset, update_asset, delete_asset),
            cached(Namespace::Assets).and_invalidates(Mutation::Asset),
        )
}

#[utoipa::path(
    get, path = "/api/v1/assets", tag = "assets",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Default 50"), ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]+$", description = "Opaque: the `next_cursor` of the previous page")),
    responses((status = 200, body = Page<Asset>)),
    security(("bearer" = []))
)]
async fn list_assets(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(PageRequest::<uuid::Uuid>::PARAMS)?;
    let page = PageRequest::from_params(&params)?;
    Ok(respond::json(
        &state.store.assets(auth.organization_id, &page).await?,
    ))
}

#[utoipa::path(
    post, path = "/api/v1/assets", tag = "assets", request_body = NewAsset,
    responses((status = 201, body = Asset, description = "Created", headers(("Location" = String, description = "The new asset's URL"))), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_asset(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    JsonBody(body): JsonBody<NewAsset>,
) -> ApiResult<Response> {
    let asset = state
        .store
        .create_asset(auth.organization_id, body.validate()?)
        .await?;
    Ok(respond::created(format!("/api/v1/assets/{}", asset.id), &asset))
}

#[utoipa::path(
    get, path = "/api/v1/assets/{id}", tag = "assets",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Asset), (status = 304, description = "Not modified"), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_asset(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    _: NoQuery,
    PathId(id): PathId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let asset = state.store.asset(auth.organization_id, id).await?;
    Ok(respond::versioned(&headers, &asset))
}

#[utoipa::path(
    patch, path = "/api/v1/assets/{id}", tag = "assets", request_body = AssetPatch,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Entity tags from `ETag` (`\"…\"`, comma-separated), or `*`: the write happens only if one names the current version")),
    responses((status = 200, body = Asset), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn update_asset(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    PathId(id): PathId,
    IfMatch(precondition): IfMatch,
    JsonBody(patch): JsonBody<AssetPatch>,
) -> ApiResult<Response> {
    let now = crate::domain::now();
    let edit = guarded(precondition, move |current: &Asset| {
        Ok(current.updated(patch.apply(&current.fields())?, now))
    });
    let asset = state.store.update_asset(auth.organization_id, id, edit).await?;
    Ok(respond::versioned(&HeaderMap::new(), &asset))
}

#[utoipa::path(
    delete, path = "/api/v1/assets/{id}", tag = "assets",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Entity tags from `ETag` (`\"…\"`, comma-separated), or `*`: the write happens only if one names the current version")),
    responses((status = 204, description = "Deleted and unlinked from every risk"), (status = 404, body = Problem),
        (status = 412, body = Problem)),
    security(("bearer" = []))
)]
async fn delete_asset(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    PathId(id): PathId,
    IfMatch(precondition): IfMatch,
) -> ApiResult<Response> {
    state
        .store
        .delete_asset(auth.organization_id, auth.user_id, id, &precondition)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

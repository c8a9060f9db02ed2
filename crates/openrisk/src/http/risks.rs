//! `/api/v1/risks`: the register, with history.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{
    Analyst, Auth, IfMatch, JsonBody, NoQuery, PathId, QueryParams, Register, RequestBody, Viewer,
};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::policy::cached;
use crate::cache::{Mutation, Namespace, Registered};
use crate::domain::auth::Role;
use crate::domain::coverage::{PageCoverage, RiskChange};
use crate::domain::list::{Page, PageRequest, RiskListQuery};
use crate::domain::risk::{self, HistoryEntry, NewRisk, Risk, RiskPatch};
use crate::domain::validation::Violations;
use crate::store::guarded;

impl RequestBody for NewRisk {
    const READ_ONLY: &'static [&'static str] = risk::READ_ONLY_FIELDS;

    fn violations(&self) -> Violations {
        self.clone().validate().err().unwrap_or_default()
    }
}
impl RequestBody for RiskPatch {
    const READ_ONLY: &'static [&'static str] = risk::READ_ONLY_FIELDS;
}

pub fn routes() -> Routes {
    Routes::new()
        .add(
            routes!(list_risks, create_risk),
            cached(Namespace::Risks)
                .with_defaults(RiskListQuery::DEFAULTS)
                .and_invalidates(Mutation::NewRisk),
        )
        .add(
            routes!(get_risk, update_risk, delete_risk),
            cached(Namespace::RiskDetails).and_invalidates(Mutation::Risk),
        )
        // Admins read a deleted risk's history; other roles get 404.
        .add(routes!(risk_history), cached(Namespace::RiskDetails).by_role())
}

#[utoipa::path(
    get, path = "/api/v1/risks", tag = "risks",
    params(
        ("status" = Option<Vec<risk::RiskStatus>>, Query, description = "Any of these statuses (repeat the parameter)", explode = true),
        ("severity" = Option<Vec<risk::Severity>>, Query, description = "Any of these severities", explode = true),
        ("category" = Option<Vec<String>>, Query, description = "Any of these categories", explode = true),
        ("owner_id" = Option<Vec<uuid::Uuid>>, Query, description = "Any of these owners", explode = true),
        ("tag" = Option<Vec<String>>, Query, description = "Carries any of these tags", explode = true),
        ("q" = Option<String>, Query, max_length = 200, description = "Case-insensitive substring of title, description or a tag"),
        ("sort" = Option<crate::domain::list::Sort>, Query, description = "Default -score"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Default 50"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]+$", description = "Opaque: the `next_cursor` of the previous page"),
        ("include_total" = Option<bool>, Query, description = "Also count every matching risk"),
    ),
    responses((status = 200, body = Page<Risk>), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
async fn list_risks(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Register(register): Register,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    let query = RiskListQuery::from_params(&params)?;
    let org = auth.organization_id;
    let (page, registered) = match register.and_then(|r| Some((r.page(&query)?, Registered(r.number())))) {
        Some((page, registered)) => (page, Some(registered)),
        None => (state.store.risks(org, &query).await?, None),
    };
    let response = respond::noting(respond::json(&page), PageCoverage::of(&query, &page));
    Ok(respond::noting_any(response, registered))
}

#[utoipa::path(
    post, path = "/api/v1/risks", tag = "risks", request_body = NewRisk,
    responses((status = 201, body = Risk, description = "Created", headers(("Location" = String, description = "The new risk's URL"))),
        (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_risk(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    JsonBody(body): JsonBody<NewRisk>,
) -> ApiResult<Response> {
    let fields = body.validate()?;
    let risk = state
        .store
        .create_risk(auth.organization_id, auth.user_id, fields)
        .await?;
    let response = respond::created(format!("/api/v1/risks/{}", risk.id), &risk);
    let change = RiskChange {
        id: risk.id,
        before: None,
        after: Some(risk),
    };
    Ok(respond::noting(response, change))
}

#[utoipa::path(
    get, path = "/api/v1/risks/{id}", tag = "risks",
    params(("id" = uuid::Uuid, Path), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, body = Risk), (status = 304, description = "Not modified"), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_risk(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Register(register): Register,
    _: NoQuery,
    PathId(id): PathId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let org = auth.organization_id;
    let held = register.and_then(|r| Some((r.risk(id)?.clone(), Registered(r.number()))));
    let (risk, registered) = match held {
        Some((risk, registered)) => (risk, Some(registered)),
        None => (state.store.risk(org, id).await?, None),
    };
    Ok(respond::noting_any(
        respond::versioned(&headers, &risk),
        registered,
    ))
}

#[utoipa::path(
    patch, path = "/api/v1/risks/{id}", tag = "risks", request_body = RiskPatch,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Entity tags from `ETag` (`\"…\"`, comma-separated), or `*`: the write happens only if one names the current version")),
    responses((status = 200, body = Risk), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn update_risk(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    PathId(id): PathId,
    IfMatch(precondition): IfMatch,
    JsonBody(patch): JsonBody<RiskPatch>,
) -> ApiResult<Response> {
    let now = crate::domain::now();
    let edit = guarded(precondition, move |current: &Risk| {
        Ok(current.updated(patch.apply(&current.fields())?, now))
    });
    let (before, after) = state
        .store
        .update_risk(auth.organization_id, auth.user_id, id, edit)
        .await?;
    let response = respond::versioned(&HeaderMap::new(), &after);
    let change = RiskChange {
        id,
        before: Some(before),
        after: Some(after),
    };
    Ok(respond::noting(response, change))
}

#[utoipa::path(
    delete, path = "/api/v1/risks/{id}", tag = "risks",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "Entity tags from `ETag` (`\"…\"`, comma-separated), or `*`: the write happens only if one names the current version")),
    responses((status = 204, description = "Deleted with its mitigations"), (status = 404, body = Problem),
        (status = 412, body = Problem)),
    security(("bearer" = []))
)]
async fn delete_risk(
    State(state): State<AppState>,
    auth: Auth<Analyst>,
    PathId(id): PathId,
    IfMatch(precondition): IfMatch,
) -> ApiResult<Response> {
    let deleted = state
        .store
        .delete_risk(auth.organization_id, auth.user_id, id, &precondition)
        .await?;
    let change = RiskChange {
        id,
        before: Some(deleted),
        after: None,
    };
    Ok(respond::noting(StatusCode::NO_CONTENT.into_response(), change))
}

#[utoipa::path(
    get, path = "/api/v1/risks/{id}/history", tag = "risks",
    params(("id" = uuid::Uuid, Path), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Default 50"), ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]+$", description = "Opaque: the `next_cursor` of the previous page")),
    responses((status = 200, body = Page<HistoryEntry>, description = "Newest first; admins also see deleted risks' history"),
        (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn risk_history(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    PathId(id): PathId,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(PageRequest::<i64>::PARAMS)?;
    let page = PageRequest::from_params(&params)?;
    let include_deleted = auth.has(Role::Admin);
    let history = state
        .store
        .risk_history(auth.organization_id, id, include_deleted, &page)
        .await?;
    Ok(respond::json(&history))
}

//! `/api/v1/tokens` (admin): issuing, listing and revoking bearer tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{Admin, Auth, JsonBody, PathId, QueryParams, RequestBody};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::Mutation;
use crate::cache::policy::{invalidates, uncached};
use crate::domain::auth::{generate_token, hash_token};
use crate::domain::list::{Page, PageRequest};
use crate::domain::org::{ApiToken, CreatedToken, NewToken};

impl RequestBody for NewToken {
    const READ_ONLY: &'static [&'static str] = &["id", "token", "system", "created_at"];
}

pub fn routes() -> Routes {
    Routes::new()
        .add(
            routes!(list_tokens, create_token),
            uncached().and_invalidates(Mutation::Token),
        )
        .add(routes!(revoke_token), invalidates(Mutation::Token))
}

#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "auth",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Default 50"), ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]+$", description = "Opaque: the `next_cursor` of the previous page")),
    responses((status = 200, body = Page<ApiToken>, description = "Live tokens, never their values"),
        (status = 403, body = Problem)),
    security(("bearer" = []))
)]
async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(PageRequest::<uuid::Uuid>::PARAMS)?;
    let page = PageRequest::from_params(&params)?;
    Ok(respond::json(
        &state.store.tokens(auth.organization_id, &page).await?,
    ))
}

#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "auth", request_body = NewToken,
    responses((status = 201, body = CreatedToken, description = "The only response that shows the token"),
        (status = 409, body = Problem, description = "The user holds the most live tokens allowed (100)"),
        (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_token(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<Response> {
    let draft = body.validate(crate::domain::now(), auth.expires_at)?;
    let user_id = draft.user_id.unwrap_or(auth.user_id);
    let secret = generate_token();
    let token = state
        .store
        .create_token(auth.organization_id, user_id, &draft, hash_token(&secret))
        .await?;
    Ok(respond::created_json(&CreatedToken { token, secret }))
}

#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "auth",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "Revoked: the token answers 401 from now on"),
        (status = 403, body = Problem, description = "A system token, and the caller's is not"),
        (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let token = state.store.token(auth.organization_id, id).await?;
    if !token.may_be_revoked_by(&auth) {
        return Err(ApiError::Forbidden);
    }
    state
        .store
        .revoke_token(auth.organization_id, id, crate::domain::now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

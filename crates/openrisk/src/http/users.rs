//! `/api/v1/users` (admin).

use axum::extract::State;
use axum::response::Response;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{Admin, Auth, JsonBody, QueryParams, RequestBody};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::Mutation;
use crate::cache::policy::uncached;
use crate::domain::list::{Page, PageRequest};
use crate::domain::org::{NewUser, User};

impl RequestBody for NewUser {
    const READ_ONLY: &'static [&'static str] = &["id", "created_at"];
}

pub fn routes() -> Routes {
    Routes::new().add(
        routes!(list_users, create_user),
        uncached().and_invalidates(Mutation::User),
    )
}

#[utoipa::path(
    get, path = "/api/v1/users", tag = "auth",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Default 50"), ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]+$", description = "Opaque: the `next_cursor` of the previous page")),
    responses((status = 200, body = Page<User>), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
async fn list_users(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    QueryParams(params): QueryParams,
) -> ApiResult<Response> {
    params.only(PageRequest::<uuid::Uuid>::PARAMS)?;
    let page = PageRequest::from_params(&params)?;
    Ok(respond::json(
        &state.store.users(auth.organization_id, &page).await?,
    ))
}

#[utoipa::path(
    post, path = "/api/v1/users", tag = "auth", request_body = NewUser,
    responses((status = 201, body = User), (status = 409, body = Problem, description = "Email taken"),
        (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_user(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<Response> {
    let user = state
        .store
        .create_user(auth.organization_id, &body.validate()?)
        .await?;
    Ok(respond::created_json(&user))
}

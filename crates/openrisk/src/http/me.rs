//! `/api/v1/me`: who the token belongs to.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, NoQuery, Viewer};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::Namespace;
use crate::cache::policy::cached;
use crate::domain::auth::Role;
use crate::domain::org::{Organization, User};

#[derive(Serialize, ToSchema)]
pub struct Me {
    user: User,
    organization: Organization,
    /// The effective role: the lower of the token's and the user's.
    role: Role,
}

pub fn routes() -> Routes {
    // Users and tokens change only with the `auth` namespace's generation; organizations never.
    Routes::new().add(routes!(me), cached(Namespace::Auth).by_caller())
}

#[utoipa::path(
    get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
async fn me(State(state): State<AppState>, auth: Auth<Viewer>, _: NoQuery) -> ApiResult<Response> {
    let user = state.store.user(auth.organization_id, auth.user_id).await?;
    let organization = state.store.organization(auth.organization_id).await?;
    Ok(respond::json(&Me {
        user,
        organization,
        role: auth.role,
    }))
}

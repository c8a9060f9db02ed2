//! `/api/v1/orgs`: creating organizations (system tokens only).

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{Auth, JsonBody, RequestBody, System};
use super::respond;
use super::routes::Routes;
use super::state::AppState;
use crate::cache::policy::writes_nothing_cached;
use crate::domain::auth::{Role, generate_token, hash_token};
use crate::domain::org::{NewOrganization, Organization};
use crate::store::TokenGrant;

impl RequestBody for NewOrganization {
    const READ_ONLY: &'static [&'static str] = &["id", "created_at"];
}

#[derive(Serialize, ToSchema)]
pub struct CreatedOrganization {
    organization: Organization,
    /// A token for the organization's first admin. Shown once.
    admin_token: String,
}

pub fn routes() -> Routes {
    Routes::new().add(routes!(create_organization), writes_nothing_cached())
}

#[utoipa::path(
    post, path = "/api/v1/orgs", tag = "auth", request_body = NewOrganization,
    responses((status = 201, body = CreatedOrganization), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "Slug taken"), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_organization(
    State(state): State<AppState>,
    _auth: Auth<System>,
    JsonBody(body): JsonBody<NewOrganization>,
) -> ApiResult<Response> {
    let draft = body.validate()?;
    let admin_token = generate_token();
    let grant = TokenGrant {
        hash: hash_token(&admin_token),
        name: "admin".into(),
        role: Role::Admin,
        system: false,
        expires_at: None,
    };
    let (organization, _, _) = state.store.create_organization(&draft, &grant).await?;
    Ok(respond::created_json(&CreatedOrganization {
        organization,
        admin_token,
    }))
}

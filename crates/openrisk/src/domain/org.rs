//! Organizations (tenants), their users and API tokens.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Principal, Role};
use super::validation::{NAME, Violations, name_schema, optional_name_schema};

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// Live tokens one user may hold: enough for every tool and person acting as them, few enough
/// that a leaked admin token cannot mint tokens without end.
pub const MAX_LIVE_TOKENS_PER_USER: i64 = 100;

/// A token as listed: never its secret value.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    pub user_id: Uuid,
    pub role: Role,
    pub system: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiToken {
    /// Only a system token may revoke a system token: an organization's admin could otherwise
    /// lock every operator out of the API.
    pub fn may_be_revoked_by(&self, caller: &Principal) -> bool {
        !self.system || caller.system
    }
}

/// A token as created: the only time its value is shown.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The bearer value. Shown once; only its hash is stored.
    #[serde(rename = "token")]
    pub secret: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"slug": "acme", "name": "Acme Corporation", "admin_email": "it@acme.example"}))]
pub struct NewOrganization {
    #[schema(required = true, nullable = false, pattern = "^[a-z0-9][a-z0-9-]{1,62}$")]
    pub slug: Option<String>,
    /// Defaults to the slug.
    #[schema(schema_with = optional_name_schema)]
    pub name: Option<String>,
    /// Email of the organization's first admin user; defaults to `admin@<slug>.invalid`.
    #[schema(format = Email)]
    pub admin_email: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "analyst@acme.example", "name": "Ada Analyst", "role": "analyst"}))]
pub struct NewUser {
    #[schema(required = true, nullable = false, format = Email)]
    pub email: Option<String>,
    #[schema(schema_with = name_schema, required = true, nullable = false)]
    pub name: Option<String>,
    /// Defaults to `viewer`.
    pub role: Option<Role>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CI export job", "role": "viewer"}))]
pub struct NewToken {
    /// Defaults to the caller's user.
    pub user_id: Option<Uuid>,
    #[schema(schema_with = name_schema, required = true, nullable = false)]
    pub name: Option<String>,
    /// Defaults to the user's role; may not exceed it.
    pub role: Option<Role>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A validated organization to create, with its first admin.
#[derive(Clone, Debug)]
pub struct OrganizationDraft {
    pub slug: String,
    pub name: String,
    pub admin_email: String,
}

#[derive(Clone, Debug)]
pub struct UserDraft {
    pub email: String,
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Debug)]
pub struct TokenDraft {
    pub user_id: Option<Uuid>,
    pub name: String,
    pub role: Option<Role>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Only the command line issues system tokens; the API never does.
    pub system: bool,
}

pub fn is_valid_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    (2..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn check_email(v: &mut Violations, field: &str, email: &str) {
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !valid {
        v.add(field, "must be an email address");
    }
}

impl NewOrganization {
    pub fn validate(self) -> Result<OrganizationDraft, Violations> {
        let mut v = Violations::default();
        let slug = v.required("slug", self.slug);
        if slug.as_deref().is_some_and(|slug| !is_valid_slug(slug)) {
            v.add(
                "slug",
                "must be 2 to 63 lowercase letters, digits or '-', starting with a letter or digit",
            );
        }
        let slug = slug.unwrap_or_default();
        let name = self.name.unwrap_or_else(|| slug.clone());
        v.text("name", &name, NAME);
        let admin_email = self
            .admin_email
            .unwrap_or_else(|| format!("admin@{slug}.invalid"));
        check_email(&mut v, "admin_email", &admin_email);
        v.into_result().map(|()| OrganizationDraft {
            slug,
            name,
            admin_email,
        })
    }
}

impl NewUser {
    pub fn validate(self) -> Result<UserDraft, Violations> {
        let mut v = Violations::default();
        let email = v.required("email", self.email);
        let name = v.required("name", self.name).unwrap_or_default();
        if let Some(email) = &email {
            check_email(&mut v, "email", email);
        }
        let email = email.unwrap_or_default();
        v.text("name", &name, NAME);
        v.into_result().map(|()| UserDraft {
            email: email.to_lowercase(),
            name,
            role: self.role.unwrap_or(Role::Viewer),
        })
    }
}

impl NewToken {
    /// The draft of a token issued by a caller whose own token expires at `issuer_expires_at`:
    /// it expires then at the latest, so a token cannot outlive the one that made it.
    pub fn validate(
        self,
        now: DateTime<Utc>,
        issuer_expires_at: Option<DateTime<Utc>>,
    ) -> Result<TokenDraft, Violations> {
        let mut v = Violations::default();
        let name = v.required("name", self.name).unwrap_or_default();
        v.text("name", &name, NAME);
        if self.expires_at.is_some_and(|at| at <= now) {
            v.add("expires_at", "must be in the future");
        }
        v.into_result().map(|()| TokenDraft {
            user_id: self.user_id,
            name,
            role: self.role,
            expires_at: match (self.expires_at, issuer_expires_at) {
                (Some(asked), Some(bound)) => Some(asked.min(bound)),
                (asked, bound) => asked.or(bound),
            }
            .map(|at| at.trunc_subsecs(6)),
            system: false,
        })
    }
}

impl TokenDraft {
    /// The token for `user`: its role defaults to the user's and may not exceed it.
    pub fn issue(&self, user: &User, now: DateTime<Utc>) -> Result<ApiToken, Violations> {
        let role = self.role.unwrap_or(user.role);
        if role > user.role {
            return Err(Violations::single(
                "role",
                format!("may not exceed the user's role ({})", user.role),
            ));
        }
        Ok(ApiToken {
            id: Uuid::now_v7(),
            name: self.name.clone(),
            user_id: user.id,
            role,
            system: self.system,
            expires_at: self.expires_at,
            created_at: now,
        })
    }
}

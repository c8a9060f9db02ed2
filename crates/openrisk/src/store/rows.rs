//! Row shapes shared by both backends (same column names and decodable types) and their
//! conversion into domain values.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json;
use uuid::Uuid;

use super::{StoreError, StoreResult};
use crate::domain::asset::Asset;
use crate::domain::auth::{Principal, Role};
use crate::domain::marketplace::Installation;
use crate::domain::mitigation::Mitigation;
use crate::domain::org::{ApiToken, Organization, User};
use crate::domain::risk::{HistoryEntry, Risk};

pub fn parse<T: FromStr>(column: &str, value: &str) -> StoreResult<T> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value:?}")))
}

#[derive(sqlx::FromRow)]
pub struct OrganizationRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<OrganizationRow> for Organization {
    fn from(r: OrganizationRow) -> Self {
        Organization {
            id: r.id,
            slug: r.slug,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<Self> {
        Ok(User {
            id: r.id,
            email: r.email,
            name: r.name,
            role: parse("users.role", &r.role)?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub name: String,
    pub user_id: Uuid,
    pub role: String,
    pub is_system: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> StoreResult<Self> {
        Ok(ApiToken {
            id: r.id,
            name: r.name,
            user_id: r.user_id,
            role: parse("api_tokens.role", &r.role)?,
            system: r.is_system,
            expires_at: r.expires_at,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct PrincipalRow {
    pub token_id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub token_role: String,
    pub user_role: String,
    pub is_system: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

impl TryFrom<PrincipalRow> for Principal {
    type Error = StoreError;
    fn try_from(r: PrincipalRow) -> StoreResult<Self> {
        let token_role: Role = parse("api_tokens.role", &r.token_role)?;
        let user_role: Role = parse("users.role", &r.user_role)?;
        Ok(Principal {
            organization_id: r.org_id,
            user_id: r.user_id,
            token_id: r.token_id,
            role: token_role.min(user_role),
            system: r.is_system,
            expires_at: r.expires_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct RiskRow {
    pub id: Uuid,
    pub ref_number: i64,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub owner_id: Option<Uuid>,
    pub status: String,
    pub likelihood: i32,
    pub impact: i32,
    pub score: i32,
    pub severity: String,
    pub residual_likelihood: Option<i32>,
    pub residual_impact: Option<i32>,
    pub residual_score: Option<i32>,
    pub treatment: Option<String>,
    pub tags: Json<Vec<String>>,
    pub asset_ids: Json<Vec<Uuid>>,
    pub review_date: Option<NaiveDate>,
    pub mitigation_count: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl TryFrom<RiskRow> for Risk {
    type Error = StoreError;
    fn try_from(r: RiskRow) -> StoreResult<Self> {
        Ok(Risk {
            id: r.id,
            reference: format!("RSK-{}", r.ref_number),
            title: r.title,
            description: r.description,
            category: r.category,
            owner_id: r.owner_id,
            status: parse("risks.status", &r.status)?,
            likelihood: r.likelihood,
            impact: r.impact,
            score: r.score,
            severity: parse("risks.severity", &r.severity)?,
            residual_likelihood: r.residual_likelihood,
            residual_impact: r.residual_impact,
            residual_score: r.residual_score,
            treatment: r
                .treatment
                .as_deref()
                .map(|t| parse("risks.treatment", t))
                .transpose()?,
            tags: r.tags.0,
            asset_ids: r.asset_ids.0,
            review_date: r.review_date,
            mitigation_count: r.mitigation_count,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            closed_at: r.closed_at,
        })
    }
}

/// The number in a `RSK-<n>` reference.
pub fn ref_number(risk: &Risk) -> i64 {
    risk.reference
        .strip_prefix("RSK-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

#[derive(sqlx::FromRow)]
pub struct HistoryRow {
    pub version: i64,
    pub changed_at: DateTime<Utc>,
    pub changed_by: Option<Uuid>,
    pub change_type: String,
    pub changes: Json<Map<String, Value>>,
    pub status: Option<String>,
}

impl TryFrom<HistoryRow> for HistoryEntry {
    type Error = StoreError;
    fn try_from(r: HistoryRow) -> StoreResult<Self> {
        Ok(HistoryEntry {
            version: r.version,
            changed_at: r.changed_at,
            changed_by: r.changed_by,
            change_type: parse("risk_history.change_type", &r.change_type)?,
            changes: r.changes.0,
            status: r
                .status
                .as_deref()
                .map(|s| parse("risk_history.status", s))
                .transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct MitigationRow {
    pub id: Uuid,
    pub risk_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: String,
    pub owner_id: Option<Uuid>,
    pub due_date: Option<NaiveDate>,
    pub progress: i32,
    pub cost: Option<f64>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl TryFrom<MitigationRow> for Mitigation {
    type Error = StoreError;
    fn try_from(r: MitigationRow) -> StoreResult<Self> {
        Ok(Mitigation {
            id: r.id,
            risk_id: r.risk_id,
            title: r.title,
            description: r.description,
            status: parse("mitigations.status", &r.status)?,
            owner_id: r.owner_id,
            due_date: r.due_date,
            progress: r.progress,
            cost: r.cost,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            completed_at: r.completed_at,
        })
    }
}

/// A mitigation joined with its risk's reference and title.
#[derive(sqlx::FromRow)]
pub struct OverdueRow {
    #[sqlx(flatten)]
    pub mitigation: MitigationRow,
    pub ref_number: i64,
    pub risk_title: String,
}

#[derive(sqlx::FromRow)]
pub struct AssetRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub criticality: String,
    pub description: String,
    pub tags: Json<Vec<String>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<AssetRow> for Asset {
    type Error = StoreError;
    fn try_from(r: AssetRow) -> StoreResult<Self> {
        Ok(Asset {
            id: r.id,
            name: r.name,
            kind: parse("assets.kind", &r.kind)?,
            criticality: parse("assets.criticality", &r.criticality)?,
            description: r.description,
            tags: r.tags.0,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Converts fetched rows into domain values.
pub fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub struct InstallationRow {
    pub id: Uuid,
    pub connector: String,
    pub enabled: bool,
    pub config: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<InstallationRow> for Installation {
    type Error = StoreError;
    fn try_from(r: InstallationRow) -> StoreResult<Self> {
        Ok(Installation {
            id: r.id,
            connector: r.connector,
            enabled: r.enabled,
            config: r.config.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

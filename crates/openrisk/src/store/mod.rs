//! Persistence: one `Store` trait with a SQLite and a PostgreSQL implementation.

pub mod pool;
mod postgres;
mod rows;
mod settings;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::domain::Precondition;
use crate::domain::asset::{Asset, AssetFields};
use crate::domain::auth::{Principal, Role};
use crate::domain::dashboard::{DailyActivity, MitigationGroup, RiskGroup};
use crate::domain::list::{Page, PageRequest, RiskFilter, RiskListQuery, Sort};
use crate::domain::marketplace::Installation;
use crate::domain::mitigation::{Mitigation, MitigationFields};
use crate::domain::org::{ApiToken, Organization, OrganizationDraft, TokenDraft, User, UserDraft};
use crate::domain::report::OverdueMitigation;
use crate::domain::risk::{HistoryEntry, Risk, RiskFields, RiskStatus};
use crate::domain::validation::Violations;

pub use pool::{ACQUIRE_WAIT_BUCKETS, PoolStatus, PoolWarning};
pub use postgres::PgStore;
pub use settings::{PoolMode, PoolSettings};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("validation failed")]
    Invalid(Violations),
    /// The database cannot serve now (pool exhausted, connection refused): worth a retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("stored value cannot be read: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db) if is_transient(db.as_ref()) => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict("a resource with the same unique value already exists".into())
            }
            // A referenced row was deleted by a concurrent request.
            sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => {
                StoreError::Conflict("a referenced resource was changed concurrently; retry".into())
            }
            e => StoreError::Database(e),
        }
    }
}

impl StoreError {
    /// The connection broke (killed by the server, network lost): another connection may well
    /// succeed at once.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            StoreError::Unavailable(sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_)) => {
                true
            }
            StoreError::Unavailable(sqlx::Error::Database(db)) => {
                let code = db.code().unwrap_or_default();
                code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02")
            }
            _ => false,
        }
    }
}

/// Errors that say "not now" rather than "never": the server is shutting down, out of
/// connections, or (SQLite) the database is busy.
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code().unwrap_or_default();
    // PostgreSQL SQLSTATEs: connection exceptions, too many connections, admin/crash shutdown,
    // cannot connect now.
    let postgres = code.starts_with("08") || matches!(code.as_ref(), "53300" | "57P01" | "57P02" | "57P03");
    // SQLite result codes (extended codes keep the primary code in the low byte): BUSY, LOCKED.
    let sqlite = code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
    postgres || sqlite
}

impl From<Violations> for StoreError {
    fn from(v: Violations) -> Self {
        StoreError::Invalid(v)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Risks streamed from the database.
pub type RiskStream = futures_util::stream::BoxStream<'static, StoreResult<Risk>>;

/// A change computed from the current value inside the write's transaction: `Ok(None)` means
/// "nothing to change". Running it under the row lock makes `If-Match` checks race-free.
pub type Edit<'a, T> = Box<dyn FnOnce(&T) -> StoreResult<Option<T>> + Send + 'a>;

/// An edit that first checks `precondition` against the current value.
pub fn guarded<'a, T: crate::domain::Versioned>(
    precondition: Precondition,
    change: impl FnOnce(&T) -> Result<Option<T>, Violations> + Send + 'a,
) -> Edit<'a, T> {
    Box::new(move |current| {
        if !precondition.holds(current) {
            return Err(StoreError::PreconditionFailed);
        }
        Ok(change(current)?)
    })
}

/// A new token: what to store (its hash) and who it acts for.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub hash: Vec<u8>,
    pub name: String,
    pub role: Role,
    pub system: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Rows generated by `openrisk seed`, inserted in bulk.
#[derive(Clone, Debug, Default)]
pub struct SeedBatch {
    pub risks: Vec<Risk>,
    pub mitigations: Vec<Mitigation>,
    pub assets: Vec<Asset>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Runs `SELECT 1`.
    async fn ping(&self) -> StoreResult<()>;

    /// The connection pool's limits and current state.
    fn pool_status(&self) -> PoolStatus;

    async fn organization_count(&self) -> StoreResult<i64>;
    /// Creates an organization, its first admin user and that user's token, atomically.
    async fn create_organization(
        &self,
        draft: &OrganizationDraft,
        token: &TokenGrant,
    ) -> StoreResult<(Organization, User, ApiToken)>;
    async fn organization(&self, id: Uuid) -> StoreResult<Organization>;
    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Organization>;

    /// The principal a token hash stands for, if the token is live.
    async fn authenticate(&self, token_hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Principal>>;
    async fn user(&self, org: Uuid, id: Uuid) -> StoreResult<User>;
    async fn users(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<User>>;
    async fn create_user(&self, org: Uuid, draft: &UserDraft) -> StoreResult<User>;
    /// Issues a token for user `user_id`; the role may not exceed the user's.
    async fn create_token(
        &self,
        org: Uuid,
        user_id: Uuid,
        draft: &TokenDraft,
        hash: Vec<u8>,
    ) -> StoreResult<ApiToken>;
    async fn tokens(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<ApiToken>>;
    async fn revoke_token(&self, org: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;

    async fn create_risk(&self, org: Uuid, actor: Uuid, fields: RiskFields) -> StoreResult<Risk>;
    async fn risk(&self, org: Uuid, id: Uuid) -> StoreResult<Risk>;
    async fn risks(&self, org: Uuid, query: &RiskListQuery) -> StoreResult<Page<Risk>>;
    async fn update_risk(&self, org: Uuid, actor: Uuid, id: Uuid, edit: Edit<'_, Risk>) -> StoreResult<Risk>;
    async fn delete_risk(
        &self,
        org: Uuid,
        actor: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> StoreResult<()>;
    /// Newest first. A deleted risk's history is found only with `include_deleted`.
    async fn risk_history(
        &self,
        org: Uuid,
        id: Uuid,
        include_deleted: bool,
        page: &PageRequest<i64>,
    ) -> StoreResult<Page<HistoryEntry>>;

    async fn create_mitigation(
        &self,
        org: Uuid,
        risk_id: Uuid,
        fields: MitigationFields,
    ) -> StoreResult<Mitigation>;
    async fn mitigation(&self, org: Uuid, id: Uuid) -> StoreResult<Mitigation>;
    async fn mitigations(
        &self,
        org: Uuid,
        risk_id: Uuid,
        page: &PageRequest<Uuid>,
    ) -> StoreResult<Page<Mitigation>>;
    async fn update_mitigation(
        &self,
        org: Uuid,
        id: Uuid,
        edit: Edit<'_, Mitigation>,
    ) -> StoreResult<Mitigation>;
    async fn delete_mitigation(&self, org: Uuid, id: Uuid, precondition: &Precondition) -> StoreResult<()>;

    async fn create_asset(&self, org: Uuid, fields: AssetFields) -> StoreResult<Asset>;
    async fn asset(&self, org: Uuid, id: Uuid) -> StoreResult<Asset>;
    async fn assets(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Asset>>;
    async fn update_asset(&self, org: Uuid, id: Uuid, edit: Edit<'_, Asset>) -> StoreResult<Asset>;
    /// Deletes the asset and unlinks it from every risk (a new version of each, by `actor`).
    async fn delete_asset(
        &self,
        org: Uuid,
        actor: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> StoreResult<()>;

    /// Stores a new installation; a second one of the same connector is a conflict.
    async fn create_installation(&self, org: Uuid, installation: &Installation) -> StoreResult<()>;
    async fn installation(&self, org: Uuid, id: Uuid) -> StoreResult<Installation>;
    async fn installations(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Installation>>;
    async fn update_installation(
        &self,
        org: Uuid,
        id: Uuid,
        edit: Edit<'_, Installation>,
    ) -> StoreResult<Installation>;
    async fn delete_installation(&self, org: Uuid, id: Uuid) -> StoreResult<()>;

    /// Every risk matching `filter`, in `sort` order, read as the consumer takes them: memory does
    /// not grow with the register.
    fn export_risks(&self, org: Uuid, filter: RiskFilter, sort: Sort) -> RiskStream;
    /// Active mitigations whose due date is before `today`, oldest due date first.
    async fn overdue_mitigations(
        &self,
        org: Uuid,
        today: NaiveDate,
        limit: i64,
    ) -> StoreResult<Vec<OverdueMitigation>>;

    /// Risk counts, score sums and overdue reviews (review date before `today`) per status and
    /// severity.
    async fn risk_groups(&self, org: Uuid, today: NaiveDate) -> StoreResult<Vec<RiskGroup>>;
    /// Mitigation counts and passed due dates (before `today`) per status.
    async fn mitigation_groups(&self, org: Uuid, today: NaiveDate) -> StoreResult<Vec<MitigationGroup>>;
    /// `(likelihood, impact, count)` of the risks with one of `statuses`.
    async fn risk_matrix(&self, org: Uuid, statuses: &[RiskStatus]) -> StoreResult<Vec<(i32, i32, i64)>>;
    /// Risks created and closed per UTC day from `since`, the daily change in open risks since
    /// then, and the risks open now.
    async fn daily_activity(&self, org: Uuid, since: NaiveDate) -> StoreResult<DailyActivity>;
    /// Open risks by score, then residual score (highest first).
    async fn top_risks(&self, org: Uuid, limit: i64) -> StoreResult<Vec<Risk>>;

    /// Refreshes the query planner's statistics (after bulk loads).
    async fn analyze(&self) -> StoreResult<()>;
    /// Reserves `count` consecutive risk numbers; returns the first.
    async fn reserve_risk_numbers(&self, org: Uuid, count: i64) -> StoreResult<i64>;
    /// Inserts generated data in bulk; each risk gets its `create` history entry.
    async fn insert_seed(&self, org: Uuid, actor: Uuid, batch: &SeedBatch) -> StoreResult<()>;
}

/// Opens the store `url` names and applies its migrations.
pub async fn connect(url: &str, pool: &PoolSettings) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, pool).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, pool).await?))
    } else {
        anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://")
    }
}

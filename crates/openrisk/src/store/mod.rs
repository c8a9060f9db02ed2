//! Persistence: one `Store` trait with a SQLite and a PostgreSQL implementation.

pub mod backup;
pub mod pool;
mod pool_status;
mod postgres;
mod rows;
mod secrets;
mod settings;
mod sql;
mod sqlite;
mod traits;
mod url;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::Precondition;
use crate::domain::asset::Asset;
use crate::domain::auth::Role;
use crate::domain::mitigation::Mitigation;
use crate::domain::risk::Risk;
use crate::domain::validation::Violations;

pub use pool_status::{ACQUIRE_WAIT_BUCKETS, PoolStatus, PoolWarning};
pub use postgres::PgStore;
pub use secrets::{SecretKey, SecretKeys, SecretsSettings};
pub use settings::{PoolMode, PoolSettings};
pub use sqlite::SqliteStore;
pub use traits::{
    AggregateDrift, AssetStore, InstallationStore, MitigationStore, OrgStore, RegisterRows, ReportStore,
    RiskStore, SeedStore,
};
pub use url::DatabaseUrl;

/// How long the database may take to answer a readiness check.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// The database has no space left: writes fail until an operator frees some; reads go on.
    #[error("database storage full: {0}")]
    StorageFull(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("stored value cannot be read: {0}")]
    Corrupt(String),
    /// A stream of rows stopped before its last row.
    #[error("read interrupted: {0}")]
    Interrupted(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let error = StoreError::classify(e);
        if error.is_connection_lost() {
            pool::note_connection_lost();
        }
        error
    }
}

impl StoreError {
    fn classify(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db) if is_transient(db.as_ref()) => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db) if is_storage_full(db.as_ref()) => StoreError::StorageFull(e),
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
    // PostgreSQL SQLSTATEs: connection exceptions, serialization failure, deadlock (writers
    // meeting on an aggregate row), too many connections, admin/crash shutdown, cannot connect now.
    let postgres = code.starts_with("08")
        || matches!(
            code.as_ref(),
            "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
        );
    // SQLite result codes (extended codes keep the primary code in the low byte): BUSY, LOCKED.
    let sqlite = code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
    postgres || sqlite
}

/// SQLite's FULL (extended codes keep it in the low byte) and PostgreSQL's `disk_full`.
fn is_storage_full(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code().unwrap_or_default();
    code == "53100" || code.parse::<i32>().is_ok_and(|n| n & 0xff == 13)
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

/// Everything the service stores, on SQLite or PostgreSQL: one trait per resource (`traits.rs`),
/// and the store's own operations.
#[async_trait]
pub trait Store:
    OrgStore
    + RiskStore
    + MitigationStore
    + AssetStore
    + InstallationStore
    + ReportStore
    + SeedStore
    + Send
    + Sync
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Checks that the database answers now, on a connection outside the pool.
    async fn ping(&self) -> StoreResult<()>;

    /// Which copy of the data this is: a restore from a backup draws a new one (see `backup`).
    async fn data_epoch(&self) -> StoreResult<u64>;

    /// The connection pool's limits and current state.
    fn pool_status(&self) -> PoolStatus;
}

/// Opens the store `url` names and applies its migrations.
pub async fn connect(
    url: &DatabaseUrl,
    pool: &PoolSettings,
    secrets: Arc<SecretKeys>,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match url {
        DatabaseUrl::Postgres(url) => Arc::new(PgStore::connect(url, pool, secrets).await?),
        DatabaseUrl::Sqlite(url) => Arc::new(SqliteStore::connect(url, pool, secrets).await?),
    })
}

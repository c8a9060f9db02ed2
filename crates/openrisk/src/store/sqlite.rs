//! SQLite: WAL, one writer connection (SQLite admits one writer at a time, so writes queue in the
//! pool rather than failing with "database is locked") and a pool of read-only connections.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::pool::MeteredPool;
use super::sql::{like_pattern, non_zero, push_any, push_scoped_filters, risk_select};
use super::{PoolSettings, SecretKeys};
use super::{PoolStatus, StoreResult};
use crate::domain::list::{RiskFilter, SortKey};

pub struct SqliteStore {
    writer: MeteredPool<Sqlite>,
    readers: MeteredPool<Sqlite>,
    settings: PoolSettings,
    secrets: Arc<SecretKeys>,
}

const RISK_SELECT: &str = risk_select!(
    "(SELECT json_group_array(lower(hex(x.asset_id))) \
     FROM (SELECT asset_id FROM risk_assets WHERE risk_id = r.id ORDER BY asset_id) x)"
);

impl SqliteStore {
    pub async fn connect(url: &str, pool: &PoolSettings, secrets: Arc<SecretKeys>) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)?;
        }
        // Both pools count into one set of stats: the store's.
        let stats = Arc::default();
        let writer = MeteredPool::connect(
            SqlitePoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .acquire_timeout(pool.acquire_timeout),
            options.clone(),
            Arc::clone(&stats),
            None,
            1,
        )
        .await?;
        sqlx::migrate!("./migrations/sqlite").run(writer.inner()).await?;
        let readers = MeteredPool::connect(
            SqlitePoolOptions::new()
                .max_connections(pool.max_open)
                .min_connections(pool.max_idle)
                .idle_timeout(non_zero(pool.max_idle_time))
                .acquire_timeout(pool.acquire_timeout),
            options.read_only(true),
            stats,
            non_zero(pool.max_lifetime),
            pool.max_idle,
        )
        .await?;
        Ok(SqliteStore {
            writer,
            readers,
            settings: pool.clone(),
            secrets,
        })
    }

    /// Where reads go.
    fn reader(&self) -> &MeteredPool<Sqlite> {
        &self.readers
    }

    /// Where writes go.
    fn writer(&self) -> &MeteredPool<Sqlite> {
        &self.writer
    }

    fn secrets(&self) -> &SecretKeys {
        &self.secrets
    }

    fn pool_status(&self) -> PoolStatus {
        self.readers
            .status(&self.settings, Some(self.writer.inner()), None)
    }
}

/// The list's WHERE clause: the shared filters, then tags and text search.
fn push_filters(qb: &mut QueryBuilder<Sqlite>, org: Uuid, f: &RiskFilter) {
    push_scoped_filters(qb, org, f);
    push_any(
        qb,
        (
            " AND EXISTS (SELECT 1 FROM json_each(r.tags) t WHERE t.value IN (",
            "))",
        ),
        f.tags.iter().cloned(),
    );
    if let Some(q) = &f.q {
        // The trigram index answers substrings of three characters or more.
        if q.chars().count() >= 3 {
            qb.push(" AND r.rowid IN (SELECT rowid FROM risks_fts WHERE risks_fts MATCH ")
                .push_bind(format!("\"{}\"", q.replace('"', "\"\"")))
                .push(")");
        } else {
            qb.push(" AND r.search_text LIKE ")
                .push_bind(like_pattern(q))
                .push(" ESCAPE '\\'");
        }
    }
}

fn sort_column(key: SortKey) -> &'static str {
    match key {
        SortKey::Score => "r.score",
        SortKey::CreatedAt => "r.created_at",
        SortKey::UpdatedAt => "r.updated_at",
        SortKey::Title => "r.title",
    }
}

/// No row lock needed: the single writer connection already runs one transaction at a time.
async fn lock_row(_: &mut SqliteConnection, _table: &str, _org: Uuid, _id: Uuid) -> StoreResult<()> {
    Ok(())
}

/// Refreshes the planner's statistics after bulk loads.
const ANALYZE: &str = "ANALYZE";

/// A read transaction whose statements all see one snapshot.
const BEGIN_SNAPSHOT: &str = "BEGIN";

/// Write transactions take the write lock at once, so a read-then-write never fails with SQLITE_BUSY.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Empties a table (SQLite truncates a `DELETE` without `WHERE`).
const CLEAR_TABLE: &str = "DELETE FROM";

/// A write transaction holds off every other write already.
const LOCK_REGISTER: Option<&str> = None;

// The queries, written once for both backends (`queries/`), compiled here over this backend's
// types and dialect.
type Backend = SqliteStore;
type Db = Sqlite;
type Conn = SqliteConnection;
const NAME: &str = "sqlite";

#[path = "queries/mod.rs"]
#[allow(clippy::duplicate_mod, reason = "the queries are compiled once per backend")]
mod queries;

//! PostgreSQL: one pool; row locks (`FOR UPDATE`) serialize concurrent writes to one row.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::pool::MeteredPool;
use super::sql::{like_pattern, non_zero, push_any, push_scoped_filters, risk_select};
use super::{PoolSettings, SecretKeys};
use super::{PoolStatus, StoreResult};
use crate::domain::list::{RiskFilter, SortKey};

pub struct PgStore {
    pool: MeteredPool<Postgres>,
    settings: PoolSettings,
    /// The server's `max_connections`, read at start-up.
    server_max_connections: Option<u32>,
    secrets: Arc<SecretKeys>,
}

const RISK_SELECT: &str = risk_select!(
    "coalesce((SELECT jsonb_agg(a.asset_id ORDER BY a.asset_id) FROM risk_assets a \
     WHERE a.risk_id = r.id), '[]'::jsonb)"
);

impl PgStore {
    pub async fn connect(
        url: &str,
        settings: &PoolSettings,
        secrets: Arc<SecretKeys>,
    ) -> anyhow::Result<Self> {
        let options = PgPoolOptions::new()
            .max_connections(settings.max_open)
            .min_connections(settings.max_idle)
            .idle_timeout(non_zero(settings.max_idle_time))
            .acquire_timeout(settings.acquire_timeout);
        let pool = MeteredPool::connect(
            options,
            PgConnectOptions::from_str(url)?,
            Arc::default(),
            non_zero(settings.max_lifetime),
            settings.max_idle,
        )
        .await?;
        sqlx::migrate!("./migrations/postgres").run(pool.inner()).await?;
        let server_max_connections = sqlx::query_scalar::<_, String>("SHOW max_connections")
            .fetch_one(pool.inner())
            .await?
            .parse()
            .ok();
        Ok(PgStore {
            pool,
            settings: settings.clone(),
            server_max_connections,
            secrets,
        })
    }

    /// Where reads go.
    fn reader(&self) -> &MeteredPool<Postgres> {
        &self.pool
    }

    /// Where writes go.
    fn writer(&self) -> &MeteredPool<Postgres> {
        &self.pool
    }

    fn secrets(&self) -> &SecretKeys {
        &self.secrets
    }

    fn pool_status(&self) -> PoolStatus {
        self.pool
            .status(&self.settings, None, self.server_max_connections)
    }
}

/// The list's WHERE clause: the shared filters, then tags and text search.
fn push_filters(qb: &mut QueryBuilder<Postgres>, org: Uuid, f: &RiskFilter) {
    push_scoped_filters(qb, org, f);
    push_any(qb, (" AND r.tags ?| ARRAY[", "]::text[]"), f.tags.iter().cloned());
    if let Some(q) = &f.q {
        // Served by the trigram GIN index on search_text.
        qb.push(" AND r.search_text ILIKE ")
            .push_bind(like_pattern(q))
            .push(" ESCAPE '\\'");
    }
}

fn sort_column(key: SortKey) -> &'static str {
    match key {
        SortKey::Score => "r.score",
        SortKey::CreatedAt => "r.created_at",
        SortKey::UpdatedAt => "r.updated_at",
        SortKey::Title => "r.title COLLATE \"C\"",
    }
}

/// Locks a row for the rest of the transaction, so concurrent writers to it run one at a time.
async fn lock_row(conn: &mut PgConnection, table: &str, org: Uuid, id: Uuid) -> StoreResult<()> {
    let sql = format!("SELECT id FROM {table} WHERE org_id = $1 AND id = $2 FOR UPDATE");
    sqlx::query(AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

/// After bulk loads: planner statistics, and a visibility map so covering indexes answer alone.
const ANALYZE: &str = "VACUUM ANALYZE";

/// A read transaction whose statements all see one snapshot.
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Write transactions are plain transactions; row locks order concurrent writers.
const BEGIN_WRITE: &str = "BEGIN";

/// Empties a table at once, leaving no dead rows behind.
const CLEAR_TABLE: &str = "TRUNCATE";

/// Holds off every write to what the aggregates count (and lets reads through) until commit.
const LOCK_REGISTER: Option<&str> = Some("LOCK TABLE risks, mitigations, risk_history IN SHARE MODE");

// The queries, written once for both backends (`queries/`), compiled here over this backend's
// types and dialect.
type Backend = PgStore;
type Db = Postgres;
type Conn = PgConnection;
const NAME: &str = "postgres";

#[path = "queries/mod.rs"]
#[allow(clippy::duplicate_mod, reason = "the queries are compiled once per backend")]
mod queries;

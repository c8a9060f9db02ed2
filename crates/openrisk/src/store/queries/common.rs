//! What every resource's queries share, and the store's own operations.

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Backend, Conn, Db, NAME};
use crate::domain::list::{Page, PageRequest};
use crate::domain::validation::Violations;
use crate::store::rows::convert;
use crate::store::{PoolStatus, Store, StoreError, StoreResult};

/// Whether `table` holds row `id` of organization `org`.
pub(super) async fn exists<'c>(
    conn: impl sqlx::Executor<'c, Database = Db>,
    table: &str,
    org: Uuid,
    id: Uuid,
) -> StoreResult<bool> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE org_id = $1 AND id = $2)");
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_one(conn)
        .await?)
}

pub(super) async fn check_owner(
    conn: &mut Conn,
    org: Uuid,
    owner: Option<Uuid>,
    v: &mut Violations,
) -> StoreResult<()> {
    if let Some(owner) = owner
        && !exists(&mut *conn, "users", org, owner).await?
    {
        v.add("owner_id", "no such user");
    }
    Ok(())
}

/// Multi-row INSERTs of at most this many rows (of at most 23 columns): under both SQLite's
/// 32 766 and PostgreSQL's 65 535 bind parameters.
pub(super) const ROWS_PER_INSERT: usize = 1_000;

/// One page of the organization's rows of `table`, in id order (ids are UUIDv7, so this
/// is creation order); `also` adds conditions.
pub(super) async fn page_by_id<'c, R, T>(
    conn: impl sqlx::Executor<'c, Database = Db>,
    (table, columns, also): (&str, &str, &str),
    org: Uuid,
    page: &PageRequest<Uuid>,
    id: impl Fn(&T) -> Uuid,
) -> StoreResult<Page<T>>
where
    R: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin,
    T: TryFrom<R, Error = StoreError>,
{
    let sql =
        format!("SELECT {columns} FROM {table} WHERE org_id = $1 {also} AND id > $2 ORDER BY id LIMIT $3");
    let rows: Vec<R> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(org)
        .bind(page.after.unwrap_or(Uuid::nil()))
        .bind(page.limit + 1)
        .fetch_all(conn)
        .await?;
    Ok(Page::from_rows(convert(rows)?, page.limit, id))
}

/// Row `id` of the organization's `table`, as a domain value.
pub(super) async fn fetch_by_id<'c, R, T>(
    conn: impl sqlx::Executor<'c, Database = Db>,
    (table, columns): (&str, &str),
    org: Uuid,
    id: Uuid,
) -> StoreResult<T>
where
    R: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin,
    T: TryFrom<R, Error = StoreError>,
{
    let sql = format!("SELECT {columns} FROM {table} WHERE org_id = $1 AND id = $2");
    let row: R = sqlx::query_as(AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_one(conn)
        .await?;
    row.try_into()
}

#[async_trait]
impl Store for Backend {
    fn backend(&self) -> &'static str {
        NAME
    }

    fn pool_status(&self) -> PoolStatus {
        self.pool_status()
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(self.reader().probe().await?)
    }

    async fn data_epoch(&self) -> StoreResult<u64> {
        let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM data_epoch WHERE id = 1")
            .fetch_one(&mut *self.reader().acquire("data_epoch").await?)
            .await?;
        Ok(epoch as u64)
    }
}

//! Mitigations of risks.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Connection, QueryBuilder};
use uuid::Uuid;

use super::common::{ROWS_PER_INSERT, check_owner, exists, fetch_by_id};
use super::{BEGIN_WRITE, Backend, Conn, Db, lock_row};
use crate::domain;
use crate::domain::Precondition;
use crate::domain::list::{Page, PageRequest};
use crate::domain::mitigation::{Mitigation, MitigationFields};
use crate::domain::validation::Violations;
use crate::store::rows::{MitigationRow, convert};
use crate::store::sql::MITIGATION_COLUMNS;
use crate::store::{Edit, MitigationStore, StoreError, StoreResult};

pub(super) async fn insert_mitigations(
    conn: &mut Conn,
    org: Uuid,
    mitigations: &[Mitigation],
) -> StoreResult<()> {
    for chunk in mitigations.chunks(ROWS_PER_INSERT) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO mitigations (id, org_id, risk_id, title, description, status, owner_id, due_date, \
             progress, cost, version, created_at, updated_at, completed_at) ",
        );
        qb.push_values(chunk, |mut row, m| {
            row.push_bind(m.id)
                .push_bind(org)
                .push_bind(m.risk_id)
                .push_bind(&m.title)
                .push_bind(&m.description)
                .push_bind(m.status.as_str())
                .push_bind(m.owner_id)
                .push_bind(m.due_date)
                .push_bind(m.progress)
                .push_bind(m.cost)
                .push_bind(m.version)
                .push_bind(m.created_at)
                .push_bind(m.updated_at)
                .push_bind(m.completed_at);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn fetch_mitigation(conn: &mut Conn, org: Uuid, id: Uuid) -> StoreResult<Mitigation> {
    fetch_by_id::<MitigationRow, _>(conn, ("mitigations", MITIGATION_COLUMNS), org, id).await
}

#[async_trait]
impl MitigationStore for Backend {
    async fn create_mitigation(
        &self,
        org: Uuid,
        risk_id: Uuid,
        fields: MitigationFields,
    ) -> StoreResult<Mitigation> {
        let mut held = self.writer().acquire_for_write("create_mitigation").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        if !exists(&mut *tx, "risks", org, risk_id).await? {
            return Err(StoreError::NotFound);
        }
        let mitigation = Mitigation::new(Uuid::now_v7(), risk_id, fields, domain::now());
        let mut v = Violations::default();
        check_owner(&mut tx, org, mitigation.owner_id, &mut v).await?;
        v.into_result()?;
        insert_mitigations(&mut tx, org, std::slice::from_ref(&mitigation)).await?;
        tx.commit().await?;
        Ok(mitigation)
    }

    async fn mitigation(&self, org: Uuid, id: Uuid) -> StoreResult<Mitigation> {
        let mut conn = self.reader().acquire("mitigation").await?;
        fetch_mitigation(&mut conn, org, id).await
    }

    async fn mitigations(
        &self,
        org: Uuid,
        risk_id: Uuid,
        page: &PageRequest<Uuid>,
    ) -> StoreResult<Page<Mitigation>> {
        let mut conn = self.reader().acquire("mitigations").await?;
        if !exists(&mut *conn, "risks", org, risk_id).await? {
            return Err(StoreError::NotFound);
        }
        let sql = format!(
            "SELECT {MITIGATION_COLUMNS} FROM mitigations WHERE org_id = $1 AND risk_id = $2 AND id > $3 \
             ORDER BY id LIMIT $4"
        );
        let rows: Vec<MitigationRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(org)
            .bind(risk_id)
            .bind(page.after.unwrap_or(Uuid::nil()))
            .bind(page.limit + 1)
            .fetch_all(&mut *conn)
            .await?;
        Ok(Page::from_rows(convert(rows)?, page.limit, |m: &Mitigation| m.id))
    }

    async fn update_mitigation(
        &self,
        org: Uuid,
        id: Uuid,
        edit: Edit<'_, Mitigation>,
    ) -> StoreResult<Mitigation> {
        let mut held = self.writer().acquire_for_write("update_mitigation").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        lock_row(&mut tx, "mitigations", org, id).await?;
        let current = fetch_mitigation(&mut tx, org, id).await?;
        let Some(next) = edit(&current)? else {
            return Ok(current);
        };
        let mut v = Violations::default();
        check_owner(&mut tx, org, next.owner_id, &mut v).await?;
        v.into_result()?;
        sqlx::query(
            "UPDATE mitigations SET title = $3, description = $4, status = $5, owner_id = $6, due_date = $7, \
             progress = $8, cost = $9, version = $10, updated_at = $11, completed_at = $12 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .bind(&next.title)
        .bind(&next.description)
        .bind(next.status.as_str())
        .bind(next.owner_id)
        .bind(next.due_date)
        .bind(next.progress)
        .bind(next.cost)
        .bind(next.version)
        .bind(next.updated_at)
        .bind(next.completed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }

    async fn delete_mitigation(
        &self,
        org: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> StoreResult<Mitigation> {
        let mut held = self.writer().acquire_for_write("delete_mitigation").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        lock_row(&mut tx, "mitigations", org, id).await?;
        let current = fetch_mitigation(&mut tx, org, id).await?;
        if !precondition.holds(&current) {
            return Err(StoreError::PreconditionFailed);
        }
        sqlx::query("DELETE FROM mitigations WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(current)
    }
}

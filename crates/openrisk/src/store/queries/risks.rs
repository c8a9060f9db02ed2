//! The register: risks, their asset links and their history.

use async_trait::async_trait;
use futures_util::StreamExt;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Connection, QueryBuilder};
use uuid::Uuid;

use super::common::{ROWS_PER_INSERT, check_owner, exists};
use super::{BEGIN_WRITE, Backend, Conn, Db, RISK_SELECT, lock_row, push_filters, sort_column};
use crate::domain;
use crate::domain::Precondition;
use crate::domain::list::{Page, PageRequest, RiskFilter, RiskListQuery, Sort, SortValue};
use crate::domain::risk::{HistoryEntry, Risk, RiskFields};
use crate::domain::validation::Violations;
use crate::store::rows::{self, HistoryRow, MitigationRow, RiskRow, convert};
use crate::store::sql::{EXPORT_STALL_LIMIT, MITIGATION_COLUMNS};
use crate::store::{Edit, RegisterRows, RiskStore, RiskStream, StoreError, StoreResult};

pub(super) async fn fetch_risk(conn: &mut Conn, org: Uuid, id: Uuid) -> StoreResult<Risk> {
    let sql = format!("{RISK_SELECT} WHERE r.org_id = $1 AND r.id = $2");
    let row: RiskRow = sqlx::query_as(AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    row.try_into()
}

/// Owner and assets must belong to the organization.
pub(super) async fn check_risk_refs(conn: &mut Conn, org: Uuid, risk: &Risk) -> StoreResult<()> {
    let mut v = Violations::default();
    check_owner(conn, org, risk.owner_id, &mut v).await?;
    for (i, asset) in risk.asset_ids.iter().enumerate() {
        if !exists(&mut *conn, "assets", org, *asset).await? {
            v.add(format!("asset_ids[{i}]"), "no such asset");
        }
    }
    Ok(v.into_result()?)
}

/// Writes risk rows: new ones are inserted, existing ones (same id, same organization)
/// overwritten, so inserts and updates share one column list.
pub(super) async fn write_risk_rows(conn: &mut Conn, org: Uuid, risks: &[Risk]) -> StoreResult<()> {
    for chunk in risks.chunks(ROWS_PER_INSERT) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO risks (id, org_id, ref_number, title, description, category, owner_id, status, \
             likelihood, impact, score, severity, residual_likelihood, residual_impact, residual_score, \
             treatment, tags, review_date, search_text, version, created_at, updated_at, closed_at) ",
        );
        qb.push_values(chunk, |mut row, r| {
            row.push_bind(r.id)
                .push_bind(org)
                .push_bind(rows::ref_number(r))
                .push_bind(&r.title)
                .push_bind(&r.description)
                .push_bind(&r.category)
                .push_bind(r.owner_id)
                .push_bind(r.status.as_str())
                .push_bind(r.likelihood)
                .push_bind(r.impact)
                .push_bind(r.score)
                .push_bind(r.severity.as_str())
                .push_bind(r.residual_likelihood)
                .push_bind(r.residual_impact)
                .push_bind(r.residual_score)
                .push_bind(r.treatment.map(|t| t.as_str()))
                .push_bind(Json(&r.tags))
                .push_bind(r.review_date)
                .push_bind(r.search_text())
                .push_bind(r.version)
                .push_bind(r.created_at)
                .push_bind(r.updated_at)
                .push_bind(r.closed_at);
        });
        qb.push(
            " ON CONFLICT (id) DO UPDATE SET title = excluded.title, description = excluded.description, \
             category = excluded.category, owner_id = excluded.owner_id, status = excluded.status, \
             likelihood = excluded.likelihood, impact = excluded.impact, score = excluded.score, \
             severity = excluded.severity, residual_likelihood = excluded.residual_likelihood, \
             residual_impact = excluded.residual_impact, residual_score = excluded.residual_score, \
             treatment = excluded.treatment, tags = excluded.tags, review_date = excluded.review_date, \
             search_text = excluded.search_text, version = excluded.version, \
             updated_at = excluded.updated_at, closed_at = excluded.closed_at \
             WHERE risks.org_id = excluded.org_id",
        );
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts new risks with their asset links and their `create` history entries.
pub(super) async fn insert_risks(conn: &mut Conn, org: Uuid, actor: Uuid, risks: &[Risk]) -> StoreResult<()> {
    write_risk_rows(conn, org, risks).await?;
    link_assets(conn, risks).await?;
    let entries: Vec<(Uuid, HistoryEntry)> = risks
        .iter()
        .map(|r| (r.id, HistoryEntry::created(r, actor)))
        .collect();
    append_history(conn, org, &entries).await
}

pub(super) async fn link_assets(conn: &mut Conn, risks: &[Risk]) -> StoreResult<()> {
    let links: Vec<(Uuid, Uuid)> = risks
        .iter()
        .flat_map(|r| r.asset_ids.iter().map(|a| (r.id, *a)))
        .collect();
    for chunk in links.chunks(ROWS_PER_INSERT) {
        let mut qb = QueryBuilder::<Db>::new("INSERT INTO risk_assets (risk_id, asset_id) ");
        qb.push_values(chunk, |mut row, (risk, asset)| {
            row.push_bind(*risk).push_bind(*asset);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Appends `(risk id, entry)` pairs to the risks' history.
pub(super) async fn append_history(
    conn: &mut Conn,
    org: Uuid,
    entries: &[(Uuid, HistoryEntry)],
) -> StoreResult<()> {
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO risk_history (org_id, risk_id, version, changed_at, changed_by, change_type, changes, \
             status) ",
        );
        qb.push_values(chunk, |mut row, (risk_id, entry)| {
            row.push_bind(org)
                .push_bind(*risk_id)
                .push_bind(entry.version)
                .push_bind(entry.changed_at)
                .push_bind(entry.changed_by)
                .push_bind(entry.change_type.as_str())
                .push_bind(Json(&entry.changes))
                .push_bind(entry.status.map(|s| s.as_str()));
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores `next` in place of `current` and records the change.
pub(super) async fn write_risk_update(
    conn: &mut Conn,
    org: Uuid,
    actor: Uuid,
    current: &Risk,
    next: &Risk,
) -> StoreResult<()> {
    write_risk_rows(conn, org, std::slice::from_ref(next)).await?;
    if next.asset_ids != current.asset_ids {
        sqlx::query("DELETE FROM risk_assets WHERE risk_id = $1")
            .bind(next.id)
            .execute(&mut *conn)
            .await?;
        link_assets(conn, std::slice::from_ref(next)).await?;
    }
    append_history(
        conn,
        org,
        &[(next.id, HistoryEntry::updated(current, next, actor))],
    )
    .await
}

/// `ORDER BY` the sort key, ties broken by id in the same direction.
pub(super) fn push_order(qb: &mut QueryBuilder<Db>, sort: Sort) {
    let direction = if sort.descending { "DESC" } else { "ASC" };
    qb.push(format!(
        " ORDER BY {} {direction}, r.id {direction}",
        sort_column(sort.key)
    ));
}

#[async_trait]
impl RiskStore for Backend {
    async fn create_risk(&self, org: Uuid, actor: Uuid, fields: RiskFields) -> StoreResult<Risk> {
        let mut held = self.writer().acquire_for_write("create_risk").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        let number: i64 = sqlx::query_scalar(
            "UPDATE organizations SET risk_seq = risk_seq + 1 WHERE id = $1 RETURNING risk_seq",
        )
        .bind(org)
        .fetch_one(&mut *tx)
        .await?;
        let risk = Risk::new(Uuid::now_v7(), number, fields, domain::now());
        check_risk_refs(&mut tx, org, &risk).await?;
        insert_risks(&mut tx, org, actor, std::slice::from_ref(&risk)).await?;
        tx.commit().await?;
        Ok(risk)
    }

    async fn risk(&self, org: Uuid, id: Uuid) -> StoreResult<Risk> {
        let mut conn = self.reader().acquire("risk").await?;
        fetch_risk(&mut conn, org, id).await
    }

    async fn register(&self, org: Uuid, only: Option<Uuid>) -> StoreResult<RegisterRows> {
        // Two statements, not one with `$2 IS NULL`: a generic plan of that would scan the
        // organization's risks for one of them.
        let (risk, mitigation) = match only {
            Some(_) => (" AND r.id = $2", " AND risk_id = $2"),
            None => ("", ""),
        };
        let risks = format!("{RISK_SELECT} WHERE r.org_id = $1{risk}");
        let mitigations =
            format!("SELECT {MITIGATION_COLUMNS} FROM mitigations WHERE org_id = $1{mitigation}");
        let mut conn = self.reader().acquire("register").await?;
        let risks = sqlx::query_as(AssertSqlSafe(risks)).bind(org);
        let risks: Vec<RiskRow> = only
            .into_iter()
            .fold(risks, |q, id| q.bind(id))
            .fetch_all(&mut *conn)
            .await?;
        let mitigations = sqlx::query_as(AssertSqlSafe(mitigations)).bind(org);
        let mitigations: Vec<MitigationRow> = only
            .into_iter()
            .fold(mitigations, |q, id| q.bind(id))
            .fetch_all(&mut *conn)
            .await?;
        Ok(RegisterRows {
            risks: convert(risks)?,
            mitigations: convert(mitigations)?,
        })
    }

    async fn risks(&self, org: Uuid, query: &RiskListQuery) -> StoreResult<Page<Risk>> {
        let column = sort_column(query.sort.key);
        let mut qb = QueryBuilder::<Db>::new(RISK_SELECT);
        push_filters(&mut qb, org, &query.filter);
        if let Some(after) = &query.page.after {
            let op = if query.sort.descending { "<" } else { ">" };
            qb.push(format!(" AND ({column}, r.id) {op} ("));
            match &after.value {
                SortValue::Int(n) => qb.push_bind(*n),
                SortValue::Time(t) => qb.push_bind(*t),
                SortValue::Text(s) => qb.push_bind(s.clone()),
            };
            qb.push(", ").push_bind(after.id).push(")");
        }
        push_order(&mut qb, query.sort);
        qb.push(" LIMIT ").push_bind(query.page.limit + 1);
        // One connection for the page and its total: a second acquire would cost a round trip.
        let mut conn = self.reader().acquire("risks").await?;
        let rows: Vec<RiskRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
        let sort = query.sort;
        let mut page = Page::from_rows(convert(rows)?, query.page.limit, |r: &Risk| sort.cursor_for(r));
        if query.include_total {
            let mut count = QueryBuilder::<Db>::new("SELECT count(*) FROM risks r");
            push_filters(&mut count, org, &query.filter);
            page.total = Some(count.build_query_scalar().fetch_one(&mut *conn).await?);
        }
        Ok(page)
    }

    async fn update_risk(
        &self,
        org: Uuid,
        actor: Uuid,
        id: Uuid,
        edit: Edit<'_, Risk>,
    ) -> StoreResult<(Risk, Risk)> {
        let mut held = self.writer().acquire_for_write("update_risk").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        lock_row(&mut tx, "risks", org, id).await?;
        let current = fetch_risk(&mut tx, org, id).await?;
        let Some(next) = edit(&current)? else {
            return Ok((current.clone(), current));
        };
        check_risk_refs(&mut tx, org, &next).await?;
        write_risk_update(&mut tx, org, actor, &current, &next).await?;
        tx.commit().await?;
        Ok((current, next))
    }

    async fn delete_risk(
        &self,
        org: Uuid,
        actor: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> StoreResult<Risk> {
        let mut held = self.writer().acquire_for_write("delete_risk").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        lock_row(&mut tx, "risks", org, id).await?;
        let current = fetch_risk(&mut tx, org, id).await?;
        if !precondition.holds(&current) {
            return Err(StoreError::PreconditionFailed);
        }
        sqlx::query("DELETE FROM risks WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let entry = HistoryEntry::deleted(&current, actor, domain::now());
        append_history(&mut tx, org, &[(id, entry)]).await?;
        tx.commit().await?;
        Ok(current)
    }

    async fn risk_history(
        &self,
        org: Uuid,
        id: Uuid,
        include_deleted: bool,
        page: &PageRequest<i64>,
    ) -> StoreResult<Page<HistoryEntry>> {
        let mut conn = self.reader().acquire("risk_history").await?;
        let found = if include_deleted {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM risk_history WHERE org_id = $1 AND risk_id = $2)",
            )
            .bind(org)
            .bind(id)
            .fetch_one(&mut *conn)
            .await?
        } else {
            exists(&mut *conn, "risks", org, id).await?
        };
        if !found {
            return Err(StoreError::NotFound);
        }
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT version, changed_at, changed_by, change_type, changes, status FROM risk_history \
             WHERE org_id = $1 AND risk_id = $2 AND version < $3 ORDER BY version DESC LIMIT $4",
        )
        .bind(org)
        .bind(id)
        .bind(page.after.unwrap_or(i64::MAX))
        .bind(page.limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Page::from_rows(convert(rows)?, page.limit, |h: &HistoryEntry| {
            h.version
        }))
    }

    fn export_risks(&self, org: Uuid, filter: RiskFilter, sort: Sort) -> RiskStream {
        // The query runs in its own task and hands rows over a bounded channel: it reads
        // only as fast as the consumer takes them, so memory stays flat. Rows end with `None`
        // only when the query is done, so that a stream cut short ends in an error.
        let pool = self.reader().clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Option<StoreResult<Risk>>>(256);
        tokio::spawn(async move {
            let mut qb = QueryBuilder::<Db>::new(RISK_SELECT);
            push_filters(&mut qb, org, &filter);
            push_order(&mut qb, sort);
            let mut conn = match pool.acquire("export_risks").await {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = tx.send(Some(Err(e.into()))).await;
                    return;
                }
            };
            let mut rows = qb.build_query_as::<RiskRow>().fetch(&mut *conn);
            while let Some(row) = rows.next().await {
                let risk = row.map_err(StoreError::from).and_then(Risk::try_from);
                // A consumer gone, or stalled for too long, releases the connection.
                match tokio::time::timeout(EXPORT_STALL_LIMIT, tx.send(Some(risk))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::warn!(%org, limit = ?EXPORT_STALL_LIMIT, "export stopped: its reader took no row in time");
                        return;
                    }
                }
            }
            let _ = tx.send(None).await;
        });
        Box::pin(futures_util::stream::unfold(Some(rx), |rx| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(Some(risk)) => Some((risk, Some(rx))),
                Some(None) => None,
                None => Some((
                    Err(StoreError::Interrupted("the export stopped before its last row")),
                    None,
                )),
            }
        }))
    }
}

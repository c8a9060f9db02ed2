//! Aggregates for the dashboard and the reports: read from the tables the database's triggers
//! keep (see the `dashboard_aggregates` migration), which a recount can check and rebuild.

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::{AssertSqlSafe, Connection, QueryBuilder};
use uuid::Uuid;

use super::{BEGIN_SNAPSHOT, BEGIN_WRITE, Backend, CLEAR_TABLE, Db, LOCK_REGISTER, RISK_SELECT};
use crate::domain::dashboard::{DailyActivity, DayActivity, MitigationGroup, RiskFigures, RiskGroup};
use crate::domain::mitigation::{Mitigation, MitigationStatus};
use crate::domain::report::OverdueMitigation;
use crate::domain::risk::{Risk, RiskStatus};
use crate::store::rows::{self, OverdueRow, RiskRow, convert};
use crate::store::sql::{AGGREGATES, push_any, sql_list};
use crate::store::{AggregateDrift, ReportStore, StoreResult};

#[async_trait]
impl ReportStore for Backend {
    async fn overdue_mitigations(
        &self,
        org: Uuid,
        today: NaiveDate,
        limit: i64,
    ) -> StoreResult<Vec<OverdueMitigation>> {
        let active: Vec<MitigationStatus> = MitigationStatus::ALL
            .iter()
            .copied()
            .filter(|s| s.is_active())
            .collect();
        let active = sql_list(&active);
        // `status || ''` keeps planners off the (org, status, due date) index, with which
        // they collect and sort every overdue mitigation: walking the due-date index
        // stops after one page.
        let sql = format!(
            "SELECT m.id, m.risk_id, m.title, m.description, m.status, m.owner_id, m.due_date, m.progress, \
             m.cost, m.version, m.created_at, m.updated_at, m.completed_at, \
             r.ref_number, r.title AS risk_title \
             FROM mitigations m JOIN risks r ON r.id = m.risk_id \
             WHERE m.org_id = $1 AND m.status || '' IN ({active}) AND m.due_date < $2 \
             ORDER BY m.due_date, m.id LIMIT $3"
        );
        let rows: Vec<OverdueRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(org)
            .bind(today)
            .bind(limit)
            .fetch_all(&mut *self.reader().acquire("overdue_mitigations").await?)
            .await?;
        rows.into_iter()
            .map(|row| {
                let mitigation = Mitigation::try_from(row.mitigation)?;
                let risk_ref = format!("RSK-{}", row.ref_number);
                Ok(OverdueMitigation::new(
                    mitigation,
                    risk_ref,
                    row.risk_title,
                    today,
                ))
            })
            .collect()
    }

    async fn risk_groups(&self, org: Uuid, today: NaiveDate) -> StoreResult<RiskFigures> {
        // The overdue reviews are the rows without a severity.
        let rows: Vec<(String, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT status, severity, CAST(SUM(count) AS BIGINT), CAST(SUM(score_sum) AS BIGINT) \
             FROM risk_counts WHERE org_id = $1 GROUP BY status, severity HAVING SUM(count) > 0 \
             UNION ALL \
             SELECT status, NULL, CAST(SUM(count) AS BIGINT), 0 \
             FROM risk_review_days WHERE org_id = $1 AND review_date < $2 \
             GROUP BY status HAVING SUM(count) > 0",
        )
        .bind(org)
        .bind(today)
        .fetch_all(&mut *self.reader().acquire("risk_groups").await?)
        .await?;
        let mut figures = RiskFigures::default();
        for (status, severity, count, score_sum) in rows {
            let status = rows::parse("risks.status", &status)?;
            match severity {
                Some(severity) => figures.groups.push(RiskGroup {
                    status,
                    severity: rows::parse("risks.severity", &severity)?,
                    count,
                    score_sum,
                }),
                None => figures.reviews_overdue.push((status, count)),
            }
        }
        Ok(figures)
    }

    async fn mitigation_groups(&self, org: Uuid, today: NaiveDate) -> StoreResult<Vec<MitigationGroup>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, CAST(SUM(count) AS BIGINT), CAST(SUM(due_passed) AS BIGINT) \
             FROM ( \
               SELECT status, count, 0 AS due_passed FROM mitigation_counts WHERE org_id = $1 \
               UNION ALL \
               SELECT status, 0, count FROM mitigation_due_days WHERE org_id = $1 AND due_date < $2 \
             ) AS g GROUP BY status HAVING SUM(count) > 0",
        )
        .bind(org)
        .bind(today)
        .fetch_all(&mut *self.reader().acquire("mitigation_groups").await?)
        .await?;
        rows.into_iter()
            .map(|(status, count, due_passed)| {
                Ok(MitigationGroup {
                    status: rows::parse("mitigations.status", &status)?,
                    count,
                    due_passed,
                })
            })
            .collect()
    }

    async fn risk_matrix(&self, org: Uuid, statuses: &[RiskStatus]) -> StoreResult<Vec<(i32, i32, i64)>> {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT likelihood, impact, CAST(SUM(count) AS BIGINT) FROM risk_counts WHERE org_id = ",
        );
        qb.push_bind(org);
        push_any(
            &mut qb,
            (" AND status IN (", ")"),
            statuses.iter().map(|s| s.as_str().to_owned()),
        );
        qb.push(" GROUP BY likelihood, impact HAVING SUM(count) > 0");
        Ok(qb
            .build_query_as()
            .fetch_all(&mut *self.reader().acquire("risk_matrix").await?)
            .await?)
    }

    async fn daily_activity(&self, org: Uuid, since: NaiveDate) -> StoreResult<DailyActivity> {
        let open = sql_list(RiskStatus::OPEN);
        let open_now = format!(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM risk_counts \
             WHERE org_id = $1 AND status IN ({open})"
        );
        // One snapshot: a write between the two reads must not shift every day's count.
        let mut held = self.reader().acquire("daily_activity").await?;
        let mut tx = held.begin_with(BEGIN_SNAPSHOT).await?;
        let days: Vec<(NaiveDate, i64, i64, i64)> = sqlx::query_as(
            "SELECT day, created, closed, open_change FROM risk_activity_days \
             WHERE org_id = $1 AND day >= $2",
        )
        .bind(org)
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        let open_now = sqlx::query_scalar(AssertSqlSafe(open_now))
            .bind(org)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let days = days
            .into_iter()
            .map(|(day, created, closed, open_change)| DayActivity {
                day,
                created,
                closed,
                open_change,
            })
            .collect();
        Ok(DailyActivity { days, open_now })
    }

    async fn aggregate_drift(&self) -> StoreResult<Vec<AggregateDrift>> {
        let mut conn = self.reader().acquire("aggregate_drift").await?;
        let mut drift = Vec::new();
        for (table, live) in AGGREGATES {
            // Rows a recount would add or change, and rows it would remove.
            let sql = format!(
                "SELECT \
                   (SELECT count(*) FROM (SELECT * FROM {table}_expected \
                      EXCEPT SELECT * FROM {table} WHERE {live}) AS missing), \
                   (SELECT count(*) FROM (SELECT * FROM {table} WHERE {live} \
                      EXCEPT SELECT * FROM {table}_expected) AS extra)"
            );
            let (missing, extra): (i64, i64) =
                sqlx::query_as(AssertSqlSafe(sql)).fetch_one(&mut *conn).await?;
            drift.push(AggregateDrift {
                table,
                missing,
                extra,
            });
        }
        Ok(drift)
    }

    async fn recount_aggregates(&self) -> StoreResult<()> {
        let mut held = self.writer().acquire_for_write("recount_aggregates").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        // No write may change the register between the recount and the commit.
        if let Some(lock) = LOCK_REGISTER {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        for (table, _) in AGGREGATES {
            sqlx::query(AssertSqlSafe(format!("{CLEAR_TABLE} {table}")))
                .execute(&mut *tx)
                .await?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} SELECT * FROM {table}_expected"
            )))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn top_risks(&self, org: Uuid, limit: i64) -> StoreResult<Vec<Risk>> {
        // Each open status's first rows in the order of `risks_org_top` (one index range each,
        // read from its start), merged; then only the winners' wide rows.
        const ORDER: &str = "score DESC, residual_score DESC NULLS LAST, id";
        let mut qb = QueryBuilder::<Db>::new(RISK_SELECT);
        qb.push(" WHERE r.id IN (SELECT id FROM (");
        for (n, status) in RiskStatus::OPEN.iter().enumerate() {
            if n > 0 {
                qb.push(" UNION ALL ");
            }
            qb.push("SELECT * FROM (SELECT id, score, residual_score FROM risks WHERE org_id = ")
                .push_bind(org)
                .push(" AND status = ")
                .push_bind(status.as_str())
                .push(format_args!(" ORDER BY {ORDER} LIMIT "))
                .push_bind(limit)
                .push(format_args!(") AS s{n}"));
        }
        qb.push(format_args!(") AS open_risks ORDER BY {ORDER} LIMIT "))
            .push_bind(limit);
        qb.push(") ORDER BY r.score DESC, r.residual_score DESC NULLS LAST, r.id");
        let rows: Vec<RiskRow> = qb
            .build_query_as()
            .fetch_all(&mut *self.reader().acquire("top_risks").await?)
            .await?;
        convert(rows)
    }
}

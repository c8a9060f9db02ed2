//! Aggregates for the dashboard and the reports, computed by the database.

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::{AssertSqlSafe, Connection, QueryBuilder};
use uuid::Uuid;

use super::{BEGIN_SNAPSHOT, Backend, Db, RISK_SELECT, day_of};
use crate::domain::dashboard::{DailyActivity, DayActivity, MitigationGroup, RiskGroup};
use crate::domain::mitigation::{Mitigation, MitigationStatus};
use crate::domain::report::OverdueMitigation;
use crate::domain::risk::{Risk, RiskStatus};
use crate::store::rows::{self, OverdueRow, RiskRow, convert};
use crate::store::sql::{push_any, sql_list};
use crate::store::{ReportStore, StoreResult};

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
                let days_overdue = mitigation.due_date.map_or(0, |due| (today - due).num_days());
                Ok(OverdueMitigation {
                    mitigation,
                    risk_ref: format!("RSK-{}", row.ref_number),
                    risk_title: row.risk_title,
                    days_overdue,
                })
            })
            .collect()
    }

    async fn risk_groups(&self, org: Uuid, today: NaiveDate) -> StoreResult<Vec<RiskGroup>> {
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT status, severity, count(*), COALESCE(SUM(score), 0), \
             count(*) FILTER (WHERE review_date < $2) \
             FROM risks WHERE org_id = $1 GROUP BY status, severity",
        )
        .bind(org)
        .bind(today)
        .fetch_all(&mut *self.reader().acquire("risk_groups").await?)
        .await?;
        rows.into_iter()
            .map(|(status, severity, count, score_sum, review_overdue)| {
                Ok(RiskGroup {
                    status: rows::parse("risks.status", &status)?,
                    severity: rows::parse("risks.severity", &severity)?,
                    count,
                    score_sum,
                    review_overdue,
                })
            })
            .collect()
    }

    async fn mitigation_groups(&self, org: Uuid, today: NaiveDate) -> StoreResult<Vec<MitigationGroup>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, count(*), count(*) FILTER (WHERE due_date < $2) \
             FROM mitigations WHERE org_id = $1 GROUP BY status",
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
        let mut qb =
            QueryBuilder::<Db>::new("SELECT likelihood, impact, count(*) FROM risks WHERE org_id = ");
        qb.push_bind(org);
        push_any(
            &mut qb,
            (" AND status IN (", ")"),
            statuses.iter().map(|s| s.as_str().to_owned()),
        );
        qb.push(" GROUP BY likelihood, impact");
        Ok(qb
            .build_query_as()
            .fetch_all(&mut *self.reader().acquire("risk_matrix").await?)
            .await?)
    }

    async fn daily_activity(&self, org: Uuid, since: NaiveDate) -> StoreResult<DailyActivity> {
        // Each history entry is compared with the risk's entry before it (versions are
        // consecutive): a creation, a move into `closed`, a move into or out of "open".
        let open = sql_list(RiskStatus::OPEN);
        let closed = sql_list(&[RiskStatus::Closed]);
        let per_day = format!(
            "SELECT {day} AS day, \
               SUM(CASE WHEN h.change_type = 'create' THEN 1 ELSE 0 END), \
               SUM(CASE WHEN h.status IN ({closed}) AND (p.status IS NULL OR p.status NOT IN ({closed})) \
                   THEN 1 ELSE 0 END), \
               SUM(CASE WHEN h.status IN ({open}) THEN 1 ELSE 0 END \
                 - CASE WHEN p.status IN ({open}) THEN 1 ELSE 0 END) \
             FROM risk_history h \
             LEFT JOIN risk_history p ON p.risk_id = h.risk_id AND p.version = h.version - 1 \
             WHERE h.org_id = $1 AND h.changed_at >= $2 GROUP BY 1",
            day = day_of("h.changed_at"),
        );
        let open_now = format!("SELECT count(*) FROM risks WHERE org_id = $1 AND status IN ({open})");
        // One snapshot: a write between the two reads must not shift every day's count.
        let mut held = self.reader().acquire("daily_activity").await?;
        let mut tx = held.begin_with(BEGIN_SNAPSHOT).await?;
        let days: Vec<(NaiveDate, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(per_day))
            .bind(org)
            .bind(since.and_time(chrono::NaiveTime::MIN).and_utc())
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

    async fn top_risks(&self, org: Uuid, limit: i64) -> StoreResult<Vec<Risk>> {
        // Rank from the covering index alone (no wide rows), then read only the winners' rows.
        let mut qb = QueryBuilder::<Db>::new(RISK_SELECT);
        qb.push(" WHERE r.id IN (SELECT id FROM risks WHERE org_id = ")
            .push_bind(org);
        push_any(
            &mut qb,
            (" AND status IN (", ")"),
            RiskStatus::OPEN.iter().map(|s| s.as_str().to_owned()),
        );
        qb.push(" ORDER BY score DESC, residual_score DESC NULLS LAST, id LIMIT ")
            .push_bind(limit);
        qb.push(") ORDER BY r.score DESC, r.residual_score DESC NULLS LAST, r.id");
        let rows: Vec<RiskRow> = qb
            .build_query_as()
            .fetch_all(&mut *self.reader().acquire("top_risks").await?)
            .await?;
        convert(rows)
    }
}

//! Helpers for the SQL both backends share (`queries/`): column lists, list filters, limits.

use std::time::Duration;

use sqlx::{Database, QueryBuilder};
use uuid::Uuid;

use crate::domain::list::RiskFilter;

pub const MITIGATION_COLUMNS: &str = "id, risk_id, title, description, status, owner_id, due_date, \
    progress, cost, version, created_at, updated_at, completed_at";
pub const ASSET_COLUMNS: &str =
    "id, name, kind, criticality, description, tags, version, created_at, updated_at";
pub const USER_COLUMNS: &str = "id, email, name, role, created_at";
pub const INSTALLATION_COLUMNS: &str = "id, connector, enabled, config, created_at, updated_at";
pub const TOKEN_COLUMNS: &str = "id, name, user_id, role, is_system, expires_at, created_at";

/// The aggregate tables the triggers keep, each with its `<table>_expected` view (a recount from
/// the register), and which of its rows count: a count that fell back to zero stays as a row.
pub const AGGREGATES: [(&str, &str); 5] = [
    ("risk_counts", "count <> 0 OR score_sum <> 0"),
    ("risk_review_days", "count <> 0"),
    ("mitigation_counts", "count <> 0"),
    ("mitigation_due_days", "count <> 0"),
    ("risk_activity_days", "true"),
];

/// A pool time limit where 0 means "none".
pub fn non_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// `%q%` for LIKE/ILIKE, with the pattern characters escaped by `\`.
pub fn like_pattern(q: &str) -> String {
    let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// How long an export waits for its client to take the next row before giving up the connection.
pub const EXPORT_STALL_LIMIT: Duration = Duration::from_secs(60);

/// A constant list of values for SQL text: `'a', 'b'` (never for client input, which is bound).
pub fn sql_list<T: std::fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<prefix>v1, v2, …<suffix>` when there are values; nothing otherwise.
pub fn push_any<'a, DB: Database, T>(
    qb: &mut QueryBuilder<DB>,
    (prefix, suffix): (&str, &str),
    values: impl Iterator<Item = T>,
) where
    T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut values = values.peekable();
    if values.peek().is_none() {
        return;
    }
    qb.push(prefix);
    let mut list = qb.separated(", ");
    for v in values {
        list.push_bind(v);
    }
    qb.push(suffix);
}

/// The list's WHERE clause common to both backends: the organization, then the equality
/// filters. Each backend adds tags and text search its own way.
pub fn push_scoped_filters<DB: Database>(qb: &mut QueryBuilder<DB>, org: Uuid, f: &RiskFilter)
where
    Uuid: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    String: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push(" WHERE r.org_id = ").push_bind(org);
    let statuses = f.statuses.iter().map(|s| s.as_str().to_owned());
    push_any(qb, (" AND r.status IN (", ")"), statuses);
    let severities = f.severities.iter().map(|s| s.as_str().to_owned());
    push_any(qb, (" AND r.severity IN (", ")"), severities);
    push_any(qb, (" AND r.category IN (", ")"), f.categories.iter().cloned());
    push_any(qb, (" AND r.owner_id IN (", ")"), f.owner_ids.iter().copied());
}

/// The risk columns every risk query selects from `risks r`, with `$asset_ids`, the dialect's
/// expression for the risk's asset ids as a JSON array in id order.
macro_rules! risk_select {
    ($asset_ids:literal) => {
        concat!(
            "SELECT r.id, r.ref_number, r.title, r.description, r.category, r.owner_id, r.status, ",
            "r.likelihood, r.impact, r.score, r.severity, r.residual_likelihood, r.residual_impact, ",
            "r.residual_score, r.treatment, r.tags, ",
            $asset_ids,
            " AS asset_ids, r.review_date, ",
            "(SELECT count(*) FROM mitigations m WHERE m.risk_id = r.id) AS mitigation_count, ",
            "r.version, r.created_at, r.updated_at, r.closed_at FROM risks r"
        )
    };
}
pub(crate) use risk_select;

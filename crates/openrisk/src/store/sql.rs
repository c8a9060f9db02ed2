//! The SQL both backends share. Their SQL is the same text (`$N` parameters work on both), so one
//! implementation, stamped out per backend by `sql_store!`, serves both; each backend module
//! supplies only what differs: its pools, `RISK_SELECT`, `push_filters`, `sort_column` and
//! `lock_row`.

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

/// Implements `Store` for `$store` over database `$db`: reads go to pool `self.$read`, writes
/// to `self.$write`.
macro_rules! sql_store {
    (store: $store:ident, db: $db:ident, conn: $conn:ident, read: $read:ident, write: $write:ident, name: $name:literal) => {
        /// The shared implementation, instantiated for this backend.
        mod shared {
            use super::{$conn, $db, $store};
            use async_trait::async_trait;
            use chrono::{DateTime, NaiveDate, Utc};
            use sqlx::types::Json;
            use sqlx::{AssertSqlSafe, Connection, QueryBuilder};
            use uuid::Uuid;

            use super::{ANALYZE, BEGIN_SNAPSHOT, BEGIN_WRITE, RISK_SELECT, day_of, lock_row, push_filters, sort_column};
            use crate::domain;
            use crate::domain::Precondition;
            use crate::domain::asset::{Asset, AssetFields};
            use crate::domain::auth::{Principal, Role};
            use crate::domain::dashboard::{DailyActivity, DayActivity, MitigationGroup, RiskGroup};
            use crate::domain::list::{Page, PageRequest, RiskFilter, RiskListQuery, Sort, SortValue};
            use crate::domain::mitigation::MitigationStatus;
            use crate::domain::report::OverdueMitigation;
            use futures_util::StreamExt;
            use crate::domain::marketplace::Installation;
            use crate::domain::mitigation::{Mitigation, MitigationFields};
            use crate::domain::org::{ApiToken, Organization, OrganizationDraft, TokenDraft, User, UserDraft};
            use crate::domain::risk::{HistoryEntry, Risk, RiskFields, RiskStatus};
            use crate::domain::validation::Violations;
            use crate::store::rows::{
                self, HistoryRow, InstallationRow, MitigationRow, OverdueRow, OrganizationRow, PrincipalRow, RiskRow, TokenRow, UserRow,
                convert,
            };
            use crate::store::sql::{
                ASSET_COLUMNS, EXPORT_STALL_LIMIT, INSTALLATION_COLUMNS, MITIGATION_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS,
                push_any, sql_list,
            };
            use crate::store::{Edit, PoolStatus, RiskStream, SeedBatch, Store, StoreError, StoreResult, TokenGrant};

            /// Whether `table` holds row `id` of organization `org`.
            async fn exists<'c>(
                conn: impl sqlx::Executor<'c, Database = $db>,
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

            async fn fetch_risk(conn: &mut $conn, org: Uuid, id: Uuid) -> StoreResult<Risk> {
                let sql = format!("{RISK_SELECT} WHERE r.org_id = $1 AND r.id = $2");
                let row: RiskRow = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(org)
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
                row.try_into()
            }

            /// Owner and assets must belong to the organization.
            async fn check_risk_refs(conn: &mut $conn, org: Uuid, risk: &Risk) -> StoreResult<()> {
                let mut v = Violations::default();
                check_owner(conn, org, risk.owner_id, &mut v).await?;
                for (i, asset) in risk.asset_ids.iter().enumerate() {
                    if !exists(&mut *conn, "assets", org, *asset).await? {
                        v.add(format!("asset_ids[{i}]"), "no such asset");
                    }
                }
                Ok(v.into_result()?)
            }

            async fn check_owner(
                conn: &mut $conn,
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
            const ROWS_PER_INSERT: usize = 1_000;

            /// Writes risk rows: new ones are inserted, existing ones (same id, same organization)
            /// overwritten, so inserts and updates share one column list.
            async fn write_risk_rows(conn: &mut $conn, org: Uuid, risks: &[Risk]) -> StoreResult<()> {
                for chunk in risks.chunks(ROWS_PER_INSERT) {
                    let mut qb = QueryBuilder::<$db>::new(
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
            async fn insert_risks(conn: &mut $conn, org: Uuid, actor: Uuid, risks: &[Risk]) -> StoreResult<()> {
                write_risk_rows(conn, org, risks).await?;
                link_assets(conn, risks).await?;
                let entries: Vec<(Uuid, HistoryEntry)> =
                    risks.iter().map(|r| (r.id, HistoryEntry::created(r, actor))).collect();
                append_history(conn, org, &entries).await
            }

            async fn link_assets(conn: &mut $conn, risks: &[Risk]) -> StoreResult<()> {
                let links: Vec<(Uuid, Uuid)> =
                    risks.iter().flat_map(|r| r.asset_ids.iter().map(|a| (r.id, *a))).collect();
                for chunk in links.chunks(ROWS_PER_INSERT) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO risk_assets (risk_id, asset_id) ");
                    qb.push_values(chunk, |mut row, (risk, asset)| {
                        row.push_bind(*risk).push_bind(*asset);
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Appends `(risk id, entry)` pairs to the risks' history.
            async fn append_history(conn: &mut $conn, org: Uuid, entries: &[(Uuid, HistoryEntry)]) -> StoreResult<()> {
                for chunk in entries.chunks(ROWS_PER_INSERT) {
                    let mut qb = QueryBuilder::<$db>::new(
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
            async fn write_risk_update(
                conn: &mut $conn,
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
                append_history(conn, org, &[(next.id, HistoryEntry::updated(current, next, actor))]).await
            }

            async fn insert_mitigations(conn: &mut $conn, org: Uuid, mitigations: &[Mitigation]) -> StoreResult<()> {
                for chunk in mitigations.chunks(ROWS_PER_INSERT) {
                    let mut qb = QueryBuilder::<$db>::new(
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

            async fn insert_assets(conn: &mut $conn, org: Uuid, assets: &[Asset]) -> StoreResult<()> {
                for chunk in assets.chunks(ROWS_PER_INSERT) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO assets (id, org_id, name, kind, criticality, description, tags, version, \
                         created_at, updated_at) ",
                    );
                    qb.push_values(chunk, |mut row, a| {
                        row.push_bind(a.id)
                            .push_bind(org)
                            .push_bind(&a.name)
                            .push_bind(a.kind.as_str())
                            .push_bind(a.criticality.as_str())
                            .push_bind(&a.description)
                            .push_bind(Json(&a.tags))
                            .push_bind(a.version)
                            .push_bind(a.created_at)
                            .push_bind(a.updated_at);
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// `ORDER BY` the sort key, ties broken by id in the same direction.
            fn push_order(qb: &mut QueryBuilder<$db>, sort: Sort) {
                let direction = if sort.descending { "DESC" } else { "ASC" };
                qb.push(format!(" ORDER BY {} {direction}, r.id {direction}", sort_column(sort.key)));
            }

            /// One page of the organization's rows of `table`, in id order (ids are UUIDv7, so this
            /// is creation order); `also` adds conditions.
            async fn page_by_id<'c, R, T>(
                conn: impl sqlx::Executor<'c, Database = $db>,
                (table, columns, also): (&str, &str, &str),
                org: Uuid,
                page: &PageRequest<Uuid>,
                id: impl Fn(&T) -> Uuid,
            ) -> StoreResult<Page<T>>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                T: TryFrom<R, Error = StoreError>,
            {
                let sql = format!("SELECT {columns} FROM {table} WHERE org_id = $1 {also} AND id > $2 ORDER BY id LIMIT $3");
                let rows: Vec<R> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(org)
                    .bind(page.after.unwrap_or(Uuid::nil()))
                    .bind(page.limit + 1)
                    .fetch_all(conn)
                    .await?;
                Ok(Page::from_rows(convert(rows)?, page.limit, id))
            }

            /// Row `id` of the organization's `table`, as a domain value.
            async fn fetch_by_id<'c, R, T>(
                conn: impl sqlx::Executor<'c, Database = $db>,
                (table, columns): (&str, &str),
                org: Uuid,
                id: Uuid,
            ) -> StoreResult<T>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                T: TryFrom<R, Error = StoreError>,
            {
                let sql = format!("SELECT {columns} FROM {table} WHERE org_id = $1 AND id = $2");
                let row: R = sqlx::query_as(AssertSqlSafe(sql)).bind(org).bind(id).fetch_one(conn).await?;
                row.try_into()
            }

            async fn fetch_mitigation(conn: &mut $conn, org: Uuid, id: Uuid) -> StoreResult<Mitigation> {
                fetch_by_id::<MitigationRow, _>(conn, ("mitigations", MITIGATION_COLUMNS), org, id).await
            }

            async fn fetch_asset(conn: &mut $conn, org: Uuid, id: Uuid) -> StoreResult<Asset> {
                fetch_by_id::<rows::AssetRow, _>(conn, ("assets", ASSET_COLUMNS), org, id).await
            }

            async fn insert_user(conn: &mut $conn, org: Uuid, user: &User) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO users (id, org_id, email, name, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user.id)
                .bind(org)
                .bind(&user.email)
                .bind(&user.name)
                .bind(user.role.as_str())
                .bind(user.created_at)
                .execute(&mut *conn)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!("a user with email {} exists", user.email)),
                    e => e,
                })?;
                Ok(())
            }

            async fn insert_token(
                conn: &mut $conn,
                org: Uuid,
                token: &ApiToken,
                hash: &[u8],
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_tokens (id, org_id, user_id, name, role, is_system, token_hash, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(token.id)
                .bind(org)
                .bind(token.user_id)
                .bind(&token.name)
                .bind(token.role.as_str())
                .bind(token.system)
                .bind(hash)
                .bind(token.expires_at)
                .bind(token.created_at)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            #[async_trait]
            impl Store for $store {
                fn backend(&self) -> &'static str {
                    $name
                }

                fn pool_status(&self) -> PoolStatus {
                    self.pool_status()
                }

                async fn ping(&self) -> StoreResult<()> {
                    sqlx::query("SELECT 1").execute(&mut *self.$read.acquire("ping").await?).await?;
                    Ok(())
                }

                async fn organization_count(&self) -> StoreResult<i64> {
                    Ok(sqlx::query_scalar("SELECT count(*) FROM organizations")
                        .fetch_one(&mut *self.$read.acquire("organization_count").await?)
                        .await?)
                }

                async fn create_organization(
                    &self,
                    draft: &OrganizationDraft,
                    grant: &TokenGrant,
                ) -> StoreResult<(Organization, User, ApiToken)> {
                    let now = domain::now();
                    let org = Organization {
                        id: Uuid::now_v7(),
                        slug: draft.slug.clone(),
                        name: draft.name.clone(),
                        created_at: now,
                    };
                    let user = User {
                        id: Uuid::now_v7(),
                        email: draft.admin_email.clone(),
                        name: "Administrator".into(),
                        role: Role::Admin,
                        created_at: now,
                    };
                    let token = ApiToken {
                        id: Uuid::now_v7(),
                        name: grant.name.clone(),
                        user_id: user.id,
                        role: grant.role,
                        system: grant.system,
                        expires_at: grant.expires_at,
                        created_at: now,
                    };
                    let mut held = self.$write.acquire("create_organization").await?;
                    let mut tx = held.begin_with(BEGIN_WRITE).await?;
                    sqlx::query("INSERT INTO organizations (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(org.id)
                        .bind(&org.slug)
                        .bind(&org.name)
                        .bind(org.created_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| match StoreError::from(e) {
                            StoreError::Conflict(_) => StoreError::Conflict(format!("organization {} exists", org.slug)),
                            e => e,
                        })?;
                    insert_user(&mut tx, org.id, &user).await?;
                    insert_token(&mut tx, org.id, &token, &grant.hash).await?;
                    tx.commit().await?;
                    Ok((org, user, token))
                }

                async fn organization(&self, id: Uuid) -> StoreResult<Organization> {
                    let row: OrganizationRow =
                        sqlx::query_as("SELECT id, slug, name, created_at FROM organizations WHERE id = $1")
                            .bind(id)
                            .fetch_one(&mut *self.$read.acquire("organization").await?)
                            .await?;
                    Ok(row.into())
                }

                async fn organization_by_slug(&self, slug: &str) -> StoreResult<Organization> {
                    let row: OrganizationRow =
                        sqlx::query_as("SELECT id, slug, name, created_at FROM organizations WHERE slug = $1")
                            .bind(slug)
                            .fetch_one(&mut *self.$read.acquire("organization_by_slug").await?)
                            .await?;
                    Ok(row.into())
                }

                async fn authenticate(&self, token_hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Principal>> {
                    let row: Option<PrincipalRow> = sqlx::query_as(
                        "SELECT t.id AS token_id, t.org_id, t.user_id, t.role AS token_role, u.role AS user_role, t.is_system, t.expires_at \
                         FROM api_tokens t JOIN users u ON u.id = t.user_id \
                         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)",
                    )
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(&mut *self.$read.acquire("authenticate").await?)
                    .await?;
                    row.map(Principal::try_from).transpose()
                }

                async fn user(&self, org: Uuid, id: Uuid) -> StoreResult<User> {
                    fetch_by_id::<UserRow, _>(&mut *self.$read.acquire("user").await?, ("users", USER_COLUMNS), org, id).await
                }

                async fn users(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<User>> {
                    page_by_id::<UserRow, _>(&mut *self.$read.acquire("users").await?, ("users", USER_COLUMNS, ""), org, page, |u: &User| u.id).await
                }

                async fn create_user(&self, org: Uuid, draft: &UserDraft) -> StoreResult<User> {
                    let user = User {
                        id: Uuid::now_v7(),
                        email: draft.email.clone(),
                        name: draft.name.clone(),
                        role: draft.role,
                        created_at: domain::now(),
                    };
                    let mut conn = self.$write.acquire("create_user").await?;
                    insert_user(&mut conn, org, &user).await?;
                    Ok(user)
                }

                async fn create_token(
                    &self,
                    org: Uuid,
                    user_id: Uuid,
                    draft: &TokenDraft,
                    hash: Vec<u8>,
                ) -> StoreResult<ApiToken> {
                    let mut held = self.$write.acquire("create_token").await?;
                    let mut tx = held.begin_with(BEGIN_WRITE).await?;
                    let user: User = match fetch_by_id::<UserRow, _>(&mut *tx, ("users", USER_COLUMNS), org, user_id).await {
                        Err(StoreError::NotFound) => return Err(Violations::single("user_id", "no such user").into()),
                        user => user?,
                    };
                    let token = draft.issue(&user, domain::now())?;
                    insert_token(&mut tx, org, &token, &hash).await?;
                    tx.commit().await?;
                    Ok(token)
                }

                async fn tokens(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<ApiToken>> {
                    let live = ("api_tokens", TOKEN_COLUMNS, "AND revoked_at IS NULL");
                    page_by_id::<TokenRow, _>(&mut *self.$read.acquire("tokens").await?, live, org, page, |t: &ApiToken| t.id).await
                }

                async fn revoke_token(&self, org: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
                    let done = sqlx::query(
                        "UPDATE api_tokens SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *self.$write.acquire("revoke_token").await?)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                async fn create_risk(&self, org: Uuid, actor: Uuid, fields: RiskFields) -> StoreResult<Risk> {
                    let mut held = self.$write.acquire("create_risk").await?;
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
                    let mut conn = self.$read.acquire("risk").await?;
                    fetch_risk(&mut conn, org, id).await
                }

                async fn risks(&self, org: Uuid, query: &RiskListQuery) -> StoreResult<Page<Risk>> {
                    let column = sort_column(query.sort.key);
                    let mut qb = QueryBuilder::<$db>::new(RISK_SELECT);
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
                    let rows: Vec<RiskRow> = qb.build_query_as().fetch_all(&mut *self.$read.acquire("risks").await?).await?;
                    let sort = query.sort;
                    let mut page = Page::from_rows(convert(rows)?, query.page.limit, |r: &Risk| sort.cursor_for(r));
                    if query.include_total {
                        let mut count = QueryBuilder::<$db>::new("SELECT count(*) FROM risks r");
                        push_filters(&mut count, org, &query.filter);
                        page.total = Some(count.build_query_scalar().fetch_one(&mut *self.$read.acquire("risks").await?).await?);
                    }
                    Ok(page)
                }

                async fn update_risk(&self, org: Uuid, actor: Uuid, id: Uuid, edit: Edit<'_, Risk>) -> StoreResult<Risk> {
                    let mut held = self.$write.acquire("update_risk").await?;
                    let mut tx = held.begin_with(BEGIN_WRITE).await?;
                    lock_row(&mut tx, "risks", org, id).await?;
                    let current = fetch_risk(&mut tx, org, id).await?;
                    let Some(next) = edit(&current)? else {
                        return Ok(current);
                    };
                    check_risk_refs(&mut tx, org, &next).await?;
                    write_risk_update(&mut tx, org, actor, &current, &next).await?;
                    tx.commit().await?;
                    Ok(next)
                }

                async fn delete_risk(
                    &self,
                    org: Uuid,
                    actor: Uuid,
                    id: Uuid,
                    precondition: &Precondition,
                ) -> StoreResult<()> {
                    let mut held = self.$write.acquire("delete_risk").await?;
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
                    Ok(())
                }

                async fn risk_history(
                    &self,
                    org: Uuid,
                    id: Uuid,
                    include_deleted: bool,
                    page: &PageRequest<i64>,
                ) -> StoreResult<Page<HistoryEntry>> {
                    let found = if include_deleted {
                        sqlx::query_scalar(
                            "SELECT EXISTS (SELECT 1 FROM risk_history WHERE org_id = $1 AND risk_id = $2)",
                        )
                        .bind(org)
                        .bind(id)
                        .fetch_one(&mut *self.$read.acquire("risk_history").await?)
                        .await?
                    } else {
                        exists(&mut *self.$read.acquire("risk_history").await?, "risks", org, id).await?
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
                    .fetch_all(&mut *self.$read.acquire("risk_history").await?)
                    .await?;
                    Ok(Page::from_rows(convert(rows)?, page.limit, |h: &HistoryEntry| {
                        h.version
                    }))
                }

                async fn create_mitigation(
                    &self,
                    org: Uuid,
                    risk_id: Uuid,
                    fields: MitigationFields,
                ) -> StoreResult<Mitigation> {
                    let mut held = self.$write.acquire("create_mitigation").await?;
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
                    let mut conn = self.$read.acquire("mitigation").await?;
                    fetch_mitigation(&mut conn, org, id).await
                }

                async fn mitigations(
                    &self,
                    org: Uuid,
                    risk_id: Uuid,
                    page: &PageRequest<Uuid>,
                ) -> StoreResult<Page<Mitigation>> {
                    if !exists(&mut *self.$read.acquire("mitigations").await?, "risks", org, risk_id).await? {
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
                        .fetch_all(&mut *self.$read.acquire("mitigations").await?)
                        .await?;
                    Ok(Page::from_rows(convert(rows)?, page.limit, |m: &Mitigation| m.id))
                }

                async fn update_mitigation(
                    &self,
                    org: Uuid,
                    id: Uuid,
                    edit: Edit<'_, Mitigation>,
                ) -> StoreResult<Mitigation> {
                    let mut held = self.$write.acquire("update_mitigation").await?;
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

                async fn delete_mitigation(&self, org: Uuid, id: Uuid, precondition: &Precondition) -> StoreResult<()> {
                    let mut held = self.$write.acquire("delete_mitigation").await?;
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
                    Ok(())
                }

                async fn create_asset(&self, org: Uuid, fields: AssetFields) -> StoreResult<Asset> {
                    let asset = Asset::new(Uuid::now_v7(), fields, domain::now());
                    let mut conn = self.$write.acquire("create_asset").await?;
                    insert_assets(&mut conn, org, std::slice::from_ref(&asset)).await?;
                    Ok(asset)
                }

                async fn asset(&self, org: Uuid, id: Uuid) -> StoreResult<Asset> {
                    let mut conn = self.$read.acquire("asset").await?;
                    fetch_asset(&mut conn, org, id).await
                }

                async fn assets(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Asset>> {
                    page_by_id::<rows::AssetRow, _>(&mut *self.$read.acquire("assets").await?, ("assets", ASSET_COLUMNS, ""), org, page, |a: &Asset| a.id)
                        .await
                }

                async fn update_asset(&self, org: Uuid, id: Uuid, edit: Edit<'_, Asset>) -> StoreResult<Asset> {
                    let mut held = self.$write.acquire("update_asset").await?;
                    let mut tx = held.begin_with(BEGIN_WRITE).await?;
                    lock_row(&mut tx, "assets", org, id).await?;
                    let current = fetch_asset(&mut tx, org, id).await?;
                    let Some(next) = edit(&current)? else {
                        return Ok(current);
                    };
                    sqlx::query(
                        "UPDATE assets SET name = $3, kind = $4, criticality = $5, description = $6, tags = $7, \
                         version = $8, updated_at = $9 WHERE org_id = $1 AND id = $2",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(&next.name)
                    .bind(next.kind.as_str())
                    .bind(next.criticality.as_str())
                    .bind(&next.description)
                    .bind(Json(&next.tags))
                    .bind(next.version)
                    .bind(next.updated_at)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(next)
                }

                async fn delete_asset(
                    &self,
                    org: Uuid,
                    actor: Uuid,
                    id: Uuid,
                    precondition: &Precondition,
                ) -> StoreResult<()> {
                    let mut held = self.$write.acquire("delete_asset").await?;
                    let mut tx = held.begin_with(BEGIN_WRITE).await?;
                    lock_row(&mut tx, "assets", org, id).await?;
                    let current = fetch_asset(&mut tx, org, id).await?;
                    if !precondition.holds(&current) {
                        return Err(StoreError::PreconditionFailed);
                    }
                    // Unlinking changes each linked risk: a new version with its history entry.
                    let linked: Vec<Uuid> = sqlx::query_scalar("SELECT risk_id FROM risk_assets WHERE asset_id = $1")
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?;
                    let now = domain::now();
                    for risk_id in linked {
                        lock_row(&mut tx, "risks", org, risk_id).await?;
                        let risk = fetch_risk(&mut tx, org, risk_id).await?;
                        let mut fields = risk.fields();
                        fields.asset_ids.retain(|a| *a != id);
                        if let Some(next) = risk.updated(fields, now) {
                            write_risk_update(&mut tx, org, actor, &risk, &next).await?;
                        }
                    }
                    sqlx::query("DELETE FROM assets WHERE org_id = $1 AND id = $2")
                        .bind(org)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn create_installation(&self, org: Uuid, i: &Installation) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO installations (id, org_id, connector, enabled, config, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(i.id)
                    .bind(org)
                    .bind(&i.connector)
                    .bind(i.enabled)
                    .bind(Json(&i.config))
                    .bind(i.created_at)
                    .bind(i.updated_at)
                    .execute(&mut *self.$write.acquire("create_installation").await?)
                    .await
                    .map_err(|e| match StoreError::from(e) {
                        StoreError::Conflict(_) => {
                            StoreError::Conflict(format!("{} is already installed", i.connector))
                        }
                        e => e,
                    })?;
                    Ok(())
                }

                async fn installation(&self, org: Uuid, id: Uuid) -> StoreResult<Installation> {
                    fetch_by_id::<InstallationRow, _>(&mut *self.$read.acquire("installation").await?, ("installations", INSTALLATION_COLUMNS), org, id).await
                }

                async fn installations(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Installation>> {
                    let table = ("installations", INSTALLATION_COLUMNS, "");
                    page_by_id::<InstallationRow, _>(&mut *self.$read.acquire("installations").await?, table, org, page, |i: &Installation| i.id).await
                }

                async fn update_installation(
                    &self,
                    org: Uuid,
                    id: Uuid,
                    edit: Edit<'_, Installation>,
                ) -> StoreResult<Installation> {
                    let mut held = self.$write.acquire("update_installation").await?;
                    let mut tx = held.begin_with(BEGIN_WRITE).await?;
                    lock_row(&mut tx, "installations", org, id).await?;
                    let current: Installation =
                        fetch_by_id::<InstallationRow, _>(&mut *tx, ("installations", INSTALLATION_COLUMNS), org, id).await?;
                    let Some(next) = edit(&current)? else {
                        return Ok(current);
                    };
                    sqlx::query(
                        "UPDATE installations SET enabled = $3, config = $4, updated_at = $5 WHERE org_id = $1 AND id = $2",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(next.enabled)
                    .bind(Json(&next.config))
                    .bind(next.updated_at)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(next)
                }

                async fn delete_installation(&self, org: Uuid, id: Uuid) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM installations WHERE org_id = $1 AND id = $2")
                        .bind(org)
                        .bind(id)
                        .execute(&mut *self.$write.acquire("delete_installation").await?)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                fn export_risks(&self, org: Uuid, filter: RiskFilter, sort: Sort) -> RiskStream {
                    // The query runs in its own task and hands rows over a bounded channel: it reads
                    // only as fast as the consumer takes them, so memory stays flat.
                    let pool = self.$read.clone();
                    let (tx, rx) = tokio::sync::mpsc::channel::<StoreResult<Risk>>(256);
                    tokio::spawn(async move {
                        let mut qb = QueryBuilder::<$db>::new(RISK_SELECT);
                        push_filters(&mut qb, org, &filter);
                        push_order(&mut qb, sort);
                        let mut conn = match pool.acquire("export_risks").await {
                            Ok(conn) => conn,
                            Err(e) => {
                                let _ = tx.send(Err(e.into())).await;
                                return;
                            }
                        };
                        let mut rows = qb.build_query_as::<RiskRow>().fetch(&mut *conn);
                        while let Some(row) = rows.next().await {
                            let risk = row.map_err(StoreError::from).and_then(Risk::try_from);
                            // A client gone, or stalled for too long, releases the connection.
                            match tokio::time::timeout(EXPORT_STALL_LIMIT, tx.send(risk)).await {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) | Err(_) => break,
                            }
                        }
                    });
                    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|risk| (risk, rx))
                    }))
                }

                async fn overdue_mitigations(
                    &self,
                    org: Uuid,
                    today: NaiveDate,
                    limit: i64,
                ) -> StoreResult<Vec<OverdueMitigation>> {
                    let active: Vec<MitigationStatus> =
                        MitigationStatus::ALL.iter().copied().filter(|s| s.is_active()).collect();
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
                        .fetch_all(&mut *self.$read.acquire("overdue_mitigations").await?)
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
                    .fetch_all(&mut *self.$read.acquire("risk_groups").await?)
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
                    .fetch_all(&mut *self.$read.acquire("mitigation_groups").await?)
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
                    let mut qb = QueryBuilder::<$db>::new("SELECT likelihood, impact, count(*) FROM risks WHERE org_id = ");
                    qb.push_bind(org);
                    push_any(&mut qb, (" AND status IN (", ")"), statuses.iter().map(|s| s.as_str().to_owned()));
                    qb.push(" GROUP BY likelihood, impact");
                    Ok(qb.build_query_as().fetch_all(&mut *self.$read.acquire("risk_matrix").await?).await?)
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
                    let mut held = self.$read.acquire("daily_activity").await?;
                    let mut tx = held.begin_with(BEGIN_SNAPSHOT).await?;
                    let days: Vec<(NaiveDate, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(per_day))
                        .bind(org)
                        .bind(since.and_time(chrono::NaiveTime::MIN).and_utc())
                        .fetch_all(&mut *tx)
                        .await?;
                    let open_now = sqlx::query_scalar(AssertSqlSafe(open_now)).bind(org).fetch_one(&mut *tx).await?;
                    tx.commit().await?;
                    let days = days
                        .into_iter()
                        .map(|(day, created, closed, open_change)| DayActivity { day, created, closed, open_change })
                        .collect();
                    Ok(DailyActivity { days, open_now })
                }

                async fn top_risks(&self, org: Uuid, limit: i64) -> StoreResult<Vec<Risk>> {
                    // Rank from the covering index alone (no wide rows), then read only the winners' rows.
                    let mut qb = QueryBuilder::<$db>::new(RISK_SELECT);
                    qb.push(" WHERE r.id IN (SELECT id FROM risks WHERE org_id = ").push_bind(org);
                    push_any(&mut qb, (" AND status IN (", ")"), RiskStatus::OPEN.iter().map(|s| s.as_str().to_owned()));
                    qb.push(" ORDER BY score DESC, residual_score DESC NULLS LAST, id LIMIT ").push_bind(limit);
                    qb.push(") ORDER BY r.score DESC, r.residual_score DESC NULLS LAST, r.id");
                    let rows: Vec<RiskRow> = qb.build_query_as().fetch_all(&mut *self.$read.acquire("top_risks").await?).await?;
                    convert(rows)
                }

                async fn analyze(&self) -> StoreResult<()> {
                    sqlx::query(ANALYZE).execute(&mut *self.$write.acquire("analyze").await?).await?;
                    Ok(())
                }

                async fn reserve_risk_numbers(&self, org: Uuid, count: i64) -> StoreResult<i64> {
                    let last: i64 = sqlx::query_scalar(
                        "UPDATE organizations SET risk_seq = risk_seq + $2 WHERE id = $1 RETURNING risk_seq",
                    )
                    .bind(org)
                    .bind(count)
                    .fetch_one(&mut *self.$write.acquire("reserve_risk_numbers").await?)
                    .await?;
                    Ok(last - count + 1)
                }

                async fn insert_seed(&self, org: Uuid, actor: Uuid, batch: &SeedBatch) -> StoreResult<()> {
                    let mut held = self.$write.acquire("insert_seed").await?;
                    let mut tx = held.begin_with(BEGIN_WRITE).await?;
                    insert_assets(&mut tx, org, &batch.assets).await?;
                    insert_risks(&mut tx, org, actor, &batch.risks).await?;
                    insert_mitigations(&mut tx, org, &batch.mitigations).await?;
                    tx.commit().await?;
                    Ok(())
                }
            }
        }
    };
}
pub(crate) use sql_store;

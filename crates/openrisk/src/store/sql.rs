//! The SQL both backends share. Their SQL is the same text (`$N` parameters work on both), so one
//! implementation, stamped out per backend by `sql_store!`, serves both; each backend module
//! supplies only what differs: its pools, `RISK_SELECT`, `push_filters`, `sort_column` and
//! `lock_row`.

use std::time::Duration;

use sqlx::{Database, QueryBuilder};

pub const MITIGATION_COLUMNS: &str = "id, risk_id, title, description, status, owner_id, due_date, \
    progress, cost, version, created_at, updated_at, completed_at";
pub const ASSET_COLUMNS: &str =
    "id, name, kind, criticality, description, tags, version, created_at, updated_at";
pub const USER_COLUMNS: &str = "id, email, name, role, created_at";
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

/// Implements `Store` for `$store` over database `$db`: reads go to pool `self.$read`, writes
/// to `self.$write`.
macro_rules! sql_store {
    (store: $store:ident, db: $db:ident, conn: $conn:ident, read: $read:ident, write: $write:ident, name: $name:literal) => {
        /// The shared implementation, instantiated for this backend.
        mod shared {
            use super::{$conn, $db, $store};
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::types::Json;
            use sqlx::{AssertSqlSafe, QueryBuilder};
            use uuid::Uuid;

            use super::{RISK_SELECT, lock_row, push_filters, sort_column};
            use crate::domain;
            use crate::domain::Precondition;
            use crate::domain::asset::{Asset, AssetFields};
            use crate::domain::auth::{Principal, Role};
            use crate::domain::list::{Page, PageRequest, RiskListQuery, SortValue};
            use crate::domain::mitigation::{Mitigation, MitigationFields};
            use crate::domain::org::{ApiToken, Organization, OrganizationDraft, TokenDraft, User, UserDraft};
            use crate::domain::risk::{HistoryEntry, Risk, RiskFields};
            use crate::domain::validation::Violations;
            use crate::store::rows::{
                self, HistoryRow, MitigationRow, OrganizationRow, PrincipalRow, RiskRow, TokenRow, UserRow,
                convert,
            };
            use crate::store::sql::{ASSET_COLUMNS, MITIGATION_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS};
            use crate::store::{Edit, SeedBatch, Store, StoreError, StoreResult, TokenGrant};

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

            async fn insert_risk(conn: &mut $conn, org: Uuid, risk: &Risk) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO risks (id, org_id, ref_number, title, description, category, owner_id, status, \
                     likelihood, impact, score, severity, residual_likelihood, residual_impact, residual_score, \
                     treatment, tags, review_date, search_text, version, created_at, updated_at, closed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                     $20, $21, $22, $23)",
                )
                .bind(risk.id)
                .bind(org)
                .bind(rows::ref_number(risk))
                .bind(&risk.title)
                .bind(&risk.description)
                .bind(&risk.category)
                .bind(risk.owner_id)
                .bind(risk.status.as_str())
                .bind(risk.likelihood)
                .bind(risk.impact)
                .bind(risk.score)
                .bind(risk.severity.as_str())
                .bind(risk.residual_likelihood)
                .bind(risk.residual_impact)
                .bind(risk.residual_score)
                .bind(risk.treatment.map(|t| t.as_str()))
                .bind(Json(&risk.tags))
                .bind(risk.review_date)
                .bind(risk.search_text())
                .bind(risk.version)
                .bind(risk.created_at)
                .bind(risk.updated_at)
                .bind(risk.closed_at)
                .execute(&mut *conn)
                .await?;
                link_assets(conn, risk).await
            }

            async fn link_assets(conn: &mut $conn, risk: &Risk) -> StoreResult<()> {
                for asset in &risk.asset_ids {
                    sqlx::query("INSERT INTO risk_assets (risk_id, asset_id) VALUES ($1, $2)")
                        .bind(risk.id)
                        .bind(asset)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            async fn append_history(
                conn: &mut $conn,
                org: Uuid,
                risk_id: Uuid,
                entry: &HistoryEntry,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO risk_history (org_id, risk_id, version, changed_at, changed_by, change_type, changes) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(org)
                .bind(risk_id)
                .bind(entry.version)
                .bind(entry.changed_at)
                .bind(entry.changed_by)
                .bind(entry.change_type.as_str())
                .bind(Json(&entry.changes))
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn insert_mitigation(conn: &mut $conn, org: Uuid, m: &Mitigation) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO mitigations (id, org_id, risk_id, title, description, status, owner_id, due_date, \
                     progress, cost, version, created_at, updated_at, completed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(m.id)
                .bind(org)
                .bind(m.risk_id)
                .bind(&m.title)
                .bind(&m.description)
                .bind(m.status.as_str())
                .bind(m.owner_id)
                .bind(m.due_date)
                .bind(m.progress)
                .bind(m.cost)
                .bind(m.version)
                .bind(m.created_at)
                .bind(m.updated_at)
                .bind(m.completed_at)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn insert_asset(conn: &mut $conn, org: Uuid, a: &Asset) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO assets (id, org_id, name, kind, criticality, description, tags, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(a.id)
                .bind(org)
                .bind(&a.name)
                .bind(a.kind.as_str())
                .bind(a.criticality.as_str())
                .bind(&a.description)
                .bind(Json(&a.tags))
                .bind(a.version)
                .bind(a.created_at)
                .bind(a.updated_at)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn fetch_mitigation(conn: &mut $conn, org: Uuid, id: Uuid) -> StoreResult<Mitigation> {
                let sql = format!("SELECT {MITIGATION_COLUMNS} FROM mitigations WHERE org_id = $1 AND id = $2");
                let row: MitigationRow = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(org)
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
                row.try_into()
            }

            async fn fetch_asset(conn: &mut $conn, org: Uuid, id: Uuid) -> StoreResult<Asset> {
                let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE org_id = $1 AND id = $2");
                let row: rows::AssetRow = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(org)
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
                row.try_into()
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

                async fn ping(&self) -> StoreResult<()> {
                    sqlx::query("SELECT 1").execute(&self.$read).await?;
                    Ok(())
                }

                async fn organization_count(&self) -> StoreResult<i64> {
                    Ok(sqlx::query_scalar("SELECT count(*) FROM organizations")
                        .fetch_one(&self.$read)
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
                    let mut tx = self.$write.begin().await?;
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
                            .fetch_one(&self.$read)
                            .await?;
                    Ok(row.into())
                }

                async fn organization_by_slug(&self, slug: &str) -> StoreResult<Organization> {
                    let row: OrganizationRow =
                        sqlx::query_as("SELECT id, slug, name, created_at FROM organizations WHERE slug = $1")
                            .bind(slug)
                            .fetch_one(&self.$read)
                            .await?;
                    Ok(row.into())
                }

                async fn authenticate(&self, token_hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Principal>> {
                    let row: Option<PrincipalRow> = sqlx::query_as(
                        "SELECT t.id AS token_id, t.org_id, t.user_id, t.role AS token_role, u.role AS user_role, t.is_system \
                         FROM api_tokens t JOIN users u ON u.id = t.user_id \
                         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)",
                    )
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(&self.$read)
                    .await?;
                    row.map(Principal::try_from).transpose()
                }

                async fn user(&self, org: Uuid, id: Uuid) -> StoreResult<User> {
                    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND id = $2");
                    let row: UserRow = sqlx::query_as(AssertSqlSafe(sql))
                        .bind(org)
                        .bind(id)
                        .fetch_one(&self.$read)
                        .await?;
                    row.try_into()
                }

                async fn users(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<User>> {
                    let sql =
                        format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3");
                    let rows: Vec<UserRow> = sqlx::query_as(AssertSqlSafe(sql))
                        .bind(org)
                        .bind(page.after.unwrap_or(Uuid::nil()))
                        .bind(page.limit + 1)
                        .fetch_all(&self.$read)
                        .await?;
                    Ok(Page::from_rows(convert(rows)?, page.limit, |u: &User| u.id))
                }

                async fn create_user(&self, org: Uuid, draft: &UserDraft) -> StoreResult<User> {
                    let user = User {
                        id: Uuid::now_v7(),
                        email: draft.email.clone(),
                        name: draft.name.clone(),
                        role: draft.role,
                        created_at: domain::now(),
                    };
                    let mut conn = self.$write.acquire().await?;
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
                    let mut tx = self.$write.begin().await?;
                    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND id = $2");
                    let user: User = match sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql))
                        .bind(org)
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await?
                    {
                        Some(row) => row.try_into()?,
                        None => return Err(Violations::single("user_id", "no such user").into()),
                    };
                    let token = draft.issue(&user, domain::now())?;
                    insert_token(&mut tx, org, &token, &hash).await?;
                    tx.commit().await?;
                    Ok(token)
                }

                async fn tokens(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<ApiToken>> {
                    let sql = format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 AND revoked_at IS NULL AND id > $2 \
                         ORDER BY id LIMIT $3"
                    );
                    let rows: Vec<TokenRow> = sqlx::query_as(AssertSqlSafe(sql))
                        .bind(org)
                        .bind(page.after.unwrap_or(Uuid::nil()))
                        .bind(page.limit + 1)
                        .fetch_all(&self.$read)
                        .await?;
                    Ok(Page::from_rows(convert(rows)?, page.limit, |t: &ApiToken| t.id))
                }

                async fn revoke_token(&self, org: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
                    let done = sqlx::query(
                        "UPDATE api_tokens SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(now)
                    .execute(&self.$write)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                async fn create_risk(&self, org: Uuid, actor: Uuid, fields: RiskFields) -> StoreResult<Risk> {
                    let mut tx = self.$write.begin().await?;
                    let number: i64 = sqlx::query_scalar(
                        "UPDATE organizations SET risk_seq = risk_seq + 1 WHERE id = $1 RETURNING risk_seq",
                    )
                    .bind(org)
                    .fetch_one(&mut *tx)
                    .await?;
                    let risk = Risk::new(Uuid::now_v7(), number, fields, domain::now());
                    check_risk_refs(&mut tx, org, &risk).await?;
                    insert_risk(&mut tx, org, &risk).await?;
                    let entry = HistoryEntry::record(None, Some(&risk), actor, risk.created_at);
                    append_history(&mut tx, org, risk.id, &entry).await?;
                    tx.commit().await?;
                    Ok(risk)
                }

                async fn risk(&self, org: Uuid, id: Uuid) -> StoreResult<Risk> {
                    let mut conn = self.$read.acquire().await?;
                    fetch_risk(&mut conn, org, id).await
                }

                async fn risks(&self, org: Uuid, query: &RiskListQuery) -> StoreResult<Page<Risk>> {
                    let column = sort_column(query.sort.key);
                    let direction = if query.sort.descending { "DESC" } else { "ASC" };
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
                    qb.push(format!(" ORDER BY {column} {direction}, r.id {direction} LIMIT "))
                        .push_bind(query.page.limit + 1);
                    let rows: Vec<RiskRow> = qb.build_query_as().fetch_all(&self.$read).await?;
                    let sort = query.sort;
                    let mut page = Page::from_rows(convert(rows)?, query.page.limit, |r: &Risk| sort.cursor_for(r));
                    if query.include_total {
                        let mut count = QueryBuilder::<$db>::new("SELECT count(*) FROM risks r");
                        push_filters(&mut count, org, &query.filter);
                        page.total = Some(count.build_query_scalar().fetch_one(&self.$read).await?);
                    }
                    Ok(page)
                }

                async fn update_risk(&self, org: Uuid, actor: Uuid, id: Uuid, edit: Edit<'_, Risk>) -> StoreResult<Risk> {
                    let mut tx = self.$write.begin().await?;
                    lock_row(&mut tx, "risks", org, id).await?;
                    let current = fetch_risk(&mut tx, org, id).await?;
                    let Some(next) = edit(&current)? else {
                        return Ok(current);
                    };
                    check_risk_refs(&mut tx, org, &next).await?;
                    sqlx::query(
                        "UPDATE risks SET title = $3, description = $4, category = $5, owner_id = $6, status = $7, \
                         likelihood = $8, impact = $9, score = $10, severity = $11, residual_likelihood = $12, \
                         residual_impact = $13, residual_score = $14, treatment = $15, tags = $16, review_date = $17, \
                         search_text = $18, version = $19, updated_at = $20, closed_at = $21 \
                         WHERE org_id = $1 AND id = $2",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(&next.title)
                    .bind(&next.description)
                    .bind(&next.category)
                    .bind(next.owner_id)
                    .bind(next.status.as_str())
                    .bind(next.likelihood)
                    .bind(next.impact)
                    .bind(next.score)
                    .bind(next.severity.as_str())
                    .bind(next.residual_likelihood)
                    .bind(next.residual_impact)
                    .bind(next.residual_score)
                    .bind(next.treatment.map(|t| t.as_str()))
                    .bind(Json(&next.tags))
                    .bind(next.review_date)
                    .bind(next.search_text())
                    .bind(next.version)
                    .bind(next.updated_at)
                    .bind(next.closed_at)
                    .execute(&mut *tx)
                    .await?;
                    if next.asset_ids != current.asset_ids {
                        sqlx::query("DELETE FROM risk_assets WHERE risk_id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        link_assets(&mut tx, &next).await?;
                    }
                    let entry = HistoryEntry::record(Some(&current), Some(&next), actor, next.updated_at);
                    append_history(&mut tx, org, id, &entry).await?;
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
                    let mut tx = self.$write.begin().await?;
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
                    let entry = HistoryEntry::record(Some(&current), None, actor, domain::now());
                    append_history(&mut tx, org, id, &entry).await?;
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
                    let (table, id_column) = if include_deleted {
                        ("risk_history", "risk_id")
                    } else {
                        ("risks", "id")
                    };
                    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE org_id = $1 AND {id_column} = $2)");
                    let found: bool = sqlx::query_scalar(AssertSqlSafe(sql))
                        .bind(org)
                        .bind(id)
                        .fetch_one(&self.$read)
                        .await?;
                    if !found {
                        return Err(StoreError::NotFound);
                    }
                    let rows: Vec<HistoryRow> = sqlx::query_as(
                        "SELECT version, changed_at, changed_by, change_type, changes FROM risk_history \
                         WHERE org_id = $1 AND risk_id = $2 AND version < $3 ORDER BY version DESC LIMIT $4",
                    )
                    .bind(org)
                    .bind(id)
                    .bind(page.after.unwrap_or(i64::MAX))
                    .bind(page.limit + 1)
                    .fetch_all(&self.$read)
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
                    let mut tx = self.$write.begin().await?;
                    if !exists(&mut *tx, "risks", org, risk_id).await? {
                        return Err(StoreError::NotFound);
                    }
                    let mitigation = Mitigation::new(Uuid::now_v7(), risk_id, fields, domain::now());
                    let mut v = Violations::default();
                    check_owner(&mut tx, org, mitigation.owner_id, &mut v).await?;
                    v.into_result()?;
                    insert_mitigation(&mut tx, org, &mitigation).await?;
                    tx.commit().await?;
                    Ok(mitigation)
                }

                async fn mitigation(&self, org: Uuid, id: Uuid) -> StoreResult<Mitigation> {
                    let mut conn = self.$read.acquire().await?;
                    fetch_mitigation(&mut conn, org, id).await
                }

                async fn mitigations(
                    &self,
                    org: Uuid,
                    risk_id: Uuid,
                    page: &PageRequest<Uuid>,
                ) -> StoreResult<Page<Mitigation>> {
                    if !exists(&self.$read, "risks", org, risk_id).await? {
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
                        .fetch_all(&self.$read)
                        .await?;
                    Ok(Page::from_rows(convert(rows)?, page.limit, |m: &Mitigation| m.id))
                }

                async fn update_mitigation(
                    &self,
                    org: Uuid,
                    id: Uuid,
                    edit: Edit<'_, Mitigation>,
                ) -> StoreResult<Mitigation> {
                    let mut tx = self.$write.begin().await?;
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
                    let mut tx = self.$write.begin().await?;
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
                    let mut conn = self.$write.acquire().await?;
                    insert_asset(&mut conn, org, &asset).await?;
                    Ok(asset)
                }

                async fn asset(&self, org: Uuid, id: Uuid) -> StoreResult<Asset> {
                    let mut conn = self.$read.acquire().await?;
                    fetch_asset(&mut conn, org, id).await
                }

                async fn assets(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Asset>> {
                    let sql =
                        format!("SELECT {ASSET_COLUMNS} FROM assets WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3");
                    let rows: Vec<rows::AssetRow> = sqlx::query_as(AssertSqlSafe(sql))
                        .bind(org)
                        .bind(page.after.unwrap_or(Uuid::nil()))
                        .bind(page.limit + 1)
                        .fetch_all(&self.$read)
                        .await?;
                    Ok(Page::from_rows(convert(rows)?, page.limit, |a: &Asset| a.id))
                }

                async fn update_asset(&self, org: Uuid, id: Uuid, edit: Edit<'_, Asset>) -> StoreResult<Asset> {
                    let mut tx = self.$write.begin().await?;
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

                async fn delete_asset(&self, org: Uuid, id: Uuid, precondition: &Precondition) -> StoreResult<()> {
                    let mut tx = self.$write.begin().await?;
                    lock_row(&mut tx, "assets", org, id).await?;
                    let current = fetch_asset(&mut tx, org, id).await?;
                    if !precondition.holds(&current) {
                        return Err(StoreError::PreconditionFailed);
                    }
                    sqlx::query("DELETE FROM assets WHERE org_id = $1 AND id = $2")
                        .bind(org)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn analyze(&self) -> StoreResult<()> {
                    sqlx::query("ANALYZE").execute(&self.$write).await?;
                    Ok(())
                }

                async fn reserve_risk_numbers(&self, org: Uuid, count: i64) -> StoreResult<i64> {
                    let last: i64 = sqlx::query_scalar(
                        "UPDATE organizations SET risk_seq = risk_seq + $2 WHERE id = $1 RETURNING risk_seq",
                    )
                    .bind(org)
                    .bind(count)
                    .fetch_one(&self.$write)
                    .await?;
                    Ok(last - count + 1)
                }

                async fn insert_seed(&self, org: Uuid, actor: Uuid, batch: &SeedBatch) -> StoreResult<()> {
                    // Multi-row INSERTs of at most 1 000 rows × 23 columns: under both SQLite's 32 766 and
                    // PostgreSQL's 65 535 bind parameters.
                    const ROWS: usize = 1_000;
                    let mut tx = self.$write.begin().await?;
                    for chunk in batch.assets.chunks(ROWS) {
                        let mut qb = QueryBuilder::<$db>::new(
                            "INSERT INTO assets (id, org_id, name, kind, criticality, description, tags, version, created_at, updated_at) ",
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
                        qb.build().execute(&mut *tx).await?;
                    }
                    for chunk in batch.risks.chunks(ROWS) {
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
                        qb.build().execute(&mut *tx).await?;

                        let mut qb = QueryBuilder::<$db>::new(
                            "INSERT INTO risk_history (org_id, risk_id, version, changed_at, changed_by, change_type, changes) ",
                        );
                        qb.push_values(chunk, |mut row, r| {
                            let entry = HistoryEntry::record(None, Some(r), actor, r.created_at);
                            row.push_bind(org)
                                .push_bind(r.id)
                                .push_bind(entry.version)
                                .push_bind(entry.changed_at)
                                .push_bind(entry.changed_by)
                                .push_bind(entry.change_type.as_str())
                                .push_bind(Json(entry.changes));
                        });
                        qb.build().execute(&mut *tx).await?;

                        let links: Vec<(Uuid, Uuid)> = chunk
                            .iter()
                            .flat_map(|r| r.asset_ids.iter().map(|a| (r.id, *a)))
                            .collect();
                        if !links.is_empty() {
                            let mut qb = QueryBuilder::<$db>::new("INSERT INTO risk_assets (risk_id, asset_id) ");
                            qb.push_values(links, |mut row, (risk, asset)| {
                                row.push_bind(risk).push_bind(asset);
                            });
                            qb.build().execute(&mut *tx).await?;
                        }
                    }
                    for chunk in batch.mitigations.chunks(ROWS) {
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
                        qb.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }
            }
        }
    };
}
pub(crate) use sql_store;

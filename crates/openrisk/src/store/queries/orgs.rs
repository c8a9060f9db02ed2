//! Organizations, their users and tokens, and authentication.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Connection};
use uuid::Uuid;

use super::common::{fetch_by_id, page_by_id};
use super::{BEGIN_WRITE, Backend, Conn};
use crate::domain;
use crate::domain::auth::{Principal, Role};
use crate::domain::list::{Page, PageRequest};
use crate::domain::org::{
    ApiToken, MAX_LIVE_TOKENS_PER_USER, Organization, OrganizationDraft, TokenDraft, User, UserDraft,
};
use crate::domain::validation::Violations;
use crate::store::rows::{OrganizationRow, PrincipalRow, TokenRow, UserRow};
use crate::store::sql::{TOKEN_COLUMNS, USER_COLUMNS};
use crate::store::{OrgStore, StoreError, StoreResult, TokenGrant};

pub(super) async fn insert_user(conn: &mut Conn, org: Uuid, user: &User) -> StoreResult<()> {
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

pub(super) async fn insert_token(
    conn: &mut Conn,
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
impl OrgStore for Backend {
    async fn organization_count(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM organizations")
            .fetch_one(&mut *self.reader().acquire("organization_count").await?)
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
        let mut held = self.writer().acquire_for_write("create_organization").await?;
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
                .fetch_one(&mut *self.reader().acquire("organization").await?)
                .await?;
        Ok(row.into())
    }

    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Organization> {
        let row: OrganizationRow =
            sqlx::query_as("SELECT id, slug, name, created_at FROM organizations WHERE slug = $1")
                .bind(slug)
                .fetch_one(&mut *self.reader().acquire("organization_by_slug").await?)
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
        .fetch_optional(&mut *self.reader().acquire("authenticate").await?)
        .await?;
        row.map(Principal::try_from).transpose()
    }

    async fn user(&self, org: Uuid, id: Uuid) -> StoreResult<User> {
        fetch_by_id::<UserRow, _>(
            &mut *self.reader().acquire("user").await?,
            ("users", USER_COLUMNS),
            org,
            id,
        )
        .await
    }

    async fn users(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<User>> {
        page_by_id::<UserRow, _>(
            &mut *self.reader().acquire("users").await?,
            ("users", USER_COLUMNS, ""),
            org,
            page,
            |u: &User| u.id,
        )
        .await
    }

    async fn create_user(&self, org: Uuid, draft: &UserDraft) -> StoreResult<User> {
        let user = User {
            id: Uuid::now_v7(),
            email: draft.email.clone(),
            name: draft.name.clone(),
            role: draft.role,
            created_at: domain::now(),
        };
        let mut conn = self.writer().acquire_for_write("create_user").await?;
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
        let mut held = self.writer().acquire_for_write("create_token").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        let user: User =
            match fetch_by_id::<UserRow, _>(&mut *tx, ("users", USER_COLUMNS), org, user_id).await {
                Err(StoreError::NotFound) => return Err(Violations::single("user_id", "no such user").into()),
                user => user?,
            };
        let now = domain::now();
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_tokens WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(org)
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if live >= MAX_LIVE_TOKENS_PER_USER {
            return Err(StoreError::Conflict(format!(
                "the user holds {MAX_LIVE_TOKENS_PER_USER} live tokens already: revoke one first"
            )));
        }
        let token = draft.issue(&user, now)?;
        insert_token(&mut tx, org, &token, &hash).await?;
        tx.commit().await?;
        Ok(token)
    }

    async fn tokens(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<ApiToken>> {
        let live = ("api_tokens", TOKEN_COLUMNS, "AND revoked_at IS NULL");
        page_by_id::<TokenRow, _>(
            &mut *self.reader().acquire("tokens").await?,
            live,
            org,
            page,
            |t: &ApiToken| t.id,
        )
        .await
    }

    async fn token(&self, org: Uuid, id: Uuid) -> StoreResult<ApiToken> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL"
        );
        let row: TokenRow = sqlx::query_as(AssertSqlSafe(sql))
            .bind(org)
            .bind(id)
            .fetch_one(&mut *self.reader().acquire("token").await?)
            .await?;
        row.try_into()
    }

    async fn revoke_token(&self, org: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(org)
        .bind(id)
        .bind(now)
        .execute(&mut *self.writer().acquire_for_write("revoke_token").await?)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

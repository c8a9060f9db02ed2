//! Marketplace connectors installed by an organization.

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::types::Json;
use uuid::Uuid;

use super::common::{fetch_by_id, page_by_id};
use super::{BEGIN_WRITE, Backend, lock_row};
use crate::domain::list::{Page, PageRequest};
use crate::domain::marketplace::Installation;
use crate::store::rows::InstallationRow;
use crate::store::sql::INSTALLATION_COLUMNS;
use crate::store::{Edit, InstallationStore, StoreError, StoreResult};

#[async_trait]
impl InstallationStore for Backend {
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
        .execute(&mut *self.writer().acquire_for_write("create_installation").await?)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("{} is already installed", i.connector)),
            e => e,
        })?;
        Ok(())
    }

    async fn installation(&self, org: Uuid, id: Uuid) -> StoreResult<Installation> {
        fetch_by_id::<InstallationRow, _>(
            &mut *self.reader().acquire("installation").await?,
            ("installations", INSTALLATION_COLUMNS),
            org,
            id,
        )
        .await
    }

    async fn installations(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Installation>> {
        let table = ("installations", INSTALLATION_COLUMNS, "");
        page_by_id::<InstallationRow, _>(
            &mut *self.reader().acquire("installations").await?,
            table,
            org,
            page,
            |i: &Installation| i.id,
        )
        .await
    }

    async fn update_installation(
        &self,
        org: Uuid,
        id: Uuid,
        edit: Edit<'_, Installation>,
    ) -> StoreResult<Installation> {
        let mut held = self.writer().acquire_for_write("update_installation").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        lock_row(&mut tx, "installations", org, id).await?;
        let current: Installation =
            fetch_by_id::<InstallationRow, _>(&mut *tx, ("installations", INSTALLATION_COLUMNS), org, id)
                .await?;
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
            .execute(&mut *self.writer().acquire_for_write("delete_installation").await?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

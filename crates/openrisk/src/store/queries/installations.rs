//! Marketplace connectors installed by an organization.

use async_trait::async_trait;
use serde_json::Value;
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
        .bind(Json(self.secrets().seal(org, i.id, &i.config)))
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
        let stored = fetch_by_id::<InstallationRow, _>(
            &mut *self.reader().acquire("installation").await?,
            ("installations", INSTALLATION_COLUMNS),
            org,
            id,
        )
        .await?;
        self.opened(org, stored)
    }

    async fn installations(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Installation>> {
        let table = ("installations", INSTALLATION_COLUMNS, "");
        let stored = page_by_id::<InstallationRow, _>(
            &mut *self.reader().acquire("installations").await?,
            table,
            org,
            page,
            |i: &Installation| i.id,
        )
        .await?;
        Ok(Page {
            items: stored
                .items
                .into_iter()
                .map(|i| self.opened(org, i))
                .collect::<StoreResult<_>>()?,
            ..stored
        })
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
        let stored =
            fetch_by_id::<InstallationRow, _>(&mut *tx, ("installations", INSTALLATION_COLUMNS), org, id)
                .await?;
        let current = self.opened(org, stored)?;
        let Some(next) = edit(&current)? else {
            return Ok(current);
        };
        sqlx::query(
            "UPDATE installations SET enabled = $3, config = $4, updated_at = $5 WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .bind(next.enabled)
        .bind(Json(self.secrets().seal(org, id, &next.config)))
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

    async fn reseal_installations(&self, all: bool) -> StoreResult<u64> {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT org_id, id FROM installations")
            .fetch_all(&mut *self.reader().acquire("reseal_installations").await?)
            .await?;
        let mut resealed = 0;
        for (org, id) in rows {
            // Each under its row lock, so that no concurrent update is lost.
            let mut held = self.writer().acquire_for_write("reseal_installations").await?;
            let mut tx = held.begin_with(BEGIN_WRITE).await?;
            lock_row(&mut tx, "installations", org, id).await?;
            let stored: Option<Json<Value>> =
                sqlx::query_scalar("SELECT config FROM installations WHERE org_id = $1 AND id = $2")
                    .bind(org)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(Json(stored)) = stored else { continue };
            let sealed = self.secrets().is_sealed(&stored);
            if (sealed && !all) || self.secrets().is_current(&stored) {
                continue;
            }
            let config = self.secrets().open(org, id, stored)?;
            sqlx::query("UPDATE installations SET config = $3 WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(id)
                .bind(Json(self.secrets().seal(org, id, &config)))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            resealed += 1;
        }
        Ok(resealed)
    }
}

impl Backend {
    /// `stored` with its configuration opened (see `secrets`).
    fn opened(&self, org: Uuid, stored: Installation) -> StoreResult<Installation> {
        Ok(Installation {
            config: self.secrets().open(org, stored.id, stored.config)?,
            ..stored
        })
    }
}

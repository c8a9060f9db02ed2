//! Bulk loading of generated data (`openrisk seed`).

use async_trait::async_trait;
use sqlx::Connection;
use uuid::Uuid;

use super::assets::insert_assets;
use super::mitigations::insert_mitigations;
use super::risks::insert_risks;
use super::{ANALYZE, BEGIN_WRITE, Backend};
use crate::store::{SeedBatch, SeedStore, StoreResult};

#[async_trait]
impl SeedStore for Backend {
    async fn analyze(&self) -> StoreResult<()> {
        sqlx::query(ANALYZE)
            .execute(&mut *self.writer().acquire_for_write("analyze").await?)
            .await?;
        Ok(())
    }

    async fn reserve_risk_numbers(&self, org: Uuid, count: i64) -> StoreResult<i64> {
        let last: i64 = sqlx::query_scalar(
            "UPDATE organizations SET risk_seq = risk_seq + $2 WHERE id = $1 RETURNING risk_seq",
        )
        .bind(org)
        .bind(count)
        .fetch_one(&mut *self.writer().acquire_for_write("reserve_risk_numbers").await?)
        .await?;
        Ok(last - count + 1)
    }

    async fn insert_seed(&self, org: Uuid, actor: Uuid, batch: &SeedBatch) -> StoreResult<()> {
        let mut held = self.writer().acquire_for_write("insert_seed").await?;
        let mut tx = held.begin_with(BEGIN_WRITE).await?;
        insert_assets(&mut tx, org, &batch.assets).await?;
        insert_risks(&mut tx, org, actor, &batch.risks).await?;
        insert_mitigations(&mut tx, org, &batch.mitigations).await?;
        tx.commit().await?;
        Ok(())
    }
}

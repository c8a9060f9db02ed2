//! Assets, which risks link to.

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{Connection, QueryBuilder};
use uuid::Uuid;

use super::common::{ROWS_PER_INSERT, fetch_by_id, page_by_id};
use super::risks::{fetch_risk, write_risk_update};
use super::{BEGIN_WRITE, Backend, Conn, Db, lock_row};
use crate::domain;
use crate::domain::Precondition;
use crate::domain::asset::{Asset, AssetFields};
use crate::domain::list::{Page, PageRequest};
use crate::store::rows;
use crate::store::sql::ASSET_COLUMNS;
use crate::store::{AssetStore, Edit, StoreError, StoreResult};

pub(super) async fn insert_assets(conn: &mut Conn, org: Uuid, assets: &[Asset]) -> StoreResult<()> {
    for chunk in assets.chunks(ROWS_PER_INSERT) {
        let mut qb = QueryBuilder::<Db>::new(
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

pub(super) async fn fetch_asset(conn: &mut Conn, org: Uuid, id: Uuid) -> StoreResult<Asset> {
    fetch_by_id::<rows::AssetRow, _>(conn, ("assets", ASSET_COLUMNS), org, id).await
}

#[async_trait]
impl AssetStore for Backend {
    async fn create_asset(&self, org: Uuid, fields: AssetFields) -> StoreResult<Asset> {
        let asset = Asset::new(Uuid::now_v7(), fields, domain::now());
        let mut conn = self.writer().acquire_for_write("create_asset").await?;
        insert_assets(&mut conn, org, std::slice::from_ref(&asset)).await?;
        Ok(asset)
    }

    async fn asset(&self, org: Uuid, id: Uuid) -> StoreResult<Asset> {
        let mut conn = self.reader().acquire("asset").await?;
        fetch_asset(&mut conn, org, id).await
    }

    async fn assets(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Asset>> {
        page_by_id::<rows::AssetRow, _>(
            &mut *self.reader().acquire("assets").await?,
            ("assets", ASSET_COLUMNS, ""),
            org,
            page,
            |a: &Asset| a.id,
        )
        .await
    }

    async fn update_asset(&self, org: Uuid, id: Uuid, edit: Edit<'_, Asset>) -> StoreResult<Asset> {
        let mut held = self.writer().acquire_for_write("update_asset").await?;
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
        let mut held = self.writer().acquire_for_write("delete_asset").await?;
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
}

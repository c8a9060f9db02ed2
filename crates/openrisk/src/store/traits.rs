//! The store by resource: what each part of the service reads and writes.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{Edit, RiskStream, SeedBatch, StoreResult, TokenGrant};
use crate::domain::Precondition;
use crate::domain::asset::{Asset, AssetFields};
use crate::domain::auth::Principal;
use crate::domain::dashboard::{DailyActivity, MitigationGroup, RiskFigures};
use crate::domain::list::{Page, PageRequest, RiskFilter, RiskListQuery, Sort};
use crate::domain::marketplace::Installation;
use crate::domain::mitigation::{Mitigation, MitigationFields};
use crate::domain::org::{ApiToken, Organization, OrganizationDraft, TokenDraft, User, UserDraft};
use crate::domain::report::OverdueMitigation;
use crate::domain::risk::{HistoryEntry, Risk, RiskFields, RiskStatus};

/// Organizations, their users and tokens, and authentication.
#[async_trait]
pub trait OrgStore: Send + Sync {
    async fn organization_count(&self) -> StoreResult<i64>;

    /// Creates an organization, its first admin user and that user's token, atomically.
    async fn create_organization(
        &self,
        draft: &OrganizationDraft,
        token: &TokenGrant,
    ) -> StoreResult<(Organization, User, ApiToken)>;
    async fn organization(&self, id: Uuid) -> StoreResult<Organization>;
    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Organization>;

    /// The principal a token hash stands for, if the token is live.
    async fn authenticate(&self, token_hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Principal>>;
    async fn user(&self, org: Uuid, id: Uuid) -> StoreResult<User>;
    async fn users(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<User>>;
    async fn create_user(&self, org: Uuid, draft: &UserDraft) -> StoreResult<User>;

    /// Issues a token for user `user_id`; the role may not exceed the user's, and the user may
    /// hold at most `MAX_LIVE_TOKENS_PER_USER` live tokens.
    async fn create_token(
        &self,
        org: Uuid,
        user_id: Uuid,
        draft: &TokenDraft,
        hash: Vec<u8>,
    ) -> StoreResult<ApiToken>;
    async fn tokens(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<ApiToken>>;
    /// A live (unrevoked) token.
    async fn token(&self, org: Uuid, id: Uuid) -> StoreResult<ApiToken>;
    async fn revoke_token(&self, org: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;
}

/// The register: risks and their history.
#[async_trait]
pub trait RiskStore: Send + Sync {
    async fn create_risk(&self, org: Uuid, actor: Uuid, fields: RiskFields) -> StoreResult<Risk>;
    async fn risk(&self, org: Uuid, id: Uuid) -> StoreResult<Risk>;
    async fn risks(&self, org: Uuid, query: &RiskListQuery) -> StoreResult<Page<Risk>>;
    /// Every risk of the organization, or only risk `only`, and their mitigations, in no
    /// particular order. Two statements, not one snapshot: a write between them may show in one
    /// and not the other (a mitigation without its risk, a risk without its mitigations), which the
    /// change it logs, applied after, sets right.
    async fn register(&self, org: Uuid, only: Option<Uuid>) -> StoreResult<RegisterRows>;
    /// The risk before and after the edit (the same when the edit changes nothing).
    async fn update_risk(
        &self,
        org: Uuid,
        actor: Uuid,
        id: Uuid,
        edit: Edit<'_, Risk>,
    ) -> StoreResult<(Risk, Risk)>;
    /// The risk as it was.
    async fn delete_risk(
        &self,
        org: Uuid,
        actor: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> StoreResult<Risk>;

    /// Newest first. A deleted risk's history is found only with `include_deleted`.
    async fn risk_history(
        &self,
        org: Uuid,
        id: Uuid,
        include_deleted: bool,
        page: &PageRequest<i64>,
    ) -> StoreResult<Page<HistoryEntry>>;

    /// Every risk matching `filter`, in `sort` order, read as the consumer takes them: memory does
    /// not grow with the register.
    fn export_risks(&self, org: Uuid, filter: RiskFilter, sort: Sort) -> RiskStream;
}

/// Mitigations of risks.
#[async_trait]
pub trait MitigationStore: Send + Sync {
    async fn create_mitigation(
        &self,
        org: Uuid,
        risk_id: Uuid,
        fields: MitigationFields,
    ) -> StoreResult<Mitigation>;
    async fn mitigation(&self, org: Uuid, id: Uuid) -> StoreResult<Mitigation>;
    async fn mitigations(
        &self,
        org: Uuid,
        risk_id: Uuid,
        page: &PageRequest<Uuid>,
    ) -> StoreResult<Page<Mitigation>>;
    async fn update_mitigation(
        &self,
        org: Uuid,
        id: Uuid,
        edit: Edit<'_, Mitigation>,
    ) -> StoreResult<Mitigation>;
    /// The mitigation as it was.
    async fn delete_mitigation(
        &self,
        org: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> StoreResult<Mitigation>;
}

/// Assets, which risks link to.
#[async_trait]
pub trait AssetStore: Send + Sync {
    async fn create_asset(&self, org: Uuid, fields: AssetFields) -> StoreResult<Asset>;
    async fn asset(&self, org: Uuid, id: Uuid) -> StoreResult<Asset>;
    async fn assets(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Asset>>;
    async fn update_asset(&self, org: Uuid, id: Uuid, edit: Edit<'_, Asset>) -> StoreResult<Asset>;

    /// Deletes the asset and unlinks it from every risk (a new version of each, by `actor`).
    async fn delete_asset(
        &self,
        org: Uuid,
        actor: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> StoreResult<()>;
}

/// Marketplace connectors installed by an organization.
#[async_trait]
pub trait InstallationStore: Send + Sync {
    /// Stores a new installation; a second one of the same connector is a conflict.
    async fn create_installation(&self, org: Uuid, installation: &Installation) -> StoreResult<()>;
    async fn installation(&self, org: Uuid, id: Uuid) -> StoreResult<Installation>;
    async fn installations(&self, org: Uuid, page: &PageRequest<Uuid>) -> StoreResult<Page<Installation>>;
    async fn update_installation(
        &self,
        org: Uuid,
        id: Uuid,
        edit: Edit<'_, Installation>,
    ) -> StoreResult<Installation>;
    async fn delete_installation(&self, org: Uuid, id: Uuid) -> StoreResult<()>;
    /// Seals again, under the current key, every configuration not sealed under it (`all`), or
    /// only those stored in clear (written before sealing existed); returns how many.
    async fn reseal_installations(&self, all: bool) -> StoreResult<u64>;
}

/// Aggregates for the dashboard and the reports, computed by the database.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Active mitigations whose due date is before `today`, oldest due date first.
    async fn overdue_mitigations(
        &self,
        org: Uuid,
        today: NaiveDate,
        limit: i64,
    ) -> StoreResult<Vec<OverdueMitigation>>;

    /// Risk counts and score sums per status and severity, and overdue reviews (review date
    /// before `today`) per status.
    async fn risk_groups(&self, org: Uuid, today: NaiveDate) -> StoreResult<RiskFigures>;

    /// Mitigation counts and passed due dates (before `today`) per status.
    async fn mitigation_groups(&self, org: Uuid, today: NaiveDate) -> StoreResult<Vec<MitigationGroup>>;

    /// `(likelihood, impact, count)` of the risks with one of `statuses`.
    async fn risk_matrix(&self, org: Uuid, statuses: &[RiskStatus]) -> StoreResult<Vec<(i32, i32, i64)>>;

    /// Risks created and closed per UTC day from `since`, the daily change in open risks since
    /// then, and the risks open now.
    async fn daily_activity(&self, org: Uuid, since: NaiveDate) -> StoreResult<DailyActivity>;

    /// Open risks by score, then residual score (highest first).
    async fn top_risks(&self, org: Uuid, limit: i64) -> StoreResult<Vec<Risk>>;

    /// How far each aggregate table (every organization's rows) is from a recount of the register.
    async fn aggregate_drift(&self) -> StoreResult<Vec<AggregateDrift>>;

    /// Rebuilds every aggregate table from the register, holding writes off meanwhile.
    async fn recount_aggregates(&self) -> StoreResult<()>;
}

/// Risks and their mitigations, as `RiskStore::register` reads them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegisterRows {
    pub risks: Vec<Risk>,
    pub mitigations: Vec<Mitigation>,
}

/// One aggregate table against a recount of the register.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AggregateDrift {
    pub table: &'static str,
    /// Rows the recount has that the table lacks or holds with other figures.
    pub missing: i64,
    /// Rows the table holds that the recount does not.
    pub extra: i64,
}

impl AggregateDrift {
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.extra == 0
    }
}

/// Bulk loading of generated data (`openrisk seed`).
#[async_trait]
pub trait SeedStore: Send + Sync {
    /// Refreshes the query planner's statistics (after bulk loads).
    async fn analyze(&self) -> StoreResult<()>;

    /// Reserves `count` consecutive risk numbers; returns the first.
    async fn reserve_risk_numbers(&self, org: Uuid, count: i64) -> StoreResult<i64>;

    /// Inserts generated data in bulk; each risk gets its `create` history entry.
    async fn insert_seed(&self, org: Uuid, actor: Uuid, batch: &SeedBatch) -> StoreResult<()>;
}

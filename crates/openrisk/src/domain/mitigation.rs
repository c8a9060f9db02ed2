//! Mitigations: the actions that reduce a risk.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::{DESCRIPTION, TITLE, Violations, description_schema, title_schema};
use super::{Versioned, double_option, string_enum, whole};

string_enum! {
    pub enum MitigationStatus {
        Planned => "planned", InProgress => "in_progress", Done => "done", Cancelled => "cancelled",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Mitigation {
    pub id: Uuid,
    pub risk_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: MitigationStatus,
    pub owner_id: Option<Uuid>,
    pub due_date: Option<NaiveDate>,
    pub progress: i32,
    pub cost: Option<f64>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Versioned for Mitigation {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MitigationFields {
    pub title: String,
    pub description: String,
    pub status: MitigationStatus,
    pub owner_id: Option<Uuid>,
    pub due_date: Option<NaiveDate>,
    pub progress: i32,
    pub cost: Option<f64>,
}

pub const READ_ONLY_FIELDS: &[&str] = &[
    "id",
    "risk_id",
    "version",
    "created_at",
    "updated_at",
    "completed_at",
];

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Offline, immutable backups", "status": "planned", "due_date": "2027-01-31", "progress": 0, "cost": 12000.0}))]
pub struct NewMitigation {
    #[schema(schema_with = title_schema, required = true, nullable = false)]
    pub title: Option<String>,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    pub description: String,
    /// Defaults to `planned`.
    pub status: Option<MitigationStatus>,
    pub owner_id: Option<Uuid>,
    pub due_date: Option<NaiveDate>,
    #[schema(minimum = 0, maximum = 100)]
    #[serde(default, deserialize_with = "whole::option")]
    pub progress: Option<i64>,
    #[schema(minimum = 0)]
    pub cost: Option<f64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "in_progress", "progress": 40}))]
pub struct MitigationPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = title_schema, nullable = false)]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = description_schema, nullable = false)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable = false)]
    pub status: Option<Option<MitigationStatus>>,
    #[serde(default, deserialize_with = "double_option")]
    pub owner_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    pub due_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "whole::patch")]
    #[schema(nullable = false, minimum = 0, maximum = 100)]
    pub progress: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(minimum = 0)]
    pub cost: Option<Option<f64>>,
}

impl NewMitigation {
    pub fn validate(self) -> Result<MitigationFields, Violations> {
        let mut v = Violations::default();
        let title = v.required("title", self.title).unwrap_or_default();
        let fields = MitigationFields {
            title,
            description: self.description,
            status: self.status.unwrap_or(MitigationStatus::Planned),
            owner_id: self.owner_id,
            due_date: self.due_date,
            progress: self.progress.unwrap_or(0).clamp(-1, 101) as i32,
            cost: self.cost,
        };
        fields.check(&mut v, self.progress);
        v.into_result().map(|()| fields.normalized())
    }
}

impl MitigationPatch {
    pub fn apply(self, current: &MitigationFields) -> Result<MitigationFields, Violations> {
        let mut v = Violations::default();
        let c = current.clone();
        let progress = v.not_null("progress", self.progress);
        let fields = MitigationFields {
            title: v.not_null("title", self.title).unwrap_or(c.title),
            description: v
                .not_null("description", self.description)
                .unwrap_or(c.description),
            status: v.not_null("status", self.status).unwrap_or(c.status),
            owner_id: self.owner_id.unwrap_or(c.owner_id),
            due_date: self.due_date.unwrap_or(c.due_date),
            progress: progress.map_or(c.progress, |p| p.clamp(-1, 101) as i32),
            cost: self.cost.unwrap_or(c.cost),
        };
        fields.check(&mut v, progress);
        v.into_result().map(|()| fields.normalized())
    }
}

impl MitigationFields {
    fn check(&self, v: &mut Violations, raw_progress: Option<i64>) {
        v.text("title", &self.title, TITLE);
        v.text("description", &self.description, DESCRIPTION);
        if let Some(progress) = raw_progress {
            v.range("progress", progress, 0, 100);
        }
        if let Some(cost) = self.cost
            && !(cost.is_finite() && cost >= 0.0)
        {
            v.add("cost", "must be a number ≥ 0");
        }
    }

    /// A finished mitigation is 100 % done.
    fn normalized(mut self) -> Self {
        if self.status == MitigationStatus::Done {
            self.progress = 100;
        }
        self
    }
}

impl Mitigation {
    pub fn new(id: Uuid, risk_id: Uuid, fields: MitigationFields, now: DateTime<Utc>) -> Self {
        let completed_at = (fields.status == MitigationStatus::Done).then_some(now);
        Mitigation {
            id,
            risk_id,
            title: fields.title,
            description: fields.description,
            status: fields.status,
            owner_id: fields.owner_id,
            due_date: fields.due_date,
            progress: fields.progress,
            cost: fields.cost,
            version: 1,
            created_at: now,
            updated_at: now,
            completed_at,
        }
    }

    pub fn fields(&self) -> MitigationFields {
        MitigationFields {
            title: self.title.clone(),
            description: self.description.clone(),
            status: self.status,
            owner_id: self.owner_id,
            due_date: self.due_date,
            progress: self.progress,
            cost: self.cost,
        }
    }

    pub fn updated(&self, fields: MitigationFields, now: DateTime<Utc>) -> Option<Self> {
        if fields == self.fields() {
            return None;
        }
        let completed_at = match (self.status, fields.status) {
            (MitigationStatus::Done, MitigationStatus::Done) => self.completed_at,
            (_, MitigationStatus::Done) => Some(now),
            _ => None,
        };
        Some(Mitigation {
            version: self.version + 1,
            updated_at: now,
            completed_at,
            ..Mitigation::new(self.id, self.risk_id, fields, self.created_at)
        })
    }
}

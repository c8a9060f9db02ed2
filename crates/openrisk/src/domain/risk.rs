//! Risks: fields, scoring, validation and the change record kept in their history.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::{
    CATEGORY, DESCRIPTION, TITLE, Violations, category_schema, dedup_ids, description_schema, tags_schema,
    title_schema,
};
use super::{double_option, string_enum, whole};

string_enum! {
    pub enum RiskStatus {
        Draft => "draft", Open => "open", InProgress => "in_progress",
        Mitigated => "mitigated", Accepted => "accepted", Closed => "closed",
    }
}

string_enum! {
    pub enum Treatment { Mitigate => "mitigate", Accept => "accept", Transfer => "transfer", Avoid => "avoid" }
}

string_enum! {
    pub enum Severity { Low => "low", Medium => "medium", High => "high", Critical => "critical" }
}

impl Severity {
    pub fn from_score(score: i32) -> Severity {
        match score {
            ..=4 => Severity::Low,
            5..=9 => Severity::Medium,
            10..=15 => Severity::High,
            _ => Severity::Critical,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Risk {
    pub id: Uuid,
    /// Human id, `RSK-<n>` in creation order per organization.
    #[serde(rename = "ref")]
    pub reference: String,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub owner_id: Option<Uuid>,
    pub status: RiskStatus,
    pub likelihood: i32,
    pub impact: i32,
    pub score: i32,
    pub severity: Severity,
    pub residual_likelihood: Option<i32>,
    pub residual_impact: Option<i32>,
    pub residual_score: Option<i32>,
    pub treatment: Option<Treatment>,
    pub tags: Vec<String>,
    pub asset_ids: Vec<Uuid>,
    pub review_date: Option<NaiveDate>,
    pub mitigation_count: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// The fields a client sets, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskFields {
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub owner_id: Option<Uuid>,
    pub status: RiskStatus,
    pub likelihood: i32,
    pub impact: i32,
    pub residual_likelihood: Option<i32>,
    pub residual_impact: Option<i32>,
    pub treatment: Option<Treatment>,
    pub tags: Vec<String>,
    pub asset_ids: Vec<Uuid>,
    pub review_date: Option<NaiveDate>,
}

/// Fields the server computes; a request that sends one is rejected.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "id",
    "ref",
    "score",
    "severity",
    "residual_score",
    "mitigation_count",
    "version",
    "created_at",
    "updated_at",
    "closed_at",
];

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Ransomware encrypts the file servers", "description": "Backups share the domain.", "category": "security", "likelihood": 4, "impact": 5, "treatment": "mitigate", "tags": ["ransomware", "backups"], "review_date": "2027-03-31"}))]
pub struct NewRisk {
    #[schema(schema_with = title_schema, required = true, nullable = false)]
    pub title: Option<String>,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    pub description: String,
    #[schema(schema_with = category_schema)]
    pub category: Option<String>,
    pub owner_id: Option<Uuid>,
    /// Defaults to `open`.
    pub status: Option<RiskStatus>,
    #[schema(required = true, nullable = false, minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "whole::option")]
    pub likelihood: Option<i64>,
    #[schema(required = true, nullable = false, minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "whole::option")]
    pub impact: Option<i64>,
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "whole::option")]
    pub residual_likelihood: Option<i64>,
    #[schema(minimum = 1, maximum = 5)]
    #[serde(default, deserialize_with = "whole::option")]
    pub residual_impact: Option<i64>,
    pub treatment: Option<Treatment>,
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub asset_ids: Vec<Uuid>,
    pub review_date: Option<NaiveDate>,
}

/// A partial update: an absent field is left alone, `null` clears a nullable field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "in_progress", "likelihood": 2}))]
pub struct RiskPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = title_schema, nullable = false)]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = description_schema, nullable = false)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = category_schema)]
    pub category: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub owner_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable = false)]
    pub status: Option<Option<RiskStatus>>,
    #[serde(default, deserialize_with = "whole::patch")]
    #[schema(nullable = false, minimum = 1, maximum = 5)]
    pub likelihood: Option<Option<i64>>,
    #[serde(default, deserialize_with = "whole::patch")]
    #[schema(nullable = false, minimum = 1, maximum = 5)]
    pub impact: Option<Option<i64>>,
    #[serde(default, deserialize_with = "whole::patch")]
    #[schema(minimum = 1, maximum = 5)]
    pub residual_likelihood: Option<Option<i64>>,
    #[serde(default, deserialize_with = "whole::patch")]
    #[schema(minimum = 1, maximum = 5)]
    pub residual_impact: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub treatment: Option<Option<Treatment>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = tags_schema, nullable = false)]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable = false)]
    pub asset_ids: Option<Option<Vec<Uuid>>>,
    #[serde(default, deserialize_with = "double_option")]
    pub review_date: Option<Option<NaiveDate>>,
}

impl NewRisk {
    pub fn validate(self) -> Result<RiskFields, Violations> {
        let mut v = Violations::default();
        let title = v.required("title", self.title).unwrap_or_default();
        let likelihood = v.required("likelihood", self.likelihood).unwrap_or(1);
        let impact = v.required("impact", self.impact).unwrap_or(1);
        let fields = RiskFields {
            title,
            description: self.description,
            category: self.category,
            owner_id: self.owner_id,
            status: self.status.unwrap_or(RiskStatus::Open),
            likelihood: clamp_score_input(likelihood),
            impact: clamp_score_input(impact),
            residual_likelihood: self.residual_likelihood.map(clamp_score_input),
            residual_impact: self.residual_impact.map(clamp_score_input),
            treatment: self.treatment,
            tags: v.sent_tags("tags", self.tags),
            asset_ids: dedup_ids(self.asset_ids),
            review_date: self.review_date,
        };
        let raw = [
            ("likelihood", Some(likelihood)),
            ("impact", Some(impact)),
            ("residual_likelihood", self.residual_likelihood),
            ("residual_impact", self.residual_impact),
        ];
        fields.check(&mut v, &raw);
        v.into_result().map(|()| fields)
    }
}

impl RiskPatch {
    /// The risk's fields after this patch, validated as a whole.
    pub fn apply(self, current: &RiskFields) -> Result<RiskFields, Violations> {
        let mut v = Violations::default();
        let c = current.clone();
        let likelihood = v.not_null("likelihood", self.likelihood);
        let impact = v.not_null("impact", self.impact);
        let residual_likelihood = self.residual_likelihood;
        let residual_impact = self.residual_impact;
        let fields = RiskFields {
            title: v.not_null("title", self.title).unwrap_or(c.title),
            description: v
                .not_null("description", self.description)
                .unwrap_or(c.description),
            category: self.category.unwrap_or(c.category),
            owner_id: self.owner_id.unwrap_or(c.owner_id),
            status: v.not_null("status", self.status).unwrap_or(c.status),
            likelihood: likelihood.map_or(c.likelihood, clamp_score_input),
            impact: impact.map_or(c.impact, clamp_score_input),
            residual_likelihood: residual_likelihood
                .map_or(c.residual_likelihood, |r| r.map(clamp_score_input)),
            residual_impact: residual_impact.map_or(c.residual_impact, |r| r.map(clamp_score_input)),
            treatment: self.treatment.unwrap_or(c.treatment),
            tags: v
                .not_null("tags", self.tags)
                .map_or(c.tags, |tags| v.sent_tags("tags", tags)),
            asset_ids: v
                .not_null("asset_ids", self.asset_ids)
                .map_or(c.asset_ids, dedup_ids),
            review_date: self.review_date.unwrap_or(c.review_date),
        };
        let raw = [
            ("likelihood", likelihood),
            ("impact", impact),
            ("residual_likelihood", residual_likelihood.flatten()),
            ("residual_impact", residual_impact.flatten()),
        ];
        fields.check(&mut v, &raw);
        v.into_result().map(|()| fields)
    }
}

/// Out-of-range input is reported by `check`; the clamp only keeps the arithmetic in bounds.
fn clamp_score_input(value: i64) -> i32 {
    value.clamp(0, 100) as i32
}

impl RiskFields {
    fn check(&self, v: &mut Violations, raw_scores: &[(&str, Option<i64>)]) {
        v.text("title", &self.title, TITLE);
        v.text("description", &self.description, DESCRIPTION);
        if let Some(category) = &self.category {
            v.text("category", category, CATEGORY);
        }
        for (field, value) in raw_scores {
            if let Some(value) = value {
                v.range(field, *value, 1, 5);
            }
        }
        if self.residual_likelihood.is_some() != self.residual_impact.is_some() {
            v.add(
                "residual_impact",
                "residual_likelihood and residual_impact must be set together",
            );
        }
        v.tags("tags", &self.tags);
    }

    pub fn score(&self) -> i32 {
        self.likelihood * self.impact
    }

    pub fn residual_score(&self) -> Option<i32> {
        Some(self.residual_likelihood? * self.residual_impact?)
    }
}

impl Risk {
    pub fn new(id: Uuid, number: i64, fields: RiskFields, now: DateTime<Utc>) -> Risk {
        let closed_at = (fields.status == RiskStatus::Closed).then_some(now);
        let mut risk = Risk {
            id,
            reference: format!("RSK-{number}"),
            title: String::new(),
            description: String::new(),
            category: None,
            owner_id: None,
            status: fields.status,
            likelihood: 1,
            impact: 1,
            score: 1,
            severity: Severity::Low,
            residual_likelihood: None,
            residual_impact: None,
            residual_score: None,
            treatment: None,
            tags: Vec::new(),
            asset_ids: Vec::new(),
            review_date: None,
            mitigation_count: 0,
            version: 1,
            created_at: now,
            updated_at: now,
            closed_at,
        };
        risk.set_fields(fields);
        risk
    }

    pub fn fields(&self) -> RiskFields {
        RiskFields {
            title: self.title.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            owner_id: self.owner_id,
            status: self.status,
            likelihood: self.likelihood,
            impact: self.impact,
            residual_likelihood: self.residual_likelihood,
            residual_impact: self.residual_impact,
            treatment: self.treatment,
            tags: self.tags.clone(),
            asset_ids: self.asset_ids.clone(),
            review_date: self.review_date,
        }
    }

    /// The next version of this risk with `fields` applied, or `None` when nothing changes.
    pub fn updated(&self, fields: RiskFields, now: DateTime<Utc>) -> Option<Risk> {
        if fields == self.fields() {
            return None;
        }
        let mut next = self.clone();
        next.closed_at = match (self.status, fields.status) {
            (RiskStatus::Closed, RiskStatus::Closed) => self.closed_at,
            (_, RiskStatus::Closed) => Some(now),
            _ => None,
        };
        next.set_fields(fields);
        next.version += 1;
        next.updated_at = now;
        Some(next)
    }

    fn set_fields(&mut self, f: RiskFields) {
        self.score = f.score();
        self.severity = Severity::from_score(self.score);
        self.residual_score = f.residual_score();
        self.title = f.title;
        self.description = f.description;
        self.category = f.category;
        self.owner_id = f.owner_id;
        self.status = f.status;
        self.likelihood = f.likelihood;
        self.impact = f.impact;
        self.residual_likelihood = f.residual_likelihood;
        self.residual_impact = f.residual_impact;
        self.treatment = f.treatment;
        self.tags = f.tags;
        self.asset_ids = f.asset_ids;
        self.review_date = f.review_date;
    }

    /// Text the `q` search matches: title, description and tags.
    pub fn search_text(&self) -> String {
        let mut text = format!("{}\n{}", self.title, self.description);
        for tag in &self.tags {
            text.push('\n');
            text.push_str(tag);
        }
        text
    }
}

string_enum! {
    pub enum ChangeType { Create => "create", Update => "update", Delete => "delete" }
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub version: i64,
    pub changed_at: DateTime<Utc>,
    pub changed_by: Option<Uuid>,
    pub change_type: ChangeType,
    /// `{field: [old, new]}`
    #[schema(value_type = Object)]
    pub changes: Map<String, Value>,
    /// The risk's status after the change (none once deleted): when the risk was open.
    #[serde(skip)]
    pub status: Option<RiskStatus>,
}

impl HistoryEntry {
    pub fn created(risk: &Risk, actor: Uuid) -> Self {
        Self::entry(
            Some(risk.status),
            ChangeType::Create,
            risk.version,
            risk.created_at,
            actor,
            changes(None, Some(risk)),
        )
    }

    pub fn updated(before: &Risk, after: &Risk, actor: Uuid) -> Self {
        let changes = changes(Some(before), Some(after));
        Self::entry(
            Some(after.status),
            ChangeType::Update,
            after.version,
            after.updated_at,
            actor,
            changes,
        )
    }

    /// Deletion takes the version after the last one.
    pub fn deleted(risk: &Risk, actor: Uuid, at: DateTime<Utc>) -> Self {
        Self::entry(
            None,
            ChangeType::Delete,
            risk.version + 1,
            at,
            actor,
            changes(Some(risk), None),
        )
    }

    fn entry(
        status: Option<RiskStatus>,
        change_type: ChangeType,
        version: i64,
        changed_at: DateTime<Utc>,
        actor: Uuid,
        changes: Map<String, Value>,
    ) -> Self {
        HistoryEntry {
            version,
            changed_at,
            changed_by: Some(actor),
            change_type,
            changes,
            status,
        }
    }
}

/// Fields that change on every write and so say nothing in a history entry.
const UNRECORDED: &[&str] = &["version", "updated_at", "mitigation_count"];

/// `{field: [old, new]}` for every recorded field that differs; `None` stands for "no risk".
pub fn changes(old: Option<&Risk>, new: Option<&Risk>) -> Map<String, Value> {
    let as_map = |risk: Option<&Risk>| match risk.map(serde_json::to_value) {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    };
    let (old, new) = (as_map(old), as_map(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !UNRECORDED.contains(&k.as_str()))
        .filter_map(|k| {
            let before = old.get(k).cloned().unwrap_or(Value::Null);
            let after = new.get(k).cloned().unwrap_or(Value::Null);
            (before != after).then(|| (k.clone(), Value::Array(vec![before, after])))
        })
        .collect()
}

impl super::Versioned for Risk {
    fn version(&self) -> i64 {
        self.version
    }
}

#[cfg(test)]
impl Risk {
    /// A risk for unit tests: these fields, the others empty.
    pub fn sample(title: &str, likelihood: i32, impact: i32, status: RiskStatus, tags: &[&str]) -> Risk {
        let fields = RiskFields {
            title: title.into(),
            description: String::new(),
            category: None,
            owner_id: None,
            status,
            likelihood,
            impact,
            residual_likelihood: None,
            residual_impact: None,
            treatment: None,
            tags: tags.iter().map(|&tag| tag.into()).collect(),
            asset_ids: Vec::new(),
            review_date: None,
        };
        Risk::new(Uuid::now_v7(), 1, fields, chrono::Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> RiskFields {
        NewRisk {
            title: Some("Flood".into()),
            likelihood: Some(3),
            impact: Some(4),
            ..NewRisk::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn severity_bands_follow_the_score() {
        let bands: Vec<Severity> = (1..=25).map(Severity::from_score).collect();
        assert!(
            bands.windows(2).all(|w| w[0] <= w[1]),
            "severity grows with the score"
        );
        assert_eq!(Severity::from_score(4), Severity::Low);
        assert_eq!(Severity::from_score(5), Severity::Medium);
        assert_eq!(Severity::from_score(10), Severity::High);
        assert_eq!(Severity::from_score(16), Severity::Critical);
    }

    #[test]
    fn updates_recompute_derived_fields_and_record_changes() {
        let now = crate::domain::now();
        let risk = Risk::new(Uuid::nil(), 7, fields(), now);
        assert_eq!(
            (risk.reference.as_str(), risk.score, risk.severity),
            ("RSK-7", 12, Severity::High)
        );
        let patch = RiskPatch {
            status: Some(Some(RiskStatus::Closed)),
            residual_likelihood: Some(Some(1)),
            residual_impact: Some(Some(2)),
            ..RiskPatch::default()
        };
        let next = risk.updated(patch.apply(&risk.fields()).unwrap(), now).unwrap();
        assert_eq!(
            (next.version, next.residual_score, next.closed_at),
            (2, Some(2), Some(now))
        );
        let recorded = changes(Some(&risk), Some(&next));
        let mut keys: Vec<&str> = recorded.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "closed_at",
                "residual_impact",
                "residual_likelihood",
                "residual_score",
                "status"
            ]
        );
        // A patch that changes nothing is not a new version.
        assert!(next.updated(next.fields(), now).is_none());
    }

    #[test]
    fn residual_scores_come_in_pairs() {
        let v = RiskPatch {
            residual_likelihood: Some(Some(2)),
            ..RiskPatch::default()
        }
        .apply(&fields())
        .unwrap_err();
        assert_eq!(v.errors()[0].field, "residual_impact");
    }
}

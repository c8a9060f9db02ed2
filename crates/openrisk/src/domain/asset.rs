//! Assets: the things risks threaten.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::{DESCRIPTION, NAME, Violations, description_schema, name_schema, tags_schema};
use super::{Versioned, double_option, string_enum};

string_enum! {
    pub enum AssetKind {
        Application => "application", Server => "server", Database => "database",
        Network => "network", CloudService => "cloud_service", Data => "data",
        Endpoint => "endpoint", People => "people", Facility => "facility",
        Vendor => "vendor", Other => "other",
    }
}

string_enum! {
    pub enum Criticality { Low => "low", Medium => "medium", High => "high", Critical => "critical" }
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Asset {
    pub id: Uuid,
    pub name: String,
    pub kind: AssetKind,
    pub criticality: Criticality,
    pub description: String,
    pub tags: Vec<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Versioned for Asset {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AssetFields {
    pub name: String,
    pub kind: AssetKind,
    pub criticality: Criticality,
    pub description: String,
    pub tags: Vec<String>,
}

pub const READ_ONLY_FIELDS: &[&str] = &["id", "version", "created_at", "updated_at"];

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "File servers", "kind": "server", "criticality": "high", "tags": ["finance"]}))]
pub struct NewAsset {
    #[schema(schema_with = name_schema, required = true, nullable = false)]
    pub name: Option<String>,
    #[schema(required = true, nullable = false)]
    pub kind: Option<AssetKind>,
    /// Defaults to `medium`.
    pub criticality: Option<Criticality>,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    pub description: String,
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"criticality": "critical"}))]
pub struct AssetPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = name_schema, nullable = false)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable = false)]
    pub kind: Option<Option<AssetKind>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable = false)]
    pub criticality: Option<Option<Criticality>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = description_schema, nullable = false)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = tags_schema, nullable = false)]
    pub tags: Option<Option<Vec<String>>>,
}

impl NewAsset {
    pub fn validate(self) -> Result<AssetFields, Violations> {
        let mut v = Violations::default();
        let fields = AssetFields {
            name: v.required("name", self.name).unwrap_or_default(),
            kind: v.required("kind", self.kind).unwrap_or(AssetKind::Other),
            criticality: self.criticality.unwrap_or(Criticality::Medium),
            description: self.description,
            tags: v.sent_tags("tags", self.tags),
        };
        fields.check(&mut v);
        v.into_result().map(|()| fields)
    }
}

impl AssetPatch {
    pub fn apply(self, current: &AssetFields) -> Result<AssetFields, Violations> {
        let mut v = Violations::default();
        let c = current.clone();
        let fields = AssetFields {
            name: v.not_null("name", self.name).unwrap_or(c.name),
            kind: v.not_null("kind", self.kind).unwrap_or(c.kind),
            criticality: v
                .not_null("criticality", self.criticality)
                .unwrap_or(c.criticality),
            description: v
                .not_null("description", self.description)
                .unwrap_or(c.description),
            tags: v
                .not_null("tags", self.tags)
                .map_or(c.tags, |tags| v.sent_tags("tags", tags)),
        };
        fields.check(&mut v);
        v.into_result().map(|()| fields)
    }
}

impl AssetFields {
    fn check(&self, v: &mut Violations) {
        v.text("name", &self.name, NAME);
        v.text("description", &self.description, DESCRIPTION);
        v.tags("tags", &self.tags);
    }
}

impl Asset {
    pub fn new(id: Uuid, fields: AssetFields, now: DateTime<Utc>) -> Self {
        Asset {
            id,
            name: fields.name,
            kind: fields.kind,
            criticality: fields.criticality,
            description: fields.description,
            tags: fields.tags,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn fields(&self) -> AssetFields {
        AssetFields {
            name: self.name.clone(),
            kind: self.kind,
            criticality: self.criticality,
            description: self.description.clone(),
            tags: self.tags.clone(),
        }
    }

    pub fn updated(&self, fields: AssetFields, now: DateTime<Utc>) -> Option<Self> {
        (fields != self.fields()).then(|| Asset {
            version: self.version + 1,
            updated_at: now,
            ..Asset::new(self.id, fields, self.created_at)
        })
    }
}

//! The connector catalog (shipped in the binary) and installations of connectors.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::double_option;
use super::list::{ParamError, Params};
use super::string_enum;
use super::validation::Violations;

string_enum! {
    pub enum ConnectorCategory {
        Ticketing => "ticketing", Chat => "chat", Siem => "siem", Cloud => "cloud",
        Vulnerability => "vulnerability", Identity => "identity", Other => "other",
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Connector {
    pub slug: String,
    pub name: String,
    pub category: ConnectorCategory,
    pub description: String,
    pub version: String,
    /// JSON Schema of an installation's `config`; properties marked `writeOnly` are secrets.
    #[schema(value_type = Object)]
    pub config_schema: Value,
}

/// What a secret looks like in every response.
pub const MASK: &str = "********";

/// A connector's slug: one of the catalog's.
fn connector_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(FILES.iter().map(|(slug, _)| *slug)))
        .build()
}

/// The connector definitions, one file per connector.
const FILES: &[(&str, &str)] = &[
    (
        "aws-security-hub",
        include_str!("../../connectors/aws-security-hub.json"),
    ),
    ("github", include_str!("../../connectors/github.json")),
    ("jira", include_str!("../../connectors/jira.json")),
    ("okta", include_str!("../../connectors/okta.json")),
    ("pagerduty", include_str!("../../connectors/pagerduty.json")),
    ("qualys", include_str!("../../connectors/qualys.json")),
    ("servicenow", include_str!("../../connectors/servicenow.json")),
    ("slack", include_str!("../../connectors/slack.json")),
    ("splunk", include_str!("../../connectors/splunk.json")),
    ("teams", include_str!("../../connectors/teams.json")),
];

struct Entry {
    connector: Connector,
    validator: jsonschema::Validator,
    secrets: Vec<String>,
}

/// The catalog, checked once at start-up: a connector whose schema is not a valid JSON Schema
/// stops the service rather than failing on the first installation.
pub struct Catalog {
    entries: Vec<Entry>,
    by_slug: HashMap<String, usize>,
}

impl Catalog {
    /// The catalog's content version: a hash of its definitions, the same on every replica of a
    /// release and different as soon as a definition changes.
    pub fn version() -> String {
        let mut hasher = blake3::Hasher::new();
        for (file, text) in FILES {
            hasher.update(file.as_bytes());
            hasher.update(text.as_bytes());
        }
        hasher.finalize().to_hex()[..16].to_owned()
    }

    pub fn load() -> Result<Catalog, String> {
        let mut entries = Vec::new();
        for (file, text) in FILES {
            let connector: Connector =
                serde_json::from_str(text).map_err(|e| format!("connectors/{file}.json: {e}"))?;
            if connector.slug != *file {
                return Err(format!(
                    "connectors/{file}.json: slug {:?} differs from the file name",
                    connector.slug
                ));
            }
            jsonschema::meta::validate(&connector.config_schema)
                .map_err(|e| format!("connectors/{file}.json: config_schema is not a JSON Schema: {e}"))?;
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&connector.config_schema)
                .map_err(|e| format!("connectors/{file}.json: {e}"))?;
            let secrets = connector.config_schema["properties"]
                .as_object()
                .map(|props| {
                    props
                        .iter()
                        .filter(|(_, p)| p["writeOnly"] == Value::Bool(true))
                        .map(|(name, _)| name.clone())
                        .collect()
                })
                .unwrap_or_default();
            entries.push(Entry {
                connector,
                validator,
                secrets,
            });
        }
        let by_slug = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.connector.slug.clone(), i))
            .collect();
        Ok(Catalog { entries, by_slug })
    }

    fn entry(&self, slug: &str) -> Option<&Entry> {
        self.by_slug.get(slug).map(|i| &self.entries[*i])
    }

    pub fn connector(&self, slug: &str) -> Option<&Connector> {
        self.entry(slug).map(|e| &e.connector)
    }

    pub fn connectors(&self, category: Option<ConnectorCategory>) -> Vec<&Connector> {
        self.entries
            .iter()
            .map(|e| &e.connector)
            .filter(|c| category.is_none_or(|cat| c.category == cat))
            .collect()
    }

    /// `?category=` of the catalog listing.
    pub fn category_param(params: &Params) -> Result<Option<ConnectorCategory>, ParamError> {
        params.only(&["category"])?;
        params
            .single("category")?
            .map(|raw| raw.parse().map_err(|e| ParamError::new("category", e)))
            .transpose()
    }

    /// Every way `config` breaks the connector's schema, each named by its path under `config`.
    /// A secret's value is never repeated in the message.
    fn check(&self, entry: &Entry, config: &Value) -> Result<(), Violations> {
        use jsonschema::error::ValidationErrorKind as Kind;
        let mut v = Violations::default();
        for error in entry.validator.iter_errors(config) {
            let path = error.instance_path().to_string();
            match error.kind() {
                Kind::Required { property } => v.add(
                    format!("config/{}", property.as_str().unwrap_or_default()),
                    "is required",
                ),
                Kind::AdditionalProperties { unexpected } => {
                    for name in unexpected {
                        v.add(format!("config/{name}"), "is not a setting of this connector");
                    }
                }
                _ if entry
                    .secrets
                    .iter()
                    .any(|s| path.split('/').nth(1) == Some(s.as_str())) =>
                {
                    v.add(format!("config{path}"), "is not a valid value for this secret")
                }
                _ => v.add(format!("config{path}"), error.to_string()),
            }
        }
        v.into_result()
    }

    /// The installation as clients see it: secrets replaced by `MASK`. A connector no longer in
    /// the catalog has no known secrets, so every value of its configuration is masked.
    pub fn masked(&self, mut installation: Installation) -> Installation {
        let entry = self.entry(&installation.connector);
        if let Some(config) = installation.config.as_object_mut() {
            for (name, value) in config.iter_mut() {
                if entry.is_none_or(|e| e.secrets.contains(name)) {
                    *value = Value::String(MASK.into());
                }
            }
        }
        installation
    }

    pub fn install(
        &self,
        new: NewInstallation,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Installation, Violations> {
        let mut v = Violations::default();
        let slug = v.required("connector", new.connector).unwrap_or_default();
        let config = new.config.unwrap_or_else(|| Value::Object(Default::default()));
        let Some(entry) = self.entry(&slug) else {
            if v.is_empty() {
                v.add("connector", "no such connector in the catalog");
            }
            return Err(v);
        };
        if let Err(errors) = self.check(entry, &config) {
            v.merge(errors);
        }
        for secret in &entry.secrets {
            if config.get(secret).and_then(Value::as_str) == Some(MASK) {
                v.add(
                    format!("config/{secret}"),
                    "must be the secret itself, not its mask",
                );
            }
        }
        v.into_result()?;
        Ok(Installation {
            id,
            connector: slug,
            enabled: new.enabled.unwrap_or(true),
            config,
            created_at: now,
            updated_at: now,
        })
    }

    /// `current` with `patch` applied, or `None` when nothing changes. A secret sent back as
    /// `MASK` keeps its stored value, so clients can edit a configuration they only see masked.
    pub fn patched(
        &self,
        current: &Installation,
        patch: InstallationPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Installation>, Violations> {
        let mut v = Violations::default();
        let enabled = v.not_null("enabled", patch.enabled).unwrap_or(current.enabled);
        let mut config = v
            .not_null("config", patch.config)
            .unwrap_or_else(|| current.config.clone());
        let entry = self
            .entry(&current.connector)
            .ok_or_else(|| Violations::single("connector", "no longer in the catalog"))?;
        if let (Some(config), Some(stored)) = (config.as_object_mut(), current.config.as_object()) {
            for secret in &entry.secrets {
                if config.get(secret).and_then(Value::as_str) == Some(MASK) {
                    match stored.get(secret) {
                        Some(value) => config.insert(secret.clone(), value.clone()),
                        None => config.remove(secret),
                    };
                }
            }
        }
        if let Err(errors) = self.check(entry, &config) {
            v.merge(errors);
        }
        v.into_result()?;
        if enabled == current.enabled && config == current.config {
            return Ok(None);
        }
        Ok(Some(Installation {
            enabled,
            config,
            updated_at: now,
            ..current.clone()
        }))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Installation {
    pub id: Uuid,
    /// The connector's slug.
    pub connector: String,
    pub enabled: bool,
    /// Validated against the connector's `config_schema`; secrets read `"********"`.
    #[schema(value_type = Object)]
    pub config: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const READ_ONLY_FIELDS: &[&str] = &["id", "created_at", "updated_at"];

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstallation {
    #[schema(required = true, nullable = false, schema_with = connector_schema)]
    pub connector: Option<String>,
    /// Defaults to `true`.
    pub enabled: Option<bool>,
    /// Defaults to `{}`.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallationPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<bool>, nullable = false)]
    pub enabled: Option<Option<bool>>,
    /// Replaces the whole configuration; a secret sent as `"********"` keeps its stored value.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub config: Option<Option<Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connector_file_is_in_the_catalog_and_valid() {
        let catalog = Catalog::load().unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| {
                f.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".json")
                    .to_owned()
            })
            .collect();
        files.sort();
        let listed: Vec<&str> = catalog.connectors(None).iter().map(|c| c.slug.as_str()).collect();
        assert_eq!(files, listed);
        for entry in &catalog.entries {
            assert!(
                !entry.secrets.is_empty(),
                "{} marks no secret",
                entry.connector.slug
            );
        }
    }
}

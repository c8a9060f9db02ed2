//! Types, validation and scoring rules. Nothing here performs I/O.

pub mod asset;
pub mod auth;
pub mod coverage;
pub mod dashboard;
pub mod evaluation;
pub mod figures;
pub mod list;
pub mod marketplace;
pub mod mitigation;
pub mod org;
pub mod report;
pub mod risk;
pub mod validation;

use chrono::{DateTime, SubsecRound, Utc};

/// The current time at the precision every backend stores (microseconds), so a value read back
/// compares equal to the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Declares a closed set of string values: the enum, its wire names, `as_str`, `ALL` and `FromStr`.
macro_rules! string_enum {
    ($(#[doc = $doc:literal])* pub enum $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        // By hand rather than derived: the derive cannot read a `rename` that arrives through a
        // macro and documents the Rust names. Serde and the schema take the same wire names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let docs: &[&str] = &[$($doc),*];
                let description = docs.iter().map(|line| line.trim()).collect::<Vec<_>>().join(" ");
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description((!description.is_empty()).then_some(description))
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

/// Integers that JSON may write as `3` or `3.0`: JSON Schema counts both as the integer 3, so a
/// client that follows the document may send either.
pub mod whole {
    use serde::{Deserialize, Deserializer, de};

    struct Whole(i64);

    impl<'de> Deserialize<'de> for Whole {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            match serde_json::Number::deserialize(deserializer)? {
                n if n.is_i64() => n.as_i64(),
                n => n
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64),
            }
            .map(Whole)
            .ok_or_else(|| de::Error::custom("expected an integer"))
        }
    }

    /// For an optional field (`#[serde(default, deserialize_with = "whole::option")]`).
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Ok(Option::<Whole>::deserialize(deserializer)?.map(|w| w.0))
    }

    /// For a PATCH field, as `double_option`.
    pub fn patch<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<i64>>, D::Error> {
        Ok(Some(Option::<Whole>::deserialize(deserializer)?.map(|w| w.0)))
    }
}

/// Deserializes a PATCH field so that an absent key is `None`, `null` is `Some(None)` and a value
/// is `Some(Some(v))`.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// A resource whose representation carries a version and an entity tag.
pub trait Versioned: serde::Serialize {
    fn version(&self) -> i64;

    /// Changes whenever the representation changes (including derived fields such as
    /// `mitigation_count`), not only when `version` does.
    fn etag(&self) -> String {
        etag_of(self.version(), &serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The entity tag of a representation serialized as `body`.
pub fn etag_of(version: i64, body: &[u8]) -> String {
    let hash = blake3::hash(body);
    let hex = hash.to_hex();
    format!("\"{version}-{}\"", &hex[..16])
}

/// An `If-Match` precondition on a write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Precondition {
    #[default]
    None,
    /// `*`: the resource must exist.
    Any,
    /// One of these entity tags must be the current one (strong comparison: a weak tag never
    /// matches).
    OneOf(Vec<String>),
}

impl Precondition {
    pub fn holds(&self, current: &impl Versioned) -> bool {
        match self {
            Precondition::None | Precondition::Any => true,
            Precondition::OneOf(tags) => tags.contains(&current.etag()),
        }
    }
}

//! Collects every rule a request breaks, so one answer names every failing field.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Array, ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut v = Self::default();
        v.add(field, message);
        v
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn merge(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    pub fn into_result(self) -> Result<(), Violations> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// A required value: reports the field when it is missing.
    pub fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value
    }

    /// A PATCH value for a field that cannot be cleared: reports an explicit `null`.
    pub fn not_null<T>(&mut self, field: &str, value: Option<Option<T>>) -> Option<T> {
        match value {
            Some(None) => {
                self.add(field, "must not be null");
                None
            }
            Some(Some(v)) => Some(v),
            None => None,
        }
    }

    /// Text within `rule`'s bounds, in characters.
    pub fn text(&mut self, field: &str, value: &str, rule: Text) {
        let Text { min, max } = rule;
        let len = value.chars().count();
        if value.contains('\0') {
            // PostgreSQL cannot store NUL in text.
            self.add(field, "must not contain NUL characters");
        } else if len < min || len > max {
            if min == 0 {
                self.add(field, format!("must be at most {max} characters"));
            } else {
                self.add(field, format!("must be {min} to {max} characters"));
            }
        } else if min > 0 && value.trim().is_empty() {
            self.add(field, "must not be blank");
        }
    }

    pub fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.add(field, format!("must be between {min} and {max}"));
        }
    }

    /// Tags as sent: at most `MAX_TAGS`, duplicates counted (as the document's `maxItems` says),
    /// then each kept once, where first sent.
    pub fn sent_tags(&mut self, field: &str, tags: Vec<String>) -> Vec<String> {
        if tags.len() > MAX_TAGS {
            self.add(field, format!("must hold at most {MAX_TAGS} tags"));
        }
        let mut seen = std::collections::HashSet::new();
        tags.into_iter().filter(|t| seen.insert(t.clone())).collect()
    }

    /// Tags: each 1..=50 characters.
    pub fn tags(&mut self, field: &str, tags: &[String]) {
        for (i, tag) in tags.iter().enumerate() {
            self.text(&format!("{field}[{i}]"), tag, TAG);
        }
    }
}

pub const MAX_TAGS: usize = 20;

/// The bounds of a text field, in characters. Validation and the OpenAPI document both read them,
/// so that the document states exactly what is accepted.
#[derive(Clone, Copy, Debug)]
pub struct Text {
    pub min: usize,
    pub max: usize,
}

pub const TITLE: Text = Text { min: 1, max: 200 };
pub const NAME: Text = Text { min: 1, max: 200 };
pub const DESCRIPTION: Text = Text { min: 0, max: 10_000 };
pub const CATEGORY: Text = Text { min: 1, max: 100 };
pub const TAG: Text = Text { min: 1, max: 50 };

/// What `str::trim` removes (Unicode White_Space), spelled out so that the document's pattern and
/// the check above agree character for character.
const WHITE_SPACE: &str = r"\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

impl Text {
    pub fn schema(self) -> Object {
        self.builder().build()
    }

    /// The same, with `null` allowed as well.
    pub fn nullable_schema(self) -> Object {
        self.builder()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .build()
    }

    fn builder(self) -> ObjectBuilder {
        // No NUL anywhere (PostgreSQL cannot store it) and, with a minimum, not only white space.
        let pattern = if self.min > 0 {
            format!("^[^\\u0000]*[^\\u0000{WHITE_SPACE}][^\\u0000]*$")
        } else {
            r"^[^\u0000]*$".to_owned()
        };
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(self.min))
            .max_length(Some(self.max))
            .pattern(Some(pattern))
    }
}

/// Schemas for `#[schema(schema_with = …)]`.
pub fn title_schema() -> Object {
    TITLE.schema()
}

pub fn name_schema() -> Object {
    NAME.schema()
}

/// A name that may be left out or `null` (a default stands in).
pub fn optional_name_schema() -> Object {
    NAME.nullable_schema()
}

pub fn description_schema() -> Object {
    DESCRIPTION.schema()
}

/// The category: optional, and `null` clears it.
pub fn category_schema() -> Object {
    CATEGORY.nullable_schema()
}

pub fn tags_schema() -> Array {
    ArrayBuilder::new()
        .items(TAG.schema())
        .max_items(Some(MAX_TAGS))
        .build()
}

/// A set of ids in canonical (sorted) order, so equal sets compare and serialize equal.
pub fn dedup_ids(mut ids: Vec<uuid::Uuid>) -> Vec<uuid::Uuid> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_counted_as_sent_then_kept_once() {
        let sent = |tags: &[&str]| {
            let mut v = Violations::default();
            let kept = v.sent_tags("tags", tags.iter().map(|t| (*t).to_owned()).collect());
            (kept, v.into_result().is_ok())
        };
        // 21 sent, 2 distinct: over the limit the document states, whatever is kept.
        let mut many = vec!["a"; 20];
        many.push("b");
        assert_eq!(sent(&many), (vec!["a".to_owned(), "b".to_owned()], false));
        let twenty: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let twenty: Vec<&str> = twenty.iter().map(String::as_str).collect();
        assert!(sent(&twenty).1);
        assert_eq!(
            sent(&["b", "a", "b"]),
            (vec!["b".to_owned(), "a".to_owned()], true)
        );
    }
}

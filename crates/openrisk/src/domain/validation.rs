//! Collects every rule a request breaks, so one answer names every failing field.

use serde::Serialize;
use utoipa::ToSchema;

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

    /// Text length in characters, inclusive bounds.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
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

    /// Tags: at most `MAX_TAGS`, each 1..=50 characters.
    pub fn tags(&mut self, field: &str, tags: &[String]) {
        if tags.len() > MAX_TAGS {
            self.add(field, format!("must hold at most {MAX_TAGS} tags"));
        }
        for (i, tag) in tags.iter().enumerate() {
            self.text(&format!("{field}[{i}]"), tag, 1, 50);
        }
    }
}

pub const MAX_TAGS: usize = 20;

/// Removes duplicate tags, keeping the first occurrence's position.
pub fn dedup_tags(tags: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tags.into_iter().filter(|t| seen.insert(t.clone())).collect()
}

/// A set of ids in canonical (sorted) order, so equal sets compare and serialize equal.
pub fn dedup_ids(mut ids: Vec<uuid::Uuid>) -> Vec<uuid::Uuid> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

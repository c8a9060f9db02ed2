//! List queries: filters, sort orders, limits and opaque cursors for keyset pagination.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::risk::{Risk, RiskStatus, Severity};

/// A query parameter that cannot be honoured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl ParamError {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        ParamError {
            param: param.to_owned(),
            message: message.into(),
        }
    }
}

/// Decoded query-string pairs, in order, repeats kept.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Rejects parameters the route does not know, so a typo never silently widens a query.
    pub fn only(&self, known: &[&str]) -> Result<(), ParamError> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(ParamError::new(k, "is not a known parameter")),
            None => Ok(()),
        }
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that may appear at most once.
    pub fn single<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ParamError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(ParamError::new(name, "may appear only once"));
        }
        Ok(first)
    }

    /// Every value of a repeatable parameter, parsed.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Vec<T>, ParamError>
    where
        T::Err: std::fmt::Display,
    {
        self.all(name)
            .map(|v| {
                v.parse()
                    .map_err(|e| ParamError::new(name, format!("{v:?}: {e}")))
            })
            .collect()
    }

    pub fn bool(&self, name: &str) -> Result<bool, ParamError> {
        match self.single(name)? {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ParamError::new(name, "must be true or false")),
        }
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn int(&self, name: &str, min: i64, max: i64, default: i64) -> Result<i64, ParamError> {
        match self.single(name)? {
            None => Ok(default),
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| ParamError::new(name, format!("must be an integer from {min} to {max}"))),
        }
    }
}

pub const MAX_LIMIT: i64 = 200;
pub const DEFAULT_LIMIT: i64 = 50;

/// `limit` and `cursor`, shared by every list.
#[derive(Clone, Debug, PartialEq)]
pub struct PageRequest<K> {
    pub limit: i64,
    pub after: Option<K>,
}

impl<K: DeserializeOwned> PageRequest<K> {
    pub const PARAMS: &'static [&'static str] = &["limit", "cursor"];

    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        Ok(PageRequest {
            limit: params.int("limit", 1, MAX_LIMIT, DEFAULT_LIMIT)?,
            after: params.single("cursor")?.map(decode_cursor).transpose()?,
        })
    }
}

/// One page of a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Only with `include_total=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
    pub fn from_rows<K: Serialize>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> K) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        let next_cursor = more
            .then(|| rows.last().map(|last| encode_cursor(&key(last))))
            .flatten();
        Page {
            items: rows,
            next_cursor,
            total: None,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
            total: self.total,
        }
    }
}

pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

pub fn decode_cursor<K: DeserializeOwned>(raw: &str) -> Result<K, ParamError> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ParamError::new("cursor", "is not a cursor this list issued"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortKey {
    #[serde(rename = "score")]
    Score,
    #[serde(rename = "created_at")]
    CreatedAt,
    #[serde(rename = "updated_at")]
    UpdatedAt,
    #[serde(rename = "title")]
    Title,
}

/// A list order; ties are broken by id in the same direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            key: SortKey::Score,
            descending: true,
        }
    }
}

pub const SORTS: &[&str] = &[
    "score",
    "-score",
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "title",
    "-title",
];

/// In the document, the orders `SORTS` lists: a parameter, written as text.
impl utoipa::PartialSchema for Sort {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A list order; `-` sorts descending. Ties are broken by id."))
            .enum_values(Some(SORTS.iter().copied()))
            .into()
    }
}

impl utoipa::ToSchema for Sort {}

impl std::str::FromStr for Sort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (descending, name) = match s.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, s),
        };
        let key = match name {
            "score" => SortKey::Score,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "title" => SortKey::Title,
            _ => return Err(format!("must be one of: {}", SORTS.join(", "))),
        };
        Ok(Sort { key, descending })
    }
}

/// The position after which the next page starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskCursor {
    #[serde(rename = "s")]
    pub sort: Sort,
    #[serde(rename = "v")]
    pub value: SortValue,
    #[serde(rename = "i")]
    pub id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SortValue {
    #[serde(rename = "n")]
    Int(i64),
    #[serde(rename = "t")]
    Time(DateTime<Utc>),
    #[serde(rename = "s")]
    Text(String),
}

impl Sort {
    pub fn cursor_for(&self, risk: &Risk) -> RiskCursor {
        let value = match self.key {
            SortKey::Score => SortValue::Int(risk.score.into()),
            SortKey::CreatedAt => SortValue::Time(risk.created_at),
            SortKey::UpdatedAt => SortValue::Time(risk.updated_at),
            SortKey::Title => SortValue::Text(risk.title.clone()),
        };
        RiskCursor {
            sort: *self,
            value,
            id: risk.id,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskFilter {
    pub statuses: Vec<RiskStatus>,
    pub severities: Vec<Severity>,
    pub categories: Vec<String>,
    pub owner_ids: Vec<Uuid>,
    pub tags: Vec<String>,
    /// Case-insensitive substring of title, description or a tag.
    pub q: Option<String>,
}

impl RiskFilter {
    pub const PARAMS: &'static [&'static str] = &["status", "severity", "category", "owner_id", "tag", "q"];

    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let q = params.single("q")?.map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > 200) {
            return Err(ParamError::new("q", "must be at most 200 characters"));
        }
        Ok(RiskFilter {
            statuses: params.parsed("status")?,
            severities: params.parsed("severity")?,
            categories: params.all("category").map(str::to_owned).collect(),
            owner_ids: params.parsed("owner_id")?,
            tags: params.all("tag").map(str::to_owned).collect(),
            q: q.map(str::to_owned),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RiskListQuery {
    pub filter: RiskFilter,
    pub sort: Sort,
    pub page: PageRequest<RiskCursor>,
    pub include_total: bool,
}

impl RiskListQuery {
    /// Parameters whose value, given once, means what their absence means.
    pub const DEFAULTS: &'static [(&'static str, &'static str)] =
        &[("sort", "-score"), ("limit", "50"), ("include_total", "false")];

    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let known: Vec<&str> = RiskFilter::PARAMS
            .iter()
            .chain(PageRequest::<RiskCursor>::PARAMS)
            .chain(&["sort", "include_total"])
            .copied()
            .collect();
        params.only(&known)?;
        let sort = match params.single("sort")? {
            None => Sort::default(),
            Some(raw) => raw.parse().map_err(|e| ParamError::new("sort", e))?,
        };
        let page = PageRequest::<RiskCursor>::from_params(params)?;
        if page
            .after
            .as_ref()
            .is_some_and(|c| c.sort != sort || !c.value.fits(sort.key))
        {
            return Err(ParamError::new("cursor", "belongs to a different sort order"));
        }
        Ok(RiskListQuery {
            filter: RiskFilter::from_params(params)?,
            sort,
            page,
            include_total: params.bool("include_total")?,
        })
    }
}

impl SortValue {
    fn fits(&self, key: SortKey) -> bool {
        !matches!(self, SortValue::Text(text) if text.contains('\0'))
            && matches!(
                (self, key),
                (SortValue::Int(_), SortKey::Score)
                    | (SortValue::Time(_), SortKey::CreatedAt | SortKey::UpdatedAt)
                    | (SortValue::Text(_), SortKey::Title)
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &[(&str, &str)]) -> Params {
        Params(
            query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The cache leaves these out of its keys: each must mean exactly what its absence means.
    #[test]
    fn each_default_parameter_means_its_absence() {
        let none = RiskListQuery::from_params(&params(&[])).unwrap();
        for default in RiskListQuery::DEFAULTS {
            let given = RiskListQuery::from_params(&params(&[*default])).unwrap();
            assert_eq!(given, none, "{default:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_belong_to_their_sort() {
        let sort: Sort = "-title".parse().unwrap();
        let cursor = RiskCursor {
            sort,
            // A title that looks like a timestamp stays a title.
            value: SortValue::Text("2026-01-01T00:00:00Z".into()),
            id: Uuid::nil(),
        };
        let raw = encode_cursor(&cursor);
        let query = RiskListQuery::from_params(&params(&[("sort", "-title"), ("cursor", &raw)])).unwrap();
        assert_eq!(query.page.after, Some(cursor));
        let err = RiskListQuery::from_params(&params(&[("sort", "title"), ("cursor", &raw)])).unwrap_err();
        assert_eq!(err.param, "cursor");
    }

    #[test]
    fn repeated_filters_mean_any_of() {
        let query = RiskListQuery::from_params(&params(&[
            ("status", "open"),
            ("status", "closed"),
            ("tag", "a"),
            ("q", "  x  "),
        ]))
        .unwrap();
        assert_eq!(query.filter.statuses, vec![RiskStatus::Open, RiskStatus::Closed]);
        assert_eq!(query.filter.q.as_deref(), Some("x"));
        assert_eq!(query.sort, Sort::default());
        assert_eq!(query.page.limit, DEFAULT_LIMIT);
    }
}

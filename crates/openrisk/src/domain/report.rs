//! Reports: the risk-register export's formats and columns, and the executive summary.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::dashboard::{Matrix, Stats};
use super::list::{ParamError, Params, RiskFilter, Sort};
use super::mitigation::Mitigation;
use super::org::Organization;
use super::risk::Risk;
use super::string_enum;

string_enum! {
    pub enum ExportFormat { Csv => "csv", Json => "json", Xlsx => "xlsx" }
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
            ExportFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// `risk-register-<date>.<format>`
    pub fn file_name(self, day: NaiveDate) -> String {
        format!("risk-register-{day}.{self}")
    }
}

/// Which risks to export, in which order, in which format.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterExport {
    pub format: ExportFormat,
    pub filter: RiskFilter,
    pub sort: Sort,
}

impl RegisterExport {
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        let known: Vec<&str> = RiskFilter::PARAMS
            .iter()
            .chain(&["format", "sort"])
            .copied()
            .collect();
        params.only(&known)?;
        let format = match params.single("format")? {
            None => ExportFormat::Csv,
            Some(raw) => raw.parse().map_err(|e| ParamError::new("format", e))?,
        };
        let sort = match params.single("sort")? {
            None => Sort::default(),
            Some(raw) => raw.parse().map_err(|e| ParamError::new("sort", e))?,
        };
        Ok(RegisterExport {
            format,
            filter: RiskFilter::from_params(params)?,
            sort,
        })
    }
}

/// One cell of an exported row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    Empty,
}

/// The export's columns, in order; `cells` answers them for one risk.
pub const COLUMNS: &[&str] = &[
    "ref",
    "id",
    "title",
    "description",
    "category",
    "owner_id",
    "status",
    "likelihood",
    "impact",
    "score",
    "severity",
    "residual_likelihood",
    "residual_impact",
    "residual_score",
    "treatment",
    "tags",
    "asset_ids",
    "review_date",
    "mitigation_count",
    "version",
    "created_at",
    "updated_at",
    "closed_at",
];

fn text(value: impl ToString) -> Cell {
    Cell::Text(value.to_string())
}

fn optional<T>(value: Option<T>, cell: impl Fn(T) -> Cell) -> Cell {
    value.map_or(Cell::Empty, cell)
}

fn number(n: impl Into<f64>) -> Cell {
    Cell::Number(n.into())
}

fn time(t: DateTime<Utc>) -> Cell {
    text(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The risk's row, matching `COLUMNS`; lists are joined with `; `.
pub fn cells(r: &Risk) -> Vec<Cell> {
    vec![
        text(&r.reference),
        text(r.id),
        text(&r.title),
        text(&r.description),
        optional(r.category.as_ref(), text),
        optional(r.owner_id, text),
        text(r.status),
        number(r.likelihood),
        number(r.impact),
        number(r.score),
        text(r.severity),
        optional(r.residual_likelihood, number),
        optional(r.residual_impact, number),
        optional(r.residual_score, number),
        optional(r.treatment, text),
        text(r.tags.join("; ")),
        text(
            r.asset_ids
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        optional(r.review_date, text),
        number(r.mitigation_count as f64),
        number(r.version as f64),
        time(r.created_at),
        time(r.updated_at),
        optional(r.closed_at, time),
    ]
}

/// Text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a leading tab or carriage
/// return) is prefixed with `'`, so opening an export never executes what a user typed.
pub fn spreadsheet_safe(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A mitigation past its due date, with the risk it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct OverdueMitigation {
    #[serde(flatten)]
    pub mitigation: Mitigation,
    pub risk_ref: String,
    pub risk_title: String,
    pub days_overdue: i64,
}

impl OverdueMitigation {
    /// `mitigation`, overdue `today`, of the risk `risk_ref` titled `risk_title`.
    pub fn new(mitigation: Mitigation, risk_ref: String, risk_title: String, today: NaiveDate) -> Self {
        let days_overdue = mitigation.due_date.map_or(0, |due| (today - due).num_days());
        OverdueMitigation {
            mitigation,
            risk_ref,
            risk_title,
            days_overdue,
        }
    }
}

/// How many overdue mitigations the summary lists (oldest due date first); the total is in
/// `stats.mitigations.overdue`.
pub const SUMMARY_OVERDUE_LIMIT: i64 = 50;
/// How many top risks the summary lists.
pub const SUMMARY_TOP_RISKS: i64 = 10;

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Summary {
    pub organization: Organization,
    pub generated_at: DateTime<Utc>,
    pub stats: Stats,
    /// Open risks by likelihood and impact.
    pub matrix: Matrix,
    pub top_risks: Vec<Risk>,
    pub overdue_mitigations: Vec<OverdueMitigation>,
}

string_enum! {
    pub enum SummaryFormat { Json => "json", Html => "html" }
}

impl SummaryFormat {
    pub fn from_params(params: &Params) -> Result<Self, ParamError> {
        params.only(&["format"])?;
        match params.single("format")? {
            None => Ok(SummaryFormat::Json),
            Some(raw) => raw.parse().map_err(|e| ParamError::new("format", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_text_is_defused() {
        for risky in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(risky), format!("'{risky}"));
        }
        assert_eq!(spreadsheet_safe("plain = text"), "plain = text");
    }
}

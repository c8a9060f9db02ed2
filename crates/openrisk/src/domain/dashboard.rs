//! Dashboard figures, assembled from the aggregates the database computes.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

use super::list::{ParamError, Params};
use super::mitigation::MitigationStatus;
use super::risk::{RiskStatus, Severity};

impl RiskStatus {
    /// "Open" on dashboards: the risk still needs work.
    pub fn is_open(self) -> bool {
        matches!(self, RiskStatus::Open | RiskStatus::InProgress)
    }

    pub const OPEN: &'static [RiskStatus] = &[RiskStatus::Open, RiskStatus::InProgress];
}

impl MitigationStatus {
    /// Still expected to be delivered, so it can be overdue.
    pub fn is_active(self) -> bool {
        matches!(self, MitigationStatus::Planned | MitigationStatus::InProgress)
    }
}

/// Risks of one status and severity: the unit every risk figure is summed from.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskGroup {
    pub status: RiskStatus,
    pub severity: Severity,
    pub count: i64,
    pub score_sum: i64,
}

/// The risk groups, and per status the risks whose review date is before today.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RiskFigures {
    pub groups: Vec<RiskGroup>,
    pub reviews_overdue: Vec<(RiskStatus, i64)>,
}

/// Mitigations of one status.
#[derive(Clone, Debug, PartialEq)]
pub struct MitigationGroup {
    pub status: MitigationStatus,
    pub count: i64,
    /// Mitigations of the group whose due date is before today.
    pub due_passed: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    pub total: i64,
    /// Every status, 0 where empty.
    pub by_status: BTreeMap<RiskStatus, i64>,
    /// Every severity, 0 where empty.
    pub by_severity: BTreeMap<Severity, i64>,
    /// Mean score of all risks; 0 when there are none.
    pub average_score: f64,
    /// Open (`open`, `in_progress`) critical risks.
    pub open_critical: i64,
    /// Risks not closed whose review date is before today (UTC).
    pub overdue_reviews: i64,
    pub mitigations: MitigationStats,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MitigationStats {
    /// Every status, 0 where empty.
    pub by_status: BTreeMap<MitigationStatus, i64>,
    /// Mitigations neither done nor cancelled whose due date is before today (UTC).
    pub overdue: i64,
}

fn zeroed<K: Ord + Copy>(all: &[K]) -> BTreeMap<K, i64> {
    all.iter().map(|k| (*k, 0)).collect()
}

impl Stats {
    pub fn from_groups(risks: &RiskFigures, mitigations: &[MitigationGroup]) -> Stats {
        let mut stats = Stats {
            total: 0,
            by_status: zeroed(RiskStatus::ALL),
            by_severity: zeroed(Severity::ALL),
            average_score: 0.0,
            open_critical: 0,
            overdue_reviews: 0,
            mitigations: MitigationStats {
                by_status: zeroed(MitigationStatus::ALL),
                overdue: 0,
            },
        };
        let mut score_sum = 0;
        for g in &risks.groups {
            stats.total += g.count;
            score_sum += g.score_sum;
            *stats.by_status.entry(g.status).or_default() += g.count;
            *stats.by_severity.entry(g.severity).or_default() += g.count;
            if g.status.is_open() && g.severity == Severity::Critical {
                stats.open_critical += g.count;
            }
        }
        for (status, overdue) in &risks.reviews_overdue {
            if *status != RiskStatus::Closed {
                stats.overdue_reviews += overdue;
            }
        }
        if stats.total > 0 {
            stats.average_score = score_sum as f64 / stats.total as f64;
        }
        for g in mitigations {
            *stats.mitigations.by_status.entry(g.status).or_default() += g.count;
            if g.status.is_active() {
                stats.mitigations.overdue += g.due_passed;
            }
        }
        stats
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Matrix {
    /// `cells[likelihood - 1][impact - 1]`: the number of matching risks.
    pub cells: [[i64; 5]; 5],
}

impl Matrix {
    pub const PARAMS: &'static [&'static str] = &["status"];

    /// Cells from `(likelihood, impact, count)` aggregates.
    pub fn from_counts(counts: &[(i32, i32, i64)]) -> Matrix {
        let mut cells = [[0; 5]; 5];
        for &(likelihood, impact, count) in counts {
            if let (Ok(l @ 1..=5), Ok(i @ 1..=5)) = (usize::try_from(likelihood), usize::try_from(impact)) {
                cells[l - 1][i - 1] += count;
            }
        }
        Matrix { cells }
    }

    /// The statuses counted: those asked for, or the open ones.
    pub fn statuses(params: &Params) -> Result<Vec<RiskStatus>, ParamError> {
        params.only(Self::PARAMS)?;
        let statuses: Vec<RiskStatus> = params.parsed("status")?;
        Ok(if statuses.is_empty() {
            RiskStatus::OPEN.to_vec()
        } else {
            statuses
        })
    }
}

/// What happened to the register on one UTC day, from the risks' history.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DayActivity {
    pub day: NaiveDate,
    /// Risks created.
    pub created: i64,
    /// Risks that became closed.
    pub closed: i64,
    /// Risks that became open minus risks that stopped being open.
    pub open_change: i64,
}

/// The days with activity since a start day (others had none), and the risks open now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DailyActivity {
    pub days: Vec<DayActivity>,
    pub open_now: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TimelinePoint {
    pub date: NaiveDate,
    pub created: i64,
    pub closed: i64,
    /// Risks open (`open` or `in_progress`) at the end of the day.
    pub open: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Timeline {
    /// One point per UTC day, oldest first, ending today.
    pub points: Vec<TimelinePoint>,
}

pub const DEFAULT_TIMELINE_DAYS: i64 = 30;
pub const MAX_TIMELINE_DAYS: i64 = 365;

/// The first day of a `days`-long timeline ending `today` (`days` ≥ 1).
pub fn timeline_start(today: NaiveDate, days: i64) -> NaiveDate {
    today - Days::new(days.max(1) as u64 - 1)
}

impl Timeline {
    pub fn days(params: &Params) -> Result<i64, ParamError> {
        params.only(&["days"])?;
        params.int("days", 1, MAX_TIMELINE_DAYS, DEFAULT_TIMELINE_DAYS)
    }

    pub fn from_activity(since: NaiveDate, today: NaiveDate, activity: &DailyActivity) -> Timeline {
        let by_day: HashMap<NaiveDate, &DayActivity> = activity.days.iter().map(|a| (a.day, a)).collect();
        // Open at the start of the window: open now, less every change since.
        let mut open = activity.open_now - activity.days.iter().map(|a| a.open_change).sum::<i64>();
        let points = since
            .iter_days()
            .take_while(|day| *day <= today)
            .map(|date| {
                let day = by_day.get(&date).copied().cloned().unwrap_or_default();
                open += day.open_change;
                TimelinePoint {
                    date,
                    created: day.created,
                    closed: day.closed,
                    open,
                }
            })
            .collect();
        Timeline { points }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TopRisks {
    /// Open risks, highest score first, ties by residual score (highest first), then id.
    pub items: Vec<super::risk::Risk>,
}

pub const DEFAULT_TOP_RISKS: i64 = 10;
pub const MAX_TOP_RISKS: i64 = 50;

pub fn top_risks_limit(params: &Params) -> Result<i64, ParamError> {
    params.only(&["limit"])?;
    params.int("limit", 1, MAX_TOP_RISKS, DEFAULT_TOP_RISKS)
}

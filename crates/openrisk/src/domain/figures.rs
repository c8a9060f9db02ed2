//! A register's figures kept up to date as its risks and mitigations change, the way the
//! database's triggers keep its aggregates: the dashboard's statistics, matrix and top risks and
//! the summary's overdue mitigations then cost a few steps per group, not a pass over every risk
//! and mitigation. Each answers as the store does.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use uuid::Uuid;

use super::dashboard::{MitigationGroup, RiskFigures, RiskGroup, Stats};
use super::mitigation::{Mitigation, MitigationStatus};
use super::risk::{Risk, RiskStatus, Severity};

/// Whether a row is added or taken away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Add,
    Remove,
}

impl Count {
    fn sign(self) -> i64 {
        match self {
            Count::Add => 1,
            Count::Remove => -1,
        }
    }
}

/// The top risks' order: score descending, residual score descending with none last, then id.
type TopKey = (Reverse<i32>, Reverse<i64>, Uuid);

#[derive(Debug, Default)]
pub struct Figures {
    /// Risks by status, severity, likelihood and impact: their count and score sum.
    risks: HashMap<(RiskStatus, Severity, i32, i32), (i64, i64)>,
    /// Risks by review date and status.
    reviews: BTreeMap<(NaiveDate, RiskStatus), i64>,
    /// Mitigations by status.
    mitigations: BTreeMap<MitigationStatus, i64>,
    /// Mitigations by due date and status.
    due: BTreeMap<(NaiveDate, MitigationStatus), i64>,
    /// Active mitigations with a due date, in the summary's order (due date, then id), each with
    /// its risk.
    due_active: BTreeMap<(NaiveDate, Uuid), Uuid>,
    /// Open risks in the top risks' order.
    top: BTreeSet<TopKey>,
}

/// Adds `sign` to the group `key`, dropping it once empty.
fn tally<K: Ord + Copy>(groups: &mut BTreeMap<K, i64>, key: K, sign: i64) {
    let count = groups.entry(key).or_default();
    *count += sign;
    if *count == 0 {
        groups.remove(&key);
    }
}

impl Figures {
    pub fn count_risk(&mut self, risk: &Risk, count: Count) {
        let sign = count.sign();
        let group = (risk.status, risk.severity, risk.likelihood, risk.impact);
        let (risks, score_sum) = self.risks.entry(group).or_default();
        *risks += sign;
        *score_sum += sign * i64::from(risk.score);
        if *risks == 0 {
            self.risks.remove(&group);
        }
        if let Some(date) = risk.review_date {
            tally(&mut self.reviews, (date, risk.status), sign);
        }
        if risk.status.is_open() {
            let residual = risk.residual_score.map_or(i64::MIN, i64::from);
            let key = (Reverse(risk.score), Reverse(residual), risk.id);
            match count {
                Count::Add => self.top.insert(key),
                Count::Remove => self.top.remove(&key),
            };
        }
    }

    pub fn count_mitigation(&mut self, mitigation: &Mitigation, count: Count) {
        let sign = count.sign();
        tally(&mut self.mitigations, mitigation.status, sign);
        let Some(date) = mitigation.due_date else {
            return;
        };
        tally(&mut self.due, (date, mitigation.status), sign);
        if mitigation.status.is_active() {
            let key = (date, mitigation.id);
            match count {
                Count::Add => self.due_active.insert(key, mitigation.risk_id),
                Count::Remove => self.due_active.remove(&key),
            };
        }
    }

    /// The dashboard's statistics on `today`.
    pub fn stats(&self, today: NaiveDate) -> Stats {
        let mut groups: BTreeMap<(RiskStatus, Severity), (i64, i64)> = BTreeMap::new();
        for (&(status, severity, _, _), &(count, score_sum)) in &self.risks {
            let group = groups.entry((status, severity)).or_default();
            group.0 += count;
            group.1 += score_sum;
        }
        let mut reviews_overdue: BTreeMap<RiskStatus, i64> = BTreeMap::new();
        for (&(_, status), count) in self.reviews.iter().take_while(|((date, _), _)| *date < today) {
            *reviews_overdue.entry(status).or_default() += count;
        }
        let risks = RiskFigures {
            groups: groups
                .into_iter()
                .map(|((status, severity), (count, score_sum))| RiskGroup {
                    status,
                    severity,
                    count,
                    score_sum,
                })
                .collect(),
            reviews_overdue: reviews_overdue.into_iter().collect(),
        };
        let mut due_passed: HashMap<MitigationStatus, i64> = HashMap::new();
        for (&(_, status), count) in self.due.iter().take_while(|((date, _), _)| *date < today) {
            *due_passed.entry(status).or_default() += count;
        }
        let mitigations: Vec<MitigationGroup> = self
            .mitigations
            .iter()
            .map(|(&status, &count)| MitigationGroup {
                status,
                count,
                due_passed: due_passed.get(&status).copied().unwrap_or(0),
            })
            .collect();
        Stats::from_groups(&risks, &mitigations)
    }

    /// The matrix's counts: risks with one of `statuses`, by likelihood and impact.
    pub fn matrix(&self, statuses: &[RiskStatus]) -> Vec<(i32, i32, i64)> {
        let mut counts: BTreeMap<(i32, i32), i64> = BTreeMap::new();
        for (&(status, _, likelihood, impact), &(count, _)) in &self.risks {
            if statuses.contains(&status) {
                *counts.entry((likelihood, impact)).or_default() += count;
            }
        }
        counts.into_iter().map(|((l, i), n)| (l, i, n)).collect()
    }

    /// The ids of the `limit` highest open risks, in the store's order.
    pub fn top_risks(&self, limit: usize) -> impl Iterator<Item = Uuid> + '_ {
        self.top.iter().take(limit).map(|&(_, _, id)| id)
    }

    /// The first `limit` mitigations overdue on `today`, in the store's order (due date, then
    /// id): each mitigation's id with its risk's.
    pub fn overdue_mitigations(
        &self,
        today: NaiveDate,
        limit: usize,
    ) -> impl Iterator<Item = (Uuid, Uuid)> + '_ {
        self.due_active
            .iter()
            .take_while(move |((date, _), _)| *date < today)
            .take(limit)
            .map(|(&(_, mitigation), &risk)| (mitigation, risk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risk(title: &str, likelihood: i32, status: RiskStatus, residual: Option<i32>) -> Risk {
        let mut risk = Risk::sample(title, likelihood, 2, status, &[]);
        risk.residual_score = residual;
        risk
    }

    #[test]
    fn top_risks_follow_score_then_residual_score_then_id() {
        let open = RiskStatus::Open;
        let risks = [
            risk("a", 5, open, Some(4)),
            risk("b", 5, open, Some(6)),
            risk("c", 5, open, None),
            risk("d", 6, open, None),
            risk("e", 5, open, Some(6)),
            risk("closed", 5, RiskStatus::Closed, None),
        ];
        let mut figures = Figures::default();
        for risk in &risks {
            figures.count_risk(risk, Count::Add);
        }
        let title = |id: Uuid| risks.iter().find(|r| r.id == id).unwrap().title.as_str();
        let (b, e) = (&risks[1], &risks[4]);
        let ties = if b.id < e.id { ["b", "e"] } else { ["e", "b"] };
        let top: Vec<&str> = figures.top_risks(4).map(title).collect();
        assert_eq!(top, ["d", ties[0], ties[1], "a"]);
        assert_eq!(figures.matrix(&[open]), [(5, 2, 4), (6, 2, 1)]);
        // Taken away, a risk leaves no trace.
        figures.count_risk(&risks[3], Count::Remove);
        assert_eq!(figures.top_risks(1).map(title).collect::<Vec<_>>(), [ties[0]]);
        assert_eq!(figures.matrix(&[open]), [(5, 2, 4)]);
    }
}

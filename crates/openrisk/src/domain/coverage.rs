//! Which writes change which answers: what a page of the risk list covers, and what one write did
//! to one risk. The cache keeps a page through every write that leaves it as it was.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::evaluation::folded_search_text;
use super::list::{Page, RiskFilter, RiskListQuery, Sort, SortValue};
use super::risk::Risk;

/// What one write did to one risk: the risk before and after it (`None` before a creation and
/// after a deletion). Both `None`: the risk's own fields did not change, only what its
/// representation shows of others (a mitigation's count).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskChange {
    pub id: Uuid,
    pub before: Option<Risk>,
    pub after: Option<Risk>,
}

impl RiskChange {
    /// Risk `id`'s representation changed, its own fields did not.
    pub fn touched(id: Uuid) -> Self {
        RiskChange {
            id,
            before: None,
            after: None,
        }
    }
}

/// What one page of the risk list shows: its filter and order, the stretch of that order it
/// spans, its rows, and whether it counts them all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageCoverage {
    filter: RiskFilter,
    sort: Sort,
    /// The cursor's sort value: the page starts after it (`None`: at the start of the order).
    from: Option<SortValue>,
    /// The last row's sort value when a next page follows (`None`: the page runs to the end).
    to: Option<SortValue>,
    ids: Vec<Uuid>,
    total: bool,
}

impl PageCoverage {
    pub fn of(query: &RiskListQuery, page: &Page<Risk>) -> Self {
        let value = |risk: &Risk| query.sort.cursor_for(risk).value;
        PageCoverage {
            filter: query.filter.clone(),
            sort: query.sort,
            from: query.page.after.as_ref().map(|cursor| cursor.value.clone()),
            to: page.next_cursor.as_ref().and(page.items.last()).map(value),
            ids: page.items.iter().map(|risk| risk.id).collect(),
            total: query.include_total,
        }
    }

    /// Whether `change` may make the page differ: the risk is on it, or passes its filter and
    /// falls within its stretch of the order before or after the write, or the page counts the
    /// rows and the risk entered or left them. Never `false` for a change that alters the page;
    /// sometimes `true` for one that does not (ties in the order, searches in other alphabets).
    pub fn changed_by(&self, change: &RiskChange) -> bool {
        if self.ids.contains(&change.id) {
            return true;
        }
        let counted = |risk: &Option<Risk>| risk.as_ref().is_some_and(|risk| self.filter.may_match(risk));
        let placed = |risk: &Option<Risk>| {
            risk.as_ref()
                .is_some_and(|risk| self.filter.may_match(risk) && self.spans(risk))
        };
        placed(&change.before)
            || placed(&change.after)
            || (self.total && counted(&change.before) != counted(&change.after))
    }

    /// Whether `risk`'s place in the order lies within the page's stretch, ends included
    /// whatever the ids (a tie may fall either side).
    fn spans(&self, risk: &Risk) -> bool {
        let value = self.sort.cursor_for(risk).value;
        let ordered = |a: &SortValue, b: &SortValue| match self.sort.descending {
            false => compare(a, b).is_le(),
            true => compare(a, b).is_ge(),
        };
        self.from.as_ref().is_none_or(|from| ordered(from, &value))
            && self.to.as_ref().is_none_or(|to| ordered(&value, to))
    }
}

/// The database's order of two values of one sort key: numbers and times by value, titles byte by
/// byte (both backends sort titles in the C collation).
fn compare(a: &SortValue, b: &SortValue) -> std::cmp::Ordering {
    match (a, b) {
        (SortValue::Int(a), SortValue::Int(b)) => a.cmp(b),
        (SortValue::Time(a), SortValue::Time(b)) => a.cmp(b),
        (SortValue::Text(a), SortValue::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
        // Values of two keys never meet on one page.
        _ => std::cmp::Ordering::Equal,
    }
}

impl RiskFilter {
    /// Whether `risk` may pass the filter: exactly, but for a text search in or over non-ASCII
    /// text, which is assumed to match (each database folds case its own way).
    pub fn may_match(&self, risk: &Risk) -> bool {
        let folded = folded_search_text(risk);
        self.matcher().decides(risk, folded.as_deref()).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::list::PageRequest;
    use crate::domain::risk::RiskStatus;

    fn risk(title: &str, likelihood: i32, impact: i32, status: RiskStatus) -> Risk {
        Risk::sample(title, likelihood, impact, status, &["vendor"])
    }

    /// The page of the default order (`-score`) after `from`, with `rows`, and more behind it
    /// when `more`.
    fn page(
        filter: RiskFilter,
        from: Option<&Risk>,
        rows: &[&Risk],
        more: bool,
        total: bool,
    ) -> PageCoverage {
        let sort = Sort::default();
        let query = RiskListQuery {
            filter,
            sort,
            page: PageRequest {
                limit: rows.len() as i64,
                after: from.map(|risk| sort.cursor_for(risk)),
            },
            include_total: total,
        };
        let page = Page {
            items: rows.iter().map(|&risk| risk.clone()).collect(),
            next_cursor: more.then(|| "next".into()),
            total: None,
        };
        PageCoverage::of(&query, &page)
    }

    fn update(before: &Risk, edit: impl FnOnce(&mut Risk)) -> RiskChange {
        let mut after = before.clone();
        edit(&mut after);
        after.score = after.likelihood * after.impact;
        RiskChange {
            id: before.id,
            before: Some(before.clone()),
            after: Some(after),
        }
    }

    #[test]
    fn a_page_changes_with_its_rows_and_with_rows_that_move_into_its_stretch() {
        let open = RiskStatus::Open;
        let (top, high, mid, fifteen, low) = (
            risk("Top", 5, 5, open),
            risk("High", 4, 5, open),
            risk("Mid", 4, 4, open),
            risk("Fifteen", 3, 5, open),
            risk("Low", 2, 3, open),
        );
        // Scores 16 and 15, after the row scored 20, with more behind.
        let second = page(RiskFilter::default(), Some(&high), &[&mid, &fifteen], true, false);
        assert!(
            second.changed_by(&RiskChange::touched(mid.id)),
            "a row of the page"
        );
        assert!(second.changed_by(&update(&fifteen, |r| r.title = "Renamed".into())));
        assert!(
            second.changed_by(&update(&low, |r| r.impact = 8)),
            "6 into 16: within"
        );
        assert!(
            !second.changed_by(&update(&low, |r| r.likelihood = 8)),
            "6 into 24: above"
        );
        assert!(
            !second.changed_by(&update(&low, |r| r.likelihood = 3)),
            "6 into 9: below"
        );
        assert!(
            !second.changed_by(&update(&top, |r| r.title = "Renamed".into())),
            "above"
        );
        assert!(!second.changed_by(&RiskChange::touched(low.id)));
        let created = risk("New", 4, 4, open);
        assert!(second.changed_by(&RiskChange {
            id: created.id,
            before: None,
            after: Some(created.clone()),
        }));
        assert!(second.changed_by(&RiskChange {
            id: mid.id,
            before: Some(mid.clone()),
            after: None,
        }));
        // The last page runs to the end of the order: every lower row falls within it.
        let last = page(
            RiskFilter::default(),
            Some(&high),
            &[&mid, &fifteen],
            false,
            false,
        );
        assert!(last.changed_by(&update(&low, |r| r.likelihood = 3)));
    }

    #[test]
    fn rows_the_filter_refuses_leave_the_page_alone_unless_they_come_in() {
        let filter = RiskFilter {
            statuses: vec![RiskStatus::Open],
            q: Some("billing".into()),
            ..RiskFilter::default()
        };
        let billing = risk("Billing outage", 3, 3, RiskStatus::Open);
        let first = page(filter.clone(), None, &[&billing], false, true);
        let closed = risk("Billing fraud", 4, 4, RiskStatus::Closed);
        assert!(
            !first.changed_by(&update(&closed, |r| r.likelihood = 5)),
            "stays closed"
        );
        assert!(
            first.changed_by(&update(&closed, |r| r.status = RiskStatus::Open)),
            "reopened"
        );
        let other = risk("Supplier outage", 4, 4, RiskStatus::Open);
        assert!(
            !first.changed_by(&update(&other, |r| r.likelihood = 5)),
            "another text"
        );
        assert!(first.changed_by(&update(&other, |r| r.title = "BILLING supplier".into())));
        // Outside ASCII the search is taken to match.
        let accented = risk("Fournisseur défaillant", 4, 4, RiskStatus::Open);
        assert!(first.changed_by(&update(&accented, |r| r.likelihood = 5)));
        // A total counts rows anywhere in the order.
        let counted = page(filter, Some(&billing), &[], false, true);
        assert!(counted.changed_by(&update(&closed, |r| r.status = RiskStatus::Open)));
    }
}

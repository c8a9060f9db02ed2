//! A risk list query answered from risks in memory, exactly as the store's SQL answers it, or not at
//! all: filters as the database compares them, the order with ties broken by id, keyset cursors,
//! limits and totals. The one thing left to the database is a text search that involves other
//! characters than ASCII, whose case each database folds its own way. The dashboard's figures are
//! kept by `figures`.

use std::cmp::Ordering;

use super::list::{Page, RiskCursor, RiskFilter, RiskListQuery, Sort, SortKey, SortValue};
use super::risk::Risk;

/// The text the `q` search matches, folded as every backend folds ASCII; `None` when it holds
/// other characters (then the database decides).
pub fn folded_search_text(risk: &Risk) -> Option<String> {
    let text = risk.search_text();
    text.is_ascii().then(|| text.to_ascii_lowercase())
}

/// A filter prepared to decide many risks.
pub struct Matcher<'a> {
    filter: &'a RiskFilter,
    /// The search, folded; `Some(None)`: a search this process cannot decide.
    q: Option<Option<String>>,
}

impl RiskFilter {
    pub fn matcher(&self) -> Matcher<'_> {
        let q = self
            .q
            .as_ref()
            .map(|q| q.is_ascii().then(|| q.to_ascii_lowercase()));
        Matcher { filter: self, q }
    }
}

impl Matcher<'_> {
    /// Whether `risk` passes the filter, as the database decides; `None` when only the database
    /// can tell (a search in or over non-ASCII text). `folded`: its `folded_search_text`.
    pub fn decides(&self, risk: &Risk, folded: Option<&str>) -> Option<bool> {
        fn allows<T: PartialEq>(wanted: &[T], value: Option<&T>) -> bool {
            wanted.is_empty() || value.is_some_and(|value| wanted.contains(value))
        }
        let f = self.filter;
        let fields = allows(&f.statuses, Some(&risk.status))
            && allows(&f.severities, Some(&risk.severity))
            && allows(&f.categories, risk.category.as_ref())
            && allows(&f.owner_ids, risk.owner_id.as_ref())
            && (f.tags.is_empty() || risk.tags.iter().any(|tag| f.tags.contains(tag)));
        match &self.q {
            _ if !fields => Some(false),
            None => Some(true),
            Some(q) => Some(folded?.contains(q.as_deref()?)),
        }
    }
}

impl Sort {
    /// The order of two risks in this sort, as both databases order them: by the key (titles
    /// byte by byte, the "C" collation), then by id, in the sort's direction.
    pub fn compare(&self, a: &Risk, b: &Risk) -> Ordering {
        let ascending = match self.key {
            SortKey::Score => a.score.cmp(&b.score),
            SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
            SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            SortKey::Title => a.title.as_bytes().cmp(b.title.as_bytes()),
        }
        .then(a.id.cmp(&b.id));
        self.directed(ascending)
    }

    /// Whether `risk` comes after `cursor` in this order: it belongs to the next page.
    pub fn follows(&self, cursor: &RiskCursor, risk: &Risk) -> bool {
        let ascending = match (&cursor.value, self.key) {
            (SortValue::Int(n), SortKey::Score) => i64::from(risk.score).cmp(n),
            (SortValue::Time(t), SortKey::CreatedAt) => risk.created_at.cmp(t),
            (SortValue::Time(t), SortKey::UpdatedAt) => risk.updated_at.cmp(t),
            (SortValue::Text(s), SortKey::Title) => risk.title.as_bytes().cmp(s.as_bytes()),
            // Refused when the query is parsed.
            _ => return false,
        }
        .then(risk.id.cmp(&cursor.id));
        self.directed(ascending) == Ordering::Greater
    }

    fn directed(&self, ascending: Ordering) -> Ordering {
        match self.descending {
            true => ascending.reverse(),
            false => ascending,
        }
    }
}

impl RiskListQuery {
    /// The page the store answers, from every risk of the organization, each with its
    /// `folded_search_text`; `None` when a risk that may belong cannot be decided here.
    pub fn evaluate<'a>(
        &self,
        risks: impl IntoIterator<Item = (&'a Risk, Option<&'a str>)>,
    ) -> Option<Page<Risk>> {
        let matcher = self.filter.matcher();
        let after = self.page.after.as_ref();
        let mut total = 0;
        let mut rows: Vec<&Risk> = Vec::new();
        for (risk, folded) in risks {
            if !matcher.decides(risk, folded)? {
                continue;
            }
            total += 1;
            if after.is_none_or(|cursor| self.sort.follows(cursor, risk)) {
                rows.push(risk);
            }
        }
        // The first `limit + 1` rows in order: the extra one says whether more follow.
        let wanted = usize::try_from(self.page.limit).unwrap_or(0) + 1;
        let order = |a: &&Risk, b: &&Risk| self.sort.compare(a, b);
        if rows.len() > wanted {
            rows.select_nth_unstable_by(wanted - 1, order);
            rows.truncate(wanted);
        }
        rows.sort_unstable_by(order);
        let sort = self.sort;
        let rows = rows.into_iter().cloned().collect();
        let mut page = Page::from_rows(rows, self.page.limit, |risk: &Risk| sort.cursor_for(risk));
        page.total = self.include_total.then_some(total);
        Some(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::list::{Params, decode_cursor};
    use crate::domain::risk::RiskStatus;

    fn risk(title: &str, likelihood: i32, status: RiskStatus, tags: &[&str]) -> Risk {
        Risk::sample(title, likelihood, 2, status, tags)
    }

    fn query(pairs: &[(&str, &str)]) -> RiskListQuery {
        let params = Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        RiskListQuery::from_params(&params).unwrap()
    }

    fn evaluate(query: &RiskListQuery, risks: &[Risk]) -> Option<Page<Risk>> {
        let folded: Vec<Option<String>> = risks.iter().map(folded_search_text).collect();
        query.evaluate(risks.iter().zip(folded.iter().map(Option::as_deref)))
    }

    fn titles(page: &Page<Risk>) -> Vec<&str> {
        page.items.iter().map(|risk| risk.title.as_str()).collect()
    }

    #[test]
    fn pages_follow_the_order_and_its_cursors_to_the_end() {
        let open = RiskStatus::Open;
        let risks = vec![
            risk("b", 3, open, &[]),
            risk("a", 5, open, &[]),
            risk("C", 3, open, &[]),
            risk("d", 1, RiskStatus::Closed, &[]),
        ];
        let first = evaluate(&query(&[("limit", "2"), ("include_total", "true")]), &risks).unwrap();
        assert_eq!(
            titles(&first),
            ["a", "C"],
            "score descending, ties by id descending"
        );
        assert_eq!(first.total, Some(4));
        let cursor = first.next_cursor.clone().unwrap();
        let second = evaluate(&query(&[("limit", "2"), ("cursor", &cursor)]), &risks).unwrap();
        assert_eq!(titles(&second), ["b", "d"]);
        assert_eq!(second.next_cursor, None);
        let by_title = evaluate(&query(&[("sort", "title"), ("status", "open")]), &risks).unwrap();
        assert_eq!(titles(&by_title), ["C", "a", "b"], "bytes: upper case first");
        let last: RiskCursor = decode_cursor(&cursor).unwrap();
        assert!(Sort::default().follows(&last, &risks[0]));
        assert!(!Sort::default().follows(&last, &risks[1]));
    }

    #[test]
    fn a_search_is_decided_here_only_in_ascii() {
        let open = RiskStatus::Open;
        let plain = vec![
            risk("Billing outage", 3, open, &[]),
            risk("Vendor", 3, open, &["BILLING"]),
        ];
        let found = evaluate(&query(&[("q", "billing")]), &plain).unwrap();
        assert_eq!(found.items.len(), 2, "in a title and in a tag, whatever the case");
        assert!(evaluate(&query(&[("q", "défaut")]), &plain).is_none());
        let accented = vec![risk("Défaut de paiement", 3, open, &[])];
        assert!(evaluate(&query(&[("q", "paiement")]), &accented).is_none());
        // A risk the other filters refuse needs no decision.
        let closed = query(&[("q", "paiement"), ("status", "closed")]);
        assert_eq!(evaluate(&closed, &accented).unwrap().items.len(), 0);
    }
}

//! Property: walking every page of the risk list yields each matching risk exactly once, in the
//! requested order, for every sort order and random filters over random registers.

use chrono::Utc;
use openrisk::domain::list::{SORTS, Sort, SortKey};
use openrisk::domain::risk::{Risk, RiskStatus};
use openrisk::seed::{Generator, TAGS};
use openrisk::store::SeedBatch;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::common::{self, Backend, spawn_app};

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    risks: usize,
    sort: &'static str,
    limit: usize,
    statuses: Vec<RiskStatus>,
    tag: Option<&'static str>,
    q: Option<&'static str>,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        0usize..120,
        proptest::sample::select(SORTS),
        1usize..25,
        proptest::sample::subsequence(RiskStatus::ALL.to_vec(), 0..3),
        proptest::option::of(proptest::sample::select(TAGS)),
        proptest::option::of(proptest::sample::select(
            &["ransom", "THE", "erp", "in", "no-such-text"][..],
        )),
    )
        .prop_map(|(seed, risks, sort, limit, statuses, tag, q)| Case {
            seed,
            risks,
            sort,
            limit,
            statuses,
            tag,
            q,
        })
}

/// The order the list promises: the sort key, ties broken by id in the same direction.
fn expected(risks: &[Risk], case: &Case) -> Vec<Uuid> {
    let sort: Sort = case.sort.parse().unwrap();
    let mut matching: Vec<&Risk> = risks
        .iter()
        .filter(|r| case.statuses.is_empty() || case.statuses.contains(&r.status))
        .filter(|r| case.tag.is_none_or(|t| r.tags.iter().any(|x| x == t)))
        .filter(|r| {
            case.q
                .is_none_or(|q| r.search_text().to_lowercase().contains(&q.to_lowercase()))
        })
        .collect();
    matching.sort_by(|a, b| {
        let by_key = match sort.key {
            SortKey::Score => a.score.cmp(&b.score),
            SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
            SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            SortKey::Title => a.title.as_bytes().cmp(b.title.as_bytes()),
        };
        let order = by_key.then(a.id.cmp(&b.id));
        if sort.descending { order.reverse() } else { order }
    });
    matching.into_iter().map(|r| r.id).collect()
}

async fn check(app: &common::TestApp, case: Case) -> Result<(), TestCaseError> {
    // Each case gets its own organization and register.
    let slug = format!("p{}", Uuid::new_v4().simple());
    let token = app.create_org(&slug[..20]).await;
    let org = app.store.organization_by_slug(&slug[..20]).await.unwrap();
    let (_, me) = app.get("/api/v1/me", &token).await;
    let actor: Uuid = me["user"]["id"].as_str().unwrap().parse().unwrap();
    let mut generator = Generator::new(case.seed, Utc::now(), vec![actor], case.risks);
    let assets = generator.assets(5);
    app.store
        .insert_seed(
            org.id,
            actor,
            &SeedBatch {
                assets,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let first = app
        .store
        .reserve_risk_numbers(org.id, case.risks as i64)
        .await
        .unwrap();
    let batch = generator.risks(first, case.risks);
    app.store.insert_seed(org.id, actor, &batch).await.unwrap();

    let mut query = format!("sort={}&limit={}&include_total=true", case.sort, case.limit);
    for s in &case.statuses {
        query.push_str(&format!("&status={s}"));
    }
    if let Some(tag) = case.tag {
        query.push_str(&format!("&tag={tag}"));
    }
    if let Some(q) = case.q {
        query.push_str(&format!("&q={q}"));
    }
    let want = expected(&batch.risks, &case);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/risks?{query}&cursor={c}"),
            None => format!("/api/v1/risks?{query}"),
        };
        let (status, page) = app.get(&path, &token).await;
        prop_assert_eq!(status, StatusCode::OK, "{}", page);
        prop_assert_eq!(page["total"].as_u64(), Some(want.len() as u64));
        let items = page["items"].as_array().unwrap();
        prop_assert!(items.len() <= case.limit);
        seen.extend(
            items
                .iter()
                .map(|r| r["id"].as_str().unwrap().parse::<Uuid>().unwrap()),
        );
        match &page["next_cursor"] {
            Value::String(next) => {
                prop_assert_eq!(items.len(), case.limit, "a page before the last is full");
                cursor = Some(next.clone());
            }
            _ => break,
        }
        prop_assert!(seen.len() <= want.len(), "more items than match");
    }
    prop_assert_eq!(seen, want);
    Ok(())
}

on_each_backend!(pages_yield_every_match_once_in_order);

async fn pages_yield_every_match_once_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let result =
        tokio::task::block_in_place(|| runner.run(&cases(), |case| handle.block_on(check(&app, case))));
    if let Err(e) = result {
        panic!("{e}");
    }
}

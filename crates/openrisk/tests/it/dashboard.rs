//! Dashboard figures against a straightforward computation over random registers, on both
//! backends: every count, the matrix, the timeline (with status changes over time) and the top risks.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use openrisk::domain::Precondition;
use openrisk::domain::mitigation::{Mitigation, MitigationFields, MitigationStatus};
use openrisk::domain::risk::{Risk, RiskFields, RiskStatus, Severity};
use openrisk::store::SeedBatch;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{self, Backend, spawn_app};

#[derive(Clone, Debug)]
struct RiskSpec {
    status: RiskStatus,
    likelihood: i32,
    impact: i32,
    residual: Option<(i32, i32)>,
    review_in_days: Option<i64>,
    created_days_ago: i64,
    created_at_midnight: bool,
    /// Later status changes: (new status, fraction of the time since the previous event, same day).
    changes: Vec<(RiskStatus, f64, bool)>,
    /// Deleted at the end (today).
    deleted: bool,
    mitigations: Vec<(MitigationStatus, Option<i64>)>,
}

fn status() -> impl Strategy<Value = RiskStatus> {
    proptest::sample::select(RiskStatus::ALL)
}

fn risk_spec() -> impl Strategy<Value = RiskSpec> {
    (
        (
            status(),
            1..=5i32,
            1..=5i32,
            proptest::option::of((1..=5i32, 1..=5i32)),
        ),
        (
            proptest::option::of(-40i64..40),
            0i64..500,
            proptest::bool::weighted(0.2),
        ),
        (
            proptest::collection::vec((status(), 0.0f64..1.0, any::<bool>()), 0..3),
            proptest::bool::weighted(0.1),
        ),
        proptest::collection::vec(
            (
                proptest::sample::select(MitigationStatus::ALL),
                proptest::option::of(-30i64..30),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(
                (status, likelihood, impact, residual),
                (review, ago, midnight),
                (changes, deleted),
                mitigations,
            )| {
                RiskSpec {
                    status,
                    likelihood,
                    impact,
                    residual,
                    review_in_days: review,
                    created_days_ago: ago,
                    created_at_midnight: midnight,
                    changes,
                    deleted,
                    mitigations,
                }
            },
        )
}

/// A risk as the test sees it: its final state and its status over time.
struct Known {
    risk: Risk,
    /// `(from, status)` in time order; `None` once deleted.
    statuses: Vec<(DateTime<Utc>, Option<RiskStatus>)>,
    deleted: bool,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

async fn build(app: &common::TestApp, specs: &[RiskSpec]) -> (String, Vec<Known>, Vec<Mitigation>) {
    let slug = format!("d{}", &Uuid::new_v4().simple().to_string()[..12]);
    let token = app.create_org(&slug).await;
    let org = app.store.organization_by_slug(&slug).await.unwrap().id;
    let (_, me) = app.get("/api/v1/me", &token).await;
    let actor: Uuid = me["user"]["id"].as_str().unwrap().parse().unwrap();
    let now = openrisk::domain::now();
    let first = app
        .store
        .reserve_risk_numbers(org, specs.len() as i64)
        .await
        .unwrap();
    let mut batch = SeedBatch::default();
    let mut changes = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let mut created_at = now - Duration::seconds(spec.created_days_ago * 86_400 * 9 / 10 + i as i64);
        if spec.created_at_midnight {
            created_at = midnight(created_at.date_naive());
        }
        let fields = RiskFields {
            title: format!("Risk {i}"),
            description: String::new(),
            category: None,
            owner_id: None,
            status: spec.status,
            likelihood: spec.likelihood,
            impact: spec.impact,
            residual_likelihood: spec.residual.map(|r| r.0),
            residual_impact: spec.residual.map(|r| r.1),
            treatment: None,
            tags: vec![],
            asset_ids: vec![],
            review_date: spec
                .review_in_days
                .map(|d| (now + Duration::days(d)).date_naive()),
        };
        let mut risk = Risk::new(Uuid::now_v7(), first + i as i64, fields, created_at);
        for (status, due) in &spec.mitigations {
            let m = MitigationFields {
                title: "m".into(),
                description: String::new(),
                status: *status,
                owner_id: None,
                due_date: due.map(|d| (now + Duration::days(d)).date_naive()),
                progress: if *status == MitigationStatus::Done { 100 } else { 0 },
                cost: None,
            };
            batch
                .mitigations
                .push(Mitigation::new(Uuid::now_v7(), risk.id, m, created_at));
        }
        risk.mitigation_count = spec.mitigations.len() as i64;
        let mut at = created_at;
        for (new_status, fraction, same_day) in &spec.changes {
            let span = (now - at).num_seconds();
            let offset = if *same_day {
                span.min(60)
            } else {
                (span as f64 * fraction) as i64
            };
            at += Duration::seconds(offset);
            changes.push((risk.id, *new_status, at));
        }
        batch.risks.push(risk);
    }
    app.store.insert_seed(org, actor, &batch).await.unwrap();
    let mut known: Vec<Known> = batch
        .risks
        .into_iter()
        .map(|risk| Known {
            statuses: vec![(risk.created_at, Some(risk.status))],
            risk,
            deleted: false,
        })
        .collect();
    for (id, new_status, at) in changes {
        let edit: openrisk::store::Edit<'_, Risk> = Box::new(move |current: &Risk| {
            let mut fields = current.fields();
            fields.status = new_status;
            Ok(current.updated(fields, at))
        });
        let (_, updated) = app.store.update_risk(org, actor, id, edit).await.unwrap();
        let k = known.iter_mut().find(|k| k.risk.id == id).unwrap();
        if updated.version > k.risk.version {
            k.statuses.push((at, Some(new_status)));
        }
        k.risk = updated;
    }
    for (k, spec) in known.iter_mut().zip(specs) {
        if spec.deleted {
            app.store
                .delete_risk(org, actor, k.risk.id, &Precondition::None)
                .await
                .unwrap();
            k.statuses.push((openrisk::domain::now(), None));
            k.deleted = true;
        }
    }
    (token, known, batch.mitigations)
}

/// How many times the risk became closed on `day`.
fn moves_into_closed(k: &Known, day: NaiveDate) -> usize {
    let mut previous = None;
    let mut moves = 0;
    for (at, status) in &k.statuses {
        if *status == Some(RiskStatus::Closed)
            && previous != Some(RiskStatus::Closed)
            && at.date_naive() == day
        {
            moves += 1;
        }
        previous = *status;
    }
    moves
}

fn counts<K: Ord + Copy + serde::Serialize>(all: &[K], values: impl Iterator<Item = K>) -> Value {
    let mut map: BTreeMap<K, i64> = all.iter().map(|k| (*k, 0)).collect();
    for v in values {
        *map.get_mut(&v).unwrap() += 1;
    }
    serde_json::to_value(map).unwrap()
}

async fn check(app: &common::TestApp, specs: Vec<RiskSpec>) -> Result<(), TestCaseError> {
    let (token, known, mitigations) = build(app, &specs).await;
    let today = Utc::now().date_naive();
    let risks: Vec<&Risk> = known.iter().filter(|k| !k.deleted).map(|k| &k.risk).collect();
    // A deleted risk's mitigations go with it.
    let mitigations: Vec<Mitigation> = mitigations
        .into_iter()
        .filter(|m| risks.iter().any(|r| r.id == m.risk_id))
        .collect();
    let open = |r: &Risk| matches!(r.status, RiskStatus::Open | RiskStatus::InProgress);

    let (status, stats) = app.get("/api/v1/dashboard/stats", &token).await;
    prop_assert_eq!(status, StatusCode::OK);
    prop_assert_eq!(&stats["total"], &json!(risks.len()));
    prop_assert_eq!(
        &stats["by_status"],
        &counts(RiskStatus::ALL, risks.iter().map(|r| r.status))
    );
    prop_assert_eq!(
        &stats["by_severity"],
        &counts(Severity::ALL, risks.iter().map(|r| r.severity))
    );
    let average = if risks.is_empty() {
        0.0
    } else {
        risks.iter().map(|r| r.score as f64).sum::<f64>() / risks.len() as f64
    };
    prop_assert!((stats["average_score"].as_f64().unwrap() - average).abs() < 1e-9);
    let open_critical = risks
        .iter()
        .filter(|r| open(r))
        .filter(|r| r.severity == Severity::Critical)
        .count();
    prop_assert_eq!(&stats["open_critical"], &json!(open_critical));
    let overdue = risks
        .iter()
        .filter(|r| r.status != RiskStatus::Closed && r.review_date.is_some_and(|d| d < today))
        .count();
    prop_assert_eq!(&stats["overdue_reviews"], &json!(overdue));
    prop_assert_eq!(
        &stats["mitigations"]["by_status"],
        &counts(MitigationStatus::ALL, mitigations.iter().map(|m| m.status))
    );
    let overdue = mitigations
        .iter()
        .filter(|m| matches!(m.status, MitigationStatus::Planned | MitigationStatus::InProgress))
        .filter(|m| m.due_date.is_some_and(|d| d < today))
        .count();
    prop_assert_eq!(&stats["mitigations"]["overdue"], &json!(overdue));

    for (query, statuses) in [
        ("", vec![RiskStatus::Open, RiskStatus::InProgress]),
        (
            "?status=closed&status=draft",
            vec![RiskStatus::Closed, RiskStatus::Draft],
        ),
    ] {
        let (_, matrix) = app.get(&format!("/api/v1/dashboard/matrix{query}"), &token).await;
        let mut cells = [[0i64; 5]; 5];
        for r in risks.iter().filter(|r| statuses.contains(&r.status)) {
            cells[r.likelihood as usize - 1][r.impact as usize - 1] += 1;
        }
        prop_assert_eq!(&matrix["cells"], &json!(cells));
    }

    for days in [1i64, 30, 365] {
        let (_, timeline) = app
            .get(&format!("/api/v1/dashboard/timeline?days={days}"), &token)
            .await;
        let points = timeline["points"].as_array().unwrap();
        prop_assert_eq!(points.len() as i64, days);
        for (i, point) in points.iter().enumerate() {
            let day = today - Duration::days(days - 1 - i as i64);
            let end = midnight(day) + Duration::days(1);
            // From the risks' histories, deleted risks included.
            let created = known
                .iter()
                .filter(|k| k.risk.created_at.date_naive() == day)
                .count();
            let closed: usize = known.iter().map(|k| moves_into_closed(k, day)).sum();
            let open_at_end = known
                .iter()
                .filter(|k| {
                    k.statuses
                        .iter()
                        .rev()
                        .find(|(from, _)| *from < end)
                        .is_some_and(|(_, s)| matches!(s, Some(RiskStatus::Open | RiskStatus::InProgress)))
                })
                .count();
            let want = json!({"date": day, "created": created, "closed": closed, "open": open_at_end});
            prop_assert_eq!(point, &want, "day {} of {}", i, days);
        }
    }

    let (_, top) = app.get("/api/v1/dashboard/top-risks?limit=7", &token).await;
    let mut want: Vec<&Risk> = risks.iter().copied().filter(|r| open(r)).collect();
    want.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| {
                b.residual_score
                    .unwrap_or(-1)
                    .cmp(&a.residual_score.unwrap_or(-1))
            })
            .then(a.id.cmp(&b.id))
    });
    let want: Vec<String> = want.iter().take(7).map(|r| r.id.to_string()).collect();
    let got: Vec<String> = top["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    prop_assert_eq!(got, want);
    let drift = app.store.aggregate_drift().await.unwrap();
    prop_assert!(drift.iter().all(|d| d.is_clean()), "{:?}", drift);
    Ok(())
}

on_each_backend!(
    figures_match_a_direct_computation,
    empty_organizations_show_every_key,
    aggregates_match_a_recount_after_concurrent_writes,
);

async fn figures_match_a_direct_computation(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let strategy = proptest::collection::vec(risk_spec(), 0..40);
    let result =
        tokio::task::block_in_place(|| runner.run(&strategy, |specs| handle.block_on(check(&app, specs))));
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn empty_organizations_show_every_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.create_org("empty").await;
    let (status, stats) = app.get("/api/v1/dashboard/stats", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats,
        json!({
            "total": 0,
            "by_status": {"draft": 0, "open": 0, "in_progress": 0, "mitigated": 0, "accepted": 0, "closed": 0},
            "by_severity": {"low": 0, "medium": 0, "high": 0, "critical": 0},
            "average_score": 0.0, "open_critical": 0, "overdue_reviews": 0,
            "mitigations": {"by_status": {"planned": 0, "in_progress": 0, "done": 0, "cancelled": 0}, "overdue": 0}
        })
    );
    let (_, matrix) = app.get("/api/v1/dashboard/matrix", &token).await;
    assert_eq!(matrix["cells"], json!([[0i64; 5]; 5].to_vec()));
    let (_, timeline) = app.get("/api/v1/dashboard/timeline", &token).await;
    assert_eq!(timeline["points"].as_array().unwrap().len(), 30);
    let (_, top) = app.get("/api/v1/dashboard/top-risks", &token).await;
    assert_eq!(top["items"], json!([]));

    for (path, param) in [
        ("/api/v1/dashboard/timeline?days=0", "days"),
        ("/api/v1/dashboard/timeline?days=366", "days"),
        ("/api/v1/dashboard/top-risks?limit=51", "limit"),
        ("/api/v1/dashboard/matrix?status=gone", "status"),
        ("/api/v1/dashboard/stats?x=1", "x"),
    ] {
        let (status, problem) = app.get(path, &token).await;
        common::assert_problem(status, &problem, StatusCode::BAD_REQUEST, &[param]);
    }
    let (status, _) = app.get("/api/v1/dashboard/stats", "nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Writers racing over the same risks and mitigations of two organizations, each write in its own
/// transaction: the aggregates the triggers keep still equal a recount of the register.
async fn aggregates_match_a_recount_after_concurrent_writes(backend: Backend) {
    use rand::{Rng, SeedableRng};
    let app = spawn_app(backend).await;
    let tokens = [app.token.clone(), app.create_org("racing").await];
    let writers = (0..8u64).map(|writer| {
        let app = &app;
        let token = tokens[writer as usize % 2].clone();
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(writer);
            let statuses = ["draft", "open", "in_progress", "mitigated", "accepted", "closed"];
            let days = ["2020-01-01", "2030-01-01", "2026-06-15"];
            for _ in 0..30 {
                let (_, page) = app.get("/api/v1/risks?limit=20", &token).await;
                let risks: Vec<String> = page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned())
                    .collect();
                let risk = (!risks.is_empty()).then(|| risks[rng.random_range(0..risks.len())].clone());
                let status = statuses[rng.random_range(0..statuses.len())];
                let day = days[rng.random_range(0..days.len())];
                match (rng.random_range(0..6), risk) {
                    (1, Some(risk)) => {
                        let body = json!({"status": status, "likelihood": rng.random_range(1..=5), "review_date": day});
                        app.patch(&format!("/api/v1/risks/{risk}"), &token, body).await;
                    }
                    (2, Some(risk)) => {
                        app.delete(&format!("/api/v1/risks/{risk}"), &token).await;
                    }
                    (3, Some(risk)) => {
                        let body = json!({"title": "M", "due_date": day});
                        app.post(&format!("/api/v1/risks/{risk}/mitigations"), &token, body).await;
                    }
                    (4, Some(risk)) => {
                        let (_, page) = app.get(&format!("/api/v1/risks/{risk}/mitigations"), &token).await;
                        let mitigation = page["items"].as_array().and_then(|m| m.first().cloned());
                        if let Some(id) = mitigation.and_then(|m| m["id"].as_str().map(str::to_owned)) {
                            let status = ["planned", "in_progress", "done", "cancelled"][rng.random_range(0..4)];
                            let path = format!("/api/v1/mitigations/{id}");
                            if rng.random_bool(0.5) {
                                app.patch(&path, &token, json!({"status": status, "due_date": day})).await;
                            } else {
                                app.delete(&path, &token).await;
                            }
                        }
                    }
                    _ => {
                        let body = json!({"title": "R", "likelihood": rng.random_range(1..=5), "impact": rng.random_range(1..=5), "status": status, "review_date": day});
                        let (status, answer) = app.post("/api/v1/risks", &token, body).await;
                        assert_eq!(status, StatusCode::CREATED, "{answer}");
                    }
                }
            }
        }
    });
    futures_util::future::join_all(writers).await;
    let drift = app.store.aggregate_drift().await.unwrap();
    assert!(drift.iter().all(|d| d.is_clean()), "{drift:?}");
    let (_, stats) = app.get("/api/v1/dashboard/stats", &tokens[1]).await;
    assert!(stats["total"].as_i64().unwrap() > 0, "{stats}");
}

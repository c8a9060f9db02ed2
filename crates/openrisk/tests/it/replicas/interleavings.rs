//! Random interleavings of writes and reads on two replicas sharing Redis, in three organizations:
//! every answer the cache serves, on either replica, right after any write on either, equals the
//! answer computed with the cache bypassed. The reads cover the risk list's filters, every sort,
//! searches, totals and the pages behind a cursor, with the dashboard and the summary.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use openrisk::domain::list::SORTS;

use super::*;

on_each_backend!(redis:
    cached_answers_equal_uncached_ones_across_two_replicas,
    a_write_outside_a_page_leaves_it_cached_on_every_replica,
);

const STATUSES: [&str; 6] = ["draft", "open", "in_progress", "mitigated", "accepted", "closed"];
const CATEGORIES: [&str; 4] = ["Operational", "Financial", "Compliance", "Strategic"];
const TAGS: [&str; 4] = ["vendor", "cloud", "privacy", "backups"];
const WORDS: [&str; 6] = ["Supplier", "outage", "billing", "ledger", "phishing", "backup"];

/// Due and review dates, some passed (overdue mitigations and reviews), some to come; few, so
/// that the summary's overdue mitigations tie on their due dates.
const DATES: [&str; 4] = ["2020-03-01", "2021-07-15", "2031-06-01", "2032-01-31"];
const MITIGATION_STATUSES: [&str; 4] = ["planned", "in_progress", "done", "cancelled"];

/// One organization as the test drives it: its admin token, the risks it holds and their
/// mitigations (mitigation, risk).
#[derive(Default)]
struct Org {
    token: String,
    risks: Vec<String>,
    mitigations: Vec<(String, String)>,
}

async fn cached_answers_equal_uncached_ones_across_two_replicas(backend: Backend, redis: &str) {
    let (a, b) = replicas_on(backend, redis).await;
    let mut orgs = vec![Org {
        token: a.token.clone(),
        ..Org::default()
    }];
    for slug in ["north", "south"] {
        let token = a.create_org(slug).await;
        orgs.push(Org {
            token,
            ..Org::default()
        });
    }
    let bases = [a.address.clone(), b.service.base.clone()];
    let mut rng = StdRng::seed_from_u64(24);
    for org in &mut orgs {
        for _ in 0..12 {
            let (status, risk) = send(&a, &bases[0], random_risk(&mut rng), &org.token).await;
            assert_eq!(status, StatusCode::CREATED, "{risk}");
            org.risks.push(risk["id"].as_str().unwrap().to_owned());
        }
    }
    // A few views per run, read again and again, so that writes fall between reads of one entry.
    let mut views: Vec<String> = FIGURES.iter().map(|&path| path.to_owned()).collect();
    views.extend((0..10).map(|_| random_list(&mut rng)));
    let mut from_registers = std::collections::BTreeSet::new();
    for step in 0..300 {
        let org = rng.random_range(0..orgs.len());
        if rng.random_bool(0.3) {
            let base = &bases[rng.random_range(0..bases.len())];
            let write = random_write(&mut rng, &orgs[org]);
            let (status, answer) = send(&a, base, write.clone(), &orgs[org].token).await;
            assert!(status.is_success(), "step {step} {write:?}: {status} {answer}");
            orgs[org].note(&write, &answer);
            continue;
        }
        // A page, then the page behind its cursor: as each replica's cache serves it, then as
        // computed.
        let mut path = views[rng.random_range(0..views.len())].clone();
        for _ in 0..2 {
            let mut cached = Vec::new();
            for base in &bases {
                let (answer, status) = get(&a, base, &path, &orgs[org].token, false).await;
                if status.ends_with("detail=register") {
                    from_registers.insert(path.split('?').next().unwrap().to_owned());
                }
                cached.push((base, answer));
            }
            let (fresh, _) = get(&a, &bases[step % 2], &path, &orgs[org].token, true).await;
            for (base, cached) in cached {
                assert_eq!(
                    comparable(&cached),
                    comparable(&fresh),
                    "step {step}: {path} on {base} served a stale answer"
                );
            }
            match fresh["next_cursor"].as_str() {
                Some(cursor) => path = format!("{path}&cursor={cursor}"),
                None => break,
            }
        }
    }
    let mut every = vec!["/api/v1/risks"];
    every.extend(FIGURES.iter().map(|path| path.split('?').next().unwrap()));
    assert_eq!(
        from_registers,
        every.into_iter().map(String::from).collect(),
        "answered from an organization's register"
    );
}

/// A write to a risk that neither is on a page nor moves onto it keeps the page cached on both
/// replicas; one that moves onto it is seen at once on both.
async fn a_write_outside_a_page_leaves_it_cached_on_every_replica(backend: Backend, redis: &str) {
    let (a, b) = replicas_on(backend, redis).await;
    let bases = [a.address.clone(), b.service.base.clone()];
    let token = &a.token;
    let mut low = Vec::new();
    for (n, (likelihood, impact)) in [(5, 5), (5, 4), (2, 2), (1, 2)].into_iter().enumerate() {
        let body = json!({"title": format!("Risk {n}"), "likelihood": likelihood, "impact": impact});
        low.push(
            a.create_risk(token, body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (top_page, low_risk) = ("/api/v1/risks?limit=2", format!("/api/v1/risks/{}", low[3]));
    let read = |base: &str| {
        a.client
            .get(format!("{base}{top_page}"))
            .bearer_auth(token)
            .send()
    };
    for base in &bases {
        read(base).await.unwrap();
    }
    // Scored 2, it becomes 3: still far below the page of 25 and 20.
    let (status, _) = b.patch(&low_risk, token, json!({"likelihood": 3})).await;
    assert_eq!(status, StatusCode::OK);
    for base in &bases {
        let page = read(base).await.unwrap();
        assert_eq!(page.headers()["x-cache"], "HIT", "{base}: the page was dropped");
    }
    // Now 25: it comes onto the page, on both replicas at once.
    let (status, _) = a
        .patch(&low_risk, token, json!({"likelihood": 5, "impact": 5}))
        .await;
    assert_eq!(status, StatusCode::OK);
    for base in &bases {
        let page: Value = read(base).await.unwrap().json().await.unwrap();
        let ids: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&low[3].as_str()), "{base}: stale page {page}");
    }
}

fn random_risk(rng: &mut StdRng) -> (Method, String, Option<Value>) {
    let pick = |rng: &mut StdRng, words: &[&'static str]| words[rng.random_range(0..words.len())];
    let mut body = json!({
        "title": format!("{} {}", pick(rng, &WORDS), pick(rng, &WORDS)),
        "description": format!("{} risk", pick(rng, &WORDS)),
        "category": pick(rng, &CATEGORIES),
        "tags": [pick(rng, &TAGS)],
        "likelihood": rng.random_range(1..=5),
        "impact": rng.random_range(1..=5),
    });
    if rng.random_bool(0.5) {
        body["review_date"] = json!(pick(rng, &DATES));
    }
    // Half of them with a residual score: the top risks' second key.
    if rng.random_bool(0.5) {
        body["residual_likelihood"] = json!(rng.random_range(1..=2));
        body["residual_impact"] = json!(rng.random_range(1..=2));
    }
    (Method::POST, "/api/v1/risks".into(), Some(body))
}

impl Org {
    /// Keeps track of what `write` created or deleted.
    fn note(&mut self, (method, path, _): &(Method, String, Option<Value>), answer: &Value) {
        let created = answer["id"].as_str().map(str::to_owned);
        match (method, created) {
            (&Method::POST, Some(id)) if path == "/api/v1/risks" => self.risks.push(id),
            (&Method::POST, Some(id)) => self
                .mitigations
                .push((id, answer["risk_id"].as_str().unwrap().into())),
            (&Method::DELETE, _) => {
                // A risk's mitigations go with it.
                self.risks.retain(|id| !path.ends_with(id.as_str()));
                let risks = &self.risks;
                self.mitigations
                    .retain(|(id, risk)| !path.ends_with(id.as_str()) && risks.contains(risk));
            }
            _ => {}
        }
    }
}

fn random_write(rng: &mut StdRng, org: &Org) -> (Method, String, Option<Value>) {
    if org.risks.is_empty() || rng.random_bool(0.25) {
        return random_risk(rng);
    }
    let pick = |rng: &mut StdRng, words: &[&'static str]| words[rng.random_range(0..words.len())];
    if !org.mitigations.is_empty() && rng.random_bool(0.2) {
        let (mitigation, _) = &org.mitigations[rng.random_range(0..org.mitigations.len())];
        let item = format!("/api/v1/mitigations/{mitigation}");
        return match rng.random_bool(0.25) {
            true => (Method::DELETE, item, None),
            false => (
                Method::PATCH,
                item,
                Some(json!({"status": pick(rng, &MITIGATION_STATUSES), "due_date": pick(rng, &DATES)})),
            ),
        };
    }
    let risk = &org.risks[rng.random_range(0..org.risks.len())];
    let item = format!("/api/v1/risks/{risk}");
    match rng.random_range(0..6) {
        0 => (Method::DELETE, item, None),
        1 => (
            Method::POST,
            format!("{item}/mitigations"),
            Some(json!({"title": pick(rng, &WORDS), "due_date": pick(rng, &DATES)})),
        ),
        2 => (
            Method::PATCH,
            item,
            Some(json!({"tags": [TAGS[rng.random_range(0..TAGS.len())]]})),
        ),
        3 => (
            Method::PATCH,
            item,
            Some(json!({"title": format!("{} renamed", WORDS[rng.random_range(0..WORDS.len())])})),
        ),
        _ => (
            Method::PATCH,
            item,
            Some(json!({
                "status": STATUSES[rng.random_range(0..STATUSES.len())],
                "likelihood": rng.random_range(1..=5),
            })),
        ),
    }
}

/// The dashboard's figures and the summary.
const FIGURES: [&str; 4] = [
    "/api/v1/dashboard/stats?",
    "/api/v1/reports/summary?",
    "/api/v1/dashboard/matrix?status=open&status=closed&status=draft",
    "/api/v1/dashboard/top-risks?limit=4",
];

/// A risk list with random filters, sort and page size.
fn random_list(rng: &mut StdRng) -> String {
    let mut query = vec![
        format!("sort={}", SORTS[rng.random_range(0..SORTS.len())]),
        format!("limit={}", rng.random_range(3..=5)),
    ];
    let mut maybe = |rng: &mut StdRng, name: &str, values: &[&str]| {
        if rng.random_bool(0.2) {
            query.push(format!("{name}={}", values[rng.random_range(0..values.len())]));
        }
    };
    maybe(rng, "status", &STATUSES);
    maybe(rng, "severity", &["low", "medium", "high", "critical"]);
    maybe(rng, "category", &CATEGORIES);
    maybe(rng, "tag", &TAGS);
    maybe(rng, "q", &WORDS);
    maybe(rng, "include_total", &["true"]);
    format!("/api/v1/risks?{}", query.join("&"))
}

async fn send(
    app: &TestApp,
    base: &str,
    (method, path, body): (Method, String, Option<Value>),
    token: &str,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    common::read(request.send().await.unwrap()).await
}

/// A GET on the replica at `base`, as the cache serves it or, with `fresh`, computed by the
/// database; with its `Cache-Status`.
async fn get(app: &TestApp, base: &str, path: &str, token: &str, fresh: bool) -> (Value, String) {
    let mut request = app.client.get(format!("{base}{path}")).bearer_auth(token);
    if fresh {
        request = request.header("cache-control", "no-cache");
    }
    let response = request.send().await.unwrap();
    let cache_status = response.headers()["cache-status"].to_str().unwrap().to_owned();
    let (status, body) = common::read(response).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    (body, cache_status)
}

/// An answer without the time it was computed at.
fn comparable(answer: &Value) -> Value {
    let mut answer = answer.clone();
    if let Some(object) = answer.as_object_mut() {
        object.remove("generated_at");
    }
    answer
}

//! Per-token rate limits: `429` with `Retry-After` and the `RateLimit-*` headers past the burst,
//! one account for all replicas through Redis, an account per replica while Redis is away, and
//! the stricter limit and per-organization cap of exports.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::common::redis::RedisServer;
use crate::common::{Backend, Database, ServiceProcess, read, spawn_app_with};

on_each_backend!(redis: a_token_past_its_burst_is_refused_until_cells_come_back);
on_each_backend!(replicas_share_one_account_and_keep_their_own_while_redis_is_away);
on_each_backend!(exports_have_a_stricter_limit_and_a_cap_per_organization);

/// 5 requests a second, 10 at once.
const LIMIT: [(&str, &str); 2] = [("RATE_LIMIT_PER_SECOND", "5"), ("RATE_LIMIT_BURST", "10")];

fn header(headers: &HeaderMap, name: &str) -> u64 {
    headers[name].to_str().unwrap().parse().unwrap()
}

/// Sends `count` requests to `bases` in turn; the answers' statuses and the last refusal.
async fn burst(bases: &[&str], token: &str, count: usize) -> (usize, usize, Option<(HeaderMap, Value)>) {
    let client = reqwest::Client::new();
    let (mut allowed, mut refused, mut last) = (0, 0, None);
    for n in 0..count {
        let response = client
            .get(format!("{}/api/v1/me", bases[n % bases.len()]))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                let headers = response.headers().clone();
                last = Some((headers, response.json().await.unwrap()));
            }
            other => panic!("{other}"),
        }
    }
    (allowed, refused, last)
}

async fn a_token_past_its_burst_is_refused_until_cells_come_back(backend: Backend, redis: &str) {
    let mut settings = vec![("REDIS_URL", redis)];
    settings.extend(LIMIT);
    let app = spawn_app_with(backend, &settings).await;
    let other = app.token_with_role(&app.token, "viewer").await;
    tokio::time::sleep(Duration::from_secs(1)).await; // the cells that took come back
    let (allowed, refused, last) = burst(&[&app.address], &app.token, 30).await;
    // The burst, and what came back while the requests were made (5 a second).
    assert!((10..=15).contains(&allowed), "{allowed} allowed");
    assert_eq!(allowed + refused, 30);
    let (headers, problem) = last.unwrap();
    assert_eq!(problem["type"], "https://openrisk.dev/problems/rate-limited");
    assert_eq!(problem["status"], 429);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    assert_eq!(header(&headers, "ratelimit-limit"), 10);
    assert_eq!(header(&headers, "ratelimit-remaining"), 0);
    let retry_after = header(&headers, "retry-after");
    assert_eq!(retry_after, 1, "one cell comes back every 200 ms");
    assert!(header(&headers, "ratelimit-reset") >= 2);

    // Another token has an account of its own.
    assert_eq!(burst(&[&app.address], &other, 5).await.0, 5);
    // Cells come back with time.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (allowed, _, _) = burst(&[&app.address], &app.token, 3).await;
    assert!(allowed >= 3, "{allowed}");
    // Unauthenticated routes are not limited.
    for _ in 0..30 {
        let response = app.client.get(app.url("/health/live")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

async fn replicas_share_one_account_and_keep_their_own_while_redis_is_away(backend: Backend) {
    let mut redis = RedisServer::start();
    let db = Database::create(backend).await;
    let token = format!("limits-bootstrap-{}", uuid::Uuid::new_v4().simple());
    let url = redis.url();
    let mut env = vec![
        ("OPENRISK_BOOTSTRAP_TOKEN", token.as_str()),
        ("REDIS_URL", url.as_str()),
    ];
    env.extend(LIMIT);
    let first = ServiceProcess::start(&db.url, db.data_dir(), &env).await;
    let second = ServiceProcess::start(&db.url, db.data_dir(), &env).await;
    let (allowed, refused, _) = burst(&[&first.base, &second.base], &token, 40).await;
    println!("{backend:?}: two replicas with Redis: {allowed} allowed, {refused} refused of 40");
    assert!(
        (10..=16).contains(&allowed),
        "{allowed} allowed by two replicas sharing one burst of 10"
    );

    // Redis gone: each replica keeps an account of its own, and nothing fails.
    redis.kill();
    tokio::time::sleep(Duration::from_secs(3)).await; // the burst comes back meanwhile
    let (allowed, refused, _) = burst(&[&first.base, &second.base], &token, 60).await;
    println!("{backend:?}: two replicas without Redis: {allowed} allowed, {refused} refused of 60");
    assert!(
        (20..=30).contains(&allowed),
        "{allowed} allowed: a burst of 10 on each replica"
    );
}

async fn exports_have_a_stricter_limit_and_a_cap_per_organization(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("RATE_LIMIT_EXPENSIVE_PER_MINUTE", "6"),
            ("RATE_LIMIT_EXPENSIVE_BURST", "2"),
        ],
    )
    .await;
    let export = "/api/v1/reports/risk-register?format=csv";
    for _ in 0..2 {
        let (status, _) = read(
            app.request(reqwest::Method::GET, export, &app.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = app
        .request(reqwest::Method::GET, export, &app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(response.headers(), "ratelimit-limit"), 2);
    assert_eq!(header(response.headers(), "retry-after"), 10);
    // Other routes are not held back by it.
    assert_eq!(app.get("/api/v1/risks", &app.token).await.0, StatusCode::OK);

    // One export of the organization at a time: a second waits for the first to be sent.
    let app = spawn_app_with(backend, &[("RATE_LIMIT_EXPENSIVE_CONCURRENCY", "1")]).await;
    let org = app.store.organization_by_slug("default").await.unwrap();
    openrisk::cli::seed_register(app.store.as_ref(), &org, 20_000, 1)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let first = client
        .get(app.url(export))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    // Its body is not read: the export stays under way, its sockets full.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = client
        .get(app.url(export))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(second.headers(), "ratelimit-limit"), 1);
    let body = first.bytes().await.unwrap();
    assert!(
        body.len() > 1_000_000,
        "{} bytes: too small to fill the sockets",
        body.len()
    );
    let third = client
        .get(app.url(export))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::OK);
}

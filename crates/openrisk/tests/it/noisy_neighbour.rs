//! One organization floods the service with uncached lists, within its rate limit; another's
//! plain list must still be answered, and soon. The victim's latency, quiet and under the flood,
//! is printed (`--no-capture`); what is asserted is that every one of its requests succeeds while
//! the flooding organization's requests wait for their turns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::common::{self, Backend, TestApp};

/// Concurrent requests of the flooding organization, as in the adversarial probe.
const FLOOD: usize = 280;
/// The default on a replica of two cores (one less than its cores).
const TURNS: &str = "1";
/// The victim's requests in each phase.
const VICTIM_READS: usize = 100;

async fn seeded(app: &TestApp, slug: &str, risks: usize) -> String {
    let token = app.create_org(slug).await;
    let org = app.store.organization_by_slug(slug).await.unwrap();
    openrisk::cli::seed_register(app.store.as_ref(), &org, risks, 7)
        .await
        .unwrap();
    token
}

/// `count` uncached lists, one after another: each one's latency.
async fn victim_lists(app: &TestApp, token: &str, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = app
            .request(reqwest::Method::GET, "/api/v1/risks?limit=20", token)
            .header("cache-control", "no-cache")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "the victim is answered");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn a_flooding_organization_leaves_the_others_answered(backend: Backend) {
    let app = common::spawn_app_with(
        backend,
        &[
            ("RATE_LIMIT_CONCURRENCY_PER_ORG", TURNS),
            ("DB_MAX_OPEN_CONNECTIONS", "8"),
        ],
    )
    .await;
    let noisy = seeded(&app, "noisy", 2_000).await;
    let victim = seeded(&app, "victim", 200).await;
    let quiet = victim_lists(&app, &victim, VICTIM_READS).await;

    let flooding = Arc::new(AtomicBool::new(true));
    let client = reqwest::Client::new();
    let flood: Vec<_> = (0..FLOOD)
        .map(|n| {
            let (client, url, token, flooding) = (
                client.clone(),
                app.url("/api/v1/risks"),
                noisy.clone(),
                flooding.clone(),
            );
            tokio::spawn(async move {
                let mut refused = 0;
                while flooding.load(Ordering::Relaxed) {
                    let response = client
                        .get(format!("{url}?limit=50&sort=-updated_at&q=risk{}", n % 7))
                        .bearer_auth(&token)
                        .header("cache-control", "no-cache")
                        .send()
                        .await;
                    if response.is_ok_and(|r| r.status() == StatusCode::TOO_MANY_REQUESTS) {
                        refused += 1;
                    }
                }
                refused
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = app.metric("http_requests_waiting_for_turn").await;
    let flooded = victim_lists(&app, &victim, VICTIM_READS).await;
    flooding.store(false, Ordering::Relaxed);
    let mut refused = 0;
    for task in flood {
        refused += task.await.unwrap();
    }
    println!(
        "{backend:?}: the victim's uncached list, quiet p50 {:?} p99 {:?}; while {FLOOD} requests of \
         another organization flood the service ({waiting:?} of them waiting for a turn, {refused} \
         told to come back), p50 {:?} p99 {:?}",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99),
        percentile(&flooded, 0.5),
        percentile(&flooded, 0.99),
    );
    // The flood queued behind its own turns, not in front of the victim.
    assert!(waiting.is_some_and(|n| n > 100.0), "{waiting:?}");
}

on_each_backend!(a_flooding_organization_leaves_the_others_answered);

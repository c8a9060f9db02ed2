//! The cost of an L1 hit against the bare route, in process where nothing else varies: each route
//! through the router in alternating batches on one thread, the median time per request of each,
//! and the hit's throughput as a share of the bare route's. Run it under `perf record` for the
//! flame graph in docs/BENCHMARKS.md: `HIT_PATH_ONLY=<route>` then measures that route alone.
//! The list's hit is also measured on a second instance without rate limits or turns per
//! organization: what they cost a hit.
//!
//! `cargo bench --bench hit_path`

mod support;

use support::median;

const BATCH: u32 = 20_000;
const ROUNDS: usize = 15;
const ROUTES: [&str; 5] = [
    "/health/live",
    "/api/v1/risks",
    "/api/v1/risks?q=billing",
    "/api/v1/dashboard/stats",
    "/api/v1/reports/summary",
];

/// What a browser sends.
const ACCEPT: [(&str, &str); 1] = [("accept-encoding", "gzip, deflate, br, zstd")];

async fn get(router: &axum::Router, path: &str) -> anyhow::Result<String> {
    support::get(router, path, &ACCEPT).await
}

async fn batch(router: &axum::Router, path: &str) -> anyhow::Result<f64> {
    support::batch(router, path, &ACCEPT, BATCH).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let (dir, app) = support::seeded_application(2_000).await?;
    let router = app.router();
    for path in &ROUTES[1..] {
        get(&router, path).await?;
        anyhow::ensure!(
            get(&router, path).await?.starts_with("HIT"),
            "{path}: not an L1 hit"
        );
    }
    // The same database, no rate limit, no turns.
    let unlimited = support::application(&[
        ("OPENRISK_DATA_DIR", &dir.path().display().to_string()),
        ("RATE_LIMIT_PER_SECOND", "0"),
        ("RATE_LIMIT_CONCURRENCY_PER_ORG", "0"),
    ])
    .await?
    .router();
    get(&unlimited, ROUTES[1]).await?;
    anyhow::ensure!(
        get(&unlimited, ROUTES[1]).await?.starts_with("HIT"),
        "not an L1 hit"
    );
    let cases: Vec<(String, &axum::Router, &str)> = ROUTES
        .iter()
        .map(|route| (format!("`{route}`"), &router, *route))
        .chain([(
            format!("`{}`, no rate limit or turns", ROUTES[1]),
            &unlimited,
            ROUTES[1],
        )])
        .collect();
    if let Ok(route) = std::env::var("HIT_PATH_ONLY") {
        // Long enough for a profile: about ten seconds.
        let mut times = Vec::new();
        for _ in 0..4 * ROUNDS {
            times.push(batch(&router, &route).await?);
        }
        println!("`{route}`: {:.0} ns/request", median(times));
        return Ok(());
    }
    let mut times: Vec<Vec<f64>> = cases.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        // Forwards, then backwards: drift of the machine hits every route alike.
        let order: Vec<usize> = match round % 2 {
            0 => (0..cases.len()).collect(),
            _ => (0..cases.len()).rev().collect(),
        };
        for i in order {
            let (_, router, path) = cases[i];
            times[i].push(batch(router, path).await?);
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    println!("in process, median of {ROUNDS} batches of {BATCH}, Accept-Encoding: gzip, deflate, br, zstd");
    println!("| route | ns/request | throughput vs bare route |");
    println!("|---|---|---|");
    for ((label, _, _), ns) in cases.iter().zip(&medians) {
        println!("| {label} | {ns:.0} | {:.0} % |", 100.0 * medians[0] / ns);
    }
    Ok(())
}

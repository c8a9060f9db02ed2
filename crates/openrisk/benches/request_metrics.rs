//! What request metrics add to a request, measured in process where nothing else varies: the same
//! L1 cache hit through the router with `METRICS_REQUESTS` on and off, in alternating batches on
//! one thread. Prints the median time per request of each and the difference, which
//! `bench/metrics-cost.sh` sets against the whole cost of a hit over HTTP.
//!
//! `cargo bench --bench request_metrics`

mod support;

use support::median;

const ROUTE: &str = "/api/v1/dashboard/stats";
const BATCH: u32 = 20_000;
const ROUNDS: usize = 30;

async fn app(data_dir: &str, metrics: &str) -> anyhow::Result<axum::Router> {
    let settings = [("OPENRISK_DATA_DIR", data_dir), ("METRICS_REQUESTS", metrics)];
    Ok(support::application(&settings).await?.router())
}

async fn get(router: &axum::Router) -> anyhow::Result<String> {
    support::get(router, ROUTE, &[]).await
}

async fn batch(router: &axum::Router) -> anyhow::Result<f64> {
    support::batch(router, ROUTE, &[], BATCH).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let on = app(&path("on"), "true").await?;
    let off = app(&path("off"), "false").await?;
    for router in [&on, &off] {
        get(router).await?;
        anyhow::ensure!(
            get(router).await?.starts_with("HIT"),
            "the second request was not an L1 hit"
        );
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // on, off, off, on, …: drift of the machine hits both alike.
        if round % 2 == 0 {
            with.push(batch(&on).await?);
            without.push(batch(&off).await?);
        } else {
            without.push(batch(&off).await?);
            with.push(batch(&on).await?);
        }
    }
    let (with, without) = (median(with), median(without));
    println!("L1 hit of {ROUTE} in process, median of {ROUNDS} batches of {BATCH}:");
    println!("  METRICS_REQUESTS=false  {without:>8.0} ns/request");
    println!("  METRICS_REQUESTS=true   {with:>8.0} ns/request");
    println!("  request metrics add     {:>8.0} ns/request", with - without);
    Ok(())
}

//! What each content coding costs at each level on the service's own answers, so that the levels
//! the cache uses (`Coding::level`, marked) are chosen by measurement: the median time to encode
//! each answer, and its size as a share of the original.
//!
//! `cargo bench --bench codings`

mod support;

use openrisk::cache::Coding;
use support::median;

const ROUTES: [&str; 5] = [
    "/api/v1/risks",
    "/api/v1/risks?q=billing&limit=20",
    "/api/v1/dashboard/stats",
    "/api/v1/reports/summary",
    "/api/v1/marketplace/connectors",
];
const ROUNDS: usize = 31;

fn levels(coding: Coding) -> &'static [u32] {
    match coding {
        Coding::Br => &[1, 2, 3, 4, 5, 9, 11],
        Coding::Zstd => &[1, 3, 6, 9, 15, 19],
        Coding::Gzip => &[1, 3, 4, 5, 6, 9],
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let (_dir, app) = support::seeded_application(2_000).await?;
    let router = app.router();
    for route in ROUTES {
        let body = support::body(&router, route).await?;
        println!("{route}: {} bytes", body.len());
        println!("  coding  level   median µs   size %   MB/s");
        for coding in Coding::ALL {
            for &level in levels(coding) {
                let mut times = Vec::with_capacity(ROUNDS);
                let mut size = 0;
                for _ in 0..ROUNDS {
                    let started = std::time::Instant::now();
                    let encoded = coding
                        .compress_at(&body, level)
                        .ok_or_else(|| anyhow::anyhow!("{coding:?} {level} failed"))?;
                    times.push(started.elapsed().as_secs_f64() * 1e6);
                    size = encoded.len();
                }
                let micros = median(times);
                let marks = if coding.level() == level { " <- in use" } else { "" };
                println!(
                    "  {:<6} {level:>5} {micros:>11.0} {:>8.1} {:>6.0}{marks}",
                    coding.as_str(),
                    100.0 * size as f64 / body.len() as f64,
                    body.len() as f64 / micros,
                );
            }
        }
    }
    Ok(())
}

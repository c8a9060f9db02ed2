//! One organization flooding L1 with distinct queries does not push another's hot entries out:
//! the victim's hit ratio on its hot pages, without and with the flood, on an L1 far smaller than
//! what the flood asks it to hold.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;

use super::x_cache;
use crate::common::{self, Backend, TestApp};

on_each_backend!(a_flood_of_distinct_queries_does_not_evict_another_organizations_hot_entries);

/// 1 MiB of L1; the flood asks for about 2 MiB between two rounds of the victim.
const L1_BYTES: &str = "1048576";
const ROUNDS: usize = 12;
const FLOOD_PER_ROUND: usize = 40;

/// The victim's hot pages: about a quarter of L1, under its half.
fn hot_pages() -> Vec<String> {
    let mut pages = Vec::new();
    for sort in ["-score", "title", "-created_at"] {
        for status in ["open", "in_progress", "accepted", "closed"] {
            pages.push(format!("/api/v1/risks?limit=10&sort={sort}&status={status}"));
        }
    }
    pages
}

/// A query no one asked before: random filters and page size.
fn flood_query(rng: &mut StdRng) -> String {
    let sort = ["-score", "title", "-created_at", "created_at", "-updated_at"]
        .choose(rng)
        .unwrap();
    let severity = ["low", "medium", "high", "critical"].choose(rng).unwrap();
    format!(
        "/api/v1/risks?limit={}&sort={sort}&severity={severity}&q={}",
        rng.random_range(60..=100),
        ["e", "a", "i", "o", "r", "s", "t"].choose(rng).unwrap()
    )
}

async fn seeded(app: &TestApp, slug: &str) -> String {
    let token = app.create_org(slug).await;
    let org = app.store.organization_by_slug(slug).await.unwrap();
    openrisk::cli::seed_register(app.store.as_ref(), &org, 400, 7)
        .await
        .unwrap();
    token
}

/// One round over the hot pages; how many were L1 hits.
async fn round(app: &TestApp, token: &str, pages: &[String]) -> usize {
    let mut hits = 0;
    for page in pages {
        let response = app.request(Method::GET, page, token).send().await.unwrap();
        assert!(response.status().is_success(), "{page}: {}", response.status());
        hits += usize::from(x_cache(response.headers()) == "HIT");
    }
    hits
}

/// The victim's hit ratio over rounds 2.. (the first fills L1), with `flood` requests of the
/// attacker between rounds.
async fn victim_hit_ratio(
    app: &TestApp,
    victim: &str,
    attacker: &str,
    flood: usize,
    rng: &mut StdRng,
) -> f64 {
    let pages = hot_pages();
    let (mut hits, mut reads) = (0, 0);
    for n in 0..ROUNDS {
        let round_hits = round(app, victim, &pages).await;
        if n > 0 {
            hits += round_hits;
            reads += pages.len();
        }
        for _ in 0..flood {
            let response = app
                .request(Method::GET, &flood_query(rng), attacker)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    }
    hits as f64 / reads as f64
}

async fn a_flood_of_distinct_queries_does_not_evict_another_organizations_hot_entries(backend: Backend) {
    let mut rng = StdRng::seed_from_u64(15);
    let quiet = common::spawn_app_with(backend, &[("CACHE_L1_MAX_BYTES", L1_BYTES)]).await;
    let victim = seeded(&quiet, "victim").await;
    let attacker = seeded(&quiet, "attacker").await;
    let without = victim_hit_ratio(&quiet, &victim, &attacker, 0, &mut rng).await;

    let flooded = common::spawn_app_with(backend, &[("CACHE_L1_MAX_BYTES", L1_BYTES)]).await;
    let victim = seeded(&flooded, "victim").await;
    let attacker = seeded(&flooded, "attacker").await;
    let with = victim_hit_ratio(&flooded, &victim, &attacker, FLOOD_PER_ROUND, &mut rng).await;
    let cache = flooded.get("/api/v1/admin/cache", &flooded.token).await.1;
    println!(
        "{backend:?}: victim's L1 hit ratio {:.1} % without the flood, {:.1} % with {} distinct queries \
         between rounds; L1 holds {} entries, {} bytes",
        without * 100.0,
        with * 100.0,
        FLOOD_PER_ROUND,
        cache["l1"]["entries"],
        cache["l1"]["bytes"]
    );
    assert!(
        without > 0.95,
        "the hot pages do not stay in L1 even without a flood: {without}"
    );
    assert!(
        with >= without * 0.9,
        "the flood evicted the victim's hot entries: {:.1} % against {:.1} %",
        with * 100.0,
        without * 100.0
    );
}

//! Heap allocations per request, counted in process: a bare route, a risk-list page served from
//! L1, and the same page uncached. A hit that serialized anything would allocate like a miss.
//! (Counts include the in-process client's own work, the same for every route.)
//!
//! `cargo bench --bench cache_hit_allocations`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

mod support;

use support::{TOKEN, spawn};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUESTS: u64 = 2_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = |name: &str| dir.path().join(name).display().to_string();
    let cached = spawn(&[("OPENRISK_DATA_DIR", &data("cached"))]).await?;
    let uncached = spawn(&[
        ("OPENRISK_DATA_DIR", &data("uncached")),
        ("CACHE_ENABLED", "false"),
    ])
    .await?;
    let client = reqwest::Client::new();
    for base in [&cached, &uncached] {
        for n in 0..50 {
            let body =
                serde_json::json!({"title": format!("Risk {n}"), "likelihood": 1 + n % 5, "impact": 2});
            client
                .post(format!("{base}/api/v1/risks"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await?
                .error_for_status()?;
        }
    }
    let bare = per_request(&client, &format!("{cached}/health/live")).await?;
    let hit = per_request(&client, &format!("{cached}/api/v1/risks")).await?;
    let miss = per_request(&client, &format!("{uncached}/api/v1/risks")).await?;
    println!(
        "allocations per request ({REQUESTS} requests, 50-risk page): bare route {bare:.1}, \
         L1 hit {hit:.1}, uncached {miss:.1}"
    );
    Ok(())
}

/// Mean allocations of one request to `url`, after a warm-up.
async fn per_request(client: &reqwest::Client, url: &str) -> anyhow::Result<f64> {
    for _ in 0..100 {
        client.get(url).bearer_auth(TOKEN).send().await?.bytes().await?;
    }
    let before = ALLOCATIONS.load(Relaxed);
    for _ in 0..REQUESTS {
        let response = client.get(url).bearer_auth(TOKEN).send().await?;
        anyhow::ensure!(response.status().is_success(), "{url}: {}", response.status());
        response.bytes().await?;
    }
    Ok((ALLOCATIONS.load(Relaxed) - before) as f64 / REQUESTS as f64)
}

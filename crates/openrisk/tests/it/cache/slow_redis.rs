//! A Redis that stalls for longer than `CACHE_REDIS_TIMEOUT_MS` (as under CPU saturation) while
//! a write invalidates: the write's invalidation waits for it rather than being lost, so the
//! cache keeps its epoch, and its other entries, instead of starting again from cold.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{cached_app, x_cache};
use crate::common::redis::RedisServer;
use crate::common::{Backend, TestApp, id};

/// Waits until the cache follows the invalidation channel and trusts itself.
async fn trusted(app: &TestApp) {
    for _ in 0..200 {
        let (_, ready) = app.get("/health/ready", &app.token).await;
        if ready["cache"]["trusted"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cache never trusted itself again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_redis_stall_keeps_the_cache_warm() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let app = cached_app(Backend::Sqlite, &redis.url(), &[("CACHE_REDIS_TIMEOUT_MS", "50")]).await;
    let token = app.token.clone();
    let risk = app
        .create_risk(&token, json!({"title": "Before", "likelihood": 2, "impact": 2}))
        .await;
    let path = format!("/api/v1/risks/{}", id(&risk));
    trusted(&app).await;
    let assets = "/api/v1/assets";
    for _ in 0..2 {
        app.request(Method::GET, assets, &token).send().await.unwrap();
    }
    let response = app.request(Method::GET, assets, &token).send().await.unwrap();
    assert_eq!(x_cache(response.headers()), "HIT");

    // Redis stalls for 300 ms, six times the read time-out, as the write invalidates.
    let stall = std::thread::spawn(move || {
        redis.cli(&["DEBUG", "SLEEP", "0.3"]);
        redis
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, updated) = app.patch(&path, &token, json!({"title": "After"})).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{updated}");
    let _redis = stall.join().unwrap();

    trusted(&app).await;
    let (_, read) = app.get(&path, &token).await;
    assert_eq!(read["title"], "After", "the write is not visible");
    let response = app.request(Method::GET, assets, &token).send().await.unwrap();
    assert_eq!(
        x_cache(response.headers()),
        "HIT",
        "the stall cost the cache its epoch: an unrelated page is a miss"
    );
}

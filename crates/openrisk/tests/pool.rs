//! Pool modes and overrides are really applied: read back from the running pool.

mod common;

use common::{Backend, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn pool_report(app: &TestApp) -> Value {
    let (status, report) = app.get("/api/v1/admin/pool", &app.token).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

async fn mode_and_overrides_reach_the_live_pool(backend: Backend) {
    // The test defaults set DB_MAX_OPEN_CONNECTIONS and DB_MAX_IDLE_CONNECTIONS; the others
    // come from the low-latency preset, except the acquire timeout set here.
    let app = common::spawn_app_with(
        backend,
        &[("DB_POOL_MODE", "low-latency"), ("DB_ACQUIRE_TIMEOUT", "3")],
    )
    .await;
    let report = pool_report(&app).await;
    assert_eq!(report["mode"], "low-latency");
    let mut overridden: Vec<&str> = report["overridden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    overridden.sort();
    assert_eq!(
        overridden,
        [
            "DB_ACQUIRE_TIMEOUT",
            "DB_MAX_IDLE_CONNECTIONS",
            "DB_MAX_OPEN_CONNECTIONS"
        ]
    );
    let pool = &report["pool"];
    assert_eq!(pool["max_open"], 8);
    assert_eq!(pool["min_idle"], 1);
    assert_eq!(pool["max_lifetime_seconds"], 600);
    assert_eq!(pool["max_idle_time_seconds"], 120);
    assert_eq!(pool["acquire_timeout_seconds"], 3.0);
    assert_eq!(
        pool["writers"],
        json!(if backend == Backend::Sqlite { 1 } else { 0 })
    );
    assert!(pool["size"].as_u64().unwrap() >= 1);
    assert_eq!(
        pool["size"].as_u64().unwrap(),
        pool["idle"].as_u64().unwrap() + pool["in_use"].as_u64().unwrap()
    );

    // Zero disables the time limits.
    let app = common::spawn_app_with(
        backend,
        &[("DB_CONN_MAX_LIFETIME", "0"), ("DB_CONN_MAX_IDLE_TIME", "0")],
    )
    .await;
    let report = pool_report(&app).await;
    assert_eq!(report["mode"], "default");
    assert_eq!(report["pool"]["max_lifetime_seconds"], Value::Null);
    assert_eq!(report["pool"]["max_idle_time_seconds"], Value::Null);
    assert_eq!(report["pool"]["acquire_timeout_seconds"], 5.0);

    let viewer = app.token_with_role(&app.token, "analyst").await;
    let (status, problem) = app.get("/api/v1/admin/pool", &viewer).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, &[]);
    let (_, ready) = common::read(app.client.get(app.url("/health/ready")).send().await.unwrap()).await;
    assert_eq!(ready["database"]["pool"]["max_open"], 8);
}

mod live_pool {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        mode_and_overrides_reach_the_live_pool(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        mode_and_overrides_reach_the_live_pool(Backend::Postgres).await;
    }
}

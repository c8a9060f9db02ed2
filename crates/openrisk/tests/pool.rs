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

/// Holds the lock that the next write needs, from outside the service: a row lock on PostgreSQL,
/// the database's write lock on SQLite.
async fn hold_write_lock(app: &TestApp, risk_id: &str) -> Box<dyn std::any::Any + Send> {
    use sqlx::Connection;
    match app.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("SELECT 1 FROM risks WHERE id = $1::uuid FOR UPDATE")
                .bind(risk_id)
                .execute(&mut conn)
                .await
                .unwrap();
            Box::new(conn)
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
            Box::new(conn)
        }
    }
}

async fn exhaustion_answers_503_with_retry_after(backend: Backend) {
    // One connection (on SQLite: the one writer), a one-second acquire time-out.
    let app = common::spawn_app_with(
        backend,
        &[
            ("DB_MAX_OPEN_CONNECTIONS", "1"),
            ("DB_MAX_IDLE_CONNECTIONS", "1"),
            ("DB_ACQUIRE_TIMEOUT", "1"),
        ],
    )
    .await;
    let risk = app
        .create_risk(
            &app.token,
            json!({"title": "Contended", "likelihood": 2, "impact": 2}),
        )
        .await;
    let path = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    let lock = hold_write_lock(&app, risk["id"].as_str().unwrap()).await;

    // This write takes the only connection and waits on the lock ...
    let blocked = {
        let request = app
            .request(reqwest::Method::PATCH, &path, &app.token)
            .json(&json!({"title": "First"}));
        tokio::spawn(request.send())
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // ... so the next request that needs it gives up after the acquire time-out.
    let waiting = if backend == Backend::Postgres {
        app.request(reqwest::Method::GET, &path, &app.token)
            .send()
            .await
            .unwrap()
    } else {
        app.request(reqwest::Method::PATCH, &path, &app.token)
            .json(&json!({"title": "Second"}))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(waiting.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(waiting.headers()["retry-after"], "1");
    let (_, problem) = common::read(waiting).await;
    assert_problem(
        StatusCode::SERVICE_UNAVAILABLE,
        &problem,
        StatusCode::SERVICE_UNAVAILABLE,
        &[],
    );
    if backend == Backend::Sqlite {
        // Reads have their own pool: the blocked writer does not stop them.
        let (status, _) = app.get(&path, &app.token).await;
        assert_eq!(status, StatusCode::OK);
    }

    // Once the lock is released, the first write completes and the service answers again.
    drop(lock);
    let first = blocked.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let (status, after) = app.get(&path, &app.token).await;
    assert_eq!((status, &after["title"]), (StatusCode::OK, &json!("First")));
}

async fn warm_up_opens_the_idle_connections_before_serving(backend: Backend) {
    let app = common::spawn_app_with(backend, &[("DB_MAX_IDLE_CONNECTIONS", "4")]).await;
    let report = pool_report(&app).await;
    assert!(report["pool"]["size"].as_u64().unwrap() >= 4, "{report}");
    if let Some(name) = app.db.name() {
        // The server side sees them too.
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&common::admin_database_url())
            .await
            .unwrap();
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(open >= 4, "{open} connections");
    }
}

mod server_limit {
    use super::*;

    /// PostgreSQL only: SQLite has no server connection limit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        a_pool_larger_than_the_server_allows_is_reported().await;
    }
}

async fn a_pool_larger_than_the_server_allows_is_reported() {
    let app = common::spawn_app_with(
        Backend::Postgres,
        &[
            ("DB_MAX_OPEN_CONNECTIONS", "60"),
            ("OPENRISK_EXPECTED_REPLICAS", "2"),
        ],
    )
    .await;
    let report = pool_report(&app).await;
    let limit = report["pool"]["server_max_connections"].as_u64().unwrap();
    assert!(
        limit < 120,
        "the test assumes a server limit below 120, found {limit}"
    );
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report}");
    assert_eq!(warnings[0]["code"], "above_server_limit");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("max_connections")
    );

    let app = common::spawn_app_with(Backend::Postgres, &[("DB_MAX_OPEN_CONNECTIONS", "10")]).await;
    assert_eq!(pool_report(&app).await["warnings"], json!([]));
}

mod exhaustion {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        exhaustion_answers_503_with_retry_after(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        exhaustion_answers_503_with_retry_after(Backend::Postgres).await;
    }
}

mod warm_up {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        warm_up_opens_the_idle_connections_before_serving(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        warm_up_opens_the_idle_connections_before_serving(Backend::Postgres).await;
    }
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

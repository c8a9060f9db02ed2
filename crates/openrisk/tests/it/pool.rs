//! Pool modes and overrides are really applied: read back from the running pool.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, Backend, TestApp, assert_problem};

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

/// An app with `connections` connections (on SQLite the writer is what saturates), an acquire
/// time-out of `timeout` seconds and no cache (every request goes to the database), and a risk
/// to contend for: the app, the risk's id and its path.
async fn contended(backend: Backend, connections: &str, timeout: &str) -> (TestApp, String, String) {
    let app = common::spawn_app_with(
        backend,
        &[
            ("DB_MAX_OPEN_CONNECTIONS", connections),
            ("DB_MAX_IDLE_CONNECTIONS", connections),
            ("DB_ACQUIRE_TIMEOUT", timeout),
            ("CACHE_ENABLED", "false"),
        ],
    )
    .await;
    let risk = app
        .create_risk(
            &app.token,
            json!({"title": "Contended", "likelihood": 2, "impact": 2}),
        )
        .await;
    let id = risk["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/risks/{id}");
    (app, id, path)
}

async fn exhaustion_answers_503_with_retry_after(backend: Backend) {
    let (app, id, path) = contended(backend, "1", "1").await;
    let lock = hold_write_lock(&app, &id).await;

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

async fn warnings_appear_when_provoked(backend: Backend) {
    let (app, id, path) = contended(backend, "2", "2").await;
    app.wait_for_metric("db_pool_warning{code=\"saturated\"}", 0.0)
        .await;
    app.wait_for_metric("db_pool_waiters", 0.0).await;

    let lock = hold_write_lock(&app, &id).await;
    // Writes that hold every connection the lock blocks, and one more request queued behind them.
    let holders = if backend == Backend::Postgres { 2 } else { 1 };
    let mut requests = Vec::new();
    for n in 0..=holders {
        let request = app
            .request(reqwest::Method::PATCH, &path, &app.token)
            .json(&json!({"title": format!("Write {n}")}));
        requests.push(tokio::spawn(request.send()));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.wait_for_metric("db_pool_waiters", 1.0).await;
    app.wait_for_metric("db_pool_warning{code=\"waiters\"}", 1.0)
        .await;
    if backend == Backend::Postgres {
        app.wait_for_metric("db_pool_connections{state=\"in_use\"}", 2.0)
            .await;
        app.wait_for_metric("db_pool_warning{code=\"saturated\"}", 1.0)
            .await;
    }
    // The queued request gives up after the acquire time-out.
    let queued = requests.pop().unwrap().await.unwrap().unwrap();
    assert_eq!(queued.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(queued.headers()["retry-after"], "1");
    drop(lock);
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    // The slow acquires stay in the last minute's percentiles, and the time-out is counted.
    let report = pool_report(&app).await;
    let pool = &report["pool"];
    assert!(pool["acquire_timeouts"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        pool["acquire_wait"]["p99_ms"].as_f64().unwrap() > 50.0,
        "{report}"
    );
    let codes: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"slow_acquire"), "{report}");
    assert!(!codes.contains(&"waiters"), "{report}");
    let (_, ready) = common::read(app.client.get(app.url("/health/ready")).send().await.unwrap()).await;
    assert_eq!(ready["status"], "ok");
    assert!(
        ready["database"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "slow_acquire"),
        "{ready}"
    );
    app.wait_until_metric("db_pool_acquire_timeouts_total", |n| n >= 1.0)
        .await;
    app.wait_until_metric("db_pool_acquire_duration_seconds_count", |n| n >= 3.0)
        .await;
    app.wait_until_metric("db_pool_acquire_duration_seconds_bucket{le=\"0.05\"}", |n| {
        n >= 1.0
    })
    .await;
}

/// PostgreSQL only: kills every connection of the service while a client reads in a loop.
async fn killed_connections_are_replaced_without_failed_reads() {
    let app = common::spawn_app_with(
        Backend::Postgres,
        &[
            ("DB_MAX_OPEN_CONNECTIONS", "4"),
            ("DB_MAX_IDLE_CONNECTIONS", "4"),
            // Every read goes to the database.
            ("CACHE_ENABLED", "false"),
        ],
    )
    .await;
    let risk = app
        .create_risk(
            &app.token,
            json!({"title": "Survivor", "likelihood": 3, "impact": 3}),
        )
        .await;
    let item = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|n| {
            let (client, stop) = (app.client.clone(), stop.clone());
            let url = app.url(if n % 2 == 0 {
                &item
            } else {
                "/api/v1/risks?limit=5"
            });
            let token = app.token.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                    if response.status() == StatusCode::OK {
                        ok += 1;
                    } else {
                        failed.push(common::read(response).await);
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&common::admin_database_url())
        .await
        .unwrap();
    let mut killed = 0;
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let pids: Vec<bool> =
            sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(app.db.name().unwrap())
                .fetch_all(&mut admin)
                .await
                .unwrap();
        killed += pids.len();
    }
    // Writes work again at once too.
    let (status, body) = app.patch(&item, &app.token, json!({"title": "Still here"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut reads = 0;
    for reader in readers {
        let (ok, failed) = reader.await.unwrap();
        assert!(failed.is_empty(), "failed reads: {failed:?}");
        reads += ok;
    }
    assert!(killed >= 4, "only {killed} connections were killed");
    assert!(reads > 20, "only {reads} reads");
    let pool = &pool_report(&app).await["pool"];
    // Each killed connection was closed: by the check before use (`broken`), or by the pool
    // library as it came back from the query that failed on it (counted under `idle`).
    let closed = &pool["connections_closed"];
    assert!(
        closed["broken"].as_u64().unwrap() + closed["idle"].as_u64().unwrap() >= 4,
        "{pool}"
    );
    assert!(pool["connections_opened"].as_u64().unwrap() >= 8, "{pool}");
}

mod recovery {
    use super::*;

    /// PostgreSQL only: SQLite connections are files, not server sessions that can be killed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        killed_connections_are_replaced_without_failed_reads().await;
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
            (
                "OPENRISK_SECRETS_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
        ],
    )
    .await;
    let report = pool_report(&app).await;
    let limit = report["pool"]["server_max_connections"].as_u64().unwrap();
    assert!(
        limit < 120,
        "the test assumes a server limit below 120, found {limit}"
    );
    // Other warnings may come and go with the machine's load (a slow first connection).
    let warning = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "above_server_limit")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(warning["message"].as_str().unwrap().contains("max_connections"));

    let app = common::spawn_app_with(Backend::Postgres, &[("DB_MAX_OPEN_CONNECTIONS", "10")]).await;
    let report = pool_report(&app).await;
    let codes: Vec<&Value> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["code"])
        .collect();
    assert!(!codes.contains(&&json!("above_server_limit")), "{report}");
}

/// Readiness follows the database: while PostgreSQL refuses connections to it, `/health/ready`
/// answers 503 and `openrisk_ready` reads 0; once it accepts them again, both recover by themselves.
mod readiness_follows_the_database {
    use super::*;
    use sqlx::Connection;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = common::spawn_app(Backend::Postgres).await;
        let ready = || async {
            app.client
                .get(app.url("/health/ready"))
                .send()
                .await
                .unwrap()
                .status()
        };
        app.wait_for_metric("openrisk_ready", 1.0).await;
        assert_eq!(ready().await, StatusCode::OK);

        let name = app.db.name().expect("a PostgreSQL database").to_owned();
        let mut admin = sqlx::PgConnection::connect(&common::admin_database_url())
            .await
            .unwrap();
        // The name is the test's own database: a fixed prefix and a UUID.
        let allow = |allowed: bool| format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allowed}");
        sqlx::query(sqlx::AssertSqlSafe(allow(false)))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .execute(&mut admin)
            .await
            .unwrap();
        app.wait_for_metric("openrisk_ready", 0.0).await;
        assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
        // The answer still shows the pool, as the README says.
        let (_, body) = common::read(app.client.get(app.url("/health/ready")).send().await.unwrap()).await;
        assert_eq!(body["database"]["status"], "down", "{body}");
        assert!(body["database"]["pool"]["max_open"].is_number(), "{body}");

        sqlx::query(sqlx::AssertSqlSafe(allow(true)))
            .execute(&mut admin)
            .await
            .unwrap();
        app.wait_for_metric("openrisk_ready", 1.0).await;
        assert_eq!(ready().await, StatusCode::OK);
    }
}

/// A token nobody issued costs one lookup, not two: the authentication layer's refusal stands,
/// the handler does not ask again; and the same token again costs none (it is remembered as
/// unknown). The fewest over a few tries: the monitor's ping may land in between.
async fn an_unknown_token_is_looked_up_once(backend: Backend) {
    let app = common::spawn_app(backend).await;
    let acquires = || async {
        pool_report(&app).await["pool"]["acquires"]
            .as_u64()
            .expect("acquires")
    };
    let lookups = |token: String| {
        let acquires = &acquires;
        let app = &app;
        async move {
            let before = acquires().await;
            let response = app
                .client
                .get(app.url("/api/v1/risks"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            acquires().await - before
        }
    };
    acquires().await;
    let (mut first, mut again) = (u64::MAX, u64::MAX);
    for _ in 0..5 {
        let token = format!("ort_nobody-issued-{}", uuid::Uuid::new_v4().simple());
        first = first.min(lookups(token.clone()).await);
        again = again.min(lookups(token).await);
    }
    assert_eq!((first, again), (1, 0));
}

on_each_backend!(
    an_unknown_token_is_looked_up_once,
    warnings_appear_when_provoked,
    exhaustion_answers_503_with_retry_after,
    warm_up_opens_the_idle_connections_before_serving,
    mode_and_overrides_reach_the_live_pool,
);

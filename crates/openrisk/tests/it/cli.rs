//! The `openrisk` binary: configuration errors, organization and token commands, seeding, the
//! aggregate check.

use common::redis::RedisServer;

use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{self, Backend, openrisk, spawn_app, spawn_app_with};

#[test]
fn bad_configuration_exits_non_zero_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let cases = [
        ("DB_POOL_MODE", "turbo"),
        ("DB_MAX_OPEN_CONNECTIONS", "0"),
        ("DB_MAX_IDLE_CONNECTIONS", "-1"),
        ("DB_CONN_MAX_LIFETIME", "5m"),
        ("DB_ACQUIRE_TIMEOUT", "0"),
        ("OPENRISK_LISTEN", "localhost"),
        ("DATABASE_URL", "mysql://x"),
        ("CACHE_ENABLED", "maybe"),
        ("METRICS_REQUESTS", "yes"),
        ("LOG_FORMAT", "xml"),
        ("REDIS_URL", "http://x"),
        ("OPENRISK_EXPECTED_REPLICAS", "0"),
    ];
    for (variable, value) in cases {
        let out = openrisk(&["serve"], &[("OPENRISK_DATA_DIR", data), (variable, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{variable}={value} accepted");
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
    let out = openrisk(
        &["serve"],
        &[
            ("OPENRISK_DATA_DIR", data),
            ("DB_MAX_OPEN_CONNECTIONS", "5"),
            ("DB_MAX_IDLE_CONNECTIONS", "6"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DB_MAX_IDLE_CONNECTIONS"));
}

#[test]
fn config_prints_the_effective_settings_with_secrets_masked() {
    let out = openrisk(
        &["config"],
        &[
            ("DATABASE_URL", "postgres://app:hunter2@db.internal:5432/openrisk"),
            ("DB_POOL_MODE", "low-latency"),
            ("DB_MAX_OPEN_CONNECTIONS", "40"),
            ("OPENRISK_BOOTSTRAP_TOKEN", "super-secret-bootstrap-token"),
        ],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("super-secret"),
        "{stdout}"
    );
    assert!(stdout.contains("DB_POOL_MODE=low-latency"), "{stdout}");
    assert!(stdout.contains("DB_MAX_OPEN_CONNECTIONS=40 (set)"), "{stdout}");
    assert!(
        stdout.contains("DB_MAX_IDLE_CONNECTIONS=25 (mode low-latency)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("DB_ACQUIRE_TIMEOUT=1 (mode low-latency)"),
        "{stdout}"
    );
}

#[test]
fn migrate_and_org_create_work_on_a_fresh_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = openrisk(&["migrate"], &[("OPENRISK_DATA_DIR", data)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // `migrate` does not bootstrap; `org create` works on the migrated database.
    assert!(!dir.path().join("bootstrap-token").exists());
    let out = openrisk(
        &["org", "create", "acme", "--name", "Acme"],
        &[("OPENRISK_DATA_DIR", data)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).trim().starts_with("ort_"));
}

on_each_backend!(org_token_and_seed_commands);

async fn org_token_and_seed_commands(backend: Backend) {
    let app = spawn_app(backend).await;
    let env = [
        ("DATABASE_URL", app.db.url.as_str()),
        ("OPENRISK_DATA_DIR", app.db.data_dir().to_str().unwrap()),
    ];
    let out = openrisk(&["org", "create", "globex"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let admin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (_, me) = app.get("/api/v1/me", &admin).await;
    assert_eq!(me["organization"]["slug"], "globex");
    assert_eq!(me["role"], "admin");
    let out = openrisk(&["org", "create", "globex"], &env);
    assert!(!out.status.success());

    let out = openrisk(&["token", "create", "--org", "globex", "--role", "viewer"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let viewer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (_, me) = app.get("/api/v1/me", &viewer).await;
    assert_eq!(me["role"], "viewer");

    let out = openrisk(
        &["seed", "--org", "globex", "--risks", "400", "--seed", "7"],
        &env,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, list) = app
        .get("/api/v1/risks?include_total=true&limit=200", &viewer)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 400);
    for status in ["draft", "open", "in_progress", "mitigated", "accepted", "closed"] {
        let (_, page) = app
            .get(
                &format!("/api/v1/risks?status={status}&include_total=true&limit=1"),
                &viewer,
            )
            .await;
        assert!(page["total"].as_i64().unwrap() > 0, "no {status} risks");
    }
    let items = list["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|r| (1..=3).contains(&r["mitigation_count"].as_i64().unwrap()))
    );
    assert!(
        items
            .iter()
            .any(|r| !r["asset_ids"].as_array().unwrap().is_empty())
    );
    assert!(items.iter().any(|r| r["owner_id"].is_string()));
    let categories: std::collections::HashSet<&Value> = items.iter().map(|r| &r["category"]).collect();
    assert!(categories.len() >= 10, "{categories:?}");
    // References follow creation order.
    let (_, oldest) = app.get("/api/v1/risks?sort=created_at&limit=1", &viewer).await;
    assert_eq!(oldest["items"][0]["ref"], "RSK-1");
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_openrisk"))
        .env_clear()
        .env("OPENRISK_DATA_DIR", dir.path())
        .env("OPENRISK_LISTEN", &listen)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(&listen).is_ok()
    });
    assert!(up, "server did not start");
    // A random bootstrap token was written, private to the owner.
    let token = dir.path().join("bootstrap-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&token)
            .unwrap()
            .trim()
            .starts_with("ort_")
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

on_each_backend!(seeding_reaches_what_a_running_server_cached);

/// A seed writes from another process; the server's cached answers must not outlive it.
async fn seeding_reaches_what_a_running_server_cached(backend: Backend) {
    let redis = RedisServer::start();
    let app = spawn_app_with(backend, &[("REDIS_URL", &redis.url())]).await;
    let admin = app.create_org("initech").await;
    let reads = [
        "/api/v1/risks?include_total=true",
        "/api/v1/dashboard/stats",
        "/api/v1/assets",
    ];
    // Cached (the first read of a figure may already be answered by the register in memory).
    for path in reads {
        for _ in 0..2 {
            app.get(path, &admin).await;
        }
        let response = app
            .request(reqwest::Method::GET, path, &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-cache"], "HIT", "{path}");
    }
    let env = [
        ("DATABASE_URL", app.db.url.as_str()),
        ("OPENRISK_DATA_DIR", app.db.data_dir().to_str().unwrap()),
        ("REDIS_URL", &redis.url()),
    ];
    let out = openrisk(&["seed", "--org", "initech", "--risks", "50"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, risks) = app.get("/api/v1/risks?include_total=true", &admin).await;
    assert_eq!(risks["total"], 50);
    let (_, stats) = app.get("/api/v1/dashboard/stats", &admin).await;
    assert_eq!(stats["total"], 50, "{stats}");
    let (_, assets) = app.get("/api/v1/assets", &admin).await;
    assert!(!assets["items"].as_array().unwrap().is_empty());
}

on_each_backend!(verify_finds_and_repairs_drifted_aggregates);

/// `openrisk verify` compares the aggregates with a recount; `--repair` rebuilds them.
async fn verify_finds_and_repairs_drifted_aggregates(backend: Backend) {
    let app = spawn_app(backend).await;
    for (n, status) in ["open", "closed", "draft"].iter().enumerate() {
        let risk = app
            .create_risk(
                &app.token,
                serde_json::json!({"title": format!("R{n}"), "likelihood": 2, "impact": 3, "status": status, "review_date": "2020-01-01"}),
            )
            .await;
        let (status, _) = app
            .post(
                &format!("/api/v1/risks/{}/mitigations", risk["id"].as_str().unwrap()),
                &app.token,
                serde_json::json!({"title": "M", "due_date": "2020-01-01"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let env = [
        ("DATABASE_URL", app.db.url.as_str()),
        ("OPENRISK_DATA_DIR", app.db.data_dir().to_str().unwrap()),
    ];
    let out = openrisk(&["verify"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the aggregates match the register"), "{stdout}");

    // Drift in every table: a figure changed, a row lost, a row that should not be there.
    let stats_before = fresh_stats(&app).await;
    execute(
        &app,
        &[
            "UPDATE risk_counts SET count = count + 1 WHERE status = 'open'",
            "DELETE FROM risk_review_days",
            "UPDATE mitigation_counts SET count = 7",
            "DELETE FROM mitigation_due_days",
            "UPDATE risk_activity_days SET created = created + 2",
        ],
    )
    .await;
    let out = openrisk(&["verify"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "drift not reported: {stdout}");
    for table in [
        "risk_counts",
        "risk_review_days",
        "mitigation_counts",
        "mitigation_due_days",
        "risk_activity_days",
    ] {
        let line = stdout.lines().find(|l| l.starts_with(table)).unwrap_or_default();
        assert!(
            !line.contains(": 0 rows missing or different, 0 rows extra"),
            "{table}: {stdout}"
        );
    }

    let out = openrisk(&["verify", "--repair"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(openrisk(&["verify"], &env).status.success());
    assert_eq!(fresh_stats(&app).await, stats_before);
}

/// The dashboard's figures, computed for this request.
async fn fresh_stats(app: &common::TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/v1/dashboard/stats"))
        .bearer_auth(&app.token)
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Statements run on the app's database from outside the service.
async fn execute(app: &common::TestApp, statements: &[&str]) {
    use sqlx::Connection;
    match app.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            for sql in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            for sql in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

//! Connector secrets at rest: sealed in the database (neither the column, the database's files,
//! a dump nor a backup shows them), still served (masked) and kept through a key rotation done
//! while the service runs, and configurations stored in clear are sealed by the next start.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::{Backend, Database, ServiceProcess, TestApp, id, spawn_app};

on_each_backend!(connector_secrets_are_sealed_at_rest);

const INSTALLATIONS: &str = "/api/v1/marketplace/installations";

/// Runs `$body` with `$conn`, a connection to `$db` of its backend's type.
macro_rules! with_connection {
    ($db:expr, $backend:expr, |$conn:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite => {
                let mut $conn = sqlx::SqliteConnection::connect(&$db.url).await.unwrap();
                $body
            }
            Backend::Postgres => {
                let mut $conn = sqlx::PgConnection::connect(&$db.url).await.unwrap();
                $body
            }
        }
    };
}

/// The `config` column of installation `id`, as stored.
async fn stored_config(db: &Database, backend: Backend, id: &str) -> Value {
    let sql = "SELECT CAST(config AS TEXT) FROM installations WHERE id = $1";
    let id = uuid::Uuid::parse_str(id).unwrap();
    let text: String = with_connection!(db, backend, |conn| sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap());
    serde_json::from_str(&text).unwrap()
}

/// Stores `config` in clear, as a version before sealing did.
async fn store_in_clear(db: &Database, backend: Backend, id: &str, config: &Value) {
    let sql = "UPDATE installations SET config = $1 WHERE id = $2";
    let id = uuid::Uuid::parse_str(id).unwrap();
    let json = sqlx::types::Json(config);
    let updated = with_connection!(db, backend, |conn| sqlx::query(sql)
        .bind(json)
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected());
    assert_eq!(updated, 1);
}

/// Every byte the database keeps: its files (SQLite), or a plain dump (PostgreSQL).
fn database_bytes(db: &Database, backend: Backend) -> Vec<u8> {
    match backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(db.data_dir()).unwrap().flatten() {
                if entry.file_name().to_string_lossy().starts_with("openrisk.db") {
                    bytes.extend(std::fs::read(entry.path()).unwrap());
                }
            }
            bytes
        }
        Backend::Postgres => {
            let dump = Command::new("pg_dump")
                .arg(format!("--dbname={}", db.url))
                .output()
                .unwrap();
            assert!(dump.status.success());
            dump.stdout
        }
    }
}

fn openrisk(db: &Database, args: &[&str]) {
    let output = db.openrisk(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn connector_secrets_are_sealed_at_rest(backend: Backend) {
    let app: TestApp = spawn_app(backend).await;
    let secret = format!("jira-token-{}", uuid::Uuid::new_v4().simple());
    let config = json!({
        "base_url": "https://acme.atlassian.net",
        "email": "risk-bot@acme.example",
        "api_token": secret,
        "project_key": "RISK"
    });
    let (status, created) = app
        .post(
            INSTALLATIONS,
            &app.token,
            json!({"connector": "jira", "config": config}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let installation = id(&created).to_owned();
    let path = format!("{INSTALLATIONS}/{installation}");

    let stored = stored_config(&app.db, backend, &installation).await;
    assert!(!stored.to_string().contains(&secret), "{stored}");
    assert_eq!(stored["sealed"], "xchacha20poly1305");
    assert!(
        !contains(&database_bytes(&app.db, backend), &secret),
        "the database shows the secret"
    );
    let backup = app.db.data_dir().join("installations.backup");
    openrisk(&app.db, &["backup", backup.to_str().unwrap()]);
    assert!(
        !contains(&std::fs::read(&backup).unwrap(), &secret),
        "a backup shows the secret"
    );

    // A rotation while the service runs: it reads the new key from the key file.
    let key_file = app.db.data_dir().join("secrets.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    openrisk(&app.db, &["secrets", "rotate"]);
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(new_key.lines().count(), 1, "the old key is dropped once unused");
    let resealed = stored_config(&app.db, backend, &installation).await;
    assert_ne!(
        resealed["key"], stored["key"],
        "not sealed again under the new key"
    );
    let (status, read) = app.get(&path, &app.token).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["config"]["project_key"], "RISK");
    assert_eq!(read["config"]["api_token"], "********");
    let (status, updated) = app
        .patch(
            &path,
            &app.token,
            json!({"config": {
                "base_url": "https://acme.atlassian.net", "email": "risk-bot@acme.example",
                "api_token": "********", "project_key": "OPS"
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let after_update = stored_config(&app.db, backend, &installation).await;
    assert_eq!(
        after_update["key"], resealed["key"],
        "the service sealed under the old key"
    );

    // A configuration stored in clear (before sealing existed) is sealed by the next start.
    store_in_clear(&app.db, backend, &installation, &config).await;
    let token = app.token.clone();
    let service = ServiceProcess::start(&app.db.url, app.db.data_dir(), &[]).await;
    let sealed = stored_config(&app.db, backend, &installation).await;
    assert_eq!(sealed["sealed"], "xchacha20poly1305", "{sealed}");
    let response = reqwest::Client::new()
        .get(format!("{}{path}", service.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["config"]["project_key"], "RISK");
}

//! `spawn_app`: the real service on a random port, over SQLite or a fresh PostgreSQL database.
#![allow(dead_code)]

pub mod postgres;
pub mod redis;
pub mod writes;

use std::collections::HashMap;
use std::sync::Arc;

use openrisk::config::Config;
use openrisk::startup::Application;
use openrisk::store::Store;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `<name>::sqlite` and `<name>::postgres` for each `async fn name(backend: Backend)`.
///
/// With `redis:` first, each `async fn name(backend: Backend, redis: &str)` also gets a Redis URL:
/// the machine's Redis on both backends, and on SQLite a three-master Redis Cluster of its own
/// (`<name>::cluster`).
macro_rules! on_each_backend {
    (redis: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let redis = $crate::common::redis::machine_redis_url();
                    super::$name($crate::common::Backend::Sqlite, &redis).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let redis = $crate::common::redis::machine_redis_url();
                    super::$name($crate::common::Backend::Postgres, &redis).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cluster() {
                    let cluster = $crate::common::redis::RedisCluster::start();
                    super::$name($crate::common::Backend::Sqlite, &cluster.url()).await;
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            }
        )+
    };
}

pub const TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| TEST_DATABASE_URL.to_owned())
}

/// Runs the `openrisk` command with `args` and only the settings `env` (and `PATH`).
pub fn openrisk(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_openrisk"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("openrisk runs")
}

/// A database that exists for one test and is dropped with it.
pub struct Database {
    pub url: String,
    name: Option<String>,
    _dir: tempfile::TempDir,
}

impl Database {
    pub async fn create(backend: Backend) -> Database {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Database {
                url: format!("sqlite://{}/openrisk.db", dir.path().display()),
                name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let admin = admin_database_url();
                let name = format!("openrisk_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at TEST_DATABASE_URL ({admin}) is required: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                Database {
                    url: url.to_string(),
                    name: Some(name),
                    _dir: dir,
                }
            }
        }
    }

    /// The PostgreSQL database's name (none for SQLite).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Runs the `openrisk` command with `args` on this database.
    pub fn openrisk(&self, args: &[&str]) -> std::process::Output {
        let data_dir = self.data_dir().display().to_string();
        openrisk(
            args,
            &[("DATABASE_URL", &self.url), ("OPENRISK_DATA_DIR", &data_dir)],
        )
    }
}

use sqlx::Connection;

/// The service binary as its own process (to kill it, or to run a second replica) on the database
/// `database_url`, listening on a free port; killed with `SIGKILL` when dropped.
pub struct ServiceProcess {
    process: std::process::Child,
    pub base: String,
}

impl ServiceProcess {
    /// Starts it with `extra` settings and returns once it is ready.
    pub async fn start(
        database_url: &str,
        data_dir: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> ServiceProcess {
        Self::start_with(database_url, data_dir, extra, None).await
    }

    /// As `start`, with the process's descriptor limit (soft and hard) set to `descriptors`.
    pub async fn start_with(
        database_url: &str,
        data_dir: &std::path::Path,
        extra: &[(&str, &str)],
        descriptors: Option<u32>,
    ) -> ServiceProcess {
        let port = redis::free_port();
        let binary = env!("CARGO_BIN_EXE_openrisk");
        let mut command = match descriptors {
            None => std::process::Command::new(binary),
            Some(n) => {
                let mut prlimit = std::process::Command::new("prlimit");
                prlimit.arg(format!("--nofile={n}:{n}")).arg(binary);
                prlimit
            }
        };
        let process = command
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("OPENRISK_DATA_DIR", data_dir)
            .env("OPENRISK_LISTEN", format!("127.0.0.1:{port}"))
            .env("DB_MAX_OPEN_CONNECTIONS", "8")
            .env("DB_MAX_IDLE_CONNECTIONS", "1")
            .env("RUST_LOG", "warn")
            .env("RATE_LIMIT_PER_SECOND", "0")
            .env("RATE_LIMIT_EXPENSIVE_PER_MINUTE", "0")
            .env("RATE_LIMIT_EXPENSIVE_CONCURRENCY", "0")
            .env("RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN", "0")
            .env("RATE_LIMIT_FAILED_AUTH_PER_MINUTE", "0")
            .env("RATE_LIMIT_CONCURRENCY_PER_ORG", "0")
            .envs(extra.iter().copied())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let service = ServiceProcess {
            process,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(response) = client.get(format!("{}/health/ready", service.base)).send().await
                && response.status() == StatusCode::OK
            {
                return service;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the service process did not start");
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // SIGKILL: no shutdown, no flush.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        let admin = admin_database_url();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    pub backend: Backend,
    pub client: reqwest::Client,
    /// The bootstrap token: system admin of organization `default`.
    pub token: String,
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub db: Database,
}

/// Settings every test app shares; `extra` overrides them.
pub fn test_config(db: &Database, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("OPENRISK_LISTEN".into(), "127.0.0.1:0".into()),
        ("OPENRISK_DATA_DIR".into(), db.data_dir().display().to_string()),
        ("DATABASE_URL".into(), db.url.clone()),
        (
            "OPENRISK_BOOTSTRAP_TOKEN".into(),
            format!("test-bootstrap-{}", uuid::Uuid::new_v4().simple()),
        ),
        // Tests run in parallel against one PostgreSQL: keep each app's pool small.
        ("DB_MAX_OPEN_CONNECTIONS".into(), "8".into()),
        ("DB_MAX_IDLE_CONNECTIONS".into(), "1".into()),
        ("RUST_LOG".into(), "warn".into()),
        // Tests drive the service far faster than any person: limits only where a test asks.
        ("RATE_LIMIT_PER_SECOND".into(), "0".into()),
        ("RATE_LIMIT_EXPENSIVE_PER_MINUTE".into(), "0".into()),
        ("RATE_LIMIT_EXPENSIVE_CONCURRENCY".into(), "0".into()),
        ("RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN".into(), "0".into()),
        ("RATE_LIMIT_FAILED_AUTH_PER_MINUTE".into(), "0".into()),
        ("RATE_LIMIT_CONCURRENCY_PER_ORG".into(), "0".into()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).expect("valid test configuration")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let db = Database::create(backend).await;
    let config = test_config(&db, extra);
    let app = Application::build(&config).await.expect("app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        backend,
        client: reqwest::Client::new(),
        token: config.bootstrap_token.clone().expect("bootstrap token set"),
        store,
        config,
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    /// Sends `body` as JSON (or no body for `None`) and returns status and parsed body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        read(response).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Creates a risk and returns it.
    pub async fn create_risk(&self, token: &str, body: Value) -> Value {
        let (status, risk) = self.post("/api/v1/risks", token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{risk}");
        risk
    }

    /// The body of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    /// The value of the sample `series` (name and labels, as rendered) on `/metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        self.metrics_text()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.trim().parse().unwrap())
    }

    /// Polls `/metrics` (the monitor samples every second) until `series` reads `expected`.
    pub async fn wait_for_metric(&self, series: &str, expected: f64) {
        self.wait_until_metric(series, |value| value == expected).await;
    }

    pub async fn wait_until_metric(&self, series: &str, holds: impl Fn(f64) -> bool) {
        for _ in 0..100 {
            if self.metric(series).await.is_some_and(&holds) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{series} reads {:?}", self.metric(series).await);
    }

    /// A new organization: its admin token.
    pub async fn create_org(&self, slug: &str) -> String {
        let (status, body) = self
            .post("/api/v1/orgs", &self.token, json!({"slug": slug}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["admin_token"].as_str().expect("admin token").to_owned()
    }

    /// A token of `role` for a new user of the caller's organization.
    pub async fn token_with_role(&self, admin_token: &str, role: &str) -> String {
        let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, user) = self
            .post(
                "/api/v1/users",
                admin_token,
                json!({"email": email, "name": role, "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let (status, token) = self
            .post(
                "/api/v1/tokens",
                admin_token,
                json!({"user_id": user["id"], "name": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{token}");
        token["token"].as_str().expect("token value").to_owned()
    }
}

/// The `id` of a created resource.
pub fn id(v: &Value) -> &str {
    v["id"].as_str().expect("id")
}

pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body read");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, body)
}

/// Asserts a problem+json error with `status`, naming each of `fields`.
pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, fields: &[&str]) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    let named: Vec<&str> = body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    for field in fields {
        assert!(named.contains(field), "{field} not named in {body}");
    }
}

/// The samples of metric `name` in a Prometheus text exposition: their labels and values.
pub fn samples(text: &str, name: &str) -> Vec<(HashMap<String, String>, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let labels = labels
                .split("\",")
                .filter_map(|pair| pair.split_once("=\""))
                .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include every pair of `labels`.
pub fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name)
        .into_iter()
        .filter(|(have, _)| {
            labels
                .iter()
                .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, value)| value)
        .sum()
}

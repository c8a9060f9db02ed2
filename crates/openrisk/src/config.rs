//! Configuration from the environment, validated once at start-up.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cache::{CacheSettings, Namespace};

/// A variable with a value the service cannot run with.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    Default,
    HighThroughput,
    LowLatency,
}

impl PoolMode {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "default" => Some(PoolMode::Default),
            "high-throughput" => Some(PoolMode::HighThroughput),
            "low-latency" => Some(PoolMode::LowLatency),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Default => "default",
            PoolMode::HighThroughput => "high-throughput",
            PoolMode::LowLatency => "low-latency",
        }
    }

    /// The preset every limit starts from.
    pub fn preset(self) -> PoolSettings {
        let (max_open, max_idle, lifetime, idle_time, acquire) = match self {
            PoolMode::Default => (50, 10, 900, 300, 5),
            PoolMode::HighThroughput => (200, 50, 900, 300, 10),
            PoolMode::LowLatency => (100, 25, 600, 120, 1),
        };
        PoolSettings {
            mode: self,
            max_open,
            max_idle,
            max_lifetime: Duration::from_secs(lifetime),
            max_idle_time: Duration::from_secs(idle_time),
            acquire_timeout: Duration::from_secs(acquire),
            overridden: Vec::new(),
        }
    }
}

/// Connection pool limits. For SQLite they size the reader pool; the writer is one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    pub mode: PoolMode,
    pub max_open: u32,
    /// Connections kept open (and opened at start-up) even when idle.
    pub max_idle: u32,
    /// 0 disables the limit.
    pub max_lifetime: Duration,
    /// 0 disables the limit.
    pub max_idle_time: Duration,
    pub acquire_timeout: Duration,
    /// Variables that overrode the mode's preset.
    pub overridden: Vec<&'static str>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolMode::Default.preset()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub pool: PoolSettings,
    /// How many replicas share the database: their pools together must fit its connection limit.
    pub expected_replicas: u32,
    pub cache: CacheSettings,
    pub bootstrap_token: Option<String>,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// Whether every request is timed into `http_server_request_duration_seconds`.
    pub request_metrics: bool,
}

impl Config {
    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can supply variables without touching the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let listen = match get("OPENRISK_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(raw) => raw.parse().map_err(|_| {
                invalid(
                    "OPENRISK_LISTEN",
                    format!("{raw:?} is not an address like 127.0.0.1:8080"),
                )
            })?,
        };
        let data_dir = PathBuf::from(get("OPENRISK_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url =
            get("DATABASE_URL").unwrap_or_else(|| format!("sqlite://{}/openrisk.db", data_dir.display()));
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ));
        }

        let mode = match get("DB_POOL_MODE") {
            None => PoolMode::Default,
            Some(raw) => PoolMode::parse(&raw).ok_or_else(|| {
                invalid(
                    "DB_POOL_MODE",
                    format!("{raw:?}: must be default, high-throughput or low-latency"),
                )
            })?,
        };
        let mut pool = mode.preset();
        let count = |name: &'static str, min: u64| -> Result<Option<u32>, ConfigError> {
            get(name)
                .map(|raw| {
                    raw.parse::<u32>()
                        .ok()
                        .filter(|n| u64::from(*n) >= min)
                        .ok_or_else(|| invalid(name, format!("{raw:?}: must be an integer ≥ {min}")))
                })
                .transpose()
        };
        if let Some(n) = count("DB_MAX_OPEN_CONNECTIONS", 1)? {
            pool.max_open = n;
            pool.overridden.push("DB_MAX_OPEN_CONNECTIONS");
        }
        if let Some(n) = count("DB_MAX_IDLE_CONNECTIONS", 0)? {
            pool.max_idle = n;
            pool.overridden.push("DB_MAX_IDLE_CONNECTIONS");
        }
        for (name, slot) in [
            ("DB_CONN_MAX_LIFETIME", &mut pool.max_lifetime),
            ("DB_CONN_MAX_IDLE_TIME", &mut pool.max_idle_time),
            ("DB_ACQUIRE_TIMEOUT", &mut pool.acquire_timeout),
        ] {
            if let Some(raw) = get(name) {
                *slot = parse_seconds(name, &raw)?;
                pool.overridden.push(name);
            }
        }
        if pool.max_idle > pool.max_open {
            let variable = if pool.overridden.contains(&"DB_MAX_IDLE_CONNECTIONS") {
                "DB_MAX_IDLE_CONNECTIONS"
            } else {
                "DB_MAX_OPEN_CONNECTIONS"
            };
            return Err(invalid(
                variable,
                format!(
                    "max idle ({}) must not exceed max open ({})",
                    pool.max_idle, pool.max_open
                ),
            ));
        }
        if pool.acquire_timeout.is_zero() {
            return Err(invalid("DB_ACQUIRE_TIMEOUT", "must be greater than 0"));
        }

        let expected_replicas = match get("OPENRISK_EXPECTED_REPLICAS") {
            None => 1,
            Some(raw) => raw.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                invalid(
                    "OPENRISK_EXPECTED_REPLICAS",
                    format!("{raw:?}: must be an integer ≥ 1"),
                )
            })?,
        };

        let redis_url = get("REDIS_URL");
        if let Some(url) = &redis_url
            && !["redis://", "rediss://", "redis+cluster://"]
                .iter()
                .any(|p| url.starts_with(p))
        {
            return Err(invalid(
                "REDIS_URL",
                "must start with redis://, rediss:// or redis+cluster://",
            ));
        }
        let switch = |name: &'static str| match get(name).as_deref() {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(raw) => Err(invalid(name, format!("{raw:?}: must be true or false"))),
        };
        let cache_enabled = switch("CACHE_ENABLED")?;
        // CACHE_TTL, when set, replaces every namespace's default; CACHE_TTL_<NAMESPACE> wins.
        let cache_ttl = get("CACHE_TTL")
            .map(|raw| parse_seconds("CACHE_TTL", &raw))
            .transpose()?;
        let mut ttl = Vec::new();
        for (namespace, variable) in Namespace::ALL.iter().zip(CACHE_TTL_VARIABLES) {
            let default = match namespace {
                Namespace::Dashboard => Duration::from_secs(600),
                Namespace::Marketplace => Duration::from_secs(900),
                _ => Duration::from_secs(300),
            };
            ttl.push(match get(variable) {
                Some(raw) => parse_seconds(variable, &raw)?,
                None => cache_ttl.unwrap_or(default),
            });
        }
        let bytes = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |raw| {
                raw.parse()
                    .map_err(|_| invalid(name, format!("{raw:?}: must be a number of bytes")))
            })
        };
        let redis_timeout = match get("CACHE_REDIS_TIMEOUT_MS") {
            None => Duration::from_millis(50),
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms >= 1)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    invalid(
                        "CACHE_REDIS_TIMEOUT_MS",
                        format!("{raw:?}: must be a whole number of milliseconds ≥ 1"),
                    )
                })?,
        };
        let cache = CacheSettings {
            enabled: cache_enabled,
            redis_url,
            ttl,
            l1_max_bytes: bytes("CACHE_L1_MAX_BYTES", 64 * 1024 * 1024)?,
            max_body_bytes: usize::try_from(bytes("CACHE_MAX_BODY_BYTES", 1024 * 1024)?)
                .unwrap_or(usize::MAX),
            redis_timeout,
        };
        let bootstrap_token = get("OPENRISK_BOOTSTRAP_TOKEN");
        if bootstrap_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid(
                "OPENRISK_BOOTSTRAP_TOKEN",
                "must be at least 16 characters",
            ));
        }
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(raw) => return Err(invalid("LOG_FORMAT", format!("{raw:?}: must be text or json"))),
        };

        Ok(Config {
            listen,
            data_dir,
            database_url,
            pool,
            expected_replicas,
            cache,
            bootstrap_token,
            log_filter: get("RUST_LOG").unwrap_or_else(|| "info".into()),
            log_format,
            request_metrics: switch("METRICS_REQUESTS")?,
        })
    }
}

/// Per-namespace TTL overrides, in `Namespace::ALL` order.
const CACHE_TTL_VARIABLES: [&str; 7] = [
    "CACHE_TTL_RISKS",
    "CACHE_TTL_MITIGATIONS",
    "CACHE_TTL_ASSETS",
    "CACHE_TTL_DASHBOARD",
    "CACHE_TTL_MARKETPLACE",
    "CACHE_TTL_REPORTS",
    "CACHE_TTL_AUTH",
];

fn parse_seconds(name: &'static str, raw: &str) -> Result<Duration, ConfigError> {
    raw.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| invalid(name, format!("{raw:?}: must be a whole number of seconds ≥ 0")))
}

/// Hides the password of a `scheme://user:password@host` URL.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("********"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `openrisk config`: the effective configuration, one variable per line, secrets masked.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pool = &self.pool;
        let source = |name: &str| {
            if pool.overridden.contains(&name) {
                "(set)".to_owned()
            } else {
                format!("(mode {})", pool.mode.as_str())
            }
        };
        writeln!(f, "OPENRISK_LISTEN={}", self.listen)?;
        writeln!(f, "OPENRISK_DATA_DIR={}", self.data_dir.display())?;
        writeln!(f, "DATABASE_URL={}", mask_url(&self.database_url))?;
        writeln!(f, "DB_POOL_MODE={}", pool.mode.as_str())?;
        writeln!(
            f,
            "DB_MAX_OPEN_CONNECTIONS={} {}",
            pool.max_open,
            source("DB_MAX_OPEN_CONNECTIONS")
        )?;
        writeln!(
            f,
            "DB_MAX_IDLE_CONNECTIONS={} {}",
            pool.max_idle,
            source("DB_MAX_IDLE_CONNECTIONS")
        )?;
        writeln!(
            f,
            "DB_CONN_MAX_LIFETIME={} {}",
            pool.max_lifetime.as_secs(),
            source("DB_CONN_MAX_LIFETIME")
        )?;
        writeln!(
            f,
            "DB_CONN_MAX_IDLE_TIME={} {}",
            pool.max_idle_time.as_secs(),
            source("DB_CONN_MAX_IDLE_TIME")
        )?;
        writeln!(
            f,
            "DB_ACQUIRE_TIMEOUT={} {}",
            pool.acquire_timeout.as_secs(),
            source("DB_ACQUIRE_TIMEOUT")
        )?;
        writeln!(f, "OPENRISK_EXPECTED_REPLICAS={}", self.expected_replicas)?;
        let cache = &self.cache;
        writeln!(
            f,
            "REDIS_URL={}",
            cache
                .redis_url
                .as_deref()
                .map(mask_url)
                .unwrap_or_else(|| "(unset)".into())
        )?;
        writeln!(f, "CACHE_ENABLED={}", cache.enabled)?;
        for (namespace, variable) in Namespace::ALL.iter().zip(CACHE_TTL_VARIABLES) {
            writeln!(f, "{variable}={}", cache.ttl(*namespace).as_secs())?;
        }
        writeln!(f, "CACHE_L1_MAX_BYTES={}", cache.l1_max_bytes)?;
        writeln!(f, "CACHE_MAX_BODY_BYTES={}", cache.max_body_bytes)?;
        writeln!(f, "CACHE_REDIS_TIMEOUT_MS={}", cache.redis_timeout.as_millis())?;
        writeln!(
            f,
            "OPENRISK_BOOTSTRAP_TOKEN={}",
            if self.bootstrap_token.is_some() {
                "********"
            } else {
                "(unset)"
            }
        )?;
        writeln!(f, "METRICS_REQUESTS={}", self.request_metrics)?;
        writeln!(f, "RUST_LOG={}", self.log_filter)?;
        write!(
            f,
            "LOG_FORMAT={}",
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        )
    }
}

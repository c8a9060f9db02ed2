//! Configuration from the environment, validated once at start-up.

mod env;
mod print;
mod variables;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cache::CacheSettings;
use crate::http::CompressionSettings;
use crate::limits::RateLimitSettings;
use crate::server::ServerSettings;
use crate::store::{DatabaseUrl, PoolSettings, SecretsSettings};
use crate::telemetry::LogFormat;

use env::Env;
use variables::invalid;
pub use variables::{ConfigError, mask_url};

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub server: ServerSettings,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub pool: PoolSettings,
    /// How many replicas share the database: their pools together must fit its connection limit.
    pub expected_replicas: u32,
    pub cache: CacheSettings,
    pub bootstrap_token: Option<String>,
    /// When set, `/metrics` answers only requests bearing it.
    pub metrics_token: Option<String>,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// Whether every request is timed into `http_server_request_duration_seconds`.
    pub request_metrics: bool,
    pub compression: CompressionSettings,
    pub secrets: SecretsSettings,
    pub rate_limits: RateLimitSettings,
}

impl Config {
    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can supply variables without touching the
    /// process environment. Each settings type is read on its own (`Env`'s readers below).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let listen = match env.get("OPENRISK_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(raw) => raw.parse().map_err(|_| {
                invalid(
                    "OPENRISK_LISTEN",
                    format!("{raw:?} is not an address like 127.0.0.1:8080"),
                )
            })?,
        };
        let data_dir = PathBuf::from(env.get("OPENRISK_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url: DatabaseUrl = env
            .get("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}/openrisk.db", data_dir.display()))
            .parse()
            .map_err(|message: &str| invalid("DATABASE_URL", message))?;
        let expected_replicas = env.count("OPENRISK_EXPECTED_REPLICAS", 1)?.unwrap_or(1);
        let bootstrap_token = env.get("OPENRISK_BOOTSTRAP_TOKEN");
        if bootstrap_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid(
                "OPENRISK_BOOTSTRAP_TOKEN",
                "must be at least 16 characters",
            ));
        }
        let metrics_token = env.get("METRICS_TOKEN");
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("METRICS_TOKEN", "must be at least 16 characters"));
        }
        let log_format = match env.get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(raw) => return Err(invalid("LOG_FORMAT", format!("{raw:?}: must be text or json"))),
        };
        Ok(Config {
            listen,
            server: env.server()?,
            pool: env.pool()?,
            cache: env.cache()?,
            bootstrap_token,
            metrics_token,
            log_filter: env.get("RUST_LOG").unwrap_or_else(|| "info".into()),
            log_format,
            request_metrics: env.switch("METRICS_REQUESTS")?,
            compression: env.compression()?,
            secrets: env.secrets(&data_dir, expected_replicas)?,
            rate_limits: env.rate_limits()?,
            expected_replicas,
            database_url,
            data_dir,
        })
    }
}

/// `openrisk config`: the effective configuration, one variable per line, secrets masked.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines: print::Lines = vec![
            ("OPENRISK_LISTEN", self.listen.to_string()),
            ("OPENRISK_DATA_DIR", self.data_dir.display().to_string()),
            ("DATABASE_URL", mask_url(self.database_url.as_str())),
        ];
        lines.extend(print::server(&self.server));
        lines.extend(print::pool(&self.pool));
        lines.push(("OPENRISK_EXPECTED_REPLICAS", self.expected_replicas.to_string()));
        lines.extend(print::cache(&self.cache));
        lines.extend(print::secrets(self.bootstrap_token.is_some(), &self.secrets));
        lines.extend(print::limits(&self.rate_limits));
        let log_format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        lines.extend([
            ("METRICS_REQUESTS", self.request_metrics.to_string()),
            (
                "METRICS_TOKEN",
                if self.metrics_token.is_some() {
                    "(set)"
                } else {
                    "(unset: /metrics is open)"
                }
                .to_owned(),
            ),
            ("COMPRESSION_ENABLED", self.compression.enabled.to_string()),
            ("COMPRESSION_MIN_BYTES", self.compression.min_bytes.to_string()),
            ("RUST_LOG", self.log_filter.clone()),
            ("LOG_FORMAT", log_format.to_owned()),
        ]);
        let text: Vec<String> = lines
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        f.write_str(&text.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::Namespace;
    use crate::store::PoolMode;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    fn refused(vars: &[(&str, &str)]) -> &'static str {
        match parse(vars) {
            Ok(_) => panic!("{vars:?} was accepted"),
            Err(error) => error.variable,
        }
    }

    #[test]
    fn nothing_set_gives_the_documented_defaults() {
        let config = parse(&[]).expect("defaults");
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(config.database_url.as_str(), "sqlite://./data/openrisk.db");
        assert_eq!(config.pool, PoolMode::Default.preset());
        assert!(config.pool.overridden.is_empty());
        assert_eq!(config.expected_replicas, 1);
        assert!(config.cache.enabled);
        assert_eq!(config.cache.redis_url, None);
        assert_eq!(config.cache.ttl(Namespace::Risks), Duration::from_secs(300));
        assert_eq!(config.cache.ttl(Namespace::Dashboard), Duration::from_secs(600));
        assert_eq!(config.cache.ttl(Namespace::Marketplace), Duration::from_secs(900));
        assert_eq!(config.cache.redis_timeout, Duration::from_millis(50));
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.request_metrics);
    }

    #[test]
    fn the_data_directory_places_the_default_database() {
        let config = parse(&[("OPENRISK_DATA_DIR", "/var/lib/openrisk")]).expect("valid");
        assert_eq!(
            config.database_url.as_str(),
            "sqlite:///var/lib/openrisk/openrisk.db"
        );
    }

    #[test]
    fn a_mode_sets_the_preset_and_single_variables_override_it() {
        let config = parse(&[
            ("DB_POOL_MODE", "high-throughput"),
            ("DB_MAX_IDLE_CONNECTIONS", "7"),
            ("DB_ACQUIRE_TIMEOUT", "3"),
        ])
        .expect("valid");
        let preset = PoolMode::HighThroughput.preset();
        assert_eq!(config.pool.mode, PoolMode::HighThroughput);
        assert_eq!(config.pool.max_open, preset.max_open);
        assert_eq!(config.pool.max_idle, 7);
        assert_eq!(config.pool.acquire_timeout, Duration::from_secs(3));
        assert_eq!(
            config.pool.overridden,
            ["DB_MAX_IDLE_CONNECTIONS", "DB_ACQUIRE_TIMEOUT"]
        );
        let shown = config.to_string();
        assert!(shown.contains("DB_MAX_IDLE_CONNECTIONS=7 (set)"), "{shown}");
        assert!(
            shown.contains("DB_MAX_OPEN_CONNECTIONS=200 (mode high-throughput)"),
            "{shown}"
        );
    }

    #[test]
    fn the_namespace_ttl_wins_over_the_common_one() {
        let config = parse(&[("CACHE_TTL", "60"), ("CACHE_TTL_REPORTS", "5")]).expect("valid");
        assert_eq!(config.cache.ttl(Namespace::Reports), Duration::from_secs(5));
        assert_eq!(config.cache.ttl(Namespace::Dashboard), Duration::from_secs(60));
        assert_eq!(config.cache.ttl(Namespace::Auth), Duration::from_secs(60));
    }

    #[test]
    fn each_bad_value_is_refused_naming_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("OPENRISK_LISTEN", "localhost")], "OPENRISK_LISTEN"),
            (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (&[("DB_POOL_MODE", "fast")], "DB_POOL_MODE"),
            (&[("DB_MAX_OPEN_CONNECTIONS", "0")], "DB_MAX_OPEN_CONNECTIONS"),
            (&[("DB_MAX_IDLE_CONNECTIONS", "-1")], "DB_MAX_IDLE_CONNECTIONS"),
            (&[("DB_MAX_IDLE_CONNECTIONS", "60")], "DB_MAX_IDLE_CONNECTIONS"),
            (&[("DB_MAX_OPEN_CONNECTIONS", "5")], "DB_MAX_OPEN_CONNECTIONS"),
            (&[("DB_ACQUIRE_TIMEOUT", "0")], "DB_ACQUIRE_TIMEOUT"),
            (&[("DB_CONN_MAX_LIFETIME", "1.5")], "DB_CONN_MAX_LIFETIME"),
            (
                &[("OPENRISK_EXPECTED_REPLICAS", "0")],
                "OPENRISK_EXPECTED_REPLICAS",
            ),
            (&[("REDIS_URL", "http://cache")], "REDIS_URL"),
            (&[("CACHE_ENABLED", "yes")], "CACHE_ENABLED"),
            (&[("CACHE_TTL", "5m")], "CACHE_TTL"),
            (&[("CACHE_TTL_AUTH", "-3")], "CACHE_TTL_AUTH"),
            (&[("CACHE_L1_MAX_BYTES", "64MB")], "CACHE_L1_MAX_BYTES"),
            (&[("CACHE_REDIS_TIMEOUT_MS", "0")], "CACHE_REDIS_TIMEOUT_MS"),
            (
                &[("OPENRISK_BOOTSTRAP_TOKEN", "short")],
                "OPENRISK_BOOTSTRAP_TOKEN",
            ),
            (&[("LOG_FORMAT", "xml")], "LOG_FORMAT"),
            (&[("METRICS_REQUESTS", "maybe")], "METRICS_REQUESTS"),
            (&[("RATE_LIMIT_PER_SECOND", "-1")], "RATE_LIMIT_PER_SECOND"),
            (&[("RATE_LIMIT_BURST", "0")], "RATE_LIMIT_BURST"),
            (
                &[("RATE_LIMIT_EXPENSIVE_CONCURRENCY", "two")],
                "RATE_LIMIT_EXPENSIVE_CONCURRENCY",
            ),
            (&[("OPENRISK_SECRETS_KEY", "c2hvcnQ=")], "OPENRISK_SECRETS_KEY"),
            (&[("OPENRISK_EXPECTED_REPLICAS", "3")], "OPENRISK_SECRETS_KEY"),
            (
                &[(
                    "OPENRISK_SECRETS_PREVIOUS_KEYS",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                )],
                "OPENRISK_SECRETS_PREVIOUS_KEYS",
            ),
        ];
        for (vars, variable) in cases {
            assert_eq!(refused(vars), *variable, "{vars:?}");
        }
    }

    #[test]
    fn blank_values_count_as_unset() {
        let config = parse(&[("DB_POOL_MODE", "  "), ("REDIS_URL", "")]).expect("valid");
        assert_eq!(config.pool.mode, PoolMode::Default);
        assert_eq!(config.cache.redis_url, None);
    }

    #[test]
    fn secrets_are_masked_when_shown() {
        let config = parse(&[
            ("DATABASE_URL", "postgres://app:hunter2@db/openrisk"),
            ("REDIS_URL", "redis://:s3cret@cache:6379"),
            ("OPENRISK_BOOTSTRAP_TOKEN", "a-long-bootstrap-token"),
        ])
        .expect("valid");
        let shown = config.to_string();
        for secret in ["hunter2", "s3cret", "a-long-bootstrap-token"] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(
            shown.contains("DATABASE_URL=postgres://app:********@db/openrisk"),
            "{shown}"
        );
    }
}

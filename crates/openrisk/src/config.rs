//! Configuration from the environment, validated once at start-up.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cache::{CacheSettings, Namespace};
use crate::http::CompressionSettings;
use crate::limits::{Limit, RateLimitSettings};
use crate::store::{DatabaseUrl, PoolMode, PoolSettings, SecretKey, SecretsSettings};
use crate::telemetry::LogFormat;

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

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub pool: PoolSettings,
    /// How many replicas share the database: their pools together must fit its connection limit.
    pub expected_replicas: u32,
    pub cache: CacheSettings,
    pub bootstrap_token: Option<String>,
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
        let log_format = match env.get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(raw) => return Err(invalid("LOG_FORMAT", format!("{raw:?}: must be text or json"))),
        };
        Ok(Config {
            listen,
            pool: env.pool()?,
            cache: env.cache()?,
            bootstrap_token,
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

/// The environment, as each settings type reads it: a variable set to blanks is unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// A whole number of at least `min`, if set.
    fn count(&self, name: &'static str, min: u64) -> Result<Option<u32>, ConfigError> {
        self.get(name)
            .map(|raw| {
                raw.parse::<u32>()
                    .ok()
                    .filter(|n| u64::from(*n) >= min)
                    .ok_or_else(|| invalid(name, format!("{raw:?}: must be an integer ≥ {min}")))
            })
            .transpose()
    }

    fn seconds(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.get(name).map(|raw| parse_seconds(name, &raw)).transpose()
    }

    /// `true` unless set to `false` or `0`.
    fn switch(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(raw) => Err(invalid(name, format!("{raw:?}: must be true or false"))),
        }
    }

    fn bytes(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        self.get(name).map_or(Ok(default), |raw| {
            raw.parse()
                .map_err(|_| invalid(name, format!("{raw:?}: must be a number of bytes")))
        })
    }

    /// The pool mode's preset, with each variable set overriding one limit.
    fn pool(&self) -> Result<PoolSettings, ConfigError> {
        let mode = match self.get("DB_POOL_MODE") {
            None => PoolMode::Default,
            Some(raw) => PoolMode::parse(&raw).ok_or_else(|| {
                invalid(
                    "DB_POOL_MODE",
                    format!("{raw:?}: must be default, high-throughput or low-latency"),
                )
            })?,
        };
        let mut pool = mode.preset();
        for (name, min, slot) in [
            ("DB_MAX_OPEN_CONNECTIONS", 1, &mut pool.max_open),
            ("DB_MAX_IDLE_CONNECTIONS", 0, &mut pool.max_idle),
        ] {
            if let Some(n) = self.count(name, min)? {
                *slot = n;
                pool.overridden.push(name);
            }
        }
        for (name, slot) in [
            ("DB_CONN_MAX_LIFETIME", &mut pool.max_lifetime),
            ("DB_CONN_MAX_IDLE_TIME", &mut pool.max_idle_time),
            ("DB_ACQUIRE_TIMEOUT", &mut pool.acquire_timeout),
        ] {
            if let Some(seconds) = self.seconds(name)? {
                *slot = seconds;
                pool.overridden.push(name);
            }
        }
        if pool.max_idle > pool.max_open {
            // Name the variable the operator set, or the one the preset's other limit came from.
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
        Ok(pool)
    }

    fn cache(&self) -> Result<CacheSettings, ConfigError> {
        let redis_url = self.get("REDIS_URL");
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
        let cache_enabled = self.switch("CACHE_ENABLED")?;
        // CACHE_TTL, when set, replaces every namespace's default; CACHE_TTL_<NAMESPACE> wins.
        let cache_ttl = self
            .get("CACHE_TTL")
            .map(|raw| parse_seconds("CACHE_TTL", &raw))
            .transpose()?;
        let mut ttl = Vec::new();
        for (namespace, variable) in Namespace::ALL.iter().zip(CACHE_TTL_VARIABLES) {
            let default = namespace.default_ttl();
            ttl.push(match self.get(variable) {
                Some(raw) => parse_seconds(variable, &raw)?,
                None => cache_ttl.unwrap_or(default),
            });
        }
        let redis_timeout = match self.get("CACHE_REDIS_TIMEOUT_MS") {
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
        Ok(CacheSettings {
            enabled: cache_enabled,
            redis_url,
            ttl,
            l1_max_bytes: self.bytes("CACHE_L1_MAX_BYTES", 64 * 1024 * 1024)?,
            max_body_bytes: usize::try_from(self.bytes("CACHE_MAX_BODY_BYTES", 1024 * 1024)?)
                .unwrap_or(usize::MAX),
            redis_timeout,
        })
    }

    /// The keys that seal connector secrets; more than one replica must share one from the
    /// environment.
    fn secrets(
        &self,
        data_dir: &std::path::Path,
        expected_replicas: u32,
    ) -> Result<SecretsSettings, ConfigError> {
        let key = |variable: &'static str, raw: &str| {
            SecretKey::parse(raw)
                .ok_or_else(|| invalid(variable, "must be 32 bytes in base64 (openssl rand -base64 32)"))
        };
        let secrets = SecretsSettings {
            key: self
                .get("OPENRISK_SECRETS_KEY")
                .map(|raw| key("OPENRISK_SECRETS_KEY", &raw))
                .transpose()?,
            previous: self
                .get("OPENRISK_SECRETS_PREVIOUS_KEYS")
                .map(|raw| {
                    raw.split(',')
                        .filter(|k| !k.trim().is_empty())
                        .map(|k| key("OPENRISK_SECRETS_PREVIOUS_KEYS", k))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
            key_file: data_dir.join("secrets.key"),
        };
        if secrets.key.is_none() && expected_replicas > 1 {
            return Err(invalid(
                "OPENRISK_SECRETS_KEY",
                "must be set when OPENRISK_EXPECTED_REPLICAS is above 1: every replica must seal \
                 connector secrets with the same key, and a key file is one replica's own",
            ));
        }
        if secrets.key.is_none() && !secrets.previous.is_empty() {
            return Err(invalid(
                "OPENRISK_SECRETS_PREVIOUS_KEYS",
                "needs OPENRISK_SECRETS_KEY, the key that seals from now on",
            ));
        }
        Ok(secrets)
    }

    fn rate_limits(&self) -> Result<RateLimitSettings, ConfigError> {
        // 0 turns a limit off.
        let limit = |rate: &'static str, burst: &'static str, per: f64, defaults: (u32, u32)| {
            let rate = self.count(rate, 0)?.unwrap_or(defaults.0);
            let burst = self.count(burst, 1)?.unwrap_or(defaults.1);
            Ok::<_, ConfigError>((rate > 0).then(|| Limit {
                per_second: f64::from(rate) / per,
                burst,
            }))
        };
        Ok(RateLimitSettings {
            requests: limit("RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", 1.0, (100, 300))?,
            expensive: limit(
                "RATE_LIMIT_EXPENSIVE_PER_MINUTE",
                "RATE_LIMIT_EXPENSIVE_BURST",
                60.0,
                (30, 10),
            )?,
            expensive_concurrency: self.count("RATE_LIMIT_EXPENSIVE_CONCURRENCY", 0)?.unwrap_or(4),
        })
    }

    fn compression(&self) -> Result<CompressionSettings, ConfigError> {
        Ok(CompressionSettings {
            enabled: self.switch("COMPRESSION_ENABLED")?,
            min_bytes: usize::try_from(self.bytes("COMPRESSION_MIN_BYTES", 1024)?).unwrap_or(usize::MAX),
        })
    }
}

/// Per-namespace TTL overrides, in `Namespace::ALL` order.
const CACHE_TTL_VARIABLES: [&str; 8] = [
    "CACHE_TTL_RISKS",
    "CACHE_TTL_RISK_DETAILS",
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
/// Variables and their effective values, as `openrisk config` prints them.
type Lines = Vec<(&'static str, String)>;

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines: Lines = vec![
            ("OPENRISK_LISTEN", self.listen.to_string()),
            ("OPENRISK_DATA_DIR", self.data_dir.display().to_string()),
            ("DATABASE_URL", mask_url(self.database_url.as_str())),
        ];
        lines.extend(self.pool_lines());
        lines.push(("OPENRISK_EXPECTED_REPLICAS", self.expected_replicas.to_string()));
        lines.extend(self.cache_lines());
        lines.extend(self.secret_lines());
        lines.extend(self.limit_lines());
        let log_format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        lines.extend([
            ("METRICS_REQUESTS", self.request_metrics.to_string()),
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

impl Config {
    /// Each limit, and whether it was set or came from the mode's preset.
    fn pool_lines(&self) -> Lines {
        let pool = &self.pool;
        let with_source = |name: &'static str, value: u64| {
            let source = match pool.overridden.contains(&name) {
                true => "(set)".to_owned(),
                false => format!("(mode {})", pool.mode.as_str()),
            };
            (name, format!("{value} {source}"))
        };
        vec![
            ("DB_POOL_MODE", pool.mode.as_str().to_owned()),
            with_source("DB_MAX_OPEN_CONNECTIONS", pool.max_open.into()),
            with_source("DB_MAX_IDLE_CONNECTIONS", pool.max_idle.into()),
            with_source("DB_CONN_MAX_LIFETIME", pool.max_lifetime.as_secs()),
            with_source("DB_CONN_MAX_IDLE_TIME", pool.max_idle_time.as_secs()),
            with_source("DB_ACQUIRE_TIMEOUT", pool.acquire_timeout.as_secs()),
        ]
    }

    fn cache_lines(&self) -> Lines {
        let cache = &self.cache;
        let redis = cache.redis_url.as_deref().map(mask_url);
        let mut lines = vec![
            ("REDIS_URL", redis.unwrap_or_else(|| "(unset)".into())),
            ("CACHE_ENABLED", cache.enabled.to_string()),
        ];
        for (namespace, variable) in Namespace::ALL.iter().zip(CACHE_TTL_VARIABLES) {
            lines.push((variable, cache.ttl(*namespace).as_secs().to_string()));
        }
        lines.extend([
            ("CACHE_L1_MAX_BYTES", cache.l1_max_bytes.to_string()),
            ("CACHE_MAX_BODY_BYTES", cache.max_body_bytes.to_string()),
            (
                "CACHE_REDIS_TIMEOUT_MS",
                cache.redis_timeout.as_millis().to_string(),
            ),
        ]);
        lines
    }

    /// Secrets masked: only whether each is set.
    fn secret_lines(&self) -> Lines {
        let masked = |set: bool| match set {
            true => "********".to_owned(),
            false => "(unset)".to_owned(),
        };
        let key = match &self.secrets.key {
            Some(_) => masked(true),
            None => format!("(unset: key file {})", self.secrets.key_file.display()),
        };
        vec![
            ("OPENRISK_BOOTSTRAP_TOKEN", masked(self.bootstrap_token.is_some())),
            ("OPENRISK_SECRETS_KEY", key),
            (
                "OPENRISK_SECRETS_PREVIOUS_KEYS",
                masked(!self.secrets.previous.is_empty()),
            ),
        ]
    }

    fn limit_lines(&self) -> Lines {
        let limits = &self.rate_limits;
        let per = |limit: Option<Limit>, scale: f64| limit.map_or(0.0, |l| l.per_second * scale);
        let burst = |limit: Option<Limit>| limit.map_or(0, |l| l.burst);
        vec![
            ("RATE_LIMIT_PER_SECOND", per(limits.requests, 1.0).to_string()),
            ("RATE_LIMIT_BURST", burst(limits.requests).to_string()),
            (
                "RATE_LIMIT_EXPENSIVE_PER_MINUTE",
                per(limits.expensive, 60.0).to_string(),
            ),
            ("RATE_LIMIT_EXPENSIVE_BURST", burst(limits.expensive).to_string()),
            (
                "RATE_LIMIT_EXPENSIVE_CONCURRENCY",
                limits.expensive_concurrency.to_string(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! Each settings type read from the environment, validated, with errors naming the variable.

use std::time::Duration;

use super::variables::{CACHE_TTL_VARIABLES, ConfigError, invalid, parse_seconds};
use crate::cache::{CacheSettings, Namespace};
use crate::http::CompressionSettings;
use crate::limits::{Limit, RateLimitSettings};
use crate::server::ServerSettings;
use crate::store::{PoolMode, PoolSettings, SecretKey, SecretsSettings};

/// About 200 MB per replica: 20 organizations of 10 000 risks.
const DEFAULT_REGISTER_MAX_ROWS: usize = 600_000;

/// One less than the replica's cores, at least 1: one organization can keep all cores but one
/// busy, so another's request always finds a core (measured in `tests/it/noisy_neighbour.rs` and
/// docs/performance.md).
fn default_concurrency_per_org() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores.saturating_sub(1)).unwrap_or(u32::MAX).max(1)
}

/// The environment, as each settings type reads it: a variable set to blanks is unset.
pub(super) struct Env<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// A whole number of at least `min`, if set.
    pub(super) fn count(&self, name: &'static str, min: u64) -> Result<Option<u32>, ConfigError> {
        self.get(name)
            .map(|raw| {
                raw.parse::<u32>()
                    .ok()
                    .filter(|n| u64::from(*n) >= min)
                    .ok_or_else(|| invalid(name, format!("{raw:?}: must be an integer ≥ {min}")))
            })
            .transpose()
    }

    pub(super) fn seconds(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.get(name).map(|raw| parse_seconds(name, &raw)).transpose()
    }

    /// `true` unless set to `false` or `0`.
    pub(super) fn switch(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(raw) => Err(invalid(name, format!("{raw:?}: must be true or false"))),
        }
    }

    pub(super) fn bytes(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        self.get(name).map_or(Ok(default), |raw| {
            raw.parse()
                .map_err(|_| invalid(name, format!("{raw:?}: must be a number of bytes")))
        })
    }

    /// The pool mode's preset, with each variable set overriding one limit.
    pub(super) fn pool(&self) -> Result<PoolSettings, ConfigError> {
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

    pub(super) fn cache(&self) -> Result<CacheSettings, ConfigError> {
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
            register_max_rows: self
                .count("CACHE_REGISTER_MAX_ROWS", 0)?
                .map_or(DEFAULT_REGISTER_MAX_ROWS, |n| n as usize),
        })
    }

    /// The keys that seal connector secrets; more than one replica must share one from the
    /// environment.
    pub(super) fn secrets(
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

    pub(super) fn rate_limits(&self) -> Result<RateLimitSettings, ConfigError> {
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
            concurrency_per_org: self
                .count("RATE_LIMIT_CONCURRENCY_PER_ORG", 0)?
                .unwrap_or_else(default_concurrency_per_org),
            failed_authentications: limit(
                "RATE_LIMIT_FAILED_AUTH_PER_MINUTE",
                "RATE_LIMIT_FAILED_AUTH_BURST",
                60.0,
                (30, 20),
            )?,
            expensive_concurrency: self.count("RATE_LIMIT_EXPENSIVE_CONCURRENCY", 0)?.unwrap_or(4),
            expensive_concurrency_per_token: self
                .count("RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN", 0)?
                .unwrap_or(2),
        })
    }

    pub(super) fn server(&self) -> Result<ServerSettings, ConfigError> {
        let defaults = ServerSettings::default();
        let positive = |name: &'static str, default: Duration| match self.seconds(name)? {
            Some(d) if d.is_zero() => Err(invalid(name, "must be greater than 0")),
            set => Ok(set.unwrap_or(default)),
        };
        Ok(ServerSettings {
            header_timeout: positive("OPENRISK_HEADER_TIMEOUT", defaults.header_timeout)?,
            send_timeout: positive("OPENRISK_SEND_TIMEOUT", defaults.send_timeout)?,
            max_connections: self.count("OPENRISK_MAX_CONNECTIONS", 1)?,
            max_connections_per_ip: self.count("OPENRISK_MAX_CONNECTIONS_PER_IP", 1)?,
            trusted_proxies: self
                .get("OPENRISK_TRUSTED_PROXIES")
                .map(|raw| {
                    raw.split(',')
                        .map(str::trim)
                        .filter(|net| !net.is_empty())
                        .map(|net| {
                            // A bare address is a network of one.
                            net.parse::<ipnet::IpNet>()
                                .or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                                .map_err(|_| {
                                    invalid(
                                        "OPENRISK_TRUSTED_PROXIES",
                                        format!("{net:?}: must be an address or a network like 10.0.0.0/8"),
                                    )
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
        })
    }

    pub(super) fn compression(&self) -> Result<CompressionSettings, ConfigError> {
        Ok(CompressionSettings {
            enabled: self.switch("COMPRESSION_ENABLED")?,
            min_bytes: usize::try_from(self.bytes("COMPRESSION_MIN_BYTES", 1024)?).unwrap_or(usize::MAX),
        })
    }
}

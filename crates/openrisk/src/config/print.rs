//! `openrisk config`: every variable with its effective value, secrets masked.

use super::variables::{CACHE_TTL_VARIABLES, mask_url};
use crate::cache::{CacheSettings, Namespace};
use crate::limits::{Limit, RateLimitSettings};
use crate::server::ServerSettings;
use crate::store::{PoolSettings, SecretsSettings};

/// Variables and their effective values, as `openrisk config` prints them.
pub type Lines = Vec<(&'static str, String)>;

/// Each limit, and whether it was set or came from the mode's preset.
pub fn pool(pool: &PoolSettings) -> Lines {
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

pub fn cache(cache: &CacheSettings) -> Lines {
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
        ("CACHE_REGISTER_MAX_ROWS", cache.register_max_rows.to_string()),
    ]);
    lines
}

/// Secrets masked: only whether each is set.
pub fn secrets(bootstrap_token: bool, secrets: &SecretsSettings) -> Lines {
    let masked = |set: bool| match set {
        true => "********".to_owned(),
        false => "(unset)".to_owned(),
    };
    let key = match &secrets.key {
        Some(_) => masked(true),
        None => format!("(unset: key file {})", secrets.key_file.display()),
    };
    vec![
        ("OPENRISK_BOOTSTRAP_TOKEN", masked(bootstrap_token)),
        ("OPENRISK_SECRETS_KEY", key),
        (
            "OPENRISK_SECRETS_PREVIOUS_KEYS",
            masked(!secrets.previous.is_empty()),
        ),
    ]
}

/// The connection caps unset are sized at start-up, from the descriptor limit.
pub fn server(server: &ServerSettings) -> Lines {
    let cap = |set: Option<u32>, otherwise: &str| set.map_or_else(|| otherwise.to_owned(), |n| n.to_string());
    vec![
        (
            "OPENRISK_HEADER_TIMEOUT",
            server.header_timeout.as_secs().to_string(),
        ),
        ("OPENRISK_SEND_TIMEOUT", server.send_timeout.as_secs().to_string()),
        (
            "OPENRISK_MAX_CONNECTIONS",
            cap(server.max_connections, "(from the descriptor limit)"),
        ),
        (
            "OPENRISK_MAX_CONNECTIONS_PER_IP",
            cap(server.max_connections_per_ip, "(half of the maximum)"),
        ),
        (
            "OPENRISK_TRUSTED_PROXIES",
            match server.trusted_proxies.is_empty() {
                true => "(unset)".to_owned(),
                false => server
                    .trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            },
        ),
    ]
}

pub fn limits(limits: &RateLimitSettings) -> Lines {
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
            "RATE_LIMIT_CONCURRENCY_PER_ORG",
            limits.concurrency_per_org.to_string(),
        ),
        (
            "RATE_LIMIT_FAILED_AUTH_PER_MINUTE",
            per(limits.failed_authentications, 60.0).to_string(),
        ),
        (
            "RATE_LIMIT_FAILED_AUTH_BURST",
            burst(limits.failed_authentications).to_string(),
        ),
        (
            "RATE_LIMIT_EXPENSIVE_CONCURRENCY",
            limits.expensive_concurrency.to_string(),
        ),
        (
            "RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN",
            limits.expensive_concurrency_per_token.to_string(),
        ),
    ]
}

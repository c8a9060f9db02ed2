//! What every reader of the environment shares: the error naming a variable, the variables read
//! per namespace, and how durations and URLs are read and shown.

use std::time::Duration;

/// A variable with a value the service cannot run with.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

pub fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

/// Per-namespace TTL overrides, in `Namespace::ALL` order.
pub const CACHE_TTL_VARIABLES: [&str; 8] = [
    "CACHE_TTL_RISKS",
    "CACHE_TTL_RISK_DETAILS",
    "CACHE_TTL_MITIGATIONS",
    "CACHE_TTL_ASSETS",
    "CACHE_TTL_DASHBOARD",
    "CACHE_TTL_MARKETPLACE",
    "CACHE_TTL_REPORTS",
    "CACHE_TTL_AUTH",
];

pub fn parse_seconds(name: &'static str, raw: &str) -> Result<Duration, ConfigError> {
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

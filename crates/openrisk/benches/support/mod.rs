//! What the in-process benchmarks share: starting the service. (Each benchmark uses part of it.)
#![allow(dead_code)]

use openrisk::config::Config;
use openrisk::startup::Application;

/// The bootstrap token of every benchmark app.
pub const TOKEN: &str = "ort_benchmark-bootstrap-token";

/// Starts the service on a free port with `settings` (variable, value) over the defaults; returns
/// its base URL.
pub async fn spawn(settings: &[(&str, &str)]) -> anyhow::Result<String> {
    let app = application(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    Ok(base)
}

/// The service with `settings` (variable, value) over the defaults, not yet serving: for driving
/// its router in process.
pub async fn application(settings: &[(&str, &str)]) -> anyhow::Result<Application> {
    let config = Config::from_lookup(|variable| {
        settings
            .iter()
            .find(|(name, _)| *name == variable)
            .map(|(_, value)| (*value).to_owned())
            .or(match variable {
                "OPENRISK_LISTEN" => Some("127.0.0.1:0".into()),
                "OPENRISK_BOOTSTRAP_TOKEN" => Some(TOKEN.into()),
                "RUST_LOG" => Some("error".into()),
                _ => None,
            })
    })?;
    Application::build(&config).await
}

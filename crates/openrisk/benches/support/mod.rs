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
                // Limits on, as deployed, but never reached by one token's benchmark load.
                "RATE_LIMIT_PER_SECOND" | "RATE_LIMIT_BURST" => Some("1000000000".into()),
                _ => None,
            })
    })?;
    Application::build(&config).await
}

/// The service in a temporary data directory (returned: it lives as long as the service needs
/// it), with `risks` risks seeded into the default organization, not yet serving.
pub async fn seeded_application(risks: usize) -> anyhow::Result<(tempfile::TempDir, Application)> {
    let dir = tempfile::tempdir()?;
    let app = application(&[("OPENRISK_DATA_DIR", &dir.path().display().to_string())]).await?;
    let store = app.store();
    let org = store.organization_by_slug("default").await?;
    openrisk::cli::seed_register(store.as_ref(), &org, risks, 7).await?;
    Ok((dir, app))
}

/// One GET of `path` through `router` in process, with `headers`, its body read to the end;
/// its `X-Cache`.
pub async fn get(router: &axum::Router, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<String> {
    use tower::ServiceExt;
    let mut request = axum::http::Request::get(path).header("authorization", format!("Bearer {TOKEN}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(axum::body::Body::empty())?)
        .await?;
    anyhow::ensure!(
        response.status() == axum::http::StatusCode::OK,
        "{path}: {}",
        response.status()
    );
    let cache = response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok(cache)
}

/// The body of one GET of `path` through `router` in process, as the handler wrote it (no coding).
pub async fn body(router: &axum::Router, path: &str) -> anyhow::Result<bytes::Bytes> {
    use tower::ServiceExt;
    let request = axum::http::Request::get(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(axum::body::Body::empty())?;
    let response = router.clone().oneshot(request).await?;
    anyhow::ensure!(
        response.status() == axum::http::StatusCode::OK,
        "{path}: {}",
        response.status()
    );
    Ok(axum::body::to_bytes(response.into_body(), usize::MAX).await?)
}

/// Nanoseconds per request over `count` GETs of `path` in a row.
pub async fn batch(
    router: &axum::Router,
    path: &str,
    headers: &[(&str, &str)],
    count: u32,
) -> anyhow::Result<f64> {
    let started = std::time::Instant::now();
    for _ in 0..count {
        get(router, path, headers).await?;
    }
    Ok(started.elapsed().as_nanos() as f64 / f64::from(count))
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

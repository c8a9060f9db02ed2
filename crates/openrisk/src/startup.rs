//! Building and running the service: store, bootstrap, listener, graceful shutdown.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::config::Config;
use crate::domain::auth::{Role, generate_token, hash_token};
use crate::domain::marketplace::Catalog;
use crate::domain::org::OrganizationDraft;
use crate::http::{self, AppState};
use crate::limits::RateLimiter;
use crate::server::{self, ServerSettings};
use crate::store::{self, Store, StoreError, TokenGrant};
use crate::telemetry;
use crate::telemetry::metrics::Metrics;

/// How long in-flight requests may run after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How often a running replica reads the database's data epoch.
const DATA_EPOCH_EVERY: Duration = Duration::from_secs(1);

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: Arc<dyn Store>,
    replicas: u32,
    metrics: Metrics,
    cache: Arc<Cache>,
    server: ServerSettings,
}

/// The store `DATABASE_URL` names, migrated, with the keys that seal connector secrets.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let secrets = Arc::new(store::SecretKeys::load(&config.secrets)?);
    store::connect(&config.database_url, &config.pool, secrets)
        .await
        .context("cannot open the database (DATABASE_URL)")
}

impl Application {
    /// Connects the store, applies migrations, bootstraps an empty database and binds the
    /// listener (port 0 picks a free port).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        keep_files_private(config).context("cannot make the data directory private (OPENRISK_DATA_DIR)")?;
        let metrics = Metrics::new().context("cannot set up metrics")?;
        // In the metrics' scope: the pools take their metric handles when they open.
        let store = metrics.scope(open_store(config)).await?;
        let sealed = store.reseal_installations(false).await?;
        if sealed > 0 {
            tracing::info!(sealed, "connector configurations stored in clear are sealed now");
        }
        bootstrap(store.as_ref(), config).await?;
        metrics.in_scope(|| telemetry::metrics::build_info(store.backend()));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (OPENRISK_LISTEN)", config.listen))?;
        let catalog = Catalog::load().map_err(|e| anyhow::anyhow!("invalid connector catalog: {e}"))?;
        let cache = Arc::new(Cache::new(config.cache.clone()).context("invalid cache settings (REDIS_URL)")?);
        cache.adopt_data_epoch(store.data_epoch().await?);
        let router = http::router(
            AppState {
                store: store.clone(),
                catalog: Arc::new(catalog),
                pool: Arc::new(config.pool.clone()),
                replicas: config.expected_replicas,
                metrics: metrics.handle().clone(),
                metrics_token: config
                    .metrics_token
                    .as_deref()
                    .map(|token| Arc::new(hash_token(token))),
                cache: cache.clone(),
                compression: config.compression,
                limits: Arc::new(
                    RateLimiter::new(
                        config.rate_limits.clone(),
                        config
                            .cache
                            .redis_url
                            .as_deref()
                            .map(|url| (url, config.cache.redis_timeout)),
                    )
                    .context("invalid rate-limit settings (REDIS_URL)")?,
                ),
            },
            metrics.shared(),
            config.request_metrics,
        );
        Ok(Application {
            listener,
            router,
            store,
            replicas: config.expected_replicas,
            metrics,
            cache,
            server: config.server.clone(),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The router, for driving the service in process without a socket.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Serves until `stop` completes, then stops accepting connections and gives in-flight
    /// requests up to `SHUTDOWN_GRACE` to finish. The monitor and the cache's invalidation channel
    /// run alongside.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        tracing::info!(address = %self.listener.local_addr()?, backend = self.store.backend(), "listening");
        let monitor_stop = CancellationToken::new();
        let replication = self.cache.follow_invalidations(monitor_stop.clone())?;
        let data_epoch = tokio::spawn({
            let (cache, store, stop) = (self.cache.clone(), self.store.clone(), monitor_stop.clone());
            async move { track_data_epoch(&cache, store.as_ref(), stop).await }
        });
        // With Redis answering, serve from the cache from the first request; without, degraded.
        self.cache.wait_until_trusted(Duration::from_secs(1)).await;
        let monitor = tokio::spawn(self.metrics.scope(telemetry::monitor::run(
            telemetry::monitor::Watched {
                store: self.store.clone(),
                replicas: self.replicas,
                cache: self.cache.clone(),
                metrics: self.metrics.handle().clone(),
            },
            monitor_stop.clone(),
        )));
        self.serve(stop).await;
        monitor_stop.cancel();
        let _ = monitor.await;
        let _ = data_epoch.await;
        if let Some(replication) = replication {
            let _ = tokio::task::spawn_blocking(move || replication.join()).await;
        }
        Ok(())
    }

    async fn serve(self, stop: impl Future<Output = ()> + Send + 'static) {
        let serving = server::serve(self.listener, self.router, &self.server, SHUTDOWN_GRACE, stop);
        self.metrics.scope(serving).await;
    }
}

/// Every file the service makes is its user's alone: files 0600, directories 0700 (the database and
/// its journal, backups and dumps, spools, secrets), by the process's file mode mask, which the
/// tools it runs inherit. Files made before are tightened to match.
pub fn keep_files_private(config: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let tighten = |path: &std::path::Path, mode: u32| match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o777 & !mode != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    if config.data_dir.is_dir() {
        tighten(&config.data_dir, 0o700)?;
        for entry in std::fs::read_dir(&config.data_dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                tighten(&entry.path(), 0o600)?;
            }
        }
    }
    for file in config.database_url.sqlite_files() {
        tighten(&file, 0o600)?;
    }
    Ok(())
}

/// Hands the database's data epoch to the cache every `DATA_EPOCH_EVERY` until `stop`, so that a
/// replica running across a restore stops serving what it cached before it.
async fn track_data_epoch(cache: &Cache, store: &dyn Store, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(DATA_EPOCH_EVERY);
    while tokio::select! { () = stop.cancelled() => false, _ = ticker.tick() => true } {
        if let Ok(epoch) = store.data_epoch().await {
            cache.adopt_data_epoch(epoch);
        }
    }
}

/// Registers for SIGTERM and SIGINT at once, so a signal that arrives while the service is
/// still starting is not lost (the default action would kill it without a graceful stop).
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            tracing::info!("shutdown requested: finishing in-flight requests");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested: finishing in-flight requests");
    })
}

/// On an empty database: organization `default`, its admin and a system admin token.
pub async fn bootstrap(store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    if store.organization_count().await? > 0 {
        return Ok(());
    }
    let (token, generated) = match &config.bootstrap_token {
        Some(token) => (token.clone(), false),
        None => (generate_token(), true),
    };
    let draft = OrganizationDraft {
        slug: "default".into(),
        name: "Default".into(),
        admin_email: "admin@default.invalid".into(),
    };
    let grant = TokenGrant {
        hash: hash_token(&token),
        name: "bootstrap".into(),
        role: Role::Admin,
        system: true,
        expires_at: None,
    };
    match store.create_organization(&draft, &grant).await {
        // Another replica bootstrapped first.
        Err(StoreError::Conflict(_)) => return Ok(()),
        result => {
            result?;
        }
    }
    if generated {
        // Shown first: if the file cannot be written, the token is still not lost.
        let path = config.data_dir.join("bootstrap-token");
        eprintln!(
            "Bootstrap admin token (shown once, also written to {}):\n{token}",
            path.display()
        );
        if let Err(e) = write_secret(&path, &token) {
            tracing::warn!(error = %e, path = %path.display(), "cannot write the bootstrap token file");
        }
    }
    Ok(())
}

fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // An existing file keeps its old mode on open: tighten it.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    writeln!(file, "{secret}")
}

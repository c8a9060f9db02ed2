//! L2: Redis, shared by every replica. Every call is time-boxed, and a failure is an answer ("not
//! available now"), never an error for the request: the caller falls back to L1 and the database.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How often a missing connection is retried.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

pub struct Redis {
    client: redis::Client,
    timeout: Duration,
    manager: Mutex<Option<ConnectionManager>>,
    /// When a connection was last attempted; held while one is being made.
    connecting: tokio::sync::Mutex<Option<Instant>>,
}

/// Redis did not answer (in time).
#[derive(Debug)]
pub struct Unavailable;

impl Redis {
    /// Connects lazily: a Redis that is down at start-up is picked up when it appears.
    pub fn new(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        Ok(Redis {
            client: redis::Client::open(url)?,
            timeout,
            manager: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        if let Some(manager) = self.lock().clone() {
            return Ok(manager);
        }
        // One caller connects; the others carry on without L2 meanwhile.
        let mut last = self.connecting.try_lock().map_err(|_| Unavailable)?;
        if last.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return Err(Unavailable);
        }
        *last = Some(Instant::now());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let manager = tokio::time::timeout(
            self.timeout * 4,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| Unavailable)?
        .map_err(|e| {
            tracing::debug!(error = %e, "redis: cannot connect");
            Unavailable
        })?;
        *self.lock() = Some(manager.clone());
        Ok(manager)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ConnectionManager>> {
        self.manager
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `cmd` within the time limit.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Unavailable> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis call failed");
                Err(Unavailable)
            }
            Err(_) => Err(Unavailable),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        self.run(redis::cmd("GET").arg(key)).await
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Unavailable> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(redis::cmd("SET").arg(key).arg(value).arg("PX").arg(millis))
            .await
    }

    /// A counter's value, 0 if it does not exist.
    pub async fn counter(&self, key: &str) -> Result<u64, Unavailable> {
        Ok(self
            .run::<Option<u64>>(redis::cmd("GET").arg(key))
            .await?
            .unwrap_or(0))
    }

    pub async fn increment(&self, key: &str) -> Result<u64, Unavailable> {
        self.run(redis::cmd("INCR").arg(key)).await
    }

    pub async fn ping(&self) -> Result<(), Unavailable> {
        self.run::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    /// Keys in the database and memory used, as Redis reports them (the whole database: this
    /// service does not count its own keys, which would need a scan).
    pub async fn usage(&self) -> Result<(u64, u64), Unavailable> {
        let keys: u64 = self.run(&redis::cmd("DBSIZE")).await?;
        let info: String = self.run(redis::cmd("INFO").arg("memory")).await?;
        let bytes = info
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok((keys, bytes))
    }
}

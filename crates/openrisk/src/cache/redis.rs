//! L2: Redis, shared by every replica. Every call is time-boxed, and a failure is an answer ("not
//! available now"), never an error for the request: the caller falls back to L1 and the database.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How often a missing connection is retried.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Consecutive failures that open the breaker.
const OPEN_AFTER: u32 = 3;
/// How long an open breaker lets no call through before one probe.
const OPEN_FOR: Duration = Duration::from_millis(500);

pub struct Redis {
    target: Target,
    timeout: Duration,
    manager: Mutex<Option<Connection>>,
    /// When a connection was last attempted; held while one is being made.
    connecting: tokio::sync::Mutex<Option<Instant>>,
    breaker: Breaker,
}

/// One server, or a Redis Cluster (`redis+cluster://host:port,host:port,…`).
enum Target {
    Single(redis::Client),
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        /// Pub/sub is cluster-wide: one node's subscription hears every publication. Tried in
        /// turn, so that a node that fails is not the only one.
        nodes: Vec<redis::Client>,
    },
}

/// A multiplexed connection to either kind of target.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A circuit breaker: after `OPEN_AFTER` failures in a row no call is made for `OPEN_FOR`; then
/// one probe goes through (half-open), and its success closes the breaker.
#[derive(Default)]
struct Breaker {
    failures: AtomicU32,
    opened_at: Mutex<Option<Instant>>,
    probing: AtomicBool,
}

/// `closed`, `open` or `half-open`, as `cache_breaker_state` reports it (0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl Breaker {
    fn opened_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.opened_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> BreakerState {
        match *self.opened_at() {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() < OPEN_FOR => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go through now.
    fn allow(&self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            // One probe at a time.
            BreakerState::HalfOpen => !self.probing.swap(true, Relaxed),
        }
    }

    fn succeeded(&self) {
        self.failures.store(0, Relaxed);
        self.probing.store(false, Relaxed);
        *self.opened_at() = None;
    }

    /// Counts a failure; returns whether the breaker (re)opened.
    fn failed(&self) -> bool {
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if !(self.probing.swap(false, Relaxed) || failures >= OPEN_AFTER) {
            return false;
        }
        let mut opened_at = self.opened_at();
        if opened_at.is_none() {
            tracing::warn!("redis: not answering; the cache goes on without it");
        }
        *opened_at = Some(Instant::now());
        true
    }
}

/// Redis did not answer (in time).
#[derive(Debug)]
pub struct Unavailable;

impl Redis {
    /// Connects lazily: a Redis that is down at start-up is picked up when it appears.
    pub fn new(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let target = match url.strip_prefix("redis+cluster://") {
            Some(nodes) => {
                let nodes: Vec<String> = nodes.split(',').map(|node| format!("redis://{node}")).collect();
                Target::Cluster {
                    client: Box::new(
                        redis::cluster::ClusterClientBuilder::new(nodes.clone())
                            .connection_timeout(timeout)
                            .response_timeout(timeout)
                            .retries(1)
                            .build()?,
                    ),
                    nodes: nodes
                        .iter()
                        .map(|node| redis::Client::open(node.as_str()))
                        .collect::<redis::RedisResult<_>>()?,
                }
            }
            None => Target::Single(redis::Client::open(url)?),
        };
        Ok(Redis {
            target,
            timeout,
            manager: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(None),
            breaker: Breaker::default(),
        })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The server to subscribe on at the `attempt`th try (cluster nodes take turns).
    pub fn pubsub_client(&self, attempt: usize) -> &redis::Client {
        match &self.target {
            Target::Single(client) => client,
            Target::Cluster { nodes, .. } => &nodes[attempt % nodes.len()],
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn connection(&self) -> Result<Connection, Unavailable> {
        if let Some(manager) = self.lock().clone() {
            return Ok(manager);
        }
        // One caller connects; the others carry on without L2 meanwhile.
        let mut last = self.connecting.try_lock().map_err(|_| Unavailable)?;
        if last.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return Err(Unavailable);
        }
        *last = Some(Instant::now());
        let connect = async {
            match &self.target {
                Target::Single(client) => {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout))
                        .set_number_of_retries(1);
                    ConnectionManager::new_with_config(client.clone(), config)
                        .await
                        .map(Connection::Single)
                }
                Target::Cluster { client, .. } => {
                    client.get_async_connection().await.map(Connection::Cluster)
                }
            }
        };
        let manager = tokio::time::timeout(self.timeout * 4, connect)
            .await
            .map_err(|_| Unavailable)?
            .map_err(|e| {
                tracing::debug!(error = %e, "redis: cannot connect");
                Unavailable
            })?;
        *self.lock() = Some(manager.clone());
        Ok(manager)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.manager
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `cmd` within the time limit, unless the breaker is open.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Unavailable> {
        if !self.breaker.allow() {
            return Err(Unavailable);
        }
        let result = match self.connection().await {
            Ok(mut conn) => match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
                Ok(Ok(value)) => Ok(value),
                // Full under `noeviction`: Redis answers, it just stores nothing more.
                Ok(Err(e)) if e.code() == Some("OOM") => {
                    self.breaker.succeeded();
                    return Err(Unavailable);
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "redis call failed");
                    Err(Unavailable)
                }
                Err(_) => Err(Unavailable),
            },
            Err(unavailable) => Err(unavailable),
        };
        match &result {
            Ok(_) => self.breaker.succeeded(),
            Err(_) => {
                if self.breaker.failed() {
                    // Start afresh once Redis answers again, rather than on a connection that
                    // lived through the outage.
                    *self.lock() = None;
                }
            }
        }
        result
    }

    pub async fn publish(&self, channel: &str, message: &str) -> Result<(), Unavailable> {
        self.run::<i64>(redis::cmd("PUBLISH").arg(channel).arg(message))
            .await
            .map(|_| ())
    }

    /// The value of `key`; if it has none, `value` is stored (for `lifetime`, if given) unless
    /// another caller stored one first. Returns the value `key` holds.
    pub async fn get_or_init(
        &self,
        key: &str,
        value: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, Unavailable> {
        if let Some(held) = self.run::<Option<String>>(redis::cmd("GET").arg(key)).await? {
            return Ok(held);
        }
        let mut set = redis::cmd("SET");
        set.arg(key).arg(value).arg("NX");
        if let Some(lifetime) = lifetime {
            set.arg("PX").arg(millis(lifetime));
        }
        self.run::<()>(&set).await?;
        // `None` here: deleted again meanwhile.
        self.run::<Option<String>>(redis::cmd("GET").arg(key))
            .await?
            .ok_or(Unavailable)
    }

    pub async fn set_value(&self, key: &str, value: &str) -> Result<(), Unavailable> {
        self.run::<()>(redis::cmd("SET").arg(key).arg(value)).await
    }

    /// Sets every key to its value; the keys must share a cluster slot.
    pub async fn set_values(&self, pairs: &[(String, String)]) -> Result<(), Unavailable> {
        self.run::<()>(redis::cmd("MSET").arg(pairs)).await
    }

    /// Deletes `keys`, which must share a cluster slot.
    pub async fn delete(&self, keys: &[String]) -> Result<(), Unavailable> {
        self.run::<i64>(redis::cmd("DEL").arg(keys)).await.map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        self.run(redis::cmd("GET").arg(key)).await
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Unavailable> {
        self.run(redis::cmd("SET").arg(key).arg(value).arg("PX").arg(millis(ttl)))
            .await
    }

    /// Runs the Lua `script` on `key` with integer arguments; its answer: integers.
    pub async fn eval_integers(
        &self,
        script: &str,
        key: &str,
        args: &[i64],
    ) -> Result<Vec<i64>, Unavailable> {
        self.run(redis::cmd("EVAL").arg(script).arg(1).arg(key).arg(args))
            .await
    }

    pub async fn ping(&self) -> Result<(), Unavailable> {
        self.run::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    /// Keys in the database and memory used, as Redis reports them (the whole database: this
    /// service does not count its own keys, which would need a scan).
    pub async fn usage(&self) -> Result<(u64, u64), Unavailable> {
        let keys: u64 = self.run(&redis::cmd("DBSIZE")).await?;
        let bytes = self.memory().await?.iter().map(|server| server.used_memory).sum();
        Ok((keys, bytes))
    }

    /// Which server processes hold the data: their `run_id`s, which change on every restart (and
    /// differ on a server that took over), as one short hash.
    pub async fn identity(&self) -> Result<String, Unavailable> {
        let info = self.run::<redis::Value>(redis::cmd("INFO").arg("server")).await?;
        let mut run_ids: Vec<String> = info_texts(&info)
            .iter()
            .filter_map(|text| info_field(text, "run_id"))
            .collect();
        if run_ids.is_empty() {
            return Err(Unavailable);
        }
        run_ids.sort();
        let hash = blake3::hash(run_ids.join(",").as_bytes());
        Ok(hash.to_hex()[..16].to_owned())
    }

    /// Each server's memory limit and eviction policy.
    pub async fn memory(&self) -> Result<Vec<MemoryPolicy>, Unavailable> {
        let info = self.run::<redis::Value>(redis::cmd("INFO").arg("memory")).await?;
        let mut servers = Vec::new();
        for text in info_texts(&info) {
            let field = |name: &str| info_field(&text, name).unwrap_or_default();
            servers.push(MemoryPolicy {
                maxmemory: field("maxmemory").parse().unwrap_or(0),
                maxmemory_policy: field("maxmemory_policy"),
                used_memory: field("used_memory").parse().unwrap_or(0),
            });
        }
        Ok(servers)
    }
}

/// A server's `maxmemory` (0: no limit) and `maxmemory-policy`, with its memory in use.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MemoryPolicy {
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub used_memory: u64,
}

/// The `INFO` texts in an answer: one from a server, a map of them from a cluster.
fn info_texts(value: &redis::Value) -> Vec<String> {
    match value {
        redis::Value::BulkString(bytes) => vec![String::from_utf8_lossy(bytes).into_owned()],
        redis::Value::VerbatimString { text, .. } | redis::Value::SimpleString(text) => vec![text.clone()],
        redis::Value::Map(pairs) => pairs.iter().flat_map(|(_, v)| info_texts(v)).collect(),
        redis::Value::Array(items) => items.iter().flat_map(info_texts).collect(),
        _ => Vec::new(),
    }
}

fn info_field(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
    })
}

/// A duration in whole milliseconds, at least one, as Redis takes it.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

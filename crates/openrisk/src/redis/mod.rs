//! Redis, the one place that speaks to it: connections by role, every call time-boxed behind one
//! breaker policy, and a failure an answer ("not available now"), never an error for the request.
//! The cache's tiers, its invalidations, its follower and the rate limits each hold a connection of
//! their own (`Role`), so that no role's traffic queues behind another's.

mod breaker;
mod info;
mod pubsub;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use breaker::BreakerState;
pub use info::MemoryPolicy;
pub use pubsub::{Messages, Pinger};

use breaker::Breaker;

/// How often a missing connection is retried.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// What a connection is for; each role has its own connection and breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Cache lookups and fills on the request path.
    Requests,
    /// Writes' invalidations: more patient (`INVALIDATION_PATIENCE`), because an invalidation that
    /// times out costs every replica its whole cache, while a read that times out only goes to the
    /// database.
    Invalidations,
    /// The invalidation channel's follower, on a runtime of its own.
    Follower,
    /// Rate-limit leases.
    Limits,
}

/// How many times the configured time-out a write's invalidation may take. Under CPU saturation
/// Redis calls queue behind the load: the reads' time-out then sends reads to the database, but
/// the writes' must not turn a slow Redis into lost invalidations.
const INVALIDATION_PATIENCE: u32 = 10;

impl Role {
    fn timeout(self, base: Duration) -> Duration {
        match self {
            Role::Invalidations => base * INVALIDATION_PATIENCE,
            _ => base,
        }
    }
}

/// Whether Redis answers, as readiness and metrics report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    /// No Redis configured.
    Disabled,
    Up,
    Down,
}

impl RedisState {
    /// `Disabled` without Redis; else whether it answers a ping now.
    pub async fn of(redis: Option<&Redis>) -> RedisState {
        match redis {
            None => RedisState::Disabled,
            Some(redis) if redis.ping().await.is_ok() => RedisState::Up,
            Some(_) => RedisState::Down,
        }
    }
}

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
    Single(::redis::Client),
    Cluster {
        client: Box<::redis::cluster::ClusterClient>,
        /// Pub/sub is cluster-wide: one node's subscription hears every publication. Tried in
        /// turn, so that a node that fails is not the only one.
        nodes: Vec<::redis::Client>,
    },
}

/// A multiplexed connection to either kind of target.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(::redis::cluster_async::ClusterConnection),
}

impl Connection {
    async fn query<T: ::redis::FromRedisValue>(&mut self, cmd: &::redis::Cmd) -> ::redis::RedisResult<T> {
        match self {
            Connection::Single(conn) => cmd.query_async(conn).await,
            Connection::Cluster(conn) => cmd.query_async(conn).await,
        }
    }
}

/// Redis did not answer (in time).
#[derive(Clone, Copy, Debug)]
pub struct Unavailable;

impl Redis {
    /// A connection for `role` to `url`, whose calls take at most the role's share of `timeout`.
    /// Connects lazily: a Redis that is down at start-up is picked up when it appears.
    pub fn connect(url: &str, role: Role, timeout: Duration) -> anyhow::Result<Self> {
        let timeout = role.timeout(timeout);
        let target = match url.strip_prefix("redis+cluster://") {
            Some(nodes) => {
                let nodes: Vec<String> = nodes.split(',').map(|node| format!("redis://{node}")).collect();
                Target::Cluster {
                    client: Box::new(
                        ::redis::cluster::ClusterClientBuilder::new(nodes.clone())
                            .connection_timeout(timeout)
                            .response_timeout(timeout)
                            .retries(1)
                            .build()?,
                    ),
                    nodes: nodes
                        .iter()
                        .map(|node| ::redis::Client::open(node.as_str()))
                        .collect::<::redis::RedisResult<_>>()?,
                }
            }
            None => Target::Single(::redis::Client::open(url)?),
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
    fn pubsub_client(&self, attempt: usize) -> &::redis::Client {
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
        // One caller connects; the others carry on without Redis meanwhile.
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
    async fn run<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> Result<T, Unavailable> {
        if !self.breaker.allow() {
            return Err(Unavailable);
        }
        let result = match self.connection().await {
            Ok(mut conn) => match tokio::time::timeout(self.timeout, conn.query::<T>(cmd)).await {
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
        self.run::<i64>(::redis::cmd("PUBLISH").arg(channel).arg(message))
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
        if let Some(held) = self.run::<Option<String>>(::redis::cmd("GET").arg(key)).await? {
            return Ok(held);
        }
        let mut set = ::redis::cmd("SET");
        set.arg(key).arg(value).arg("NX");
        if let Some(lifetime) = lifetime {
            set.arg("PX").arg(millis(lifetime));
        }
        self.run::<()>(&set).await?;
        // `None` here: deleted again meanwhile.
        self.run::<Option<String>>(::redis::cmd("GET").arg(key))
            .await?
            .ok_or(Unavailable)
    }

    pub async fn set_value(&self, key: &str, value: &str) -> Result<(), Unavailable> {
        self.run::<()>(::redis::cmd("SET").arg(key).arg(value)).await
    }

    /// Sets every key to its value; the keys must share a cluster slot.
    pub async fn set_values(&self, pairs: &[(String, String)]) -> Result<(), Unavailable> {
        self.run::<()>(::redis::cmd("MSET").arg(pairs)).await
    }

    /// Deletes `keys`, which must share a cluster slot.
    pub async fn delete(&self, keys: &[String]) -> Result<(), Unavailable> {
        self.run::<i64>(::redis::cmd("DEL").arg(keys)).await.map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        self.run(::redis::cmd("GET").arg(key)).await
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Unavailable> {
        self.run(::redis::cmd("SET").arg(key).arg(value).arg("PX").arg(millis(ttl)))
            .await
    }

    /// Runs the Lua `script` on `key` with integer arguments; its answer: integers.
    pub async fn eval_integers(
        &self,
        script: &str,
        key: &str,
        args: &[i64],
    ) -> Result<Vec<i64>, Unavailable> {
        self.run(::redis::cmd("EVAL").arg(script).arg(1).arg(key).arg(args))
            .await
    }

    pub async fn ping(&self) -> Result<(), Unavailable> {
        self.run::<String>(&::redis::cmd("PING")).await.map(|_| ())
    }

    /// Keys in the database and memory used, as Redis reports them (the whole database: this
    /// service does not count its own keys, which would need a scan).
    pub async fn usage(&self) -> Result<(u64, u64), Unavailable> {
        let keys: u64 = self.run(&::redis::cmd("DBSIZE")).await?;
        let bytes = self.memory().await?.iter().map(|server| server.used_memory).sum();
        Ok((keys, bytes))
    }

    /// Which server processes hold the data: their `run_id`s, which change on every restart (and
    /// differ on a server that took over), as one short hash.
    pub async fn identity(&self) -> Result<String, Unavailable> {
        let answer = self
            .run::<::redis::Value>(::redis::cmd("INFO").arg("server"))
            .await?;
        let mut run_ids: Vec<String> = info::texts(&answer)
            .iter()
            .filter_map(|text| info::field(text, "run_id"))
            .collect();
        if run_ids.is_empty() {
            return Err(Unavailable);
        }
        run_ids.sort();
        let hash = blake3::hash(run_ids.join(",").as_bytes());
        Ok(hash.to_hex()[..16].to_owned())
    }

    /// Subscribes to `channel`, on the cluster node whose turn `attempt` is (one server: it).
    pub async fn subscribe(&self, channel: &str, attempt: usize) -> Result<(Pinger, Messages), Unavailable> {
        let limit = self.timeout * 4;
        let server = self.pubsub_client(attempt);
        let mut pubsub = tokio::time::timeout(limit, server.get_async_pubsub())
            .await
            .map_err(|_| Unavailable)?
            .map_err(|_| Unavailable)?;
        tokio::time::timeout(limit, pubsub.subscribe(channel))
            .await
            .map_err(|_| Unavailable)?
            .map_err(|_| Unavailable)?;
        let (sink, stream) = pubsub.split();
        Ok((Pinger(sink), Messages(stream)))
    }

    /// Each server's memory limit and eviction policy.
    pub async fn memory(&self) -> Result<Vec<MemoryPolicy>, Unavailable> {
        let answer = self
            .run::<::redis::Value>(::redis::cmd("INFO").arg("memory"))
            .await?;
        Ok(MemoryPolicy::of_each(&answer))
    }
}

/// A duration in whole milliseconds, at least one, as Redis takes it.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

//! Keeping every replica's L1 honest. A write's invalidations are published on a Redis channel
//! and applied by every replica. A replica trusts its L1 only while it is subscribed: with the
//! subscription down (Redis down, hung, or the connection killed) it bypasses the cache until it
//! has subscribed again, and then forgets every generation it knew, since it may have missed
//! invalidations meanwhile.
//!
//! Keys also carry an epoch, renewed whenever Redis may hold generations older than the data: an
//! invalidation that did not reach Redis, or a Redis that is not the one the epoch was set on (a
//! restart, possibly from an older snapshot, or a failover). A new epoch makes every entry written
//! before it unreachable, in L1 and in whatever Redis still holds.
//!
//! The database has an epoch of its own, drawn again by every restore from a backup, and keys carry
//! it too: Redis and every replica's L1 may hold answers from the data as it was before the
//! restore, under generations that the restored data does not know to be older.
//!
//! Each replica announces itself on the channel and acknowledges the invalidations it applies, so
//! that a write can answer once every other replica has applied it (see `acks`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::changes::ChangeLog;
use super::coherence::Coherence;
use super::generations::Generations;
use super::scope::Scope;
use super::settings::Namespace;
use super::tiers::Tiers;
use crate::domain::coverage::RiskChange;
use crate::redis::{Messages, Pinger, Redis, Role, Unavailable};

pub const CHANNEL: &str = "openrisk:invalidations";
/// `<epoch> <identity of the Redis servers it was set on>`.
const EPOCH_KEY: &str = "openrisk:epoch";
/// How often a subscribed replica checks that Redis still answers (a hung Redis keeps the
/// subscription open but delivers nothing) and is still the same Redis.
const CHECK_EVERY: Duration = Duration::from_millis(40);
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(200);
/// Every how many checks the identity of the Redis servers is compared and this replica announces
/// itself.
const IDENTITY_EVERY: u32 = 5;

/// How soon after Redis stops answering every subscribed replica has stopped trusting its cache:
/// its next check, and that check's time-out.
pub fn failure_noticed_within(redis_timeout: Duration) -> Duration {
    CHECK_EVERY + redis_timeout * 2 + Duration::from_millis(10)
}

/// What travels on the channel.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Forget these generations of the organization, and log its change: a write on replica
    /// `from` replaced them (and that replica has already applied it); acknowledge with `token`.
    Forget {
        org: Uuid,
        namespaces: Vec<Namespace>,
        /// Items whose own generations were replaced.
        items: Vec<(Namespace, Uuid)>,
        from: u64,
        token: u64,
        /// The numbered change the write made to a risk, if it said.
        change: Option<(u64, Arc<RiskChange>)>,
    },
    /// Replica `from` has applied the invalidation `token` of replica `to`.
    Ack { to: u64, token: u64, from: u64 },
    /// Replica `from` follows the channel.
    Hello { from: u64 },
    /// Every entry of an earlier epoch is void.
    Epoch(u64),
}

impl Message {
    pub fn encode(&self) -> String {
        match self {
            Message::Forget {
                org,
                namespaces,
                items,
                from,
                token,
                change,
            } => {
                let names: Vec<&str> = namespaces.iter().map(|n| n.as_str()).collect();
                let items: Vec<String> = items.iter().map(|(n, id)| format!("{n}/{id}")).collect();
                let items = if items.is_empty() {
                    "-".into()
                } else {
                    items.join(",")
                };
                // Last: the change's JSON may hold spaces.
                let change = match change {
                    Some((number, change)) => {
                        format!("{number} {}", serde_json::to_string(change).unwrap_or_default())
                    }
                    None => "-".into(),
                };
                format!("forget {org} {} {from} {token} {items} {change}", names.join(","))
            }
            Message::Ack { to, token, from } => format!("ack {to} {token} {from}"),
            Message::Hello { from } => format!("hello {from}"),
            Message::Epoch(epoch) => format!("epoch {epoch}"),
        }
    }

    pub fn decode(text: &str) -> Option<Message> {
        let words: Vec<&str> = text.splitn(7, ' ').collect();
        let number = |word: &str| word.parse::<u64>().ok();
        match words.as_slice() {
            ["forget", org, namespaces, from, token, items, change] => Some(Message::Forget {
                org: Uuid::parse_str(org).ok()?,
                namespaces: namespaces
                    .split(',')
                    .filter(|name| !name.is_empty())
                    .map(|name| name.parse::<Namespace>().ok())
                    .collect::<Option<_>>()?,
                items: items
                    .split(',')
                    .filter(|item| *item != "-")
                    .map(|item| {
                        let (namespace, id) = item.split_once('/')?;
                        Some((namespace.parse().ok()?, Uuid::parse_str(id).ok()?))
                    })
                    .collect::<Option<_>>()?,
                from: number(from)?,
                token: number(token)?,
                change: match *change {
                    "-" => None,
                    change => {
                        let (at, change) = change.split_once(' ')?;
                        Some((number(at)?, Arc::new(serde_json::from_str(change).ok()?)))
                    }
                },
            }),
            ["ack", to, token, from] => Some(Message::Ack {
                to: number(to)?,
                token: number(token)?,
                from: number(from)?,
            }),
            ["hello", from] => Some(Message::Hello { from: number(from)? }),
            ["epoch", epoch] => Some(Message::Epoch(number(epoch)?)),
            _ => None,
        }
    }
}

/// Follows the invalidation channel for this replica.
pub struct Follower {
    pub coherence: Arc<Coherence>,
    pub generations: Arc<Generations>,
    pub tiers: Arc<Tiers>,
    pub changes: Arc<ChangeLog>,
}

impl Follower {
    /// Follows the channel until `stop`, on a thread of its own: the bound on cross-replica
    /// staleness and the detection of a hung Redis depend on it answering within milliseconds,
    /// which request load on the shared runtime must not delay.
    pub fn spawn(
        self,
        redis_url: String,
        redis_timeout: Duration,
        stop: CancellationToken,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("cache-invalidations".into())
            .spawn(move || runtime.block_on(self.run(redis_url, redis_timeout, stop)))
    }

    async fn run(self, redis_url: String, redis_timeout: Duration, stop: CancellationToken) {
        // A connection of its own, on this thread's runtime: the request path's stays on the
        // request runtime, and this thread's checks do not trip the request path's breaker.
        let redis = match Redis::connect(&redis_url, Role::Follower, redis_timeout) {
            Ok(redis) => Arc::new(redis),
            Err(e) => return tracing::error!(error = %e, "cache: cannot follow invalidations"),
        };
        for attempt in 0.. {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                subscribed = self.follow(&redis, attempt) => subscribed,
            };
            self.coherence.stop_following();
            if subscribed {
                tracing::warn!("cache: invalidation channel lost; bypassing the cache until resubscribed");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            }
        }
    }

    /// Subscribes, then applies messages until the subscription or Redis fails. Returns whether
    /// it was subscribed at all.
    async fn follow(&self, redis: &Arc<Redis>, attempt: usize) -> bool {
        let Ok((mut pinger, mut messages)) = redis.subscribe(CHANNEL, attempt).await else {
            return false;
        };
        // From here on no message is missed: settle the epoch, forget what may have been missed
        // before, then trust the cache again.
        let Ok(identity) = redis.identity().await else {
            return true;
        };
        let Ok(epoch) = self.settle_epoch(redis, &identity).await else {
            return true;
        };
        self.adopt_epoch(epoch);
        self.generations.clear();
        self.changes.clear();
        self.announce(redis).await;
        self.coherence.start_following();
        tracing::info!("cache: following the invalidation channel");
        log_memory_policy(redis).await;
        self.apply_until_lost(redis, &identity, &mut pinger, &mut messages)
            .await;
        true
    }

    /// Applies messages until the subscription ends, stops answering, or Redis changes identity.
    async fn apply_until_lost(
        &self,
        redis: &Arc<Redis>,
        identity: &str,
        pinger: &mut Pinger,
        messages: &mut Messages,
    ) {
        let mut check = tokio::time::interval(CHECK_EVERY);
        let mut checks = 0u32;
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(text) => {
                        if let Some(message) = text.as_deref().and_then(Message::decode) {
                            self.apply(message, redis);
                        }
                    }
                    None => return,
                },
                _ = check.tick() => {
                    // Through the subscription itself: it is what must be alive, and its check
                    // does not suffer when request traffic keeps the other connection busy.
                    if self.coherence.invalidation_lost() || !pinger.alive(redis.timeout() * 2).await {
                        return;
                    }
                    // A cluster master restarted or replaced while this subscription lives on
                    // another node; an identity that cannot be read now is checked next time.
                    checks += 1;
                    if checks.is_multiple_of(IDENTITY_EVERY) {
                        if redis.identity().await.is_ok_and(|now| now != identity) {
                            tracing::warn!("cache: Redis restarted or failed over; renewing the epoch");
                            return;
                        }
                        self.announce(redis).await;
                    }
                }
            }
        }
    }

    /// The epoch to use: the one in Redis if it was set on these very servers and no invalidation
    /// of this replica was lost; otherwise a new one, announced to every replica.
    async fn settle_epoch(&self, redis: &Redis, identity: &str) -> Result<u64, Unavailable> {
        let lost = self.coherence.take_lost_invalidation();
        let settled = async {
            let drawn = rand::random::<u64>();
            let held = redis
                .get_or_init(EPOCH_KEY, &format!("{drawn} {identity}"), None)
                .await?;
            let current = held
                .split_once(' ')
                .filter(|(_, set_on)| *set_on == identity)
                .and_then(|(epoch, _)| epoch.parse::<u64>().ok());
            match current {
                Some(epoch) if !lost => Ok(epoch),
                _ => {
                    let epoch = rand::random::<u64>();
                    redis.set_value(EPOCH_KEY, &format!("{epoch} {identity}")).await?;
                    redis.publish(CHANNEL, &Message::Epoch(epoch).encode()).await?;
                    Ok(epoch)
                }
            }
        };
        let settled = settled.await;
        if settled.is_err() && lost {
            self.coherence.lose_invalidation();
        }
        settled
    }

    /// Tells the other replicas that this one follows the channel, so that their writes wait for
    /// its acknowledgements.
    async fn announce(&self, redis: &Redis) {
        let hello = Message::Hello {
            from: self.coherence.replica_id,
        };
        let _ = redis.publish(CHANNEL, &hello.encode()).await;
    }

    fn apply(&self, message: Message, redis: &Arc<Redis>) {
        let me = self.coherence.replica_id;
        match message {
            // This replica applied its own writes before publishing them.
            Message::Forget { from, .. } if from == me => {}
            Message::Forget {
                org,
                namespaces,
                items,
                from,
                token,
                change,
            } => {
                if let Some((number, change)) = change {
                    self.changes.apply(org, number, change);
                }
                let scopes: Vec<Scope> = namespaces
                    .into_iter()
                    .map(|namespace| Scope::namespace(org, namespace))
                    .chain(
                        items
                            .into_iter()
                            .map(|(namespace, id)| Scope::item(org, namespace, id)),
                    )
                    .collect();
                self.generations.forget(&scopes);
                self.coherence.acks.heard(from);
                let ack = Message::Ack {
                    to: from,
                    token,
                    from: me,
                };
                // Spawned, so that the next message is applied meanwhile.
                let redis = Arc::clone(redis);
                tokio::spawn(async move { redis.publish(CHANNEL, &ack.encode()).await });
            }
            Message::Ack { to, token, from } if to == me => self.coherence.acks.acknowledged(token, from),
            Message::Ack { .. } => {}
            Message::Hello { from } if from != me => self.coherence.acks.heard(from),
            Message::Hello { .. } => {}
            Message::Epoch(epoch) => self.adopt_epoch(epoch),
        }
    }

    fn adopt_epoch(&self, epoch: u64) {
        if self.coherence.adopt_epoch(epoch) {
            self.generations.clear();
            self.changes.clear();
            self.tiers.clear_l1();
        }
    }
}

/// Logs Redis's memory limit and eviction policy, and warns about settings that cost hits.
async fn log_memory_policy(redis: &Redis) {
    let Ok(servers) = redis.memory().await else {
        return;
    };
    for server in servers {
        let (maxmemory, policy) = (server.maxmemory, server.maxmemory_policy.as_str());
        if server.refuses_when_full() {
            tracing::warn!(
                maxmemory,
                policy,
                "redis: full under noeviction, it stores no new entries and the namespaces written meanwhile go uncached; prefer allkeys-lru"
            );
        } else {
            tracing::info!(maxmemory, policy, "redis: memory limit and eviction policy");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_encoding() {
        let forget = Message::Forget {
            org: Uuid::now_v7(),
            namespaces: vec![Namespace::Risks, Namespace::Dashboard],
            items: vec![(Namespace::RiskDetails, Uuid::now_v7())],
            from: 7,
            token: u64::MAX,
            change: Some((42, Arc::new(RiskChange::touched(Uuid::now_v7())))),
        };
        let forget_namespaces = Message::Forget {
            org: Uuid::now_v7(),
            namespaces: vec![Namespace::Assets],
            items: vec![],
            from: 7,
            token: 1,
            change: None,
        };
        let ack = Message::Ack {
            to: 7,
            token: 8,
            from: 9,
        };
        for message in [
            forget,
            forget_namespaces,
            ack,
            Message::Hello { from: 3 },
            Message::Epoch(u64::MAX),
        ] {
            assert_eq!(Message::decode(&message.encode()), Some(message));
        }
        let org = Uuid::now_v7();
        assert_eq!(Message::decode("forget nope risks 1 2 - -"), None);
        assert_eq!(Message::decode(&format!("forget {org} risks,nope 1 2 - -")), None);
        assert_eq!(Message::decode(&format!("forget {org} risks 1 - -")), None);
        assert_eq!(
            Message::decode(&format!("forget {org} risks 1 2 risks/nope -")),
            None
        );
        assert_eq!(Message::decode(&format!("forget {org} risks 1 2 {org} -")), None);
        assert_eq!(Message::decode(&format!("forget {org} risks 1 2 - 7 {{}}")), None);
        assert_eq!(Message::decode(&format!("forget {org} risks 1 2 - x")), None);
        assert_eq!(Message::decode("ack 1 2"), None);
        assert_eq!(Message::decode("hello -1"), None);
        assert_eq!(Message::decode("epoch 1 2"), None);
    }
}

//! A write's invalidation, here and on every replica: the scopes' generations are replaced in
//! Redis by new random values (or deleted, when Redis is too full to store them: the next reader
//! then draws new ones), items' generations are deleted, and every replica is told on the channel
//! to forget what it knows of them, and waited for (`acks`). A change the write made to a risk is
//! numbered and travels with the message, in place of the risk lists' generation (`changes`).
//!
//! Invariant: when the write's response leaves, no replica that trusts its cache can build a key
//! from a replaced generation. Either Redis and the channel took the invalidation, or this replica
//! stops trusting its cache (a lost invalidation, settled by a new epoch) and the write waits
//! until every other replica's own check of Redis must have failed too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use uuid::Uuid;

use super::changes::ChangeLog;
use super::coherence::Coherence;
use super::generations::Generations;
use super::keys::generation_key;
use super::replication::{self, Message};
use super::scope::Scope;
use super::settings::Namespace;
use crate::domain::coverage::RiskChange;
use crate::redis::{Redis, Role};

pub struct Invalidator {
    /// A connection of its own, so that invalidations do not queue behind the reads' traffic.
    redis: Option<Redis>,
    redis_timeout: Duration,
    coherence: Arc<Coherence>,
    generations: Arc<Generations>,
    changes: Arc<ChangeLog>,
}

/// How far an invalidation got in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// New generations stored, and the message published.
    Replaced,
    /// Redis refused new generations (full): the old ones deleted, and the message published.
    Deleted,
    /// Not stored or not published: other replicas and Redis may still hold the old generations.
    Lost,
}

impl Invalidator {
    /// An invalidator over this process's knowledge of coherence, generations and changes.
    pub fn new(
        redis_url: Option<&str>,
        redis_timeout: Duration,
        (coherence, generations, changes): (Arc<Coherence>, Arc<Generations>, Arc<ChangeLog>),
    ) -> anyhow::Result<Self> {
        Ok(Invalidator {
            redis: redis_url
                .map(|url| Redis::connect(url, Role::Invalidations, redis_timeout))
                .transpose()?,
            redis_timeout,
            coherence,
            generations,
            changes,
        })
    }

    /// Makes every cached value of the organization's `namespaces` and of the `items`
    /// unreachable, on every replica, before it returns; logs the write's `change` to a risk, if
    /// it says.
    pub async fn invalidate(
        &self,
        org: Uuid,
        namespaces: &[Namespace],
        items: &[Scope],
        change: Option<Arc<RiskChange>>,
    ) {
        let (coherence, generations, changes) = (&*self.coherence, &*self.generations, &*self.changes);
        // A numbered change stands in for the risk lists' generation; one that cannot be
        // numbered replaces it.
        let change = match change {
            Some(change) => changes
                .number(self.redis.as_ref(), org)
                .await
                .ok()
                .map(|number| (number, change)),
            None => None,
        };
        let namespaces: Vec<Namespace> = namespaces
            .iter()
            .copied()
            .filter(|&namespace| change.is_none() || namespace != Namespace::Risks)
            .collect();
        if let Some((number, change)) = &change {
            changes.apply(org, *number, change.clone());
        }
        let scopes: Vec<Scope> = namespaces
            .iter()
            .map(|&namespace| Scope::namespace(org, namespace))
            .chain(items.iter().copied())
            .collect();
        // Forgotten first: a write that completes meanwhile here forgets again, so that this
        // write does not install its generations over the later one's below.
        let versions = generations.forget(&scopes);
        let replacements: Vec<u64> = scopes.iter().map(|_| rand::random()).collect();
        let token = rand::random::<u64>();
        let acknowledged = coherence.acks.expect(coherence.replica_id, token);
        let message = Message::Forget {
            org,
            namespaces: namespaces.clone(),
            items: items
                .iter()
                .filter_map(|scope| Some((scope.namespace, scope.item?)))
                .collect(),
            from: coherence.replica_id,
            token,
            change,
        };
        let reach = match &self.redis {
            None => Reach::Replaced,
            Some(redis) => Self::store_and_publish(redis, &scopes, &replacements, &message).await,
        };
        match reach {
            // This replica's next read needs no trip to Redis, unless a later write came in.
            Reach::Replaced => generations.install(&scopes, &versions, &replacements),
            // What readers here found in Redis before it changed, they must not keep.
            Reach::Deleted | Reach::Lost => {
                generations.forget(&scopes);
            }
        }
        if reach == Reach::Lost {
            // No reader here may find the old generation in Redis again.
            coherence.lose_invalidation();
        }
        for namespace in &namespaces {
            metrics::counter!("cache_invalidations_total", "namespace" => namespace.as_str()).increment(1);
        }
        self.until_replicas_know(reach, token, acknowledged).await;
    }

    /// Returns once the other replicas no longer serve what the invalidation `token` made stale:
    /// they acknowledged it (`acknowledged`: the acknowledgements awaited, if any), or, when it
    /// was lost, their own checks of Redis have failed.
    async fn until_replicas_know(
        &self,
        reach: Reach,
        token: u64,
        acknowledged: Option<oneshot::Receiver<()>>,
    ) {
        let coherence = &*self.coherence;
        match acknowledged {
            Some(acknowledged) if reach != Reach::Lost => {
                if !coherence.acks.wait(token, acknowledged).await {
                    metrics::counter!("cache_invalidation_ack_timeouts_total").increment(1);
                }
            }
            _ => coherence.acks.abandon(token),
        }
        if reach == Reach::Lost {
            // Other replicas may still trust entries this write made stale until their own
            // checks of Redis fail: answer once they have.
            let noticed = coherence.mark_failing() + replication::failure_noticed_within(self.redis_timeout);
            tokio::time::sleep_until(noticed.into()).await;
        }
    }

    async fn store_and_publish(
        redis: &Redis,
        scopes: &[Scope],
        replacements: &[u64],
        message: &Message,
    ) -> Reach {
        let pairs: Vec<(String, String)> = scopes
            .iter()
            .zip(replacements)
            .filter(|(scope, _)| scope.item.is_none())
            .map(|(&scope, generation)| (generation_key(scope), generation.to_string()))
            .collect();
        let replaced = pairs.is_empty() || redis.set_values(&pairs).await.is_ok();
        let keys: Vec<String> = pairs.into_iter().map(|(key, _)| key).collect();
        // An item's generation is deleted, not replaced: it must keep its time to live.
        let item_keys: Vec<String> = scopes
            .iter()
            .filter(|scope| scope.item.is_some())
            .map(|&item| generation_key(item))
            .collect();
        let stored = (item_keys.is_empty() || redis.delete(&item_keys).await.is_ok())
            && (replaced || redis.delete(&keys).await.is_ok());
        let published = stored
            && redis
                .publish(replication::CHANNEL, &message.encode())
                .await
                .is_ok();
        match (published, replaced) {
            (false, _) => Reach::Lost,
            (true, true) => Reach::Replaced,
            (true, false) => Reach::Deleted,
        }
    }
}

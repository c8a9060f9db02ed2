//! Keeping every replica's L1 honest. A write's generation bumps are published on a Redis channel
//! and applied by every replica. A replica trusts its L1 only while it is subscribed: with the
//! subscription down (Redis down, hung, or the connection killed) it bypasses the cache until it
//! has subscribed again. Keys also carry an epoch, renewed whenever invalidations may have been
//! lost (a subscription lost, a bump that did not reach Redis): a new epoch makes every entry
//! written before it unreachable, in L1 and in whatever Redis still holds.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Cache, Namespace, Scope};

pub const CHANNEL: &str = "openrisk:invalidations";
const EPOCH_KEY: &str = "openrisk:epoch";
/// How often a subscribed replica checks that Redis still answers (a hung Redis keeps the
/// subscription open but delivers nothing).
const CHECK_EVERY: Duration = Duration::from_millis(40);
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(200);

/// What travels on the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A namespace's generation after a write, as the writing replica knows it.
    Bump { scope: Scope, generation: u64 },
    /// Every entry of an earlier epoch is void.
    Epoch(u64),
}

impl Message {
    pub fn encode(&self) -> String {
        match self {
            Message::Bump { scope, generation } => {
                format!("bump {} {} {generation}", scope.org, scope.namespace)
            }
            Message::Epoch(epoch) => format!("epoch {epoch}"),
        }
    }

    pub fn decode(text: &str) -> Option<Message> {
        let mut words = text.split(' ');
        match (words.next()?, words.next(), words.next(), words.next()) {
            ("bump", Some(org), Some(namespace), Some(generation)) => Some(Message::Bump {
                scope: Scope {
                    org: Uuid::parse_str(org).ok()?,
                    namespace: namespace.parse::<Namespace>().ok()?,
                },
                generation: generation.parse().ok()?,
            }),
            ("epoch", Some(epoch), None, None) => Some(Message::Epoch(epoch.parse().ok()?)),
            _ => None,
        }
    }
}

impl Cache {
    /// Follows the invalidation channel until `stop`; does nothing without Redis.
    pub async fn replicate(self: Arc<Self>, stop: CancellationToken) {
        let Some(l2) = self.l2.clone() else {
            return;
        };
        let mut subscribed_before = false;
        for attempt in 0.. {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                subscribed = self.follow(&l2, l2.pubsub_client(attempt), subscribed_before) => subscribed,
            };
            self.trusted.store(false, Relaxed);
            if subscribed {
                tracing::warn!("cache: invalidation channel lost; bypassing the cache until resubscribed");
            }
            subscribed_before |= subscribed;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            }
        }
    }

    /// Subscribes on `server`, then applies messages until the subscription or Redis fails.
    /// Returns whether it was subscribed at all.
    async fn follow(
        &self,
        l2: &super::redis::Redis,
        server: &redis::Client,
        subscribed_before: bool,
    ) -> bool {
        let limit = l2.timeout() * 4;
        let Ok(Ok(mut pubsub)) = tokio::time::timeout(limit, server.get_async_pubsub()).await else {
            return false;
        };
        if !matches!(
            tokio::time::timeout(limit, pubsub.subscribe(CHANNEL)).await,
            Ok(Ok(()))
        ) {
            return false;
        }
        // From here on no message is missed: settle the epoch, then trust L1 again.
        let renew = self.lost_invalidations.swap(false, Relaxed) || subscribed_before;
        let epoch = if renew {
            let epoch = rand::random::<u64>();
            let published = async {
                l2.set_value(EPOCH_KEY, epoch).await?;
                l2.publish(CHANNEL, &Message::Epoch(epoch).encode()).await
            };
            published.await.map(|()| epoch)
        } else {
            l2.get_or_init(EPOCH_KEY, rand::random::<u64>()).await
        };
        let Ok(epoch) = epoch else {
            self.lost_invalidations.store(renew, Relaxed);
            return true;
        };
        self.adopt_epoch(epoch);
        self.trusted.store(true, Relaxed);
        tracing::info!("cache: following the invalidation channel");

        let (mut sink, mut messages) = pubsub.split();
        let mut check = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => {
                        if let Some(message) = message.get_payload::<String>().ok().as_deref().and_then(Message::decode) {
                            self.apply(message);
                        }
                    }
                    None => return true,
                },
                _ = check.tick() => {
                    // Through the subscription itself: it is what must be alive, and its check
                    // does not suffer when request traffic keeps the other connection busy.
                    let alive = tokio::time::timeout(l2.timeout() * 2, sink.ping::<redis::Value>()).await;
                    if self.lost_invalidations.load(Relaxed) || !matches!(alive, Ok(Ok(_))) {
                        return true;
                    }
                }
            }
        }
    }

    fn apply(&self, message: Message) {
        match message {
            Message::Bump { scope, generation } => {
                if let Some(known) = self.write_generations().get_mut(&scope) {
                    *known = (*known).max(generation);
                }
            }
            Message::Epoch(epoch) => self.adopt_epoch(epoch),
        }
    }

    fn adopt_epoch(&self, epoch: u64) {
        if self.epoch.swap(epoch, Relaxed) != epoch {
            self.write_generations().clear();
            self.l1.invalidate_all();
        }
    }

    /// Waits (at most `limit`) until the cache trusts its L1, so that a starting replica serves
    /// from the cache from its first request when Redis answers.
    pub async fn wait_until_trusted(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.trusted() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_encoding() {
        let bump = Message::Bump {
            scope: Scope {
                org: Uuid::now_v7(),
                namespace: Namespace::Dashboard,
            },
            generation: 42,
        };
        for message in [bump, Message::Epoch(u64::MAX)] {
            assert_eq!(Message::decode(&message.encode()), Some(message));
        }
        assert_eq!(Message::decode("bump nope risks 1"), None);
        assert_eq!(Message::decode("epoch 1 2"), None);
    }
}

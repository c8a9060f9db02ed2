//! The follower's subscription to one channel: messages as text, and a ping through the
//! subscription itself (a hung Redis keeps the connection open but delivers nothing).

use std::time::Duration;

use futures_util::StreamExt;

use super::{Redis, Unavailable};

/// The receiving half: messages published on the channel.
pub struct Messages(::redis::aio::PubSubStream);

/// The sending half, kept to check that the subscription still answers.
pub struct Pinger(::redis::aio::PubSubSink);

impl Redis {
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
}

impl Messages {
    /// The next message: `None` once the subscription has ended; `Some(None)` for a payload that
    /// is not text.
    pub async fn next(&mut self) -> Option<Option<String>> {
        let message = self.0.next().await?;
        Some(message.get_payload::<String>().ok())
    }
}

impl Pinger {
    /// Whether the subscription answers a ping within `limit`.
    pub async fn alive(&mut self, limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.0.ping::<::redis::Value>()).await,
            Ok(Ok(_))
        )
    }
}

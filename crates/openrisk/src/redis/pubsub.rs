//! The follower's subscription to one channel: messages as text, and a ping through the
//! subscription itself (a hung Redis keeps the connection open but delivers nothing).

use std::time::Duration;

use futures_util::StreamExt;

/// The receiving half: messages published on the channel.
pub struct Messages(pub(super) ::redis::aio::PubSubStream);

/// The sending half, kept to check that the subscription still answers.
pub struct Pinger(pub(super) ::redis::aio::PubSubSink);

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

//! Read-your-writes across replicas: a write answers once every other replica has applied its
//! invalidation. Replicas announce themselves on the invalidation channel; each acknowledges the
//! invalidations it applies; the writer waits for the acknowledgements of every replica heard from
//! lately, at most `WAIT`, which keeps the older bound for a replica too slow to answer.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The longest a write waits for acknowledgements: the bound on cross-replica staleness when a
/// replica does not answer in time.
pub const WAIT: Duration = Duration::from_millis(100);
/// A replica not heard from for this long is no longer waited for (it announces itself every
/// 200 ms while it follows the channel).
const PEER_TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Acks {
    /// Replica id → when it was last heard on the channel.
    peers: Mutex<HashMap<u64, Instant>>,
    /// Token of an invalidation → the replicas whose acknowledgement it still waits for.
    waiting: Mutex<HashMap<u64, Waiter>>,
}

struct Waiter {
    missing: HashSet<u64>,
    done: oneshot::Sender<()>,
}

impl Acks {
    pub fn heard(&self, replica: u64) {
        lock(&self.peers).insert(replica, Instant::now());
    }

    /// Registers the invalidation `token` of replica `me` as waiting for every other replica heard
    /// from lately; `None` when there is none.
    pub fn expect(&self, me: u64, token: u64) -> Option<oneshot::Receiver<()>> {
        let missing: HashSet<u64> = {
            let mut peers = lock(&self.peers);
            peers.retain(|_, heard| heard.elapsed() < PEER_TTL);
            peers.keys().copied().filter(|&peer| peer != me).collect()
        };
        if missing.is_empty() {
            return None;
        }
        let (done, receiver) = oneshot::channel();
        lock(&self.waiting).insert(token, Waiter { missing, done });
        Some(receiver)
    }

    pub fn acknowledged(&self, token: u64, from: u64) {
        let mut waiting = lock(&self.waiting);
        if let Some(waiter) = waiting.get_mut(&token) {
            waiter.missing.remove(&from);
            if waiter.missing.is_empty()
                && let Some(waiter) = waiting.remove(&token)
            {
                let _ = waiter.done.send(());
            }
        }
    }

    /// Waits for the acknowledgements of `token` (at most `WAIT`); returns whether they all came.
    pub async fn wait(&self, token: u64, receiver: oneshot::Receiver<()>) -> bool {
        let all = matches!(tokio::time::timeout(WAIT, receiver).await, Ok(Ok(())));
        lock(&self.waiting).remove(&token);
        all
    }

    /// Stops waiting for `token`: its invalidation was not published.
    pub fn abandon(&self, token: u64) {
        lock(&self.waiting).remove(&token);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_waits_for_every_peer_heard_lately_and_no_longer() {
        let acks = Acks::default();
        assert!(acks.expect(1, 10).is_none(), "alone: nothing to wait for");
        acks.heard(1);
        acks.heard(2);
        acks.heard(3);
        let receiver = acks.expect(1, 10).expect("peers 2 and 3");
        acks.acknowledged(10, 2);
        acks.acknowledged(10, 2);
        acks.acknowledged(11, 3); // another write's
        let pending = acks.expect(1, 12).expect("peers 2 and 3");
        acks.acknowledged(10, 3);
        assert!(acks.wait(10, receiver).await);
        assert!(!acks.wait(12, pending).await, "no acknowledgement came");
        assert!(lock(&acks.waiting).is_empty());
    }
}

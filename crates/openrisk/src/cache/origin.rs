//! A cacheable read as the cache sees it: what keys it, and where a missed answer comes from.

use std::future::Future;
use std::time::Duration;

use super::entry::Entry;

/// Which answers may be stored.
#[derive(Clone, Copy, Debug)]
pub struct Admit {
    /// Larger bodies are not cached.
    pub max_body: usize,
    /// How long a stored answer stays fresh.
    pub ttl: Duration,
}

/// The handler of a cacheable read. Each method runs it once, consuming it.
pub trait Origin: Send + 'static {
    /// An answer that is not cached (an error, a body too large), handed on as it is. Concurrent
    /// readers of one key that all missed share it.
    type Uncached: Clone + Send + Sync + 'static;

    /// Runs the handler and reads its answer whole: an entry if `admit` allows it.
    fn fill(self, admit: Admit) -> impl Future<Output = Result<Entry, Self::Uncached>> + Send;

    /// Runs the handler and hands its answer on unread.
    fn pass(self) -> impl Future<Output = Self::Uncached> + Send;
}

/// A cacheable read, as the cache keys it within its scope.
pub struct ReadRequest<'a> {
    /// What identifies the answer within its scope (path, normalized query, …).
    pub parts: &'a [&'a [u8]],
    /// The answer holds figures relative to today: the key carries the date.
    pub per_day: bool,
    /// The client asked for a fresh answer: skip the lookup, store what the origin answers.
    pub refresh: bool,
}

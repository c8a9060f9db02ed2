//! What a route does with the cache. Each route declares its policy where it is declared (see
//! `http::routes`); the cache layer follows the declaration, and a test fails when a route has
//! none.

use super::invalidation::Mutation;
use super::settings::Namespace;

/// What a route's GET does with the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Answers are cached in `namespace`. With `per_day`, the key carries the date, because the
    /// answer holds figures relative to today (overdue, timelines) that change at midnight.
    Cached { namespace: Namespace, per_day: bool },
    /// Never cached: operations data, streamed exports, answers about the caller.
    Uncached,
}

/// What a route's writes (POST, PUT, PATCH, DELETE) do to the cache once they succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Invalidates(Mutation),
    /// The write changes nothing a cached answer shows (a new organization has none yet).
    ChangesNothingCached,
}

/// A route's policy: for its GET, for its writes, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutePolicy {
    pub read: Option<Read>,
    pub write: Option<Write>,
}

/// A GET cached in `namespace`.
pub const fn cached(namespace: Namespace) -> RoutePolicy {
    read(Read::Cached {
        namespace,
        per_day: false,
    })
}

/// A GET cached in `namespace` under a key that carries today's date.
pub const fn cached_per_day(namespace: Namespace) -> RoutePolicy {
    read(Read::Cached {
        namespace,
        per_day: true,
    })
}

/// A GET never cached.
pub const fn uncached() -> RoutePolicy {
    read(Read::Uncached)
}

/// Writes only, each invalidating what `mutation` affects.
pub const fn invalidates(mutation: Mutation) -> RoutePolicy {
    RoutePolicy {
        read: None,
        write: Some(Write::Invalidates(mutation)),
    }
}

/// Writes only, changing nothing cached.
pub const fn writes_nothing_cached() -> RoutePolicy {
    RoutePolicy {
        read: None,
        write: Some(Write::ChangesNothingCached),
    }
}

const fn read(read: Read) -> RoutePolicy {
    RoutePolicy {
        read: Some(read),
        write: None,
    }
}

impl RoutePolicy {
    /// The route's writes invalidate what `mutation` affects.
    pub const fn and_invalidates(self, mutation: Mutation) -> RoutePolicy {
        RoutePolicy {
            write: Some(Write::Invalidates(mutation)),
            ..self
        }
    }

    /// Whether the route's `{id}` is a risk whose details it reads or writes: its writes then make
    /// that risk's details stale and no other's.
    pub fn names_a_risk(&self) -> bool {
        self.cached_namespace() == Some(Namespace::RiskDetails)
    }

    /// The namespace the route's GET is cached in, if it is.
    pub fn cached_namespace(&self) -> Option<Namespace> {
        match self.read {
            Some(Read::Cached { namespace, .. }) => Some(namespace),
            _ => None,
        }
    }
}

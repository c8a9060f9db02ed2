//! What a route does with the cache. Each route declares its policy where it is declared (see
//! `http::routes`); the cache layer follows the declaration, and a test fails when a route has
//! none.

use super::invalidation::Mutation;
use super::settings::Namespace;

/// What a route's GET does with the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    Cached(CachedRead),
    /// Never cached: operations data, streamed exports, token listings.
    Uncached,
}

/// How a route's answers are cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedRead {
    pub namespace: Namespace,
    /// The key carries the date, because the answer holds figures relative to today (overdue,
    /// timelines) that change at midnight.
    pub per_day: bool,
    pub audience: Audience,
    /// Query parameters at their default value: given once, they name the same answer as their
    /// absence, so they are left out of the key.
    pub defaults: &'static [(&'static str, &'static str)],
}

/// Who shares one cached answer: a key is only as wide as what the answer depends on. Every
/// role may read every cached route (each asks for a viewer at least), so the role is in the key
/// only where the body differs by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every caller of the organization.
    Organization,
    /// Callers of the organization with the same role.
    Role,
    /// One caller: the same user with the same effective role (an answer about the caller).
    Caller,
    /// Every caller of every organization: one public document, changed only by a release
    /// (the key carries the release's content version; `Cache-Control: public`).
    Everyone,
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

/// A GET cached in `namespace`, one answer for the whole organization.
pub const fn cached(namespace: Namespace) -> RoutePolicy {
    read(Read::Cached(CachedRead {
        namespace,
        per_day: false,
        audience: Audience::Organization,
        defaults: &[],
    }))
}

/// A GET cached in `namespace` under a key that carries today's date.
pub const fn cached_per_day(namespace: Namespace) -> RoutePolicy {
    read(Read::Cached(CachedRead {
        namespace,
        per_day: true,
        audience: Audience::Organization,
        defaults: &[],
    }))
}

/// A GET whose answer is the same public document for every caller of every organization.
pub const fn cached_for_everyone(namespace: Namespace) -> RoutePolicy {
    read(Read::Cached(CachedRead {
        namespace,
        per_day: false,
        audience: Audience::Everyone,
        defaults: &[],
    }))
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
    /// The route's answer differs by the caller's role: its key carries the role.
    pub const fn by_role(mut self) -> RoutePolicy {
        if let Some(Read::Cached(read)) = &mut self.read {
            read.audience = Audience::Role;
        }
        self
    }

    /// The route's answer is about its caller: its key carries the user and the role.
    pub const fn by_caller(mut self) -> RoutePolicy {
        if let Some(Read::Cached(read)) = &mut self.read {
            read.audience = Audience::Caller;
        }
        self
    }

    /// The route's query parameters that, given once at these values, mean what their absence
    /// means.
    pub const fn with_defaults(mut self, defaults: &'static [(&'static str, &'static str)]) -> RoutePolicy {
        if let Some(Read::Cached(read)) = &mut self.read {
            read.defaults = defaults;
        }
        self
    }

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
            Some(Read::Cached(read)) => Some(read.namespace),
            _ => None,
        }
    }
}

//! Routes as each resource declares them: the handlers of a path, documented, with the path's cache
//! policy beside them.

use std::collections::HashMap;
use std::sync::Arc;

use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use super::state::AppState;
use crate::cache::policy::RoutePolicy;

/// The cache policy of every path, by its route template.
pub type Policies = HashMap<String, RoutePolicy>;

/// A resource's routes. A path can only be added with its cache policy, so none goes without.
pub struct Routes {
    router: OpenApiRouter<AppState>,
    policies: Policies,
}

impl Routes {
    pub fn new() -> Self {
        Routes {
            router: OpenApiRouter::new(),
            policies: Policies::new(),
        }
    }

    /// The handlers of one path (from `utoipa_axum::routes!`) and what they do with the cache.
    pub fn add(mut self, route: UtoipaMethodRouter<AppState>, policy: RoutePolicy) -> Self {
        for path in route.1.paths.keys() {
            self.policies.insert(path.clone(), policy);
        }
        self.router = self.router.routes(route);
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.policies.extend(other.policies);
        self
    }

    pub fn into_parts(self) -> (OpenApiRouter<AppState>, Arc<Policies>) {
        (self.router, Arc::new(self.policies))
    }
}

#[cfg(test)]
mod tests {
    use crate::cache::policy::{CachedRead, Read, Write};

    /// Walks every route of the router (its document lists them all) and holds each path's
    /// methods against its declared policy.
    #[test]
    fn every_route_declares_what_it_does_with_the_cache() {
        let (_, document, policies) = crate::http::api();
        assert_eq!(
            policies.len(),
            document.paths.paths.len(),
            "a route without a policy"
        );
        for (path, item) in &document.paths.paths {
            let policy = policies
                .get(path)
                .unwrap_or_else(|| panic!("{path} declares no cache policy"));
            let writes = [&item.post, &item.put, &item.patch, &item.delete]
                .iter()
                .any(|operation| operation.is_some());
            assert_eq!(
                item.get.is_some(),
                policy.read.is_some(),
                "{path}: its GET and its read policy disagree: {policy:?}"
            );
            assert_eq!(
                writes,
                policy.write.is_some(),
                "{path}: its writes and its write policy disagree: {policy:?}"
            );
            // One risk's details are keyed by the risk's id, found in the path.
            if policy.names_a_risk() {
                assert!(
                    path.starts_with("/api/v1/risks/{id}"),
                    "{path}: its id is not a risk"
                );
            }
            // A write to a path must make the path's own cached answers stale.
            if let (Some(Read::Cached(CachedRead { namespace, .. })), Some(write)) =
                (policy.read, policy.write)
            {
                let Write::Invalidates(mutation) = write else {
                    panic!("{path}: writes to a cached path must invalidate");
                };
                let risk = policy.names_a_risk().then(uuid::Uuid::now_v7);
                let stale = mutation.affects(risk);
                assert!(
                    stale.namespaces.contains(&namespace) || (risk.is_some() && stale.risk == risk),
                    "{path}: {mutation:?} leaves {namespace} stale"
                );
            }
        }
    }

    /// The role is in a key only where the body differs by role; the public catalog is one
    /// entry for everyone.
    #[test]
    fn keys_are_as_wide_as_the_answer() {
        use crate::cache::policy::Audience;
        let (_, _, policies) = crate::http::api();
        let audience = |path: &str| match policies[path].read {
            Some(Read::Cached(read)) => read.audience,
            other => panic!("{path}: {other:?}"),
        };
        // Admins read a deleted risk's history; other roles get 404.
        assert_eq!(audience("/api/v1/risks/{id}/history"), Audience::Role);
        for path in [
            "/api/v1/marketplace/connectors",
            "/api/v1/marketplace/connectors/{slug}",
        ] {
            assert_eq!(audience(path), Audience::Everyone, "{path}");
        }
        for path in [
            "/api/v1/risks",
            "/api/v1/risks/{id}",
            "/api/v1/marketplace/installations",
        ] {
            assert_eq!(audience(path), Audience::Organization, "{path}");
        }
    }

    #[test]
    fn answers_relative_to_today_are_keyed_by_day() {
        let (_, _, policies) = crate::http::api();
        for path in [
            "/api/v1/dashboard/stats",
            "/api/v1/dashboard/matrix",
            "/api/v1/dashboard/timeline",
            "/api/v1/dashboard/top-risks",
            "/api/v1/reports/summary",
        ] {
            assert!(
                matches!(
                    policies[path].read,
                    Some(Read::Cached(CachedRead { per_day: true, .. }))
                ),
                "{path}"
            );
        }
        assert_eq!(
            policies["/api/v1/reports/risk-register"].read,
            Some(Read::Uncached)
        );
    }
}

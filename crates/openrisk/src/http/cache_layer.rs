//! The response cache in front of the cacheable GETs, and the invalidation behind writes.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::compression::{self, CompressionSettings};
use super::error::ApiError;
use super::extract::authenticate;
use super::routes::Policies;
use crate::cache::policy::{Read, Write};
use crate::cache::{Cache, Coding, Entry, Lookup, Mutation, Namespace, Scope, Tier};
use crate::domain::auth::Principal;

/// The layer: serves cacheable GETs through the cache and, after a successful write, invalidates
/// what the write changed, before the response leaves. Both follow the policy the route declares.
pub async fn layer(
    State((state, policies)): State<(AppState, Arc<Policies>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some((route, policy)) = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|route| Some((route.as_str(), policies.get(route.as_str())?)))
    else {
        return next.run(request).await;
    };
    // On a route whose answers are one risk's details, that risk is the path's `{id}`.
    let risk = policy
        .names_a_risk()
        .then(|| path_id(route, request.uri().path()))
        .flatten();
    let method = request.method();
    let action = if method == Method::GET {
        match policy.read {
            // A malformed id: the handler refuses it.
            Some(Read::Cached { namespace, .. }) if namespace.per_item() && risk.is_none() => {
                return next.run(request).await;
            }
            Some(Read::Cached { namespace, per_day }) => Action::Read { namespace, per_day },
            _ => return next.run(request).await,
        }
    } else if method.is_safe() {
        return next.run(request).await;
    } else {
        match policy.write {
            Some(Write::Invalidates(mutation)) => Action::Write(mutation),
            _ => return next.run(request).await,
        }
    };
    // Who asks decides the key (organization, role) and what a write invalidates. A token that
    // names no one is refused here, as its handler would refuse it first (every handler
    // authenticates before anything else), without a second lookup. A lookup that failed (the
    // database away, a connection lost) goes to the handler, which looks again inside the retry of
    // reads.
    let principal = match authenticate(&state, request.headers()).await {
        Ok(principal) => principal,
        Err(refused @ (ApiError::Unauthorized | ApiError::RateLimited(_))) => return refused.into_response(),
        Err(_) => return next.run(request).await,
    };
    request.extensions_mut().insert(principal.clone());
    match action {
        Action::Read { namespace, per_day } => {
            let scope = match risk {
                Some(risk) => Scope::item(principal.organization_id, namespace, risk),
                None => Scope::namespace(principal.organization_id, namespace),
            };
            let reply = Reply {
                cache: &state.cache,
                compression: state.compression,
                coding: state.compression.wanted(request.headers()),
                if_none_match: None,
            };
            read(reply, scope, per_day, &principal, request, next).await
        }
        Action::Write(mutation) => {
            let response = next.run(request).await;
            if response.status().is_success() {
                // Boxed: reads, far more frequent, need not carry its state.
                Box::pin(state.cache.after_write(principal.organization_id, mutation, risk)).await;
            }
            response
        }
    }
}

enum Action {
    Read { namespace: Namespace, per_day: bool },
    Write(Mutation),
}

async fn read(
    mut reply: Reply<'_>,
    scope: Scope,
    per_day: bool,
    principal: &Principal,
    mut request: Request,
    next: Next,
) -> Response {
    let cache = reply.cache;
    let namespace = scope.namespace;
    if !cache.enabled() {
        cache.count_bypass(namespace);
        return with_cache_headers(next.run(request).await, "BYPASS", "OpenRisk; fwd=bypass");
    }
    let Some(generation) = cache.generation(scope).await else {
        cache.count_bypass(namespace);
        return with_cache_headers(next.run(request).await, "BYPASS", "OpenRisk; fwd=bypass");
    };
    // Conditional requests are answered here, from the entry: the handler computes the full
    // response, which every caller of the key can share.
    reply.if_none_match = request.headers_mut().remove(header::IF_NONE_MATCH);
    let refresh = wants_fresh(request.headers());
    let query = normalized_query(request.uri().query());
    let mut parts: Vec<&[u8]> = vec![
        request.uri().path().as_bytes(),
        query.as_bytes(),
        principal.role.as_str().as_bytes(),
    ];
    let today = per_day.then(|| {
        use chrono::Datelike;
        chrono::Utc::now().date_naive().num_days_from_ce().to_le_bytes()
    });
    if let Some(today) = &today {
        parts.push(today);
    }
    let key = cache.key(scope, generation, &parts);
    // A fresh L1 hit takes the short way; the long one is boxed, so that its state does not
    // make every hit's future larger.
    if !refresh && let Some(entry) = cache.fresh_in_l1(namespace, key).await {
        return reply.send(key, &entry, "HIT", "OpenRisk; hit; detail=l1").await;
    }
    Box::pin(fill_through(reply, scope, key, refresh, request, next)).await
}

/// `read` past a fresh L1 hit: a forced refresh, a stale entry, L2, or the handler.
async fn fill_through(
    reply: Reply<'_>,
    scope: Scope,
    key: u128,
    refresh: bool,
    request: Request,
    next: Next,
) -> Response {
    let cache = reply.cache;
    let namespace = scope.namespace;
    let max_body = cache.settings().max_body_bytes;
    let ttl = cache.settings().ttl(namespace);

    if refresh {
        cache.count_bypass(namespace);
        let captured = Captured::of(next.run(request).await).await;
        return match captured.entry(max_body, ttl) {
            Some(entry) => {
                let entry = cache.store(scope, key, entry).await;
                reply
                    .send(key, &entry, "BYPASS", "OpenRisk; fwd=request; stored")
                    .await
            }
            None => with_cache_headers(captured.into_response(), "BYPASS", "OpenRisk; fwd=request"),
        };
    }
    // The request stays here unless the handler runs: a stale hit refreshes with it.
    let handler = std::sync::Mutex::new(Some((request, next)));
    let fill = async {
        let taken = handler.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((request, next)) = taken else {
            return Err(Captured::internal_error());
        };
        let captured = Captured::of(next.run(request).await).await;
        match captured.entry(max_body, ttl) {
            Some(entry) => Ok(entry),
            None => Err(captured),
        }
    };
    let found = cache.get_or_fill(scope, key, fill).await;
    let unused = handler.into_inner().unwrap_or_else(|p| p.into_inner());
    match found {
        Ok((entry, Lookup::Hit(Tier::L1))) if entry.is_stale() => {
            if let Some((request, next)) = unused
                && cache.begin_refresh(key)
            {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let captured = Captured::of(next.run(request).await).await;
                    if let Some(entry) = captured.entry(max_body, ttl) {
                        cache.store(scope, key, entry).await;
                    }
                    cache.end_refresh(key);
                });
            }
            reply
                .send(key, &entry, "HIT", "OpenRisk; hit; detail=l1-stale")
                .await
        }
        Ok((entry, Lookup::Hit(Tier::L1))) => {
            reply.send(key, &entry, "HIT", "OpenRisk; hit; detail=l1").await
        }
        Ok((entry, Lookup::Hit(Tier::L2))) => {
            reply.send(key, &entry, "HIT", "OpenRisk; hit; detail=l2").await
        }
        Ok((entry, Lookup::Miss)) => {
            reply
                .send(key, &entry, "MISS", "OpenRisk; fwd=miss; stored")
                .await
        }
        Err(uncacheable) => with_cache_headers(
            Arc::unwrap_or_clone(uncacheable).into_response(),
            "MISS",
            "OpenRisk; fwd=miss",
        ),
    }
}

/// The value of the `{id}` segment of the route `template` in `path`, if it is a UUID.
fn path_id(template: &str, path: &str) -> Option<uuid::Uuid> {
    let position = template.split('/').position(|segment| segment == "{id}")?;
    path.split('/').nth(position)?.parse().ok()
}

/// `Cache-Control: no-cache` (or `Pragma: no-cache`) from the client: skip the cache, refresh it.
fn wants_fresh(headers: &HeaderMap) -> bool {
    [header::CACHE_CONTROL, header::PRAGMA].iter().any(|name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|d| d.trim().eq_ignore_ascii_case("no-cache")))
    })
}

/// The query's parameters sorted, so that their order does not split the cache.
fn normalized_query(query: Option<&str>) -> Cow<'_, str> {
    let query = query.unwrap_or("");
    if !query.contains('&') {
        // One parameter at most: nothing to order.
        return Cow::Borrowed(query);
    }
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    pairs.sort();
    Cow::Owned(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish(),
    )
}

/// A handler's response, read whole.
#[derive(Clone)]
struct Captured {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Captured {
    async fn of(response: Response) -> Captured {
        let (parts, body) = response.into_parts();
        // Cached routes answer bounded pages and documents.
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        Captured {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// The entry to cache: only whole 200 responses up to `max_body` bytes.
    fn entry(&self, max_body: usize, ttl: std::time::Duration) -> Option<Entry> {
        if self.status != StatusCode::OK || self.body.len() > max_body {
            return None;
        }
        let text = |name| {
            self.headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Some(Entry {
            content_type: text(header::CONTENT_TYPE).unwrap_or_else(|| "application/json".into()),
            etag: text(header::ETAG)
                .unwrap_or_else(|| format!("\"{}\"", &blake3::hash(&self.body).to_hex()[..16])),
            content_disposition: text(header::CONTENT_DISPOSITION),
            body: self.body.clone(),
            ttl,
            ..Entry::default()
        })
    }
}

impl Captured {
    fn internal_error() -> Captured {
        Captured {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }
}

impl IntoResponse for Captured {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// How a cached answer goes out to this request.
struct Reply<'a> {
    cache: &'a Arc<Cache>,
    compression: CompressionSettings,
    /// The coding the client prefers, if any.
    coding: Option<Coding>,
    if_none_match: Option<HeaderValue>,
}

impl Reply<'_> {
    /// The entry under `key` as a response, in the client's coding when worth it; or 304 when
    /// the client's `If-None-Match` names its ETag (the same for every coding).
    async fn send(
        &self,
        key: u128,
        entry: &Arc<Entry>,
        x_cache: &'static str,
        status: &'static str,
    ) -> Response {
        let not_modified = self
            .if_none_match
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|list| {
                list.split(',').any(|tag| {
                    let tag = tag.trim();
                    tag == "*" || tag.trim_start_matches("W/") == entry.etag
                })
            });
        let mut response = if not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let coding = self
                .coding
                .filter(|_| self.compression.worth(&entry.content_type, entry.body.len()));
            let encoded = match coding {
                Some(coding) => self.cache.encoded(key, entry, coding).await.map(|b| (coding, b)),
                None => None,
            };
            match encoded {
                Some((coding, body)) => {
                    let mut response = Response::new(Body::from(body));
                    response.headers_mut().insert(
                        header::CONTENT_ENCODING,
                        HeaderValue::from_static(coding.as_str()),
                    );
                    response
                }
                None => Response::new(Body::from(entry.body.clone())),
            }
        };
        let headers = response.headers_mut();
        if !not_modified && let Ok(value) = HeaderValue::from_str(&entry.content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        if let Ok(value) = HeaderValue::from_str(&entry.etag) {
            headers.insert(header::ETAG, value);
        }
        if let Some(value) = entry
            .content_disposition
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        with_cache_headers(response, x_cache, status)
    }
}

/// `X-Cache`, `Cache-Status` (RFC 9211) and the headers that keep shared caches out.
fn with_cache_headers(mut response: Response, x_cache: &'static str, status: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-cache", HeaderValue::from_static(x_cache));
    headers.insert("cache-status", HeaderValue::from_static(status));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(header::VARY, compression::VARY);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_read_from_its_place_in_the_route() {
        let id = uuid::Uuid::now_v7();
        let route = "/api/v1/risks/{id}/history";
        assert_eq!(path_id(route, &format!("/api/v1/risks/{id}/history")), Some(id));
        assert_eq!(path_id(route, "/api/v1/risks/nope/history"), None);
        assert_eq!(path_id("/api/v1/risks", "/api/v1/risks"), None);
    }

    #[test]
    fn queries_differing_only_in_order_share_a_key() {
        assert_eq!(
            normalized_query(Some("b=2&a=1")),
            normalized_query(Some("a=1&b=2"))
        );
        assert_eq!(
            normalized_query(Some("status=open&status=closed")),
            normalized_query(Some("status=closed&status=open"))
        );
        assert_ne!(normalized_query(Some("a=1")), normalized_query(Some("a=2")));
        assert_eq!(normalized_query(None), "");
    }
}

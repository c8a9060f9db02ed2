//! The response cache in front of the cacheable GETs, and the invalidation behind writes, as
//! each route's policy declares them. The cache decides what is served (`Cache::serve`); this
//! layer keeps to HTTP: the key's parts from the request, conditional requests, headers and
//! content codings.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::authentication::Authentication;
use super::compression::{self, CompressionSettings};
use super::error::ApiError;
use super::extract::Revalidate;
use super::middleware::{Inner, Middleware, run};
use super::routes::Policies;
use crate::cache::policy::{Audience, CachedRead, Read, Write};
use crate::cache::{
    Admit, Cache, CacheStatus, Coding, Entry, Mutation, Origin, ReadRequest, Registered, Scope, Served,
};
use crate::domain::coverage::{PageCoverage, RiskChange};

/// What the layer reads.
pub struct CacheLayer {
    pub cache: Arc<Cache>,
    pub policies: Arc<Policies>,
    pub compression: CompressionSettings,
    /// The content version of what is public (the catalog): part of the key of answers cached
    /// for everyone, so that replicas of two releases never share one.
    pub release: String,
}

impl Middleware for CacheLayer {
    /// Serves cacheable GETs through the cache and, after a successful write, invalidates what
    /// the write changed, before the response leaves.
    async fn handle<S: Inner>(self: Arc<Self>, request: Request, next: S) -> Response {
        handle(&self, request, next).await
    }
}

async fn handle<S: Inner>(layer: &CacheLayer, request: Request, next: S) -> Response {
    let Some((route, policy)) = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|route| Some((route.as_str(), layer.policies.get(route.as_str())?)))
    else {
        return run(next, request).await;
    };
    // On a route whose answers are one risk's details, that risk is the path's `{id}`.
    let risk = policy
        .names_a_risk()
        .then(|| path_id(route, request.uri().path()))
        .flatten();
    let action = match (request.method(), policy.read, policy.write) {
        // A malformed id: the handler refuses it.
        (&Method::GET, Some(Read::Cached(read)), _) if read.namespace.per_item() && risk.is_none() => None,
        (&Method::GET, Some(Read::Cached(read)), _) => Some(Action::Read(read)),
        (method, _, Some(Write::Invalidates(mutation))) if !method.is_safe() => Some(Action::Write(mutation)),
        _ => None,
    };
    let Some(action) = action else {
        return run(next, request).await;
    };
    // Who asks decides the key (organization, and role where the answer differs by role) and
    // what a write invalidates. A refused
    // token is refused here, as its handler would refuse it first; without a caller (no token, a
    // failed lookup) the handler decides.
    let caller = request
        .extensions()
        .get::<Authentication>()
        .map(Authentication::caller);
    let (org, user, role) = match caller {
        Some(Ok(Some(principal))) => (principal.organization_id, principal.user_id, principal.role),
        Some(Err(refusal)) => return refusal.into_response(),
        _ => return run(next, request).await,
    };
    match action {
        Action::Read(cached) => {
            let scope = match (cached.audience, risk) {
                // One entry for every organization.
                (Audience::Everyone, _) => Scope::namespace(uuid::Uuid::nil(), cached.namespace),
                (_, Some(risk)) => Scope::item(org, cached.namespace, risk),
                (_, None) => Scope::namespace(org, cached.namespace),
            };
            let shared_by = match cached.audience {
                Audience::Organization => Cow::Borrowed(&[][..]),
                Audience::Role => Cow::Borrowed(role.as_str().as_bytes()),
                Audience::Caller => Cow::Owned([user.as_bytes(), role.as_str().as_bytes()].concat()),
                Audience::Everyone => Cow::Borrowed(layer.release.as_bytes()),
            };
            read(layer, scope, cached, &shared_by, request, next).await
        }
        Action::Write(mutation) => {
            let mut response = run(next, request).await;
            if response.status().is_success() {
                // What the handler says the write did to a risk, which also names the risk when
                // the route does not (a mitigation's).
                let change = response.extensions_mut().remove::<RiskChange>();
                let risk = risk.or(change.as_ref().map(|change| change.id));
                // Boxed: reads, far more frequent, need not carry its state.
                Box::pin(layer.cache.after_write(org, mutation, risk, change)).await;
            }
            response
        }
    }
}

enum Action {
    Read(CachedRead),
    Write(Mutation),
}

/// Serves a cacheable read in `scope`, as `cached` declares. `shared_by` is the key's part naming
/// who shares the answer (the role, the release, or nothing for the whole organization).
async fn read<S: Inner>(
    layer: &CacheLayer,
    scope: Scope,
    cached: CachedRead,
    shared_by: &[u8],
    mut request: Request,
    next: S,
) -> Response {
    // Conditional requests are answered here: the handler computes the full response, which
    // every caller of the key can share.
    let reply = Reply {
        cache: &layer.cache,
        compression: layer.compression,
        coding: layer.compression.wanted(request.headers()),
        if_none_match: request.headers_mut().remove(header::IF_NONE_MATCH),
        // Shared caches may keep a public document.
        public: cached.audience == Audience::Everyone,
    };
    let uri = request.uri().clone();
    let refresh = wants_fresh(request.headers());
    if refresh {
        request.extensions_mut().insert(Revalidate);
    }
    let query = normalized_query(uri.query(), cached.defaults);
    let read = ReadRequest {
        parts: &[uri.path().as_bytes(), query.as_bytes(), shared_by],
        per_day: cached.per_day,
        refresh,
    };
    let cache: &Cache = &layer.cache;
    let served = cache.serve(scope, &read, Handler { request, next }).await;
    reply.send(served).await
}

/// The handler behind a cacheable read.
struct Handler<S> {
    request: Request,
    next: S,
}

impl<S: Inner> Origin for Handler<S> {
    type Uncached = Captured;

    async fn fill(self, admit: Admit) -> Result<Entry, Captured> {
        let captured = self.pass().await;
        captured.entry(admit).ok_or(captured)
    }

    async fn pass(self) -> Captured {
        Captured::of(run(self.next, self.request).await).await
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

/// The query's parameters sorted, so that their order does not split the cache, without those
/// given once at their `defaults`, which name the same answer as their absence.
fn normalized_query<'a>(query: Option<&'a str>, defaults: &[(&str, &str)]) -> Cow<'a, str> {
    let query = query.unwrap_or("");
    let names_a_default = || defaults.iter().any(|(name, _)| query.starts_with(name));
    if !query.contains('&') && !names_a_default() {
        // One parameter at most, and not a default: nothing to order or leave out.
        return Cow::Borrowed(query);
    }
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let once = |name: &str| pairs.iter().filter(|(n, _)| n == name).count() == 1;
    let dropped: Vec<bool> = pairs
        .iter()
        .map(|(name, value)| once(name) && defaults.contains(&(name.as_str(), value.as_str())))
        .collect();
    let mut dropped = dropped.into_iter();
    pairs.retain(|_| !dropped.next().unwrap_or(false));
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
    /// What the answer shows, when its handler says (see `cache::Entry::coverage`).
    coverage: Option<Arc<PageCoverage>>,
    /// Answered from the organization's register, when its handler says.
    registered: Option<Registered>,
}

impl Captured {
    /// `response`, read whole; a body that cannot be read is a server error, never an empty answer.
    async fn of(response: Response) -> Captured {
        let (mut parts, body) = response.into_parts();
        let coverage = parts.extensions.remove::<PageCoverage>().map(Arc::new);
        let registered = parts.extensions.remove::<Registered>();
        // Cached routes answer bounded pages and documents.
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => Captured {
                status: parts.status,
                headers: parts.headers,
                body,
                coverage,
                registered,
            },
            Err(e) => {
                let failure = ApiError::Internal(format!("a cacheable answer could not be read: {e}"));
                let (parts, body) = failure.into_response().into_parts();
                // A problem document is one buffer: it is read at once.
                let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(body, usize::MAX));
                Captured {
                    status: parts.status,
                    headers: parts.headers,
                    body: body.and_then(Result::ok).unwrap_or_default(),
                    coverage: None,
                    registered: None,
                }
            }
        }
    }

    /// The entry to cache: only whole 200 responses that `admit` allows.
    fn entry(&self, admit: Admit) -> Option<Entry> {
        if self.status != StatusCode::OK || self.body.len() > admit.max_body {
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
            ttl: admit.ttl,
            coverage: self.coverage.clone(),
            number: self.registered.map_or(0, |Registered(number)| number),
            from_register: self.registered.is_some(),
            ..Entry::default()
        })
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

/// How an answer goes out to this request.
struct Reply<'a> {
    cache: &'a Cache,
    compression: CompressionSettings,
    /// The coding the client prefers, if any.
    coding: Option<Coding>,
    if_none_match: Option<HeaderValue>,
    /// The answer is the same public document for everyone.
    public: bool,
}

impl Reply<'_> {
    async fn send(&self, served: Served<Captured>) -> Response {
        let status = served.status();
        let response = match served {
            Served::Entry { entry, key, .. } => self.entry(key, &entry).await,
            Served::Uncached { answer, .. } => {
                let etag = answer.headers.get(header::ETAG).and_then(|v| v.to_str().ok());
                match answer.status == StatusCode::OK && etag.is_some_and(|etag| self.names(etag)) {
                    true => not_modified(&answer.headers),
                    false => answer.into_response(),
                }
            }
        };
        // Only the document itself is public: never an error.
        let public = self.public && matches!(response.status(), StatusCode::OK | StatusCode::NOT_MODIFIED);
        with_cache_headers(response, status, public)
    }

    /// Whether the client's `If-None-Match` names `etag` (the same for every coding).
    fn names(&self, etag: &str) -> bool {
        let listed = self.if_none_match.as_ref().and_then(|v| v.to_str().ok());
        listed.is_some_and(|list| {
            list.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == etag
            })
        })
    }

    /// The entry under `key` as a response, in the client's coding when worth it; or 304.
    async fn entry(&self, key: u128, entry: &Arc<Entry>) -> Response {
        let mut headers = HeaderMap::new();
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
        if self.names(&entry.etag) {
            return not_modified(&headers);
        }
        if let Ok(value) = HeaderValue::from_str(&entry.content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        let coding = self
            .coding
            .filter(|_| self.compression.worth(&entry.content_type, entry.body.len()));
        let encoded = match coding {
            Some(coding) => self
                .cache
                .encoded(key, entry, coding)
                .await
                .map(|body| (coding, body)),
            None => None,
        };
        let body = match encoded {
            Some((coding, body)) => {
                headers.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(coding.as_str()),
                );
                body
            }
            None => entry.body.clone(),
        };
        (headers, body).into_response()
    }
}

/// `304 Not Modified` with the validators and disposition of `headers`.
fn not_modified(headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    for name in [header::ETAG, header::CONTENT_DISPOSITION] {
        if let Some(value) = headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// `X-Cache`, `Cache-Status` (RFC 9211), and what shared caches may do: keep a public document
/// for a day (it changes only with a release, and its strong ETag revalidates it), and keep
/// everything else out.
fn with_cache_headers(mut response: Response, status: CacheStatus, public: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-cache", HeaderValue::from_static(status.x_cache()));
    headers.insert("cache-status", HeaderValue::from_static(status.cache_status()));
    let (cache_control, vary) = match public {
        true => ("public, max-age=86400", compression::VARY_PUBLIC),
        false => ("private, no-cache", compression::VARY),
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(header::VARY, vary);
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
        let key = |query| normalized_query(query, &[]);
        assert_eq!(key(Some("b=2&a=1")), key(Some("a=1&b=2")));
        assert_eq!(
            key(Some("status=open&status=closed")),
            key(Some("status=closed&status=open"))
        );
        assert_ne!(key(Some("a=1")), key(Some("a=2")));
        assert_eq!(key(None), "");
    }

    #[test]
    fn parameters_at_their_default_share_the_key_of_their_absence() {
        let defaults = [("sort", "-score"), ("limit", "50")];
        let key = |query| normalized_query(query, &defaults);
        assert_eq!(key(Some("sort=-score")), key(None));
        assert_eq!(
            key(Some("limit=50&status=open&sort=-score")),
            key(Some("status=open"))
        );
        assert_ne!(key(Some("sort=score")), key(None));
        // Given twice, the request may be refused: it keeps a key of its own.
        assert_ne!(key(Some("sort=-score&sort=-score")), key(None));
    }

    #[tokio::test]
    async fn an_answer_that_cannot_be_read_is_a_server_error_never_an_empty_cacheable_200() {
        let failing = futures_util::stream::iter([
            Ok(Bytes::from_static(b"{\"items\":[")),
            Err(std::io::Error::other("connection reset")),
        ]);
        let response = Response::new(Body::from_stream(failing));
        let captured = Captured::of(response).await;
        assert_eq!(captured.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!captured.body.is_empty(), "a problem document");
        let admit = Admit {
            max_body: 1 << 20,
            ttl: std::time::Duration::from_secs(60),
        };
        assert!(captured.entry(admit).is_none(), "not cacheable");
    }
}

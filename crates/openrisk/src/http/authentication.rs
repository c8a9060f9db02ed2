//! Authentication and rate limits, once per request, in a layer of their own: the bearer token's
//! principal (the lookup is cached, unknown tokens too), counted against the token's rate limit;
//! a client address that failed to authenticate too often is refused before any lookup. A
//! caller's request then waits for its organization's turn (`RateLimiter::turn`). What the layer
//! resolved goes into the request's extensions, where the cache layer and the `Auth` extractor
//! read it. Requests without an `Authorization` header, or outside `/api/v1/`, pass untouched:
//! routes that need a caller refuse them in their extractor.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::client_address::ClientAddress;
use super::error::ApiError;
use super::middleware::{Inner, Middleware, run};
use crate::cache::Cache;
use crate::domain::auth::{Principal, hash_token};
use crate::limits::{Limited, RateLimiter};
use crate::store::Store;

/// What the layer needs: the token lookup, its cache and the limits.
pub struct Authenticator {
    pub store: Arc<dyn Store>,
    pub cache: Arc<Cache>,
    pub limits: Arc<RateLimiter>,
}

/// What the layer resolved for a request with an `Authorization` header.
#[derive(Clone, Debug)]
pub enum Authentication {
    /// A known caller, within its rate limit.
    Caller(Principal),
    /// No valid bearer token: 401.
    Unknown,
    /// Over the token's rate limit: 429.
    Limited(Limited),
    /// The lookup failed (the database away, a connection lost): the extractor looks again,
    /// inside the retry of reads.
    Failed,
}

impl Authentication {
    /// The caller; `Ok(None)` when the lookup failed and may be tried again; the refusal to
    /// answer with for a token that names no one (401) or is over its limit (429).
    pub fn caller(&self) -> Result<Option<&Principal>, ApiError> {
        match self {
            Authentication::Caller(principal) => Ok(Some(principal)),
            Authentication::Failed => Ok(None),
            Authentication::Unknown => Err(ApiError::Unauthorized),
            Authentication::Limited(limited) => Err(ApiError::RateLimited(*limited)),
        }
    }
}

impl Middleware for Authenticator {
    async fn handle<S: Inner>(self: Arc<Self>, mut request: Request, inner: S) -> Response {
        // Only the API takes tokens: `/metrics` has a token of its own, health checks none.
        if request.uri().path().starts_with("/api/v1/")
            && request.headers().contains_key(header::AUTHORIZATION)
        {
            // Known when served over a socket (`server`), not when driven in process.
            let client = request
                .extensions()
                .get::<ClientAddress>()
                .map(|ClientAddress(ip)| *ip);
            let resolved = self.resolve(request.headers(), client).await;
            let org = match &resolved {
                Authentication::Caller(principal) => Some(principal.organization_id),
                _ => None,
            };
            request.extensions_mut().insert(resolved);
            if let Some(org) = org {
                // Held while the handler runs (not while a streamed body is sent).
                return match self.limits.turn(org).await {
                    Ok(_turn) => run(inner, request).await,
                    Err(limited) => ApiError::RateLimited(limited).into_response(),
                };
            }
        }
        run(inner, request).await
    }
}

impl Authenticator {
    async fn resolve(&self, headers: &HeaderMap, client: Option<IpAddr>) -> Authentication {
        if let Some(client) = client
            && let Err(limited) = self.limits.may_authenticate(client)
        {
            return Authentication::Limited(limited);
        }
        match authenticate(self.store.as_ref(), &self.cache, &self.limits, headers).await {
            Ok(principal) => Authentication::Caller(principal),
            Err(ApiError::Unauthorized) => {
                if let Some(client) = client {
                    self.limits.authentication_failed(client);
                }
                Authentication::Unknown
            }
            Err(ApiError::RateLimited(limited)) => Authentication::Limited(limited),
            Err(_) => Authentication::Failed,
        }
    }
}

/// The principal behind the request's bearer token, within its rate limit.
pub async fn authenticate(
    store: &dyn Store,
    cache: &Cache,
    limits: &RateLimiter,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let token = bearer_token(headers).ok_or(ApiError::Unauthorized)?;
    let principal = cache
        .authenticate(store, &hash_token(token), crate::domain::now())
        .await
        .map_err(|e| ApiError::from_store(&e))?
        .ok_or(ApiError::Unauthorized)?;
    limits
        .request(principal.token_id)
        .await
        .map_err(ApiError::RateLimited)?;
    Ok(principal)
}

pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

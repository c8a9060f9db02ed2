//! Request extractors: the caller, JSON bodies, ids, query parameters and preconditions.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::authentication::{Authentication, authenticate};
use super::error::ApiError;
use super::state::{AppState, BODY_LIMIT};
use crate::cache::Current;
use crate::domain::Precondition;
use crate::domain::auth::{Principal, Role};
use crate::domain::list::{ParamError, Params};
use crate::domain::validation::Violations;
use crate::limits::Running;

/// What a route requires of its caller.
pub trait Access {
    fn allows(principal: &Principal) -> bool;
}

pub struct Viewer;
pub struct Analyst;
pub struct Admin;
/// A token with the `system` flag (creates organizations).
pub struct System;

impl Access for Viewer {
    fn allows(p: &Principal) -> bool {
        p.has(Role::Viewer)
    }
}
impl Access for Analyst {
    fn allows(p: &Principal) -> bool {
        p.has(Role::Analyst)
    }
}
impl Access for Admin {
    fn allows(p: &Principal) -> bool {
        p.has(Role::Admin)
    }
}
impl Access for System {
    fn allows(p: &Principal) -> bool {
        p.system
    }
}

/// The authenticated caller, checked against `A` before the body is read: unknown token 401,
/// insufficient role 403.
pub struct Auth<A>(pub Principal, PhantomData<A>);

impl<A> Deref for Auth<A> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<A: Access> FromRequestParts<AppState> for Auth<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let resolved = parts.extensions.get::<Authentication>();
        let principal = match resolved.ok_or(ApiError::Unauthorized)?.caller()? {
            Some(principal) => principal.clone(),
            // Inside the retry of reads: a lost connection gets a second chance.
            None => authenticate(state.store.as_ref(), &state.cache, &state.limits, &parts.headers).await?,
        };
        if !A::allows(&principal) {
            return Err(ApiError::Forbidden);
        }
        Ok(Auth(principal, PhantomData))
    }
}

/// Set by the cache layer on a read the client asked to be fresh (`no-cache`): only the database
/// answers it.
#[derive(Clone, Copy)]
pub struct Revalidate;

/// The caller's organization's register (see `cache::register`), when the answer may come from
/// memory: the cache holds it current and the client did not ask for a fresh answer.
pub struct Register(pub Option<Current>);

impl FromRequestParts<AppState> for Register {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = parts
            .extensions
            .get::<Authentication>()
            .map(Authentication::caller);
        let org = match caller {
            Some(Ok(Some(principal))) if parts.extensions.get::<Revalidate>().is_none() => {
                principal.organization_id
            }
            _ => return Ok(Register(None)),
        };
        Ok(Register(state.cache.register(&state.store, org).await))
    }
}

/// An export, or a summary computed afresh: counted against the token's stricter limit, and
/// holding one of its organization's places until the permit is dropped.
pub async fn expensive(state: &AppState, principal: &Principal) -> Result<Running, ApiError> {
    state
        .limits
        .expensive(principal.organization_id, principal.token_id)
        .await
        .map_err(ApiError::RateLimited)
}

/// A JSON request body (`application/json`) deserialized into `T`. Syntax errors are 400;
/// wrong types, unknown fields and server-computed fields are 422 naming the field.
pub struct JsonBody<T>(pub T);

/// A type accepted as a request body.
pub trait RequestBody: DeserializeOwned {
    /// Fields the server computes: sending one is an error, not silently ignored.
    const READ_ONLY: &'static [&'static str] = &[];

    /// The body's own rule violations, so they are reported together with any read-only field
    /// sent (the handler validates again; this only completes the error list).
    fn violations(&self) -> Violations {
        Violations::default()
    }
}

/// Bodies up to this size past the limit are read and discarded, so the client, still sending,
/// receives the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 8 * BODY_LIMIT;

/// The request body, at most `BODY_LIMIT` bytes.
async fn read_limited(req: Request) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut chunks = req.into_body().into_data_stream();
    let (mut body, mut total) = (Vec::new(), 0usize);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        total += chunk.len();
        if total <= BODY_LIMIT {
            body.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT {
            break;
        }
    }
    if total > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(Bytes::from(body))
}

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_limited(req).await?;
        let mut value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
        let mut violations = Violations::default();
        if let Value::Object(map) = &mut value {
            for field in T::READ_ONLY {
                if map.remove(*field).is_some() {
                    violations.add(*field, "is computed by the server and cannot be set");
                }
            }
        }
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(body) if violations.is_empty() => Ok(JsonBody(body)),
            Ok(body) => {
                violations.merge(body.violations());
                Err(ApiError::Invalid(violations))
            }
            Err(e) => {
                let message = e.inner().to_string();
                let path = e.path().to_string();
                let field = if path == "." {
                    field_in_message(&message).unwrap_or(path)
                } else {
                    path
                };
                violations.add(field, message);
                Err(ApiError::Invalid(violations))
            }
        }
    }
}

/// serde names the field of "unknown field `x`" and "missing field `x`" only in its message.
fn field_in_message(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The `{id}` path segment as a UUID; anything else is 400 naming `id`.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        raw.parse()
            .map(PathId)
            .map_err(|_| ApiError::BadParam(ParamError::new("id", format!("{raw:?} is not a UUID"))))
    }
}

/// The query string as ordered pairs, repeats kept.
pub struct QueryParams(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        if let Some((name, _)) = pairs.iter().find(|(_, v)| v.contains('\0')) {
            return Err(ApiError::BadParam(ParamError::new(
                name,
                "must not contain NUL characters",
            )));
        }
        Ok(QueryParams(Params(pairs)))
    }
}

/// For routes that take no query parameters: any parameter answers 400 naming it, rather than
/// being ignored (and, on a cached read, becoming an entry of its own).
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let QueryParams(params) = QueryParams::from_request_parts(parts, state).await?;
        params.only(&[])?;
        Ok(NoQuery)
    }
}

/// `If-Match` as a precondition for a write.
pub struct IfMatch(pub Precondition);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(IfMatch(match entity_tags(&parts.headers, header::IF_MATCH) {
            None => Precondition::None,
            Some(tags) if tags.iter().any(|t| t == "*") => Precondition::Any,
            Some(tags) => Precondition::OneOf(tags),
        }))
    }
}

/// The entity tags listed in a conditional header, if present.
pub fn entity_tags(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

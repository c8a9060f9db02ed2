//! Every failure answers `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::list::ParamError;
use crate::domain::validation::{FieldError, Violations};
use crate::limits::Limited;
use crate::store::StoreError;

/// The problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Each failing field or parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid parameter {}: {}", .0.param, .0.message)]
    BadParam(ParamError),
    #[error("authentication required")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("validation failed")]
    Invalid(Violations),
    /// `connection_lost`: the database connection broke under the request, so a read may be
    /// retried on a fresh one.
    #[error("database unavailable")]
    Unavailable { connection_lost: bool },
    /// The database has no space left for a write.
    #[error("storage full")]
    StorageFull,
    /// The token's rate limit, or the organization's cap on expensive operations, is reached.
    #[error("rate limited")]
    RateLimited(Limited),
    #[error("request timed out")]
    Timeout,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            BadParam(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid query parameter",
            ),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            StorageFull => (StatusCode::SERVICE_UNAVAILABLE, "storage-full", "Storage full"),
            RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout", "Request timed out"),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    fn detail(&self) -> String {
        use ApiError::*;
        match self {
            BadRequest(detail) | Conflict(detail) => detail.clone(),
            BadParam(e) => format!("parameter `{}` {}", e.param, e.message),
            Unauthorized => "a valid bearer token is required".into(),
            Forbidden => "the token's role does not allow this".into(),
            NotFound => "no such resource".into(),
            MethodNotAllowed => "this route does not accept that method".into(),
            PreconditionFailed => "the resource changed since the given ETag (If-Match)".into(),
            PayloadTooLarge => "request bodies are limited to 1 MiB".into(),
            UnsupportedMediaType => "send the body as application/json".into(),
            Invalid(v) => {
                let fields: Vec<&str> = v.errors().iter().map(|e| e.field.as_str()).collect();
                format!("invalid fields: {}", fields.join(", "))
            }
            Unavailable { .. } => "the database cannot serve the request now; retry shortly".into(),
            StorageFull => "the database has no space left for this change; nothing was changed".into(),
            RateLimited(limited) => format!(
                "too many requests for this token or organization; retry in {} s",
                whole_seconds(limited.retry_after)
            ),
            Timeout => format!(
                "the request took longer than {} s",
                super::state::REQUEST_TIMEOUT.as_secs()
            ),
            // The cause goes to the log only: a 5xx never shows internals.
            Internal(_) => "the server failed to handle the request".into(),
        }
    }
}

/// Seconds as the rate-limit headers give them: rounded up, at least one.
fn whole_seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}

/// What answers when a problem document cannot be written.
const INTERNAL_PROBLEM: &[u8] = br#"{"type":"https://openrisk.dev/problems/internal","title":"Internal server error","status":500,"detail":"the server failed to handle the request"}"#;

pub fn problem_response(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: String,
    errors: Option<Vec<FieldError>>,
) -> Response {
    let problem = Problem {
        kind: format!("https://openrisk.dev/problems/{kind}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        errors,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_else(|e| {
        // Never an empty body: the fixed document of an internal error.
        tracing::error!(error = %e, "a problem document does not serialize");
        INTERNAL_PROBLEM.to_vec()
    });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body,
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let errors = match &self {
            ApiError::Invalid(v) => Some(v.errors().to_vec()),
            ApiError::BadParam(e) => Some(vec![FieldError {
                field: e.param.clone(),
                message: e.message.clone(),
            }]),
            _ => None,
        };
        let mut response = problem_response(status, kind, title, self.detail(), errors);
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable { connection_lost } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                if connection_lost {
                    response.extensions_mut().insert(ConnectionLost);
                }
            }
            ApiError::Timeout => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // Space comes back only when an operator frees some: not within a second.
            ApiError::StorageFull => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            ApiError::RateLimited(limited) => {
                let retry_after = whole_seconds(limited.retry_after);
                for (name, value) in [
                    (header::RETRY_AFTER.as_str(), retry_after),
                    ("ratelimit-limit", u64::from(limited.limit)),
                    ("ratelimit-remaining", 0),
                    ("ratelimit-reset", whole_seconds(limited.reset)),
                ] {
                    headers.insert(name, HeaderValue::from(value));
                }
            }
            _ => {}
        }
        response
    }
}

/// Marks a response that failed because its database connection broke: nothing was sent yet,
/// and the request may run again on another connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLost;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from_store(&e)
    }
}

impl ApiError {
    /// The answer to a store error (also for errors shared between requests by the cache).
    pub fn from_store(e: &StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(detail) => ApiError::Conflict(detail.clone()),
            StoreError::PreconditionFailed => ApiError::PreconditionFailed,
            StoreError::Invalid(v) => ApiError::Invalid(v.clone()),
            StoreError::Unavailable(_) | StoreError::Interrupted(_) => {
                tracing::warn!(cause = %e, "database unavailable");
                ApiError::Unavailable {
                    connection_lost: e.is_connection_lost(),
                }
            }
            StoreError::StorageFull(_) => {
                tracing::error!(cause = %e, "database storage full: writes are refused");
                ApiError::StorageFull
            }
            StoreError::Database(_) | StoreError::Corrupt(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<Violations> for ApiError {
    fn from(v: Violations) -> Self {
        ApiError::Invalid(v)
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::BadParam(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

//! Response helpers shared by the resource handlers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::extract::entity_tags;
use crate::domain::{Versioned, etag_of};

fn json_bytes(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// `200` with the representation and its `ETag`, or `304` when `If-None-Match` names it.
pub fn versioned(request: &HeaderMap, value: &impl Versioned) -> Response {
    let body = json_bytes(value);
    let etag = etag_of(value.version(), &body);
    let not_modified = entity_tags(request, header::IF_NONE_MATCH).is_some_and(|tags| {
        tags.iter()
            .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
    });
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

/// `201 Created` with `Location` and `ETag`.
pub fn created(location: String, value: &impl Versioned) -> Response {
    let mut response = versioned(&HeaderMap::new(), value);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `201 Created` for a resource without a version.
pub fn created_json(value: &impl Serialize) -> Response {
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json_bytes(value),
    )
        .into_response()
}

/// `200` with a JSON body.
pub fn json(value: &impl Serialize) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json_bytes(value),
    )
        .into_response()
}

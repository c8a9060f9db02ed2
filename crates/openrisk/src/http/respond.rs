//! Response helpers shared by the resource handlers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;
use super::extract::entity_tags;
use crate::domain::{Versioned, etag_of};

const JSON: (header::HeaderName, HeaderValue) =
    (header::CONTENT_TYPE, HeaderValue::from_static("application/json"));

/// `value` as JSON, handed to `respond`; a value that does not serialize answers a server error,
/// never an empty body.
fn with_json(value: &impl Serialize, respond: impl FnOnce(Vec<u8>) -> Response) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => respond(body),
        Err(e) => ApiError::Internal(format!("a response does not serialize: {e}")).into_response(),
    }
}

/// `200` with the representation and its `ETag`, or `304` when `If-None-Match` names it.
pub fn versioned(request: &HeaderMap, value: &impl Versioned) -> Response {
    with_json(value, |body| {
        let etag = etag_of(value.version(), &body);
        let not_modified = entity_tags(request, header::IF_NONE_MATCH).is_some_and(|tags| {
            tags.iter()
                .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
        });
        let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
        if not_modified {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
        }
        ([JSON, (header::ETAG, etag)], body).into_response()
    })
}

/// `201 Created` with `Location` and `ETag`.
pub fn created(location: String, value: &impl Versioned) -> Response {
    let mut response = versioned(&HeaderMap::new(), value);
    if response.status() != StatusCode::OK {
        return response;
    }
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `201 Created` for a resource without a version.
pub fn created_json(value: &impl Serialize) -> Response {
    with_json(value, |body| (StatusCode::CREATED, [JSON], body).into_response())
}

/// `200` with a JSON body.
pub fn json(value: &impl Serialize) -> Response {
    with_json(value, |body| ([JSON], body).into_response())
}

/// `response`, carrying `note` for the layers around the handler (what a page covers, what a
/// write did).
pub fn noting<T: Clone + Send + Sync + 'static>(mut response: Response, note: T) -> Response {
    response.extensions_mut().insert(note);
    response
}

/// `response`, carrying `note` if there is one.
pub fn noting_any<T: Clone + Send + Sync + 'static>(response: Response, note: Option<T>) -> Response {
    match note {
        Some(note) => noting(response, note),
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Unserializable;

    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no JSON form"))
        }
    }

    #[tokio::test]
    async fn a_value_that_does_not_serialize_answers_a_problem_never_an_empty_body() {
        for response in [json(&Unserializable), created_json(&Unserializable)] {
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["status"], 500);
        }
    }
}

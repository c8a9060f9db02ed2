//! The HTTP surface: routing, middleware, extractors and one module per resource.

mod admin;
mod assets;
mod authentication;
mod cache_layer;
mod client_address;
mod compression;
mod dashboard;
pub mod error;
pub mod extract;
mod health;
mod marketplace;
mod me;
mod metrics;
mod middleware;
mod mitigations;
mod openapi;
mod orgs;
mod reports;
mod request_metrics;
mod respond;
mod risks;
mod routes;
mod spool;
mod state;
mod summary_page;
mod tokens;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use client_address::ClientAddress;
pub use compression::CompressionSettings;
use error::{ApiError, ConnectionLost, problem_response};
pub use request_metrics::{DURATION_BUCKETS, InScope, SIZE_BUCKETS, SharedRecorder};
pub use state::{AppState, BODY_LIMIT, REQUEST_TIMEOUT};

use middleware::MiddlewareLayer;
use routes::{Policies, Routes};

/// Where the OpenAPI document and its reference page are served.
pub const OPENAPI: &str = "/api/openapi.json";
pub const DOCS: &str = "/api/docs";

const REQUEST_ID: &str = "x-request-id";

/// Every route, documented, with its cache policy: a route exists only through the OpenAPI router,
/// so the document cannot drift from the code.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi, Arc<Policies>) {
    let (router, policies) = Routes::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(admin::routes())
        .merge(me::routes())
        .merge(orgs::routes())
        .merge(users::routes())
        .merge(tokens::routes())
        .merge(risks::routes())
        .merge(mitigations::routes())
        .merge(assets::routes())
        .merge(dashboard::routes())
        .merge(marketplace::routes())
        .merge(reports::routes())
        .into_parts();
    let (router, mut document) = utoipa_axum::router::OpenApiRouter::with_openapi(openapi::base())
        .merge(router)
        .split_for_parts();
    openapi::complete(&mut document, &policies);
    (router, document, policies)
}

/// The service's router. Every request records its metrics into `recorder`; `request_metrics`
/// also times each one (see `request_metrics`).
pub fn router(state: AppState, recorder: SharedRecorder, request_metrics: bool) -> Router {
    let (routes, openapi, policies) = api();
    let openapi = Arc::new(openapi);
    let authenticator = Arc::new(authentication::Authenticator {
        store: state.store.clone(),
        cache: state.cache.clone(),
        limits: state.limits.clone(),
    });
    let compression = state.compression.layer();
    let cached = Arc::new(cache_layer::CacheLayer {
        cache: state.cache.clone(),
        policies,
        compression: state.compression,
        release: crate::domain::marketplace::Catalog::version(),
    });
    let request_id = HeaderName::from_static(REQUEST_ID);
    routes
        .route(
            OPENAPI,
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        // The reference page for people, from the bundled Swagger UI: no CDN.
        .merge(utoipa_swagger_ui::SwaggerUi::new(DOCS).config(utoipa_swagger_ui::Config::new([OPENAPI])))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(request_metrics::RecorderScopeLayer(recorder))
                // Outermost but for the recorder, so that time-outs, panics and cache hits are
                // timed too.
                .option_layer(request_metrics.then(request_metrics::RequestMetricsLayer::default))
                .map_request(keep_safe_request_id)
                .layer(SetRequestIdLayer::new(request_id.clone(), RandomRequestId))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
                }))
                .layer(axum::middleware::from_fn(time_limit))
                .layer(CatchPanicLayer::custom(|_| internal_error()))
                .map_response(|response: Response<_>| {
                    with_safety_headers(response.map(axum::body::Body::new))
                })
                .layer(compression)
                .layer(MiddlewareLayer(authenticator))
                .layer(MiddlewareLayer(cached))
                .layer(axum::middleware::from_fn(retry_reads)),
        )
}

/// What an HTML page (the summary, the API reference) may load and do: its own scripts and styles
/// (inline styles too: the summary's and Swagger UI's), no plug-ins, no framing by other sites.
const HTML_POLICY: HeaderValue = HeaderValue::from_static(
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
);

/// Every answer forbids type sniffing; an HTML page also gets its content security policy and may
/// not be framed. One pass over the headers, in the layer that gives the body its type.
fn with_safety_headers(mut response: Response) -> Response {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if html {
        headers.insert(header::CONTENT_SECURITY_POLICY, HTML_POLICY);
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// A client's request id is kept when it is safe to echo and to log: 1 to 64 letters, digits or
/// `-_.:`. Any other is replaced by one of ours.
fn keep_safe_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let safe = request.headers().get(REQUEST_ID).is_none_or(|id| {
        let id = id.as_bytes();
        (1..=64).contains(&id.len())
            && id
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    });
    if !safe {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// Request ids: random (version 4) UUIDs drawn from the thread's generator rather than from the
/// kernel, which costs a system call per request.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        axum::http::HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .ok()
            .map(RequestId::new)
    }
}

async fn time_limit(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// A read whose database connection broke runs once more, on connections checked before use: the
/// client has received nothing yet, and reads are safe to repeat. (Writes are not: the server may have
/// committed before the connection broke.)
async fn retry_reads(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let again = parts.clone();
    let response = next.clone().run(Request::from_parts(parts, body)).await;
    if response.extensions().get::<ConnectionLost>().is_none() {
        return response;
    }
    tracing::info!("database connection lost during a read: retrying once");
    // Reads carry no body.
    let retry = next.run(Request::from_parts(again, axum::body::Body::empty()));
    crate::store::pool::checking_connections(retry).await
}

fn internal_error() -> Response {
    problem_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal server error",
        "the server failed to handle the request".into(),
        None,
    )
    .into_response()
}

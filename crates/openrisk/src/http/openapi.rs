//! The OpenAPI document: the routes' own annotations, completed with what the shared layers and
//! extractors answer on every route (problem responses, cache headers, `Retry-After`), so that
//! the document states every status, content type and header a client can meet.

use axum::http::StatusCode;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};

use super::routes::Policies;

/// An operation's responses, by status.
type ResponseMap = std::collections::BTreeMap<String, RefOr<Response>>;

/// The media type of every error answer (RFC 9457).
pub const PROBLEM: &str = "application/problem+json";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "OpenRisk API", version = "1", description = "Multi-tenant risk register. \
        Errors are `application/problem+json` documents (RFC 9457) naming the failing fields."),
    modifiers(&BearerAuth),
    // Referenced by query parameters, which do not register their schemas.
    components(schemas(
        crate::domain::report::ExportFormat,
        crate::domain::report::SummaryFormat,
        crate::domain::list::Sort
    )),
    tags(
        (name = "risks", description = "The risk register"),
        (name = "mitigations", description = "Actions that reduce a risk"),
        (name = "assets", description = "What risks threaten"),
        (name = "dashboard", description = "Register-wide figures"),
        (name = "marketplace", description = "Connector catalog and installations"),
        (name = "reports", description = "Register export and executive summary"),
        (name = "auth", description = "Organizations, users and tokens"),
        (name = "operations", description = "Health, metrics and documentation"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The base document, before the routes are merged in.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Completes every operation of `openapi` (see the module's comment).
pub fn complete(openapi: &mut OpenApi, policies: &Policies) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let cached = policies.get(path).is_some_and(|p| p.cached_namespace().is_some());
        let operations = [
            (&mut item.get, cached),
            (&mut item.post, false),
            (&mut item.put, false),
            (&mut item.patch, false),
            (&mut item.delete, false),
        ];
        for (operation, cached) in operations {
            if let Some(operation) = operation {
                forbid_nul_in_queries(operation);
                let route = Route::of(path, operation, cached);
                complete_responses(&mut operation.responses.responses, &route);
            }
        }
    }
}

/// What an operation takes, which decides what the shared layers and extractors may answer.
struct Route {
    /// Under `/api/`: every such route refuses query parameters it does not know.
    api: bool,
    by_path: bool,
    by_query: bool,
    has_body: bool,
    if_match: bool,
    secured: bool,
    /// A GET served through the cache.
    cached: bool,
}

impl Route {
    fn of(path: &str, operation: &Operation, cached: bool) -> Route {
        let parameters = operation.parameters.as_deref().unwrap_or_default();
        let has = |wanted: &dyn Fn(&utoipa::openapi::path::Parameter) -> bool| {
            parameters.iter().any(|p| matches!(p, RefOr::T(p) if wanted(p)))
        };
        Route {
            api: path.starts_with("/api/"),
            by_path: has(&|p| p.parameter_in == ParameterIn::Path),
            by_query: has(&|p| p.parameter_in == ParameterIn::Query),
            has_body: operation.request_body.is_some(),
            if_match: has(&|p| p.name.eq_ignore_ascii_case("if-match")),
            secured: operation.security.as_ref().is_some_and(|s| !s.is_empty()),
            cached,
        }
    }
}

/// A problem answer the shared layers give: its status, description, and the routes it applies to.
type SharedError = (StatusCode, &'static str, fn(&Route) -> bool);

/// The problem answers every route may give, and when.
const SHARED_ERRORS: [SharedError; 11] = [
    (
        StatusCode::BAD_REQUEST,
        "A malformed or unknown parameter, or a malformed header or body",
        |r| r.api || r.by_path || r.by_query || r.has_body || r.if_match,
    ),
    (StatusCode::UNAUTHORIZED, "No valid bearer token", |r| r.secured),
    (
        StatusCode::FORBIDDEN,
        "The token's role does not allow this",
        |r| r.secured,
    ),
    (
        StatusCode::NOT_FOUND,
        "No such resource in the caller's organization",
        |r| r.by_path,
    ),
    (
        StatusCode::PRECONDITION_FAILED,
        "`If-Match` names another version: fetch the resource again",
        |r| r.if_match,
    ),
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "The body is larger than 1 MiB",
        |r| r.has_body,
    ),
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "The body is not `application/json`",
        |r| r.has_body,
    ),
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        "The body breaks a rule; `errors` names each field",
        |r| r.has_body,
    ),
    (
        StatusCode::TOO_MANY_REQUESTS,
        "The token's rate limit, or its organization's cap on exports and summaries, is reached",
        |r| r.secured,
    ),
    (StatusCode::INTERNAL_SERVER_ERROR, "An unexpected failure", |_| {
        true
    }),
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The database is unavailable or busy, or the request ran out of time",
        |_| true,
    ),
];

/// The key of `status` in a document's responses.
fn key(status: StatusCode) -> String {
    status.as_u16().to_string()
}

fn complete_responses(responses: &mut ResponseMap, route: &Route) {
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let status = status.parse::<StatusCode>().ok();
        // A description is required; the status's reason phrase stands in for a missing one.
        if response.description.is_empty() {
            let reason = status.and_then(|s| s.canonical_reason()).unwrap_or("Answer");
            response.description = reason.to_owned();
        }
        // Error answers the route declares are problem documents.
        if status.is_some_and(|s| s.is_client_error() || s.is_server_error()) {
            *response = problem(&response.description);
        }
    }
    for (status, description, applies) in SHARED_ERRORS {
        if applies(route) {
            responses
                .entry(key(status))
                .or_insert_with(|| RefOr::T(problem(description)));
        }
    }
    add_headers(responses, route);
}

/// The headers the shared layers add: `Retry-After` and the rate-limit headers, entity tags, and
/// the cache's status on cached reads (with their `304`).
fn add_headers(responses: &mut ResponseMap, route: &Route) {
    let retry = ("Retry-After", "Seconds to wait before trying again");
    if let Some(RefOr::T(unavailable)) = responses.get_mut(&key(StatusCode::SERVICE_UNAVAILABLE)) {
        unavailable
            .headers
            .insert(retry.0.into(), header(Type::Integer, retry.1));
    }
    if let Some(RefOr::T(limited)) = responses.get_mut(&key(StatusCode::TOO_MANY_REQUESTS)) {
        for (name, description) in [
            retry,
            ("RateLimit-Limit", "The limit's burst, or the concurrency cap"),
            ("RateLimit-Remaining", "Requests left now: 0"),
            (
                "RateLimit-Reset",
                "Seconds until the whole burst is available again",
            ),
        ] {
            limited
                .headers
                .insert(name.into(), header(Type::Integer, description));
        }
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let status = status.parse::<StatusCode>().ok();
        if matches!(status, Some(StatusCode::OK | StatusCode::CREATED)) {
            response.headers.entry("ETag".into()).or_insert_with(|| {
                header(
                    Type::String,
                    "The representation's entity tag, for `If-None-Match` and `If-Match`",
                )
            });
        }
        if status == Some(StatusCode::OK) && route.cached {
            response.headers.insert(
                "X-Cache".into(),
                header(Type::String, "`HIT` (in-process or Redis), `MISS` or `BYPASS`"),
            );
            response.headers.insert(
                "Cache-Status".into(),
                header(
                    Type::String,
                    "RFC 9211: `OpenRisk; hit` or `OpenRisk; fwd=miss|bypass|...`",
                ),
            );
        }
    }
    if route.cached {
        let not_modified = Response::new("`If-None-Match` names the current entity tag");
        responses
            .entry(key(StatusCode::NOT_MODIFIED))
            .or_insert_with(|| RefOr::T(not_modified));
    }
}

fn forbid_nul_in_queries(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.parameter_in == ParameterIn::Query
            && let Some(schema) = &mut parameter.schema
        {
            forbid_nul(schema);
        }
    }
}

/// Free text in a query parameter (or in each value of a repeated one) may hold anything but NUL,
/// which every query is refused for (PostgreSQL cannot store it).
fn forbid_nul(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(text))
            if text.schema_type == SchemaType::Type(Type::String)
                && text.enum_values.is_none()
                && text.format.is_none()
                && text.pattern.is_none() =>
        {
            text.pattern = Some(r"^[^\u0000]*$".to_owned());
        }
        RefOr::T(Schema::Array(list)) => {
            if let ArrayItems::RefOrSchema(items) = &mut list.items {
                forbid_nul(items);
            }
        }
        _ => {}
    }
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn header(kind: Type, description: &str) -> RefOr<utoipa::openapi::header::Header> {
    RefOr::T(
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(kind)))
            .description(Some(description))
            .build(),
    )
}

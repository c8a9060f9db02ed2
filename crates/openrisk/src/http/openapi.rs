//! The OpenAPI document: the routes' own annotations, completed with what the shared layers and
//! extractors answer on every route (problem responses, cache headers, `Retry-After`), so that
//! the document states every status, content type and header a client can meet.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};

use super::routes::Policies;

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
        let operations = [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                complete_operation(policies, path, method, operation);
            }
        }
    }
}

fn complete_operation(policies: &Policies, path: &str, method: &str, operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.parameter_in == ParameterIn::Query
            && let Some(schema) = &mut parameter.schema
        {
            forbid_nul(schema);
        }
    }
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has_in = |place: ParameterIn| {
        parameters
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let (by_path, by_query) = (has_in(ParameterIn::Path), has_in(ParameterIn::Query));
    let if_match = parameters
        .iter()
        .any(|p| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case("if-match")));
    let has_body = operation.request_body.is_some();
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let cached = method == "GET" && policies.get(path).is_some_and(|p| p.cached_namespace().is_some());

    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        // A description is required; the status's reason phrase stands in for a missing one.
        if response.description.is_empty() {
            response.description = status
                .parse::<axum::http::StatusCode>()
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Answer")
                .to_owned();
        }
        // Error answers the route declares are problem documents.
        if status.as_str() >= "400" {
            *response = problem(&response.description);
        }
    }
    let mut add = |status: &str, description: &str, applies: bool| {
        if applies {
            responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::T(problem(description)));
        }
    };
    add(
        "400",
        "A malformed or unknown parameter, or a malformed header or body",
        // Every API route refuses query parameters it does not know.
        path.starts_with("/api/") || by_path || by_query || has_body || if_match,
    );
    add("401", "No valid bearer token", secured);
    add("403", "The token's role does not allow this", secured);
    add("404", "No such resource in the caller's organization", by_path);
    add(
        "412",
        "`If-Match` names another version: fetch the resource again",
        if_match,
    );
    add("413", "The body is larger than 1 MiB", has_body);
    add("415", "The body is not `application/json`", has_body);
    add(
        "422",
        "The body breaks a rule; `errors` names each field",
        has_body,
    );
    add(
        "429",
        "The token's rate limit, or its organization's cap on exports and summaries, is reached",
        secured,
    );
    add("500", "An unexpected failure", true);
    add(
        "503",
        "The database is unavailable or busy, or the request ran out of time",
        true,
    );

    if let Some(RefOr::T(unavailable)) = responses.get_mut("503") {
        unavailable.headers.insert(
            "Retry-After".into(),
            header(Type::Integer, "Seconds to wait before trying again"),
        );
    }
    if let Some(RefOr::T(limited)) = responses.get_mut("429") {
        for (name, description) in [
            ("Retry-After", "Seconds to wait before trying again"),
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
        if status == "200" || status == "201" {
            response.headers.entry("ETag".into()).or_insert_with(|| {
                header(
                    Type::String,
                    "The representation's entity tag, for `If-None-Match` and `If-Match`",
                )
            });
        }
        if status == "200" && cached {
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
    if cached {
        responses
            .entry("304".into())
            .or_insert_with(|| RefOr::T(Response::new("`If-None-Match` names the current entity tag")));
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

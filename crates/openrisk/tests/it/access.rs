//! Who may do what, past the roles: the service-wide reports are the system token's, a system
//! token is revoked only by one, a token lives no longer than the token that made it and a user
//! holds a bounded number, and guessing tokens costs the database nothing.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{self, Backend, TestApp, assert_problem, spawn_app, spawn_app_with};

/// The caller's own token id, found by name among the organization's tokens.
async fn token_id(app: &TestApp, admin: &str, name: &str) -> String {
    let (status, page) = app.get("/api/v1/tokens?limit=200", admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no token named {name} in {page}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn service_wide_reports_are_the_system_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    // An admin of the default organization, and of another one.
    let admin = app.token_with_role(&app.token, "admin").await;
    let other = app.create_org("acme").await;
    for path in ["/api/v1/admin/pool", "/api/v1/admin/cache"] {
        assert_eq!(app.get(path, &app.token).await.0, StatusCode::OK, "{path}");
        for token in [&admin, &other] {
            let (status, problem) = app.get(path, token).await;
            assert_problem(status, &problem, StatusCode::FORBIDDEN, &[]);
        }
    }
    // Its own cache entries an organization's admin still invalidates.
    let (status, _) = app
        .post("/api/v1/admin/cache/invalidate", &other, json!({"all": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn only_a_system_token_revokes_a_system_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token_with_role(&app.token, "admin").await;
    let system = token_id(&app, &app.token, "bootstrap").await;
    let (status, problem) = app.delete(&format!("/api/v1/tokens/{system}"), &admin).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, &[]);
    assert_eq!(app.get("/api/v1/risks", &app.token).await.0, StatusCode::OK);
    // An admin revokes an ordinary token; the system token revokes any.
    let analyst = app.token_with_role(&app.token, "analyst").await;
    let analyst_id = token_id(&app, &admin, "analyst").await;
    assert_eq!(
        app.delete(&format!("/api/v1/tokens/{analyst_id}"), &admin)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/risks", &analyst).await.0,
        StatusCode::UNAUTHORIZED
    );
    let admin_id = token_id(&app, &app.token, "admin").await;
    assert_eq!(
        app.delete(&format!("/api/v1/tokens/{admin_id}"), &app.token)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}

async fn a_token_lives_no_longer_than_its_maker_and_a_user_holds_a_bounded_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, me) = app.get("/api/v1/me", &app.token).await;
    let user_id = me["user"]["id"].clone();
    let expires = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let (status, parent) = app
        .post(
            "/api/v1/tokens",
            &app.token,
            json!({"name": "parent", "user_id": user_id, "expires_at": expires}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{parent}");
    let parent_expiry = parent["expires_at"].as_str().unwrap().to_owned();
    let parent = parent["token"].as_str().unwrap();
    // Asked for no expiry, or a later one: the child expires with its parent.
    let later = (Utc::now() + Duration::days(30)).to_rfc3339();
    for body in [
        json!({"name": "child"}),
        json!({"name": "child", "expires_at": later}),
    ] {
        let (status, child) = app.post("/api/v1/tokens", parent, body).await;
        assert_eq!(status, StatusCode::CREATED, "{child}");
        assert_eq!(child["expires_at"], parent_expiry.as_str());
    }
    // An earlier expiry is kept.
    let sooner = (Utc::now() + Duration::minutes(5)).to_rfc3339();
    let (_, child) = app
        .post(
            "/api/v1/tokens",
            parent,
            json!({"name": "child", "expires_at": sooner}),
        )
        .await;
    assert_ne!(child["expires_at"], parent_expiry.as_str());

    // The bootstrap user now holds 5 live tokens; up to 100 are issued, then 409.
    let mut issued = 5;
    loop {
        let (status, body) = app
            .post(
                "/api/v1/tokens",
                &app.token,
                json!({"name": format!("t{issued}")}),
            )
            .await;
        if status != StatusCode::CREATED {
            assert_problem(status, &body, StatusCode::CONFLICT, &[]);
            break;
        }
        issued += 1;
        assert!(issued <= 100, "more than 100 live tokens issued");
    }
    assert_eq!(issued, 100);
    // Revoking one makes room for one.
    let id = token_id(&app, &app.token, "t5").await;
    app.delete(&format!("/api/v1/tokens/{id}"), &app.token).await;
    let (status, _) = app
        .post("/api/v1/tokens", &app.token, json!({"name": "again"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn guessing_tokens_costs_one_lookup_and_then_nothing(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("RATE_LIMIT_FAILED_AUTH_PER_MINUTE", "60"),
            ("RATE_LIMIT_FAILED_AUTH_BURST", "10"),
        ],
    )
    .await;
    let lookups = || async {
        common::sample_sum(
            &app.metrics_text().await,
            "db_query_duration_seconds_count",
            &[("operation", "authenticate")],
        )
    };
    let before = lookups().await;
    // One unknown token, again and again: looked up once.
    for _ in 0..10 {
        assert_eq!(
            app.get("/api/v1/risks", "ort_unknown").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(lookups().await - before, 1.0);
    // Past ten failures, the address is refused before any lookup, even with a new guess.
    let response = app
        .request(Method::GET, "/api/v1/risks", "ort_another_guess")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(lookups().await - before, 1.0);
}

/// Behind a trusted proxy, failures are counted per client it forwards for: one client guessing
/// does not lock the others out.
async fn failures_are_counted_per_client_behind_a_trusted_proxy(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("RATE_LIMIT_FAILED_AUTH_PER_MINUTE", "60"),
            ("RATE_LIMIT_FAILED_AUTH_BURST", "5"),
            ("OPENRISK_TRUSTED_PROXIES", "127.0.0.0/8"),
        ],
    )
    .await;
    let from = |client: &'static str, token: String| {
        app.request(Method::GET, "/api/v1/risks", &token)
            .header("x-forwarded-for", client)
            .send()
    };
    for n in 0..5 {
        let guess = format!("ort_guess-{n}");
        assert_eq!(
            from("198.51.100.1", guess).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = from("198.51.100.1", "ort_guess-again".into()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not held back, with or without a valid token.
    let other = from("198.51.100.2", "ort_guess-other".into()).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    let valid = from("198.51.100.2", app.token.clone()).await.unwrap();
    assert_eq!(valid.status(), StatusCode::OK);
}

on_each_backend!(
    failures_are_counted_per_client_behind_a_trusted_proxy,
    service_wide_reports_are_the_system_tokens,
    only_a_system_token_revokes_a_system_token,
    a_token_lives_no_longer_than_its_maker_and_a_user_holds_a_bounded_number,
    guessing_tokens_costs_one_lookup_and_then_nothing,
);

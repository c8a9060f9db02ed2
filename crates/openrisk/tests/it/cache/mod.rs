//! The response cache against real Redis: hits, freshness after every kind of write, isolation
//! between organizations and roles, single flight, and token revocation.

use std::collections::HashMap;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, Backend, TestApp};

mod fairness;
mod isolation;
mod properties;
mod slow_redis;

/// An app with both cache tiers (Redis at `redis`), plus `extra` settings.
async fn cached_app(backend: Backend, redis: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![("REDIS_URL", redis)];
    settings.extend_from_slice(extra);
    common::spawn_app_with(backend, &settings).await
}

/// A GET as the cache serves it (or, with `fresh`, bypassing it): status, headers, raw body.
async fn fetch(app: &TestApp, path: &str, token: &str, fresh: bool) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = app.request(Method::GET, path, token);
    if fresh {
        request = request.header("cache-control", "no-cache");
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn x_cache(headers: &HeaderMap) -> &str {
    headers.get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Some data in every namespace; returns the paths of every cacheable GET over it.
async fn populate(app: &TestApp, token: &str) -> Vec<String> {
    let (_, asset) = app
        .post(
            "/api/v1/assets",
            token,
            json!({"name": "Ledger", "kind": "application", "criticality": "high"}),
        )
        .await;
    let risk = app
        .create_risk(
            token,
            json!({"title": "Fraud", "likelihood": 4, "impact": 5, "asset_ids": [asset["id"]]}),
        )
        .await;
    let risk_id = risk["id"].as_str().unwrap();
    let (status, mitigation) = app
        .post(
            &format!("/api/v1/risks/{risk_id}/mitigations"),
            token,
            json!({"title": "Dual control", "due_date": "2020-01-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mitigation}");
    let (status, installation) = app
        .post(
            "/api/v1/marketplace/installations",
            token,
            json!({"connector": "slack", "config": {"webhook_url": "https://hooks.slack.com/services/T0/B0/X", "channel": "#risk"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{installation}");
    vec![
        "/api/v1/risks".into(),
        "/api/v1/risks?sort=title&status=open".into(),
        "/api/v1/risks?q=fraud".into(),
        format!("/api/v1/risks/{risk_id}"),
        format!("/api/v1/risks/{risk_id}/history"),
        format!("/api/v1/risks/{risk_id}/mitigations"),
        format!("/api/v1/mitigations/{}", mitigation["id"].as_str().unwrap()),
        "/api/v1/assets".into(),
        format!("/api/v1/assets/{}", asset["id"].as_str().unwrap()),
        "/api/v1/dashboard/stats".into(),
        "/api/v1/dashboard/matrix".into(),
        "/api/v1/dashboard/timeline".into(),
        "/api/v1/dashboard/top-risks".into(),
        "/api/v1/marketplace/connectors".into(),
        "/api/v1/marketplace/connectors/slack".into(),
        "/api/v1/marketplace/installations".into(),
        format!(
            "/api/v1/marketplace/installations/{}",
            installation["id"].as_str().unwrap()
        ),
        "/api/v1/reports/summary".into(),
        "/api/v1/reports/summary?format=html".into(),
    ]
}

/// The body without the moment it was generated (the summary's), which differs between two
/// computations of the same data.
fn comparable(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut object)) => {
            object.remove("generated_at");
            Value::Object(object).to_string()
        }
        _ => match text.find(" · generated ") {
            Some(at) => format!(
                "{}{}",
                &text[..at],
                &text[at + " · generated 2026-01-01 00:00 UTC".len()..]
            ),
            None => text,
        },
    }
}

/// Every path answers from the cache exactly what it answers bypassing it.
async fn assert_fresh(app: &TestApp, token: &str, paths: &[String], after: &str) {
    for path in paths {
        let (status, headers, cached) = fetch(app, path, token, false).await;
        let (fresh_status, _, fresh) = fetch(app, path, token, true).await;
        assert_eq!(status, fresh_status, "{path} after {after}");
        assert_eq!(
            comparable(&cached),
            comparable(&fresh),
            "{path} after {after}: served {} stale",
            x_cache(&headers)
        );
    }
}

/// Whether the answer was computed for this request: by the database, or from the register.
fn computed(headers: &HeaderMap) -> bool {
    x_cache(headers) == "MISS" || headers["cache-status"] == "OpenRisk; hit; detail=register"
}

async fn second_get_is_a_byte_identical_hit(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[]).await;
    let paths = populate(&app, &app.token).await;
    for path in &paths {
        let (status, first_headers, first) = fetch(&app, path, &app.token, false).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(computed(&first_headers), "{path}: {first_headers:?}");
        let (_, headers, second) = fetch(&app, path, &app.token, false).await;
        assert_eq!(x_cache(&headers), "HIT", "{path}");
        assert_eq!(first, second, "{path}");
        assert_eq!(headers["cache-status"], "OpenRisk; hit; detail=l1");
        assert_eq!(headers["content-type"], first_headers["content-type"]);
        assert_eq!(headers["etag"], first_headers["etag"]);
        // The catalog is public (one document for every tenant); everything else private.
        let (cache_control, vary) = match path.starts_with("/api/v1/marketplace/connectors") {
            true => ("public, max-age=86400", "Accept-Encoding"),
            false => ("private, no-cache", "Authorization, Accept-Encoding"),
        };
        assert_eq!(headers["cache-control"], cache_control, "{path}");
        assert_eq!(headers["vary"], vary, "{path}");
        // The ETag revalidates from the cache.
        let response = app
            .request(Method::GET, path, &app.token)
            .header("if-none-match", headers["etag"].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(x_cache(response.headers()), "HIT");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    // Order of parameters does not split the cache.
    let (_, headers, _) = fetch(&app, "/api/v1/risks?status=open&sort=title", &app.token, false).await;
    assert_eq!(x_cache(&headers), "HIT");
    // Nor do parameters at their default: the default page's entry answers.
    fetch(&app, "/api/v1/risks", &app.token, false).await;
    let (_, headers, _) = fetch(&app, "/api/v1/risks?limit=50&sort=-score", &app.token, false).await;
    assert_eq!(x_cache(&headers), "HIT");
    // A client's no-cache bypasses and refreshes.
    let (_, headers, _) = fetch(&app, "/api/v1/risks", &app.token, true).await;
    assert_eq!(x_cache(&headers), "BYPASS");
    assert_eq!(headers["cache-status"], "OpenRisk; fwd=request; stored");
    // Exports are never cached.
    let response = app
        .request(
            Method::GET,
            "/api/v1/reports/risk-register?format=csv",
            &app.token,
        )
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-cache").is_none());
}

async fn l2_serves_when_l1_is_off(backend: Backend, redis: &str) {
    // Registers off too: their answers stay out of Redis.
    let off = [("CACHE_L1_MAX_BYTES", "0"), ("CACHE_REGISTER_MAX_ROWS", "0")];
    let app = cached_app(backend, redis, &off).await;
    let paths = populate(&app, &app.token).await;
    for path in &paths {
        let (_, headers, first) = fetch(&app, path, &app.token, false).await;
        assert_eq!(x_cache(&headers), "MISS", "{path}");
        // The L2 write happens in the background.
        let mut served = None;
        for _ in 0..50 {
            let (_, headers, body) = fetch(&app, path, &app.token, false).await;
            if x_cache(&headers) == "HIT" {
                served = Some((headers, body));
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (headers, body) = served.unwrap_or_else(|| panic!("{path} never served from L2"));
        assert_eq!(headers["cache-status"], "OpenRisk; hit; detail=l2");
        // A read before the first entry reached Redis may have stored another computation of it.
        assert_eq!(comparable(&body), comparable(&first), "{path}");
    }
}

async fn disabled_cache_bypasses(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[("CACHE_ENABLED", "false")]).await;
    for _ in 0..2 {
        let (status, headers, _) = fetch(&app, "/api/v1/risks", &app.token, false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(x_cache(&headers), "BYPASS");
        assert_eq!(headers["cache-status"], "OpenRisk; fwd=bypass");
    }
}

/// Each kind of write, then every cached GET must answer what the database says.
async fn every_write_refreshes_what_depends_on_it(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[]).await;
    let paths = populate(&app, &app.token).await;
    let risk_path = &paths[3];
    let mitigation_path = &paths[6];
    let asset_path = &paths[8];
    let installation_path = &paths[16];
    let writes: Vec<(&str, Method, String, Option<Value>)> = vec![
        (
            "risk update",
            Method::PATCH,
            risk_path.clone(),
            Some(json!({"title": "Fraud ring", "status": "in_progress"})),
        ),
        (
            "mitigation update",
            Method::PATCH,
            mitigation_path.clone(),
            Some(json!({"status": "done", "progress": 100})),
        ),
        (
            "mitigation creation",
            Method::POST,
            format!("{risk_path}/mitigations"),
            Some(json!({"title": "Audit trail"})),
        ),
        (
            "asset update",
            Method::PATCH,
            asset_path.clone(),
            Some(json!({"name": "General ledger"})),
        ),
        (
            "installation update",
            Method::PATCH,
            installation_path.clone(),
            Some(json!({"enabled": false})),
        ),
        (
            "risk creation",
            Method::POST,
            "/api/v1/risks".into(),
            Some(json!({"title": "Outage", "likelihood": 5, "impact": 5})),
        ),
        ("asset deletion", Method::DELETE, asset_path.clone(), None),
        (
            "mitigation deletion",
            Method::DELETE,
            mitigation_path.clone(),
            None,
        ),
        (
            "installation deletion",
            Method::DELETE,
            installation_path.clone(),
            None,
        ),
        ("risk deletion", Method::DELETE, risk_path.clone(), None),
    ];
    for (name, method, path, body) in writes {
        for path in &paths {
            fetch(&app, path, &app.token, false).await;
        }
        let (status, answer) = app.call(method, &path, &app.token, body).await;
        assert!(status.is_success(), "{name}: {status} {answer}");
        assert_fresh(&app, &app.token, &paths, name).await;
    }
}

async fn stampede_runs_the_handler_once(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[]).await;
    populate(&app, &app.token).await;
    // Computed by the database, never from the register in memory.
    let path = "/api/v1/dashboard/timeline";
    let acquires = || async {
        let (_, report) = app.get("/api/v1/admin/pool", &app.token).await;
        report["pool"]["acquires"].as_u64().unwrap()
    };
    // The token is looked up and cached; what one uncached request costs is measured.
    fetch(&app, path, &app.token, false).await;
    let before = acquires().await;
    fetch(&app, path, &app.token, true).await;
    let one_request = acquires().await - before;
    assert!(one_request >= 1);

    let (status, _) = app
        .post(
            "/api/v1/admin/cache/invalidate",
            &app.token,
            json!({"namespaces": ["dashboard"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let before = acquires().await;
    let requests: Vec<_> = (0..500)
        .map(|_| {
            let request = app.request(Method::GET, path, &app.token).send();
            tokio::spawn(request)
        })
        .collect();
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut bodies = std::collections::HashSet::new();
    for request in requests {
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        *outcomes
            .entry(x_cache(response.headers()).to_owned())
            .or_default() += 1;
        bodies.insert(response.bytes().await.unwrap());
    }
    assert_eq!(acquires().await - before, one_request, "{outcomes:?}");
    assert_eq!(outcomes.get("MISS"), Some(&1), "{outcomes:?}");
    assert_eq!(bodies.len(), 1);
}

async fn revoked_tokens_fail_on_the_next_request(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[]).await;
    let email = format!("analyst-{}@example.com", uuid::Uuid::new_v4().simple());
    let (_, user) = app
        .post(
            "/api/v1/users",
            &app.token,
            json!({"email": email, "name": "A", "role": "analyst"}),
        )
        .await;
    let (_, token) = app
        .post(
            "/api/v1/tokens",
            &app.token,
            json!({"user_id": user["id"], "name": "short-lived"}),
        )
        .await;
    let secret = token["token"].as_str().unwrap();
    for _ in 0..3 {
        let (status, _, _) = fetch(&app, "/api/v1/risks", secret, false).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app
        .delete(
            &format!("/api/v1/tokens/{}", token["id"].as_str().unwrap()),
            &app.token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = fetch(&app, "/api/v1/risks", secret, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("/api/v1/me", secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn admin_report_and_invalidation(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[("CACHE_TTL_DASHBOARD", "42")]).await;
    fetch(&app, "/api/v1/risks", &app.token, false).await;
    fetch(&app, "/api/v1/risks", &app.token, false).await;
    let (status, report) = app.get("/api/v1/admin/cache", &app.token).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["redis"], "up");
    let namespace = |name: &str| {
        report["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["namespace"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(namespace("dashboard")["ttl_seconds"], 42);
    assert_eq!(namespace("marketplace")["ttl_seconds"], 900);
    assert!(namespace("risks")["l1"]["hits"].as_u64().unwrap() >= 1);
    assert!(report["l1"]["entries"].as_u64().unwrap() >= 1);

    let generation = namespace("risks")["generation"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post("/api/v1/admin/cache/invalidate", &app.token, json!({"all": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, headers, _) = fetch(&app, "/api/v1/risks", &app.token, false).await;
    assert_eq!(x_cache(&headers), "MISS");
    let (_, report) = app.get("/api/v1/admin/cache", &app.token).await;
    let risks = report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == "risks")
        .unwrap();
    let renewed = risks["generation"].as_str().unwrap();
    assert_ne!(renewed, generation, "the invalidation replaced the generation");

    let (status, problem) = app
        .post(
            "/api/v1/admin/cache/invalidate",
            &app.token,
            json!({"namespaces": ["nope"]}),
        )
        .await;
    assert!(status.is_client_error(), "{problem}");
    let (status, _) = app
        .post("/api/v1/admin/cache/invalidate", &app.token, json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let viewer = app.token_with_role(&app.token, "viewer").await;
    let (status, _) = app.get("/api/v1/admin/cache", &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, ready) = app.get("/health/ready", &app.token).await;
    assert_eq!(ready["cache"]["redis"], "up");
}

/// Past its TTL an entry is served once more, stale, while a background request refreshes it.
async fn expired_entries_are_refreshed_in_the_background(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[("CACHE_TTL_RISKS", "1")]).await;
    app.create_risk(
        &app.token,
        json!({"title": "Before", "likelihood": 1, "impact": 1}),
    )
    .await;
    let (_, headers, first) = fetch(&app, "/api/v1/risks", &app.token, false).await;
    assert_eq!(x_cache(&headers), "MISS");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (_, headers, stale) = fetch(&app, "/api/v1/risks", &app.token, false).await;
    assert_eq!(headers["cache-status"], "OpenRisk; hit; detail=l1-stale");
    assert_eq!(stale, first);
    // The refresh lands shortly after: the entry is fresh again.
    let mut refreshed = false;
    for _ in 0..50 {
        let (_, headers, _) = fetch(&app, "/api/v1/risks", &app.token, false).await;
        if headers["cache-status"] == "OpenRisk; hit; detail=l1" {
            refreshed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refreshed, "the stale entry was not refreshed");
}

on_each_backend!(redis:
    expired_entries_are_refreshed_in_the_background,
    second_get_is_a_byte_identical_hit,
    l2_serves_when_l1_is_off,
    disabled_cache_bypasses,
    every_write_refreshes_what_depends_on_it,
    stampede_runs_the_handler_once,
    revoked_tokens_fail_on_the_next_request,
    admin_report_and_invalidation,
);

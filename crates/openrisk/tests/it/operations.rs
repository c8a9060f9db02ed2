//! What operators use, over real HTTP: health, the OpenAPI document, request ids and metrics.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{self, Backend, id, spawn_app};

on_each_backend!(
    health_and_openapi,
    request_ids,
    requests_and_process_are_measured,
    pages_are_neither_framed_nor_sniffed,
    metrics_can_require_a_token,
);

async fn health_and_openapi(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.client.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, ready) = common::read(app.client.get(app.url("/health/ready")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["database"]["status"], "up");

    let (status, doc) =
        common::read(app.client.get(app.url("/api/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/api/v1/me", vec!["get"]),
        ("/api/v1/orgs", vec!["post"]),
        ("/api/v1/users", vec!["get", "post"]),
        ("/api/v1/tokens", vec!["get", "post"]),
        ("/api/v1/tokens/{id}", vec!["delete"]),
        ("/api/v1/risks", vec!["get", "post"]),
        ("/api/v1/risks/{id}", vec!["get", "patch", "delete"]),
        ("/api/v1/risks/{id}/history", vec!["get"]),
        ("/api/v1/risks/{id}/mitigations", vec!["get", "post"]),
        ("/api/v1/mitigations/{id}", vec!["get", "patch", "delete"]),
        ("/api/v1/assets", vec!["get", "post"]),
        ("/api/v1/assets/{id}", vec!["get", "patch", "delete"]),
        ("/api/v1/dashboard/stats", vec!["get"]),
        ("/api/v1/dashboard/matrix", vec!["get"]),
        ("/api/v1/dashboard/timeline", vec!["get"]),
        ("/api/v1/dashboard/top-risks", vec!["get"]),
        ("/api/v1/marketplace/connectors", vec!["get"]),
        ("/api/v1/marketplace/connectors/{slug}", vec!["get"]),
        ("/api/v1/marketplace/installations", vec!["get", "post"]),
        (
            "/api/v1/marketplace/installations/{id}",
            vec!["get", "patch", "delete"],
        ),
        ("/api/v1/reports/risk-register", vec!["get"]),
        ("/api/v1/reports/summary", vec!["get"]),
        ("/api/v1/admin/pool", vec!["get"]),
        ("/health/live", vec!["get"]),
        ("/health/ready", vec!["get"]),
    ];
    for (path, methods) in expected {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} undocumented"
            );
        }
    }
    assert!(doc["components"]["schemas"]["Risk"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Every reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "unresolved reference {name}"
        );
    }
    // Enumerations by their wire names.
    assert!(
        doc["components"]["schemas"]["RiskStatus"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("in_progress"))
    );
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            // Errors are problem documents, and the shared ones are listed everywhere.
            for (code, response) in responses.iter().filter(|(code, _)| code.as_str() >= "400") {
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{method} {path} {code}"
                );
            }
            for code in ["500", "503"] {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path} lacks 404");
            }
            assert!(
                responses
                    .values()
                    .all(|r| r["description"].as_str().is_some_and(|d| !d.is_empty()))
            );
        }
    }
    let created = &paths["/api/v1/risks"]["post"]["responses"]["201"]["headers"];
    assert!(
        created["Location"].is_object() && created["ETag"].is_object(),
        "{created}"
    );
    let listed = &paths["/api/v1/risks"]["get"]["responses"];
    assert!(
        listed["200"]["headers"]["X-Cache"].is_object() && listed["304"].is_object(),
        "{listed}"
    );
    let summary = &paths["/api/v1/reports/summary"]["get"]["responses"]["200"]["content"];
    assert!(
        summary["text/html"].is_object() && summary["application/json"].is_object(),
        "{summary}"
    );
}

async fn request_ids(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    // An id unsafe to echo or log is replaced by one of ours.
    let long = "a".repeat(65);
    for unsafe_id in ["<script>alert(1)</script>", "two words", long.as_str()] {
        let response = app
            .client
            .get(app.url("/health/live"))
            .header("x-request-id", unsafe_id)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(echoed).is_ok(),
            "{unsafe_id:?} answered with {echoed:?}"
        );
    }
    let response = app.client.get(app.url("/api/v1/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(!response.headers()["x-request-id"].is_empty());
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

async fn requests_and_process_are_measured(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let risk = app
        .create_risk(t, json!({"title": "Measured", "likelihood": 2, "impact": 3}))
        .await;
    let item = format!("/api/v1/risks/{}", id(&risk));
    for _ in 0..2 {
        assert_eq!(app.get(&item, t).await.0, StatusCode::OK);
    }
    let scanner = format!("/wp-admin/{}", uuid::Uuid::new_v4());
    assert_eq!(app.get(&scanner, t).await.0, StatusCode::NOT_FOUND);
    let odd = app
        .request(Method::from_bytes(b"BREW").unwrap(), "/api/v1/risks", t)
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), StatusCode::METHOD_NOT_ALLOWED);

    let text = app.metrics_text().await;
    let duration = "http_server_request_duration_seconds_count";
    let count = |labels: &[(&str, &str)]| common::sample_sum(&text, duration, labels);
    let route = [
        ("method", "GET"),
        ("route", "/api/v1/risks/{id}"),
        ("status", "200"),
    ];
    assert!(count(&route) >= 2.0, "{text}");
    assert!(count(&[("method", "POST"), ("route", "/api/v1/risks"), ("status", "201")]) >= 1.0);
    // Unknown paths and methods share one label value each: no series per raw path.
    assert!(count(&[("route", "unmatched"), ("status", "404")]) >= 1.0);
    assert!(
        count(&[
            ("method", "_OTHER"),
            ("route", "/api/v1/risks"),
            ("status", "405")
        ]) >= 1.0
    );
    assert!(!text.contains(&scanner) && !text.contains(id(&risk)) && !text.contains("BREW"));
    // Buckets fine enough for sub-millisecond hits.
    let buckets = common::samples(&text, "http_server_request_duration_seconds_bucket");
    for le in ["0.0005", "0.001", "0.05"] {
        assert!(
            buckets.iter().any(|(labels, _)| labels["le"] == le),
            "no bucket {le}"
        );
    }
    // The scrape itself is in flight while the page renders.
    assert!(common::sample_sum(&text, "http_server_active_requests", &[]) >= 1.0);
    let sizes = |name| common::sample_sum(&text, name, &[("route", "/api/v1/risks")]);
    assert!(sizes("http_server_request_body_size_bytes_sum") > 10.0);
    assert!(common::sample_sum(&text, "http_server_response_body_size_bytes_count", &route) >= 2.0);

    // Every database operation is timed under its name.
    let operations =
        |name| common::sample_sum(&text, "db_query_duration_seconds_count", &[("operation", name)]);
    assert!(
        operations("create_risk") >= 1.0 && operations("risk") >= 1.0,
        "{text}"
    );

    let backend = if app.backend == common::Backend::Postgres {
        "postgres"
    } else {
        "sqlite"
    };
    let version = env!("CARGO_PKG_VERSION");
    let info = [("version", version), ("backend", backend)];
    assert_eq!(
        common::sample_sum(&text, "openrisk_build_info", &info),
        1.0,
        "{text}"
    );
    // The monitor publishes the process and readiness figures every second.
    app.wait_for_metric("openrisk_ready", 1.0).await;
    let text = app.metrics_text().await;
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        assert!(common::sample_sum(&text, name, &[]) > 0.0, "{name}: {text}");
    }
    assert!(!common::samples(&text, "process_cpu_seconds_total").is_empty());
}

/// Each application records into its own recorder: two in one process do not see each other's
/// requests, whichever runner the tests run under.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_application_renders_only_its_own_metrics() {
    let a = spawn_app(Backend::Sqlite).await;
    let b = spawn_app(Backend::Sqlite).await;
    for _ in 0..3 {
        assert_eq!(a.get("/api/v1/me", &a.token).await.0, StatusCode::OK);
    }
    let me = [("route", "/api/v1/me"), ("status", "200")];
    let count = |text: &str| common::sample_sum(text, "http_server_request_duration_seconds_count", &me);
    assert_eq!(count(&a.metrics_text().await), 3.0);
    assert_eq!(count(&b.metrics_text().await), 0.0);
    // The pools too: b has served no token lookup.
    let lookups = |text: &str| {
        common::sample_sum(
            text,
            "db_query_duration_seconds_count",
            &[("operation", "authenticate")],
        )
    };
    assert!(lookups(&a.metrics_text().await) >= 1.0);
    assert_eq!(lookups(&b.metrics_text().await), 0.0);
}

on_each_backend!(each_read_takes_one_connection);

/// A list with its total, a risk's mitigations and its history each take one connection for all
/// their statements: one acquire, one observation of the operation.
async fn each_read_takes_one_connection(backend: Backend) {
    let app = common::spawn_app_with(backend, &[("CACHE_ENABLED", "false")]).await;
    let t = &app.token;
    let risk = app
        .create_risk(t, json!({"title": "Counted", "likelihood": 2, "impact": 2}))
        .await;
    let item = format!("/api/v1/risks/{}", id(&risk));
    let reads = [
        ("/api/v1/risks?include_total=true".to_owned(), "risks"),
        (format!("{item}/mitigations"), "mitigations"),
        (format!("{item}/history"), "risk_history"),
    ];
    for (path, operation) in reads {
        let acquires = || async {
            let text = app.metrics_text().await;
            common::sample_sum(
                &text,
                "db_query_duration_seconds_count",
                &[("operation", operation)],
            )
        };
        let before = acquires().await;
        assert_eq!(app.get(&path, t).await.0, StatusCode::OK, "{path}");
        assert_eq!(acquires().await - before, 1.0, "{path}");
    }
}

/// HTML pages carry a content security policy that forbids framing; every answer forbids type
/// sniffing.
async fn pages_are_neither_framed_nor_sniffed(backend: Backend) {
    let app = spawn_app(backend).await;
    for page in ["/api/docs/", "/api/v1/reports/summary?format=html"] {
        let response = app.request(Method::GET, page, &app.token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let headers = response.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with("text/html"),
            "{page}"
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("frame-ancestors 'none'") && policy.contains("object-src 'none'"),
            "{policy}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let response = app
        .request(Method::GET, "/api/v1/risks", &app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(!response.headers().contains_key("content-security-policy"));
}

/// With `METRICS_TOKEN` set, `/metrics` answers only a request bearing it.
async fn metrics_can_require_a_token(backend: Backend) {
    let secret = "metrics-scraper-0123456789";
    let app = common::spawn_app_with(backend, &[("METRICS_TOKEN", secret)]).await;
    let scrape = |token: Option<&str>| {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(scrape(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(scrape(Some(&app.token)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(scrape(Some(secret)).await, StatusCode::OK);
}

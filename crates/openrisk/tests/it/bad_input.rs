//! Malformed and hostile input: always a 4xx problem+json naming what is wrong, never a 500, and
//! the stored data unchanged afterwards.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, Backend, assert_problem, spawn_app};

on_each_backend!(
    single_items_refuse_unknown_parameters,
    bad_requests_are_refused_cleanly
);

async fn single_items_refuse_unknown_parameters(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let risk = app
        .create_risk(t, json!({"title": "Keep me", "likelihood": 3, "impact": 4}))
        .await;
    let risk_path = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    let (_, asset) = app
        .post("/api/v1/assets", t, json!({"name": "ERP", "kind": "application"}))
        .await;
    let (_, mitigation) = app
        .post(&format!("{risk_path}/mitigations"), t, json!({"title": "Patch"}))
        .await;
    let paths = [
        risk_path.clone(),
        format!("/api/v1/assets/{}", asset["id"].as_str().unwrap()),
        format!("/api/v1/mitigations/{}", mitigation["id"].as_str().unwrap()),
        "/api/v1/marketplace/connectors/jira".to_owned(),
        "/api/v1/me".to_owned(),
    ];
    for path in paths {
        // Twice: the second would be a cache hit if the first had been stored.
        for _ in 0..2 {
            let (status, problem) = app.get(&format!("{path}?fields=title"), t).await;
            assert_problem(status, &problem, StatusCode::BAD_REQUEST, &["fields"]);
        }
        assert_eq!(app.get(&path, t).await.0, StatusCode::OK, "{path}");
    }
}

async fn bad_requests_are_refused_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let risk = app
        .create_risk(
            t,
            json!({"title": "Keep me", "likelihood": 3, "impact": 4, "tags": ["a"]}),
        )
        .await;
    let path = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    let (_, before) = app.get("/api/v1/risks?include_total=true", t).await;

    let raw = |method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = app.request(method, path, t).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.send()
    };
    let json_type = Some("application/json");

    // Malformed JSON: 400.
    for body in [&b"{"[..], b"{\"title\": }", b"not json", b""] {
        let (status, problem) = common::read(
            raw(Method::POST, "/api/v1/risks", json_type, body.to_vec())
                .await
                .unwrap(),
        )
        .await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, &[]);
        let (status, problem) =
            common::read(raw(Method::PATCH, &path, json_type, body.to_vec()).await.unwrap()).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, &[]);
    }
    // Wrong types and unknown enum values: 422 naming the field.
    let wrong = [
        (json!({"title": 5, "likelihood": 1, "impact": 1}), "title"),
        (
            json!({"title": "x", "likelihood": "high", "impact": 1}),
            "likelihood",
        ),
        (json!({"title": "x", "likelihood": 1, "impact": 1.5}), "impact"),
        (
            json!({"title": "x", "likelihood": 1, "impact": 1, "status": "finished"}),
            "status",
        ),
        (
            json!({"title": "x", "likelihood": 1, "impact": 1, "treatment": "ignore"}),
            "treatment",
        ),
        (
            json!({"title": "x", "likelihood": 1, "impact": 1, "tags": "a,b"}),
            "tags",
        ),
        (
            json!({"title": "x", "likelihood": 1, "impact": 1, "owner_id": "nope"}),
            "owner_id",
        ),
        (
            json!({"title": "x", "likelihood": 1, "impact": 1, "review_date": "31/01/2027"}),
            "review_date",
        ),
        (
            json!({"title": "x", "likelihood": 1, "impact": 1, "asset_ids": ["x"]}),
            "asset_ids[0]",
        ),
        (
            json!({"title": "x", "likelihood": 1, "impact": 1, "titel": "typo"}),
            "titel",
        ),
        (json!(["title"]), "."),
    ];
    for (body, field) in &wrong {
        let (status, problem) = app.post("/api/v1/risks", t, body.clone()).await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, &[field]);
    }
    // NUL characters cannot be stored by PostgreSQL: refused up front on both backends.
    let (status, problem) = app
        .post(
            "/api/v1/risks",
            t,
            json!({"title": "a\u{0}b", "likelihood": 1, "impact": 1, "tags": ["\u{0}"]}),
        )
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["title", "tags[0]"],
    );
    for query in ["q=a%00b", "category=%00", "tag=x%00"] {
        let (status, problem) = app.get(&format!("/api/v1/risks?{query}"), t).await;
        assert_problem(
            status,
            &problem,
            StatusCode::BAD_REQUEST,
            &[query.split('=').next().unwrap()],
        );
    }
    let (status, problem) = app.patch(&path, t, json!({"status": "finished"})).await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, &["status"]);

    // Wrong or missing content type: 415.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, problem) = common::read(
            raw(Method::POST, "/api/v1/risks", ct, b"{}".to_vec())
                .await
                .unwrap(),
        )
        .await;
        assert_problem(status, &problem, StatusCode::UNSUPPORTED_MEDIA_TYPE, &[]);
    }
    // Bodies above 1 MiB: 413.
    let huge =
        json!({"title": "x", "likelihood": 1, "impact": 1, "description": "d".repeat(2 * 1024 * 1024)});
    let (status, problem) = app.post("/api/v1/risks", t, huge.clone()).await;
    assert_problem(status, &problem, StatusCode::PAYLOAD_TOO_LARGE, &[]);
    let (status, problem) = app.patch(&path, t, huge).await;
    assert_problem(status, &problem, StatusCode::PAYLOAD_TOO_LARGE, &[]);

    // Invalid ids in paths: 400 naming `id`.
    for p in [
        "/api/v1/risks/123",
        "/api/v1/risks/not-a-uuid/history",
        "/api/v1/mitigations/x",
        "/api/v1/assets/%00",
    ] {
        let (status, problem) = app.get(p, t).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, &["id"]);
    }
    let (status, problem) = app.delete("/api/v1/risks/zzz", t).await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, &["id"]);

    // Bad query parameters: 400 naming the parameter.
    app.create_risk(t, json!({"title": "Second", "likelihood": 1, "impact": 1}))
        .await;
    let (_, page) = app.get("/api/v1/risks?limit=1&sort=title", t).await;
    let title_cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let bad_params = [
        ("status=finished", "status"),
        ("severity=extreme", "severity"),
        ("owner_id=nope", "owner_id"),
        ("sort=risk", "sort"),
        ("sort=score&sort=title", "sort"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("include_total=yes", "include_total"),
        ("cursor=garbage", "cursor"),
        ("cursor=eyJmb28iOjF9", "cursor"),
        ("bogus=1", "bogus"),
    ];
    for (query, param) in bad_params {
        let (status, problem) = app.get(&format!("/api/v1/risks?{query}"), t).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, &[param]);
    }
    // A cursor only continues the order it came from.
    let (status, problem) = app
        .get(&format!("/api/v1/risks?sort=-score&cursor={title_cursor}"), t)
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, &["cursor"]);
    let (status, _) = app
        .get(&format!("/api/v1/risks?sort=title&cursor={title_cursor}"), t)
        .await;
    assert_eq!(status, StatusCode::OK);
    for p in [
        "/api/v1/assets?limit=0",
        "/api/v1/users?cursor=%%%",
        &format!("{path}/history?cursor=x"),
        &format!("{path}/mitigations?sort=title"),
    ] {
        let (status, problem) = app.get(p, t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{p}: {problem}");
    }

    // Unknown route and wrong method.
    let (status, problem) = app.get("/api/v1/nothing", t).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND, &[]);
    let (status, problem) = app.call(Method::PUT, "/api/v1/risks", t, Some(json!({}))).await;
    assert_problem(status, &problem, StatusCode::METHOD_NOT_ALLOWED, &[]);

    // Nothing changed: the first risk is intact (the second was created on purpose above).
    let (_, after) = app.get(&path, t).await;
    assert_eq!(after, risk);
    let (_, list) = app.get("/api/v1/risks?include_total=true", t).await;
    assert_eq!(
        list["total"].as_i64().unwrap(),
        before["total"].as_i64().unwrap() + 1
    );
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["title"] != Value::String("x".into()))
    );
}

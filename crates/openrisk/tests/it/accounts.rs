//! Organizations, users and tokens over real HTTP, on both backends: roles, authentication and
//! tenancy.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, assert_problem, id, spawn_app};

on_each_backend!(
    accounts_and_tokens,
    authentication_and_roles,
    other_organizations_ids_are_not_found,
);

async fn accounts_and_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let (status, me) = app.get("/api/v1/me", t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["organization"]["slug"], "default");
    assert_eq!(me["role"], "admin");

    let (status, user) = app
        .post(
            "/api/v1/users",
            t,
            json!({"email": "Ana@Example.com", "name": "Ana", "role": "analyst"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["email"], "ana@example.com");
    let (status, dup) = app
        .post(
            "/api/v1/users",
            t,
            json!({"email": "ana@example.com", "name": "Ana 2"}),
        )
        .await;
    assert_problem(status, &dup, StatusCode::CONFLICT, &[]);
    let (_, users) = app.get("/api/v1/users", t).await;
    assert!(
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == user["id"])
    );

    // A token may not exceed its user's role.
    let (status, body) = app
        .post(
            "/api/v1/tokens",
            t,
            json!({"user_id": user["id"], "name": "x", "role": "admin"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, &["role"]);
    let (status, created) = app
        .post("/api/v1/tokens", t, json!({"user_id": user["id"], "name": "ci"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["role"], "analyst");
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32);
    let (_, me) = app.get("/api/v1/me", &secret).await;
    assert_eq!(me["user"]["id"], user["id"]);
    assert_eq!(me["role"], "analyst");

    let (_, tokens) = app.get("/api/v1/tokens", t).await;
    let listed = tokens["items"].as_array().unwrap();
    assert!(listed.iter().any(|x| x["id"] == created["id"]));
    assert!(listed.iter().all(|x| x.get("token").is_none()), "{tokens}");
    assert!(!tokens.to_string().contains(&secret));

    let (status, _) = app.delete(&format!("/api/v1/tokens/{}", id(&created)), t).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/me", &secret).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, &[]);

    // Expired tokens are refused; expiry must be in the future when issued.
    let (status, body) = app
        .post(
            "/api/v1/tokens",
            t,
            json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, &["expires_at"]);

    // Organizations: system tokens only; slugs unique.
    let other = app.create_org("acme").await;
    let (_, me) = app.get("/api/v1/me", &other).await;
    assert_eq!(me["organization"]["slug"], "acme");
    assert_eq!(me["role"], "admin");
    let (status, body) = app.post("/api/v1/orgs", t, json!({"slug": "acme"})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, &[]);
    let (status, body) = app.post("/api/v1/orgs", &other, json!({"slug": "other"})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, &[]);
    for slug in ["Not A Slug!", "", "a"] {
        let (status, body) = app
            .post("/api/v1/orgs", t, json!({"slug": slug, "name": "Named"}))
            .await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, &["slug"]);
    }
}

async fn authentication_and_roles(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let risk = app
        .create_risk(t, json!({"title": "Flood", "likelihood": 2, "impact": 5}))
        .await;
    let r = format!("/api/v1/risks/{}", id(&risk));

    for token in ["", "nope", "ort_unknown"] {
        let (status, body) = app.get("/api/v1/risks", token).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, &[]);
    }
    let response = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    let viewer = app.token_with_role(t, "viewer").await;
    let analyst = app.token_with_role(t, "analyst").await;
    // Viewers read.
    for path in [r.as_str(), "/api/v1/risks", "/api/v1/assets", "/api/v1/me"] {
        let (status, _) = app.get(path, &viewer).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // Viewers do not write; role is checked before the body is read.
    let writes = [
        (
            Method::POST,
            "/api/v1/risks".to_owned(),
            json!({"title": "x", "likelihood": 1, "impact": 1}),
        ),
        (Method::PATCH, r.clone(), json!({"title": "y"})),
        (Method::DELETE, r.clone(), Value::Null),
        (Method::POST, format!("{r}/mitigations"), json!({"title": "m"})),
        (
            Method::POST,
            "/api/v1/assets".to_owned(),
            json!({"name": "a", "kind": "data"}),
        ),
        (
            Method::POST,
            "/api/v1/risks".to_owned(),
            json!("not even an object"),
        ),
    ];
    for (method, path, body) in &writes {
        let body = (!body.is_null()).then(|| body.clone());
        let (status, problem) = app.call(method.clone(), path, &viewer, body).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN, &[]);
    }
    // Analysts write risks but do not administer.
    let (status, _) = app
        .patch(&r, &analyst, json!({"title": "Storm damage to the data centre"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The search index follows the update.
    for (q, total) in [("storm%20damage", 1), ("data", 1), ("flood", 0)] {
        let (_, found) = app
            .get(&format!("/api/v1/risks?q={q}&include_total=true"), &viewer)
            .await;
        assert_eq!(found["total"], total, "{q}");
    }
    for (method, path) in [
        (Method::GET, "/api/v1/users"),
        (Method::GET, "/api/v1/tokens"),
        (Method::POST, "/api/v1/users"),
        (Method::POST, "/api/v1/tokens"),
    ] {
        let body = (method == Method::POST).then(|| json!({"name": "n", "email": "n@example.com"}));
        let (status, problem) = app.call(method, path, &analyst, body).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN, &[]);
    }
    let (status, problem) = app.post("/api/v1/orgs", &analyst, json!({"slug": "zzz"})).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, &[]);
}

async fn other_organizations_ids_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let (_, asset) = app
        .post("/api/v1/assets", t, json!({"name": "CRM", "kind": "application"}))
        .await;
    let risk = app
        .create_risk(t, json!({"title": "Churn", "likelihood": 3, "impact": 2}))
        .await;
    let (_, mitigation) = app
        .post(
            &format!("/api/v1/risks/{}/mitigations", id(&risk)),
            t,
            json!({"title": "Survey"}),
        )
        .await;
    let (_, token) = app.post("/api/v1/tokens", t, json!({"name": "mine"})).await;
    let other = app.create_org("rival").await;

    let risk_path = format!("/api/v1/risks/{}", id(&risk));
    let (_, risk) = app.get(&risk_path, t).await;
    let mitigation_path = format!("/api/v1/mitigations/{}", id(&mitigation));
    let asset_path = format!("/api/v1/assets/{}", id(&asset));
    for path in [
        &risk_path,
        &format!("{risk_path}/history"),
        &format!("{risk_path}/mitigations"),
        &mitigation_path,
        &asset_path,
    ] {
        let (status, body) = app.get(path, &other).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, &[]);
    }
    for path in [&risk_path, &mitigation_path, &asset_path] {
        let (status, body) = app.patch(path, &other, json!({})).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, &[]);
        let (status, body) = app.delete(path, &other).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, &[]);
    }
    let (status, body) = app
        .post(&format!("{risk_path}/mitigations"), &other, json!({"title": "x"}))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, &[]);
    let (status, body) = app
        .delete(&format!("/api/v1/tokens/{}", id(&token)), &other)
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, &[]);
    // Nor can another organization's asset, owner or user be referenced.
    let (_, me) = app.get("/api/v1/me", t).await;
    let (status, body) = app.post("/api/v1/risks", &other, json!({"title": "x", "likelihood": 1, "impact": 1, "asset_ids": [asset["id"]], "owner_id": me["user"]["id"]})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["asset_ids[0]", "owner_id"],
    );
    let (status, body) = app
        .post(
            "/api/v1/tokens",
            &other,
            json!({"name": "x", "user_id": me["user"]["id"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, &["user_id"]);
    // Lists are scoped.
    let (_, list) = app.get("/api/v1/risks?include_total=true", &other).await;
    assert_eq!(list["total"], 0);
    let (_, list) = app.get("/api/v1/assets", &other).await;
    assert_eq!(list["items"], json!([]));
    // And the data is untouched.
    let (status, still) = app.get(&risk_path, t).await;
    assert_eq!((status, still), (StatusCode::OK, risk));
}

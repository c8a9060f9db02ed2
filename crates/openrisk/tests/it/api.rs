//! Every route over real HTTP, on both backends: happy paths, roles, tenancy and validation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, Backend, assert_problem, spawn_app};

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("id")
}

on_each_backend!(
    risk_lifecycle,
    mitigation_and_asset_routes,
    accounts_and_tokens,
    authentication_and_roles,
    other_organizations_ids_are_not_found,
    validation_lists_every_failing_field,
    health_and_openapi,
    request_ids,
    requests_and_process_are_measured
);

async fn risk_lifecycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let (_, asset) = app
        .post("/api/v1/assets", t, json!({"name": "ERP", "kind": "application"}))
        .await;
    let (_, me) = app.get("/api/v1/me", t).await;
    let response = app
        .request(Method::POST, "/api/v1/risks", t)
        .json(&json!({
            "title": "Ransomware on ERP", "description": "Encrypts finance data",
            "category": "Security", "likelihood": 4, "impact": 5,
            "residual_likelihood": 2, "residual_impact": 3, "treatment": "mitigate",
            "tags": ["ransomware", "erp"], "asset_ids": [asset["id"]],
            "owner_id": me["user"]["id"], "review_date": "2027-01-31"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let risk: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/risks/{}", id(&risk)));
    assert_eq!(risk["ref"], "RSK-1");
    assert_eq!(risk["score"], 20);
    assert_eq!(risk["severity"], "critical");
    assert_eq!(risk["residual_score"], 6);
    assert_eq!(risk["status"], "open");
    assert_eq!(risk["version"], 1);
    assert_eq!(risk["mitigation_count"], 0);
    assert_eq!(risk["asset_ids"], json!([asset["id"]]));
    assert_eq!(risk["closed_at"], Value::Null);

    // Conditional GET.
    let response = app
        .request(Method::GET, &location, t)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert!(response.bytes().await.unwrap().is_empty());
    let (status, fetched) = app.get(&location, t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, risk);

    // Stale If-Match is refused and changes nothing; the current one applies.
    // If-Match compares strongly: the weak form of the current tag does not match.
    let weak = app
        .request(Method::PATCH, &location, t)
        .header("if-match", format!("W/{etag}"))
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), StatusCode::PRECONDITION_FAILED);
    let stale = app
        .request(Method::PATCH, &location, t)
        .header("if-match", "\"0-stale\"")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let updated = app
        .request(Method::PATCH, &location, t)
        .header("if-match", &etag)
        .json(&json!({"status": "closed", "category": null, "likelihood": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    assert_ne!(updated.headers()["etag"].to_str().unwrap(), etag);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["category"], Value::Null);
    assert_eq!(updated["score"], 5);
    assert_eq!(updated["severity"], "medium");
    assert!(updated["closed_at"].is_string());
    assert_eq!(updated["title"], "Ransomware on ERP");

    // Reopening clears closed_at.
    let (_, reopened) = app.patch(&location, t, json!({"status": "in_progress"})).await;
    assert_eq!(reopened["closed_at"], Value::Null);
    assert_eq!(reopened["version"], 3);

    // A mitigation changes the representation (mitigation_count) and so the ETag.
    let (status, mitigation) = app
        .post(
            &format!("{location}/mitigations"),
            t,
            json!({"title": "Offline backups", "cost": 1200.5, "due_date": "2027-02-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mitigation}");
    assert_eq!(mitigation["status"], "planned");
    assert_eq!(mitigation["progress"], 0);
    let (_, with_mitigation) = app.get(&location, t).await;
    assert_eq!(with_mitigation["mitigation_count"], 1);
    let response = app
        .request(Method::GET, &location, t)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (status, history) = app.get(&format!("{location}/history"), t).await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<i64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![3, 2, 1]);
    assert_eq!(
        history["items"][0]["changes"]["status"],
        json!(["closed", "in_progress"])
    );
    assert_eq!(history["items"][1]["change_type"], "update");
    assert_eq!(history["items"][2]["change_type"], "create");
    assert_eq!(history["items"][0]["changed_by"], me["user"]["id"]);

    // Delete: the risk and its mitigations go; admins still read its history.
    let (status, _) = app.delete(&location, t).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&location, t).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(&format!("/api/v1/mitigations/{}", id(&mitigation)), t)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, history) = app.get(&format!("{location}/history"), t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["items"][0]["change_type"], "delete");
    assert_eq!(history["items"][0]["version"], 4);
    let viewer = app.token_with_role(t, "viewer").await;
    let (status, _) = app.get(&format!("{location}/history"), &viewer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // References are never reused.
    let next = app
        .create_risk(t, json!({"title": "Next", "likelihood": 1, "impact": 1}))
        .await;
    assert_eq!(next["ref"], "RSK-2");
}

async fn mitigation_and_asset_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let risk = app
        .create_risk(
            t,
            json!({"title": "Vendor failure", "likelihood": 3, "impact": 3}),
        )
        .await;
    let base = format!("/api/v1/risks/{}/mitigations", id(&risk));
    for title in ["A", "B", "C"] {
        let (status, _) = app.post(&base, t, json!({"title": title})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, page) = app.get(&format!("{base}?limit=2"), t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app.get(&format!("{base}?limit=2&cursor={cursor}"), t).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);

    let m = format!("/api/v1/mitigations/{}", id(&page["items"][0]));
    let (status, done) = app.patch(&m, t, json!({"status": "done"})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["progress"], 100);
    assert!(done["completed_at"].is_string());
    assert_eq!(done["version"], 2);
    let (_, reopened) = app
        .patch(&m, t, json!({"status": "in_progress", "progress": 40}))
        .await;
    assert_eq!(reopened["completed_at"], Value::Null);
    assert_eq!(reopened["progress"], 40);
    let (status, fetched) = app.get(&m, t).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &reopened));
    let (status, _) = app.delete(&m, t).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, risk) = app.get(&format!("/api/v1/risks/{}", id(&risk)), t).await;
    assert_eq!(risk["mitigation_count"], 2);

    // Assets: CRUD, and deleting one unlinks it from risks.
    let (status, asset) = app
        .post(
            "/api/v1/assets",
            t,
            json!({"name": "DB", "kind": "database", "criticality": "high", "tags": ["prod"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asset}");
    assert_eq!(asset["version"], 1);
    let a = format!("/api/v1/assets/{}", id(&asset));
    let (_, renamed) = app.patch(&a, t, json!({"name": "Main DB"})).await;
    assert_eq!(renamed["name"], "Main DB");
    assert_eq!(renamed["version"], 2);
    let (_, list) = app.get("/api/v1/assets", t).await;
    assert_eq!(list["items"], json!([renamed]));
    let linked = app
        .create_risk(
            t,
            json!({"title": "Disk failure", "likelihood": 2, "impact": 4, "asset_ids": [asset["id"]]}),
        )
        .await;
    let (status, _) = app.delete(&a, t).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let linked_path = format!("/api/v1/risks/{}", id(&linked));
    let (_, linked) = app.get(&linked_path, t).await;
    assert_eq!(linked["asset_ids"], json!([]));
    // Unlinking is a change of the risk: a new version with its history entry.
    assert_eq!(linked["version"], 2);
    let (_, history) = app.get(&format!("{linked_path}/history"), t).await;
    assert_eq!(
        history["items"][0]["changes"]["asset_ids"],
        json!([[asset["id"]], []])
    );
}

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

async fn validation_lists_every_failing_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.token;
    let (status, body) = app
        .post(
            "/api/v1/risks",
            t,
            json!({
                "title": "", "description": "d".repeat(10_001), "category": "c".repeat(101),
                "likelihood": 0, "impact": 6, "residual_likelihood": 9,
                "tags": ["", "t".repeat(51)]
            }),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            "title",
            "description",
            "category",
            "likelihood",
            "impact",
            "residual_likelihood",
            "residual_impact",
            "tags[0]",
            "tags[1]",
        ],
    );
    assert_eq!(body["type"], "https://openrisk.dev/problems/validation-failed");

    let (status, body) = app.post("/api/v1/risks", t, json!({})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["title", "likelihood", "impact"],
    );
    let too_many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let (status, body) = app
        .post(
            "/api/v1/risks",
            t,
            json!({"title": "x", "likelihood": 1, "impact": 1, "tags": too_many}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, &["tags"]);

    // Server-computed fields are refused, never silently dropped.
    for field in [
        "score",
        "severity",
        "ref",
        "version",
        "mitigation_count",
        "created_at",
        "residual_score",
        "id",
    ] {
        let (status, body) = app
            .post(
                "/api/v1/risks",
                t,
                json!({"title": "x", "likelihood": 1, "impact": 1, field: 1}),
            )
            .await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, &[field]);
    }
    let (status, body) = app
        .post(
            "/api/v1/risks",
            t,
            json!({"title": "", "likelihood": 9, "impact": 1, "score": 9}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["score", "title", "likelihood"],
    );
    let risk = app
        .create_risk(t, json!({"title": "Valid", "likelihood": 2, "impact": 2}))
        .await;
    let r = format!("/api/v1/risks/{}", id(&risk));
    let (status, body) = app
        .patch(
            &r,
            t,
            json!({"title": null, "likelihood": null, "status": null, "impact": 9, "version": 7}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, &["version"]);
    let (status, body) = app
        .patch(
            &r,
            t,
            json!({"title": null, "likelihood": null, "status": null, "impact": 9}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["title", "likelihood", "status", "impact"],
    );

    let (status, body) = app
        .post(
            &format!("{r}/mitigations"),
            t,
            json!({"title": "", "progress": 101, "cost": -1}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["title", "progress", "cost"],
    );
    let (status, body) = app.post("/api/v1/assets", t, json!({"name": ""})).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, &["name", "kind"]);
    let (status, body) = app
        .post("/api/v1/users", t, json!({"email": "not-an-email", "name": ""}))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["email", "name"],
    );

    let (_, unchanged) = app.get(&r, t).await;
    assert_eq!(unchanged, risk);
}

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

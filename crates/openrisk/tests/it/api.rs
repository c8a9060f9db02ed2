//! The register's routes over real HTTP, on both backends: risks, mitigations, assets, and
//! validation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, assert_problem, id, spawn_app};

on_each_backend!(
    risk_lifecycle,
    mitigation_and_asset_routes,
    validation_lists_every_failing_field,
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

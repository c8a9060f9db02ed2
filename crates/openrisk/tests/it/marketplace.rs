//! The connector catalog and installations: validation against each connector's JSON Schema,
//! one installation per connector, admin-only writes, and secrets that never come back.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, assert_problem, spawn_app};

const SECRET: &str = "jira-token-4f1c9d7e2b";

fn jira_config() -> Value {
    json!({
        "base_url": "https://acme.atlassian.net",
        "email": "risk-bot@acme.example",
        "api_token": SECRET,
        "project_key": "RISK"
    })
}

on_each_backend!(
    the_catalog_lists_every_connector,
    the_catalog_is_one_public_document_for_every_tenant,
    installations_validate_mask_and_stay_per_organization
);

async fn the_catalog_lists_every_connector(backend: Backend) {
    let app = spawn_app(backend).await;
    let viewer = app.token_with_role(&app.token, "viewer").await;
    let (status, catalog) = app.get("/api/v1/marketplace/connectors", &viewer).await;
    assert_eq!(status, StatusCode::OK);
    let slugs: Vec<&str> = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    for slug in [
        "jira",
        "servicenow",
        "slack",
        "teams",
        "pagerduty",
        "splunk",
        "aws-security-hub",
        "github",
        "qualys",
        "okta",
    ] {
        assert!(slugs.contains(&slug), "{slug} missing");
    }
    for connector in catalog["items"].as_array().unwrap() {
        for field in ["slug", "name", "category", "description", "version"] {
            assert!(connector[field].is_string(), "{connector}");
        }
        assert_eq!(connector["config_schema"]["type"], "object");
    }
    let (_, chat) = app
        .get("/api/v1/marketplace/connectors?category=chat", &viewer)
        .await;
    let mut chat: Vec<&str> = chat["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    chat.sort();
    assert_eq!(chat, ["slack", "teams"]);
    let (status, jira) = app.get("/api/v1/marketplace/connectors/jira", &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jira["category"], "ticketing");
    assert_eq!(
        jira["config_schema"]["properties"]["api_token"]["writeOnly"],
        true
    );

    let (status, problem) = app.get("/api/v1/marketplace/connectors/nope", &viewer).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND, &[]);
    let (status, problem) = app
        .get("/api/v1/marketplace/connectors?category=email", &viewer)
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, &["category"]);
    let (status, _) = app.get("/api/v1/marketplace/connectors", "nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The catalog is the same for every organization and role: one cached entry serves them all, and
/// shared caches may keep it (strong ETag, `public`, a day), while an organization's own answers
/// stay private.
async fn the_catalog_is_one_public_document_for_every_tenant(backend: Backend) {
    let app = spawn_app(backend).await;
    let other_org = app.create_org("umbrella").await;
    let viewer = app.token_with_role(&other_org, "viewer").await;
    let path = "/api/v1/marketplace/connectors";
    let first = app.request(Method::GET, path, &app.token).send().await.unwrap();
    assert_eq!(first.headers()["x-cache"], "MISS");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(!etag.starts_with("W/"), "a strong ETag: {etag}");
    assert_eq!(first.headers()["cache-control"], "public, max-age=86400");
    assert_eq!(first.headers()["vary"], "Accept-Encoding");
    let body = first.bytes().await.unwrap();
    // Another organization's viewer gets the same entry.
    let other = app.request(Method::GET, path, &viewer).send().await.unwrap();
    assert_eq!(other.headers()["x-cache"], "HIT");
    assert_eq!(other.headers()["etag"], etag.as_str());
    assert_eq!(other.bytes().await.unwrap(), body);
    let revalidated = app
        .request(Method::GET, path, &viewer)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(revalidated.headers()["cache-control"], "public, max-age=86400");
    // Errors and per-organization answers are never public.
    let missing = app
        .request(Method::GET, "/api/v1/marketplace/connectors/nope", &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_ne!(missing.headers()["cache-control"], "public, max-age=86400");
    let installations = app
        .request(Method::GET, "/api/v1/marketplace/installations", &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(installations.headers()["cache-control"], "private, no-cache");
}

async fn installations_validate_mask_and_stay_per_organization(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = &app.token;
    let viewer = app.token_with_role(admin, "viewer").await;
    let analyst = app.token_with_role(admin, "analyst").await;
    let base = "/api/v1/marketplace/installations";
    let mut responses = Vec::new();

    // Only admins install.
    for token in [&viewer, &analyst] {
        let (status, problem) = app
            .post(base, token, json!({"connector": "jira", "config": jira_config()}))
            .await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN, &[]);
    }
    // Bad configurations name each failing path.
    let (status, problem) = app.post(base, admin, json!({"connector": "jira", "config": {
            "base_url": "http://insecure.example", "email": "not-an-email", "project_key": "lower", "surprise": 1
        }})).await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            "config/base_url",
            "config/email",
            "config/project_key",
            "config/api_token",
            "config/surprise",
        ],
    );
    // A rejected secret is never repeated back, and the mask is not a secret.
    let leaked = "https://hooks.example/services/T0/B0/not-a-slack-secret";
    let (status, problem) = app
        .post(
            base,
            admin,
            json!({"connector": "slack", "config": {"webhook_url": leaked, "channel": "#risk"}}),
        )
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["config/webhook_url"],
    );
    assert!(!problem.to_string().contains("not-a-slack-secret"), "{problem}");
    let mut masked = jira_config();
    masked["api_token"] = json!("********");
    let (status, problem) = app
        .post(base, admin, json!({"connector": "jira", "config": masked}))
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["config/api_token"],
    );
    let (status, problem) = app
        .post(base, admin, json!({"connector": "fax", "config": {}}))
        .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, &["connector"]);
    let (status, problem) = app.post(base, admin, json!({"config": {}})).await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, &["connector"]);
    let (status, problem) = app
        .post(
            base,
            admin,
            json!({"connector": "jira", "config": jira_config(), "id": "x"}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, &["id"]);

    // Install: the secret is stored but answered masked.
    let (status, created) = app
        .post(base, admin, json!({"connector": "jira", "config": jira_config()}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    responses.push(created.clone());
    assert_eq!(created["enabled"], true);
    assert_eq!(created["config"]["api_token"], "********");
    assert_eq!(created["config"]["project_key"], "RISK");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("{base}/{id}");
    let org = app.store.organization_by_slug("default").await.unwrap().id;
    let stored = app.store.installation(org, id.parse().unwrap()).await.unwrap();
    assert_eq!(stored.config["api_token"], SECRET);

    // One installation per connector.
    let (status, problem) = app
        .post(base, admin, json!({"connector": "jira", "config": jira_config()}))
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT, &[]);

    // Viewers read, masked.
    let (status, fetched) = app.get(&path, &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);
    let (_, list) = app.get(base, &viewer).await;
    assert_eq!(list["items"], json!([created]));
    responses.push(list);

    // Editing with the masked secret sent back keeps the stored secret.
    let mut edited = fetched["config"].clone();
    edited["project_key"] = json!("OPS");
    let (status, updated) = app
        .patch(&path, admin, json!({"config": edited, "enabled": false}))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["config"]["project_key"], "OPS");
    assert_eq!(updated["config"]["api_token"], "********");
    responses.push(updated);
    let stored = app.store.installation(org, id.parse().unwrap()).await.unwrap();
    assert_eq!(stored.config["api_token"], SECRET);
    assert_eq!(stored.config["project_key"], "OPS");
    // A new secret replaces it.
    let mut rotated = jira_config();
    rotated["api_token"] = json!("rotated-secret-value");
    let (status, _) = app.patch(&path, admin, json!({"config": rotated})).await;
    assert_eq!(status, StatusCode::OK);
    let stored = app.store.installation(org, id.parse().unwrap()).await.unwrap();
    assert_eq!(stored.config["api_token"], "rotated-secret-value");

    let (status, problem) = app
        .patch(&path, admin, json!({"config": {"base_url": "ftp://x"}}))
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["config/base_url", "config/email", "config/api_token"],
    );
    let (status, problem) = app.get(&format!("{base}/not-a-uuid"), admin).await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, &["id"]);
    let (status, problem) = app.patch(&path, admin, json!({"enabled": null})).await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, &["enabled"]);
    let (status, problem) = app.patch(&path, &analyst, json!({"enabled": true})).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, &[]);

    // Other organizations see nothing.
    let other = app.create_org("other-co").await;
    for (status, problem) in [
        app.get(&path, &other).await,
        app.patch(&path, &other, json!({"enabled": true})).await,
        app.delete(&path, &other).await,
    ] {
        assert_problem(status, &problem, StatusCode::NOT_FOUND, &[]);
    }
    let (_, theirs) = app.get(base, &other).await;
    assert_eq!(theirs["items"], json!([]));
    // They may install the same connector for themselves.
    let (status, _) = app
        .post(
            base,
            &other,
            json!({"connector": "jira", "config": jira_config()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    for response in &responses {
        let text = response.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains("rotated-secret-value"),
            "{text}"
        );
    }

    let (status, _) = app.delete(&path, &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.delete(&path, admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&path, admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Uninstalled, it can be installed again.
    let (status, _) = app
        .post(base, admin, json!({"connector": "jira", "config": jira_config()}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

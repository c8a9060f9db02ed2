//! Properties of the cache under random traffic: every cached answer equals the database's, and no
//! answer ever crosses organizations or roles.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

on_each_backend!(redis:
    cached_answers_match_the_database_under_random_traffic,
    entries_never_cross_organizations_or_roles,
);

/// Random writes interleaved with reads of random cacheable routes, by two roles: every cached
/// answer equals the answer computed with the cache bypassed.
async fn cached_answers_match_the_database_under_random_traffic(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[]).await;
    let viewer = app.token_with_role(&app.token, "viewer").await;
    let mut paths = populate(&app, &app.token).await;
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        for step in 0..60 {
            if rng.random_bool(0.3) {
                let (risks, mitigations, assets) = ids(&app).await;
                let write = random_write(&mut rng, &risks, &mitigations, &assets);
                let (method, path, body) = write.clone();
                let (status, answer) = app.call(method, &path, &app.token, body).await;
                assert!(
                    status.is_success() || status == StatusCode::NOT_FOUND,
                    "{write:?}: {status} {answer}"
                );
                match answer["id"].as_str() {
                    Some(id) if path.ends_with("mitigations") => {
                        paths.push(format!("/api/v1/mitigations/{id}"));
                    }
                    // Each risk's details have their own generation: read several risks'.
                    Some(id) if path == "/api/v1/risks" => paths.extend(
                        ["", "/history", "/mitigations"].map(|page| format!("/api/v1/risks/{id}{page}")),
                    ),
                    _ => {}
                }
            } else {
                let path = paths[rng.random_range(0..paths.len())].clone();
                let token = if rng.random_bool(0.5) { &app.token } else { &viewer };
                assert_fresh(&app, token, &[path], &format!("seed {seed} step {step}")).await;
            }
        }
    }
}

/// The organization's risk, mitigation and asset ids, read around the cache.
async fn ids(app: &TestApp) -> (Vec<String>, Vec<String>, Vec<String>) {
    let list = |path: &'static str| async move {
        let (_, _, body) = fetch(app, path, &app.token, true).await;
        let page: Value = serde_json::from_slice(&body).unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let risks = list("/api/v1/risks?limit=200").await;
    let mut mitigations = Vec::new();
    for risk in &risks {
        let (_, _, body) = fetch(
            app,
            &format!("/api/v1/risks/{risk}/mitigations"),
            &app.token,
            true,
        )
        .await;
        let page: Value = serde_json::from_slice(&body).unwrap();
        for item in page["items"].as_array().unwrap() {
            mitigations.push(item["id"].as_str().unwrap().to_owned());
        }
    }
    (risks, mitigations, list("/api/v1/assets?limit=200").await)
}

fn random_write(
    rng: &mut StdRng,
    risks: &[String],
    mitigations: &[String],
    assets: &[String],
) -> (Method, String, Option<Value>) {
    let pick = |rng: &mut StdRng, ids: &[String]| ids[rng.random_range(0..ids.len())].clone();
    let statuses = ["draft", "open", "in_progress", "mitigated", "accepted", "closed"];
    match rng.random_range(0..9) {
        0 | 1 if !risks.is_empty() => {
            let status = statuses[rng.random_range(0..statuses.len())];
            let body = json!({"status": status, "likelihood": rng.random_range(1..=5), "title": format!("T{}", rng.random::<u16>())});
            (
                Method::PATCH,
                format!("/api/v1/risks/{}", pick(rng, risks)),
                Some(body),
            )
        }
        2 if !risks.is_empty() => (
            Method::DELETE,
            format!("/api/v1/risks/{}", pick(rng, risks)),
            None,
        ),
        3 if !risks.is_empty() => (
            Method::POST,
            format!("/api/v1/risks/{}/mitigations", pick(rng, risks)),
            Some(json!({"title": "M", "due_date": "2021-06-01"})),
        ),
        4 if !mitigations.is_empty() => {
            let status = ["planned", "in_progress", "done", "cancelled"][rng.random_range(0..4)];
            (
                Method::PATCH,
                format!("/api/v1/mitigations/{}", pick(rng, mitigations)),
                Some(json!({"status": status})),
            )
        }
        5 if !mitigations.is_empty() => (
            Method::DELETE,
            format!("/api/v1/mitigations/{}", pick(rng, mitigations)),
            None,
        ),
        6 if !assets.is_empty() && !risks.is_empty() => (
            Method::PATCH,
            format!("/api/v1/risks/{}", pick(rng, risks)),
            Some(json!({"asset_ids": [pick(rng, assets)]})),
        ),
        7 if !assets.is_empty() => (
            Method::DELETE,
            format!("/api/v1/assets/{}", pick(rng, assets)),
            None,
        ),
        8 => (
            Method::POST,
            "/api/v1/assets".into(),
            Some(json!({"name": "A", "kind": "data"})),
        ),
        _ => (
            Method::POST,
            "/api/v1/risks".into(),
            Some(
                json!({"title": "New", "likelihood": rng.random_range(1..=5), "impact": rng.random_range(1..=5)}),
            ),
        ),
    }
}

/// Many (organization, role, query) combinations: each one's first answer is computed for it (a
/// MISS, never another combination's entry), and every answer is that principal's own.
async fn entries_never_cross_organizations_or_roles(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[]).await;
    let mut principals = Vec::new();
    // Each organization's deleted risk, whose history admins read and other roles do not.
    let mut deleted_history = std::collections::HashMap::new();
    for (n, org) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let admin = if n == 0 {
            app.token.clone()
        } else {
            app.create_org(org).await
        };
        for i in 0..=n {
            app.create_risk(
                &admin,
                json!({"title": format!("{org} risk {i}"), "likelihood": 1 + i, "impact": 2}),
            )
            .await;
        }
        let gone = json!({"title": format!("{org} gone"), "likelihood": 1, "impact": 1});
        let gone = app.create_risk(&admin, gone).await;
        let gone = gone["id"].as_str().unwrap();
        assert_eq!(
            app.delete(&format!("/api/v1/risks/{gone}"), &admin).await.0,
            StatusCode::NO_CONTENT
        );
        deleted_history.insert(org.to_string(), format!("/api/v1/risks/{gone}/history"));
        for role in ["viewer", "analyst"] {
            principals.push((org.to_string(), role, app.token_with_role(&admin, role).await));
        }
        principals.push((org.to_string(), "admin", admin));
    }
    let queries = [
        "/api/v1/risks",
        "/api/v1/risks?sort=title",
        "/api/v1/risks?q=risk",
        "/api/v1/risks?status=draft&include_total=true",
        "/api/v1/dashboard/stats",
        "/api/v1/dashboard/matrix",
        "/api/v1/assets",
        "/api/v1/reports/summary",
        "/api/v1/marketplace/connectors",
        "/api/v1/me",
        "history",
    ];
    // Who shares an entry: the organization, its callers of one role (a deleted risk's history),
    // or everyone (the public catalog). The first read by each audience must miss.
    let mut seen = std::collections::HashSet::new();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..200 {
        let (org, role, token) = &principals[rng.random_range(0..principals.len())];
        let query = match queries[rng.random_range(0..queries.len())] {
            "history" => deleted_history[org].as_str(),
            query => query,
        };
        let audience = match query {
            "/api/v1/marketplace/connectors" => ("everyone".to_owned(), ""),
            // Each role's token of one admin: the same user, another effective role.
            history if history.ends_with("/history") || history == "/api/v1/me" => (org.clone(), *role),
            _ => (org.clone(), ""),
        };
        let (status, headers, cached) = fetch(&app, query, token, false).await;
        if seen.insert((audience.clone(), query)) && status == StatusCode::OK {
            assert!(
                computed(&headers),
                "{org}/{role} {query} served another audience's entry"
            );
        }
        let (fresh_status, _, fresh) = fetch(&app, query, token, true).await;
        assert_eq!(status, fresh_status, "{org}/{role} {query}");
        assert_eq!(comparable(&cached), comparable(&fresh), "{org}/{role} {query}");
        let history_readable = !query.ends_with("/history") || *role == "admin";
        assert_eq!(
            status == StatusCode::OK,
            history_readable,
            "{org}/{role} {query}: {status}"
        );
    }
}

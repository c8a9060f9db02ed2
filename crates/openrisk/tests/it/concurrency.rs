//! Concurrent writers: If-Match makes exactly one of N racing updates win; concurrent creates
//! never fail (no "database is locked" on SQLite) and never share a reference.

use std::collections::HashSet;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{Backend, spawn_app};

const WRITERS: usize = 16;

on_each_backend!(
    racing_patches_with_one_etag_let_exactly_one_win,
    concurrent_creates_all_succeed_with_distinct_refs
);

async fn racing_patches_with_one_etag_let_exactly_one_win(backend: Backend) {
    let app = spawn_app(backend).await;
    let risk = app
        .create_risk(&app.token, json!({"title": "Race", "likelihood": 2, "impact": 2}))
        .await;
    let path = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    let etag = app
        .request(Method::GET, &path, &app.token)
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let attempts = (0..WRITERS).map(|i| {
        app.request(Method::PATCH, &path, &app.token)
            .header("if-match", &etag)
            .json(&json!({"title": format!("Writer {i}")}))
            .send()
    });
    let statuses: Vec<StatusCode> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((won, refused), (1, WRITERS - 1), "{statuses:?}");
    let (_, after) = app.get(&path, &app.token).await;
    assert_eq!(after["version"], 2);
    let (_, history) = app.get(&format!("{path}/history"), &app.token).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 2);
}

async fn concurrent_creates_all_succeed_with_distinct_refs(backend: Backend) {
    let app = spawn_app(backend).await;
    const CREATES: usize = 64;
    let creates = (0..CREATES).map(|i| {
        app.post(
            "/api/v1/risks",
            &app.token,
            json!({"title": format!("Risk {i}"), "likelihood": 3, "impact": 3}),
        )
    });
    let results = join_all(creates).await;
    let mut refs = HashSet::new();
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        refs.insert(body["ref"].as_str().unwrap().to_owned());
    }
    let expected: HashSet<String> = (1..=CREATES).map(|n| format!("RSK-{n}")).collect();
    assert_eq!(refs, expected);
    let (_, list) = app
        .get("/api/v1/risks?include_total=true&limit=1", &app.token)
        .await;
    assert_eq!(list["total"], CREATES);
}

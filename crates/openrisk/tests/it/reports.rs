//! Reports: the register export in every format parses back to exactly the filtered risks, is
//! safe to open in a spreadsheet and never carries secrets; the summary matches the dashboard.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use openrisk::domain::report::COLUMNS;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, assert_problem, spawn_app};

const SECRET: &str = "jira-secret-never-exported";

/// A register with awkward text: formulas, quotes, commas, newlines, HTML.
async fn fill(app: &TestApp) {
    let t = &app.token;
    let titles = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+1 formula",
        "-2 formula",
        "@SUM(A1:A2)",
        "Comma, \"quotes\" and\nnewline",
        "<script>alert(1)</script> & co",
        "Plain title",
    ];
    for (i, title) in titles.iter().enumerate() {
        for status in ["open", "closed", "in_progress"] {
            app.create_risk(
                t,
                json!({
                    "title": title, "description": format!("Row {i}, \"{status}\"\nsecond line"),
                    "likelihood": (i % 5) + 1, "impact": ((i + 2) % 5) + 1, "status": status,
                    "tags": if i % 2 == 0 { json!(["export", "even"]) } else { json!(["export"]) },
                    "category": "Security"
                }),
            )
            .await;
        }
    }
    let config = json!({"base_url": "https://acme.atlassian.net", "email": "bot@acme.example", "api_token": SECRET, "project_key": "RISK"});
    let (status, _) = app
        .post(
            "/api/v1/marketplace/installations",
            t,
            json!({"connector": "jira", "config": config}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// Every risk the list returns for `query`, in order.
async fn listed(app: &TestApp, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/risks?{query}&limit=7&cursor={c}"),
            None => format!("/api/v1/risks?{query}&limit=7"),
        };
        let (_, page) = app.get(&path, &app.token).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Whether byte `i` lies inside a quoted CSV field (where a bare newline is data).
fn in_quoted(body: &[u8], i: usize) -> bool {
    body[..i].iter().filter(|b| **b == b'"').count() % 2 == 1
}

async fn export(app: &TestApp, query: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = app
        .request(
            Method::GET,
            &format!("/api/v1/reports/risk-register?{query}"),
            &app.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, response.bytes().await.unwrap().to_vec())
}

on_each_backend!(
    exports_hold_exactly_the_filtered_risks,
    the_summary_matches_the_dashboard,
    large_exports_stream_every_row_once,
    report_parameters_and_roles
);

async fn exports_hold_exactly_the_filtered_risks(backend: Backend) {
    let app = spawn_app(backend).await;
    fill(&app).await;
    let filter = "status=open&status=in_progress&tag=even&sort=title";
    let want = listed(&app, filter).await;
    assert_eq!(want.len(), 8);
    let today = chrono::Utc::now().date_naive();

    // CSV: RFC 4180, a header row, formulas defused.
    let (headers, body) = export(&app, &format!("format=csv&{filter}")).await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"risk-register-{today}.csv\"")
    );
    assert!(body.windows(2).any(|w| w == b"\r\n"), "CRLF line ends");
    assert!(
        !body
            .iter()
            .enumerate()
            .any(|(i, b)| *b == b'\n' && (i == 0 || body[i - 1] != b'\r') && !in_quoted(&body, i))
    );
    let mut reader = csv::Reader::from_reader(body.as_slice());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), want.len());
    for (row, risk) in rows.iter().zip(&want) {
        assert_eq!(&row[0], risk["ref"].as_str().unwrap());
        assert_eq!(&row[1], risk["id"].as_str().unwrap());
        let title = risk["title"].as_str().unwrap();
        let expected_title = if title.starts_with(['=', '+', '-', '@']) {
            format!("'{title}")
        } else {
            title.to_owned()
        };
        assert_eq!(&row[2], expected_title);
        assert_eq!(&row[3], risk["description"].as_str().unwrap());
        assert_eq!(&row[9], risk["score"].to_string());
        assert_eq!(&row[15], "export; even");
    }
    assert!(rows.iter().any(|r| r[2].starts_with("'=HYPERLINK")));

    // JSON: the same risks as the list, in the same order.
    let (headers, body) = export(&app, &format!("format=json&{filter}")).await;
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".json\"")
    );
    let exported: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(exported, want);

    // XLSX: a real workbook with the same rows.
    let (headers, body) = export(&app, &format!("format=xlsx&{filter}")).await;
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".xlsx\"")
    );
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(body)).unwrap();
    let sheet = workbook.worksheet_range("Risk register").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    assert_eq!(rows.len(), want.len() + 1);
    assert_eq!(rows[0][0], Data::String("ref".into()));
    for (row, risk) in rows[1..].iter().zip(&want) {
        assert_eq!(row[0], Data::String(risk["ref"].as_str().unwrap().into()));
        assert_eq!(row[2], Data::String(risk["title"].as_str().unwrap().into()));
        assert_eq!(row[9], Data::Float(risk["score"].as_f64().unwrap()));
    }

    // The whole register without filters, and nothing of another organization's.
    let (_, all) = export(&app, "format=json").await;
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&all).unwrap().len(), 21);
    let other = app.create_org("elsewhere").await;
    let response = app
        .request(Method::GET, "/api/v1/reports/risk-register", &other)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert_eq!(text.lines().count(), 1, "only the header: {text}");

    // No secret in any export.
    for format in ["csv", "json", "xlsx"] {
        let (_, body) = export(&app, &format!("format={format}")).await;
        assert!(
            !body.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{format}"
        );
    }
}

async fn the_summary_matches_the_dashboard(backend: Backend) {
    let app = spawn_app(backend).await;
    fill(&app).await;
    let t = &app.token;
    app.create_risk(
        t,
        json!({"title": "<script>alert(1)</script> & co", "likelihood": 5, "impact": 5}),
    )
    .await;
    let (_, risks) = app.get("/api/v1/risks?status=open&limit=1", t).await;
    let risk_id = risks["items"][0]["id"].as_str().unwrap().to_owned();
    let overdue_due = (chrono::Utc::now() - chrono::Duration::days(3)).date_naive();
    let (status, _) = app
        .post(
            &format!("/api/v1/risks/{risk_id}/mitigations"),
            t,
            json!({"title": "<b>Patch</b> servers", "due_date": overdue_due}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, summary) = app.get("/api/v1/reports/summary", t).await;
    assert_eq!(status, StatusCode::OK);
    let (_, stats) = app.get("/api/v1/dashboard/stats", t).await;
    let (_, matrix) = app.get("/api/v1/dashboard/matrix", t).await;
    let (_, top) = app.get("/api/v1/dashboard/top-risks?limit=10", t).await;
    assert_eq!(summary["stats"], stats);
    assert_eq!(summary["matrix"], matrix);
    assert_eq!(summary["top_risks"], top["items"]);
    assert_eq!(summary["organization"]["slug"], "default");
    let overdue = summary["overdue_mitigations"].as_array().unwrap();
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["days_overdue"], 3);
    assert_eq!(overdue[0]["risk_id"], risk_id.as_str());
    assert!(overdue[0]["risk_ref"].as_str().unwrap().starts_with("RSK-"));
    assert!(!summary.to_string().contains(SECRET));

    let response = app
        .request(Method::GET, "/api/v1/reports/summary?format=html", t)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let html = response.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"),
        "user text escaped"
    );
    assert!(html.contains("&lt;b&gt;Patch&lt;/b&gt; servers"));
    assert!(!html.contains("<script") && !html.contains("<b>"));
    // Self-contained: inline style, nothing fetched from elsewhere.
    assert!(html.contains("<style>"));
    for external in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "{external}");
    }
    assert!(!html.contains(SECRET));
}

async fn large_exports_stream_every_row_once(backend: Backend) {
    let app = spawn_app(backend).await;
    // Enough rows for many body chunks (and channel round trips).
    let org = app.store.organization_by_slug("default").await.unwrap().id;
    let (_, me) = app.get("/api/v1/me", &app.token).await;
    let actor: uuid::Uuid = me["user"]["id"].as_str().unwrap().parse().unwrap();
    let mut generator = openrisk::seed::Generator::new(5, openrisk::domain::now(), vec![actor], 700);
    let first = app.store.reserve_risk_numbers(org, 700).await.unwrap();
    let batch = generator.risks(first, 700);
    app.store.insert_seed(org, actor, &batch).await.unwrap();

    for filter in [
        "",
        "&severity=critical&severity=high",
        "&q=ransomware",
        "&category=Security&category=Legal",
        &format!("&owner_id={actor}"),
    ] {
        let want: Vec<String> = listed(&app, &format!("sort=created_at{filter}"))
            .await
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let (_, body) = export(&app, &format!("format=json&sort=created_at{filter}")).await;
        let got: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let got: Vec<String> = got.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(got, want, "{filter}");
        let (_, body) = export(&app, &format!("format=csv&sort=created_at{filter}")).await;
        let ids: Vec<String> = csv::Reader::from_reader(body.as_slice())
            .records()
            .map(|r| r.unwrap()[1].to_owned())
            .collect();
        assert_eq!(ids, want, "{filter}");
    }
}

async fn report_parameters_and_roles(backend: Backend) {
    let app = spawn_app(backend).await;
    let viewer = app.token_with_role(&app.token, "viewer").await;
    for path in [
        "/api/v1/reports/risk-register",
        "/api/v1/reports/summary",
        "/api/v1/reports/summary?format=html",
    ] {
        let (status, _) = app.get(path, &viewer).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let (status, problem) = app.get(path, "nope").await;
        assert_problem(status, &problem, StatusCode::UNAUTHORIZED, &[]);
    }
    for (path, param) in [
        ("/api/v1/reports/risk-register?format=pdf", "format"),
        ("/api/v1/reports/risk-register?status=bogus", "status"),
        ("/api/v1/reports/risk-register?sort=size", "sort"),
        ("/api/v1/reports/risk-register?limit=5", "limit"),
        ("/api/v1/reports/summary?format=pdf", "format"),
        ("/api/v1/reports/summary?days=3", "days"),
    ] {
        let (status, problem) = app.get(path, &viewer).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, &[param]);
    }
}

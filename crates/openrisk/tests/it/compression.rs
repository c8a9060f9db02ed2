//! Compression: answers in the coding the client prefers, cached answers in stored codings, exports
//! streamed compressed, and the same figures whatever the coding.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, HeaderMap, VARY};
use serde_json::json;

use crate::common::{Backend, TestApp, spawn_app, spawn_app_with};

on_each_backend!(
    answers_come_in_the_preferred_coding_and_decode_to_the_same_bytes,
    exports_stream_compressed,
    compression_can_be_turned_off,
);

/// Status, headers and raw (still encoded) body of a GET with `Accept-Encoding: accept`.
async fn fetch(
    app: &TestApp,
    path: &str,
    accept: Option<&str>,
    extra: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = app.client.get(app.url(path)).bearer_auth(&app.token);
    if let Some(accept) = accept {
        request = request.header(ACCEPT_ENCODING, accept);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out = body.to_vec(),
        Some("br") => brotli::BrotliDecompress(&mut &body[..], &mut out).unwrap(),
        Some("zstd") => out = zstd::stream::decode_all(body).unwrap(),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
        }
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn with_risks(app: &TestApp, count: usize) {
    for n in 0..count {
        app.create_risk(
            &app.token,
            json!({"title": format!("Supplier outage {n}"), "description": "A long enough description to make the page worth compressing.", "likelihood": 3, "impact": 4}),
        )
        .await;
    }
}

async fn answers_come_in_the_preferred_coding_and_decode_to_the_same_bytes(backend: Backend) {
    let app = spawn_app(backend).await;
    with_risks(&app, 20).await;
    for path in [
        "/api/v1/risks",
        "/api/v1/dashboard/stats",
        "/api/v1/reports/summary?format=html",
    ] {
        let (status, plain_headers, plain) = fetch(&app, path, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            header(&plain_headers, CONTENT_ENCODING),
            None,
            "{path}: compressed unasked"
        );
        for (accept, coding) in [
            ("gzip, deflate, br, zstd", "zstd"),
            ("gzip, deflate, br", "br"),
            ("zstd, gzip;q=0.5", "zstd"),
            ("gzip", "gzip"),
            ("br;q=0.2, gzip;q=0.8", "gzip"),
        ] {
            // The miss that stores the entry, then two hits: the first makes the coding, the
            // second sends it as stored.
            for round in 0..3 {
                let (status, headers, body) = fetch(&app, path, Some(accept), &[]).await;
                assert_eq!(status, StatusCode::OK);
                let context = format!("{path} {accept} round {round}");
                if plain.len() < 1024 {
                    assert_eq!(
                        header(&headers, CONTENT_ENCODING),
                        None,
                        "{context}: small answers go as they are"
                    );
                    assert_eq!(body, plain, "{context}");
                    continue;
                }
                assert_eq!(header(&headers, CONTENT_ENCODING), Some(coding), "{context}");
                assert!(
                    body.len() < plain.len(),
                    "{context}: {} ≥ {}",
                    body.len(),
                    plain.len()
                );
                assert_eq!(decode(Some(coding), &body), plain, "{context}");
                assert_eq!(header(&headers, ETAG), header(&plain_headers, ETAG), "{context}");
                assert!(
                    header(&headers, VARY).is_some_and(|v| v.contains("Accept-Encoding")),
                    "{context}"
                );
                if round > 0 {
                    assert_eq!(header(&headers, "x-cache"), Some("HIT"), "{context}");
                }
            }
        }
        // The ETag validates whatever the coding.
        let etag = header(&plain_headers, ETAG).unwrap().to_owned();
        let (status, _, _) = fetch(&app, path, Some("br"), &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
    }
    // The risk list decides its size at 20 risks: it is worth compressing.
    let (_, _, plain) = fetch(&app, "/api/v1/risks", None, &[]).await;
    assert!(plain.len() >= 1024, "the list is {} bytes", plain.len());

    // A write still reaches every coding: the next answer is new, compressed again.
    with_risks(&app, 1).await;
    let (_, headers, body) = fetch(&app, "/api/v1/risks?limit=200", Some("br"), &[]).await;
    let page: serde_json::Value =
        serde_json::from_slice(&decode(header(&headers, CONTENT_ENCODING), &body)).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 21);
}

async fn exports_stream_compressed(backend: Backend) {
    let app = spawn_app(backend).await;
    with_risks(&app, 30).await;
    let path = "/api/v1/reports/risk-register?format=csv";
    let (_, _, plain) = fetch(&app, path, None, &[]).await;
    for coding in ["gzip", "br", "zstd"] {
        let (status, headers, body) = fetch(&app, path, Some(coding), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, CONTENT_ENCODING), Some(coding));
        assert!(body.len() < plain.len());
        assert_eq!(decode(Some(coding), &body), plain, "{coding}");
    }
    // Spreadsheets are compressed already.
    let (_, headers, _) = fetch(
        &app,
        "/api/v1/reports/risk-register?format=xlsx",
        Some("gzip"),
        &[],
    )
    .await;
    assert_eq!(header(&headers, CONTENT_ENCODING), None);
}

async fn compression_can_be_turned_off(backend: Backend) {
    let app = spawn_app_with(backend, &[("COMPRESSION_ENABLED", "false")]).await;
    with_risks(&app, 20).await;
    for path in ["/api/v1/risks", "/api/v1/reports/risk-register?format=csv"] {
        for _ in 0..2 {
            let (status, headers, _) = fetch(&app, path, Some("gzip, br, zstd"), &[]).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(header(&headers, CONTENT_ENCODING), None, "{path}");
        }
    }
}

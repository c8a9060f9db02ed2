//! Slow and numerous clients, over raw sockets: headers sent a byte at a time or not at all,
//! sockets opened and left, more of them than the process has descriptors, exports never read.
//! None of it may keep the service from answering everyone else, and an answer cut short must
//! show it.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{self, Backend, ServiceProcess};

const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A connection from `local` (any 127.0.0.0/8 address: the service sees distinct clients).
async fn connect_from(local: [u8; 4], port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((local, 0))).unwrap();
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// Whether the service closes `stream` within `limit`, `drip` sent a byte at a time, 200 ms apart,
/// meanwhile (what it answers before closing is read and ignored).
async fn closed_within(stream: &mut TcpStream, drip: &[u8], limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut drip = drip.iter().cycle();
    let mut buffer = [0u8; 1024];
    while tokio::time::Instant::now() < deadline {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Some(byte) = drip.next()
                    && stream.write_all(&[*byte]).await.is_err()
                {
                    return true;
                }
            }
        }
    }
    false
}

/// One response on a kept-alive connection: its head, and as much body as it says it has.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// Whether `stream` is still open: nothing to read, no end, for 100 ms.
async fn still_open(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 256];
    tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer))
        .await
        .is_err()
}

fn port_of(app: &common::TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let app = common::spawn_app_with(Backend::Sqlite, &[("OPENRISK_HEADER_TIMEOUT", "1")]).await;
    let port = port_of(&app);
    let limit = Duration::from_secs(10);

    // A header sent a byte every 200 ms, never finished.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, b"X-Slow: 1\r\n", limit).await,
        "a slow header is cut off"
    );

    // A socket opened and left silent.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(
        closed_within(&mut silent, b"", limit).await,
        "a silent socket is closed"
    );

    // A kept-alive connection, idle after its answer.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    idle.write_all(LIVE).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut idle, b"", limit).await,
        "an idle connection is closed"
    );

    // The service answers on.
    assert_eq!(app.get("/api/v1/risks", &app.token).await.0, StatusCode::OK);
    let timed_out = app
        .metric("http_connections_timed_out_total{waiting_for=\"request\"}")
        .await;
    assert!(timed_out >= Some(3.0), "{timed_out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_sockets_takes_no_place_from_others() {
    let app = common::spawn_app_with(
        Backend::Sqlite,
        &[
            ("OPENRISK_MAX_CONNECTIONS", "40"),
            ("OPENRISK_MAX_CONNECTIONS_PER_IP", "20"),
            ("OPENRISK_HEADER_TIMEOUT", "120"),
        ],
    )
    .await;
    let port = port_of(&app);
    // A kept-alive connection that has been served: it keeps its place.
    let mut served = connect_from([127, 0, 0, 1], port).await;
    served.write_all(LIVE).await.unwrap();
    assert!(read_response(&mut served).await.starts_with("HTTP/1.1 200"));

    // 100 slow headers from the same address, held open.
    let mut flood = Vec::new();
    for _ in 0..100 {
        let mut socket = connect_from([127, 0, 0, 1], port).await;
        socket.write_all(b"GET /health/live HTTP/1.1\r\n").await.unwrap();
        flood.push(socket);
    }
    // Others are answered: from another address, and from the flooding one.
    for local in [[127, 0, 0, 2], [127, 0, 0, 1]] {
        let mut client = connect_from(local, port).await;
        client
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "from {local:?}: {answer}");
    }
    let mut open = 0;
    for socket in &mut flood {
        if still_open(socket).await {
            open += 1;
        }
    }
    assert!(
        open <= 20,
        "{open} of the flood's sockets hold places: at most 20 per address"
    );
    served.write_all(LIVE).await.unwrap();
    let answer = read_response(&mut served).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a connection that was served is never evicted"
    );
    let evicted = app.metric("http_connections_evicted_total").await;
    assert!(evicted >= Some(80.0), "{evicted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_at_once() {
    let app = common::spawn_app_with(
        Backend::Sqlite,
        &[
            ("OPENRISK_MAX_CONNECTIONS", "10"),
            ("OPENRISK_HEADER_TIMEOUT", "120"),
        ],
    )
    .await;
    let port = port_of(&app);
    // Ten kept-alive connections from five addresses, each having sent a request.
    let mut held = Vec::new();
    for i in 0..10u8 {
        let mut socket = connect_from([127, 0, 1, i / 2], port).await;
        socket.write_all(LIVE).await.unwrap();
        assert!(read_response(&mut socket).await.starts_with("HTTP/1.1 200"));
        held.push(socket);
    }
    let mut refused = connect_from([127, 0, 2, 1], port).await;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), refused.read_to_string(&mut answer))
        .await
        .expect("refused at once, not left waiting")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // A place given back is taken again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = app.get("/api/v1/risks", &app.token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_sockets_than_descriptors_leave_the_service_answering() {
    let db = common::Database::create(Backend::Sqlite).await;
    let token = format!("test-bootstrap-{}", uuid::Uuid::new_v4().simple());
    let service = ServiceProcess::start_with(
        &db.url,
        db.data_dir(),
        &[("OPENRISK_BOOTSTRAP_TOKEN", &token)],
        Some(400),
    )
    .await;
    let port: u16 = service.base.rsplit(':').next().unwrap().parse().unwrap();
    // 1 100 silent sockets from one address: more than the service has descriptors.
    let mut flood = Vec::new();
    for _ in 0..1_100 {
        flood.push(connect_from([127, 0, 0, 1], port).await);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..5 {
        let response = client
            .get(format!("{}/api/v1/risks", service.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answered while the sockets are held");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let metrics = client
        .get(format!("{}/metrics", service.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(common::sample_sum(&metrics, "http_accept_errors_total", &[]), 0.0);
    drop(flood);
}

/// A connection from `local` that receives into a small buffer, so that the service's writes
/// block soon once it stops reading.
async fn slow_reader(port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// An export of `format` that has begun (its head read), its body left unread.
async fn unread_export(port: u16, format: &str, token: &str) -> TcpStream {
    let mut stalled = slow_reader(port).await;
    let request = format!(
        "GET /api/v1/reports/risk-register?format={format} HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {token}\r\nAccept-Encoding: identity\r\n\r\n"
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    let mut start = [0u8; 12];
    stalled.read_exact(&mut start).await.unwrap();
    assert_eq!(&start, b"HTTP/1.1 200");
    stalled
}

/// An app with `settings` whose organization `default` holds 20 000 risks: exports that outlast
/// the sockets' buffers.
async fn with_large_register(backend: Backend, settings: &[(&str, &str)]) -> common::TestApp {
    let app = common::spawn_app_with(backend, settings).await;
    let org = app.store.organization_by_slug("default").await.unwrap();
    openrisk::cli::seed_register(app.store.as_ref(), &org, 20_000, 1)
        .await
        .unwrap();
    app
}

/// A client that stops reading an export holds no database connection meanwhile; after the send
/// time-out it loses its connection and its organization's place, and what it had been sent ends
/// without the chunked body's end: never a shorter, well-formed document.
async fn a_stalled_export_ends_visibly_and_holds_nothing(backend: Backend) {
    let settings = [
        ("OPENRISK_SEND_TIMEOUT", "3"),
        ("RATE_LIMIT_EXPENSIVE_CONCURRENCY", "1"),
    ];
    let app = with_large_register(backend, &settings).await;
    let port = port_of(&app);
    for format in ["csv", "json"] {
        let mut stalled = unread_export(port, format, &app.token).await;
        // The export's query is over while its client reads nothing.
        app.wait_for_metric("db_pool_connections{state=\"in_use\"}", 0.0)
            .await;
        // Its place comes back once the send time-out has closed the connection.
        let mut status = StatusCode::TOO_MANY_REQUESTS;
        for _ in 0..100 {
            let response = app
                .request(reqwest::Method::HEAD, "/api/v1/reports/risk-register", &app.token)
                .send()
                .await
                .unwrap();
            status = response.status();
            if status == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            status,
            StatusCode::OK,
            "{format}: the export's place is given back"
        );
        // Reading on: the body stops short of its end.
        let mut rest = Vec::new();
        let _ = stalled.read_to_end(&mut rest).await;
        assert!(
            !rest.ends_with(b"0\r\n\r\n"),
            "{format}: the body is not terminated"
        );
    }
    let cut = app
        .metric("http_connections_timed_out_total{waiting_for=\"client_read\"}")
        .await;
    assert_eq!(cut, Some(2.0));
}

/// A token may hold only its share of its organization's export places.
async fn one_token_cannot_hold_every_export_place(backend: Backend) {
    let settings = [
        ("RATE_LIMIT_EXPENSIVE_CONCURRENCY", "4"),
        ("RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN", "2"),
    ];
    let app = with_large_register(backend, &settings).await;
    let viewer = app.token_with_role(&app.token, "viewer").await;
    let port = port_of(&app);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(unread_export(port, "csv", &viewer).await);
    }
    let export = "/api/v1/reports/risk-register";
    let third = app
        .request(reqwest::Method::HEAD, export, &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["ratelimit-limit"], "2");
    let other = app
        .request(reqwest::Method::HEAD, export, &app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "another token of the organization still exports"
    );
}

on_each_backend!(
    a_stalled_export_ends_visibly_and_holds_nothing,
    one_token_cannot_hold_every_export_place
);

//! The cache across replicas and through Redis failures. Each test starts its own `redis-server`
//! on a free port (to kill, stop and restart it) and a second replica as a separate process.

mod eviction;
mod interleavings;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, Backend, ServiceProcess, TestApp};

/// A second replica: the service binary as its own process, on the same database and Redis.
struct Replica {
    service: ServiceProcess,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Replica {
    async fn start(app: &TestApp, redis_url: &str) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let service = ServiceProcess::start(&app.db.url, dir.path(), &[("REDIS_URL", redis_url)]).await;
        Replica {
            service,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }
}

/// A replica to read from and write to, by its address: the test's own app or another process.
trait Node {
    fn base(&self) -> &str;
    fn client(&self) -> &reqwest::Client;

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base());
        common::read(self.client().get(url).bearer_auth(token).send().await.unwrap()).await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let request = self.client().patch(format!("{}{path}", self.base()));
        common::read(request.bearer_auth(token).json(&body).send().await.unwrap()).await
    }
}

impl Node for Replica {
    fn base(&self) -> &str {
        &self.service.base
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Node for TestApp {
    fn base(&self) -> &str {
        &self.address
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

async fn replica_pair(backend: Backend, redis: &RedisServer) -> (TestApp, Replica) {
    replicas_on(backend, &redis.url()).await
}

async fn replicas_on(backend: Backend, redis_url: &str) -> (TestApp, Replica) {
    let app = common::spawn_app_with(backend, &[("REDIS_URL", redis_url)]).await;
    let replica = Replica::start(&app, redis_url).await;
    (app, replica)
}

/// Reads `path` on the replica until `fresh` holds; panics if a read asked for later than the
/// bound after the write's response is stale.
async fn fresh_within_bound(
    replica: &impl Node,
    token: &str,
    path: &str,
    fresh: impl Fn(&Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let asked = started.elapsed();
        let (status, body) = replica.get(path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if fresh(&body) {
            return started.elapsed();
        }
        assert!(
            asked < Duration::from_millis(100),
            "{path} still stale when asked {asked:?} after the write's response: {body}"
        );
    }
}

async fn writes_on_one_replica_are_seen_on_the_other(backend: Backend) {
    let redis = RedisServer::start();
    let (a, b) = replica_pair(backend, &redis).await;
    writes_are_seen_across(&a, &b).await;
}

async fn writes_are_seen_across(a: &TestApp, b: &Replica) {
    let risk = a
        .create_risk(&a.token, json!({"title": "Shared", "likelihood": 2, "impact": 2}))
        .await;
    let item = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    for trial in 0..30 {
        // The replica holds the current answers in its cache.
        for path in [item.as_str(), "/api/v1/risks", "/api/v1/dashboard/matrix"] {
            b.get(path, &a.token).await;
            b.get(path, &a.token).await;
        }
        let title = format!("Shared {trial}");
        let likelihood = 1 + trial % 5;
        let (status, body) = a
            .patch(&item, &a.token, json!({"title": title, "likelihood": likelihood}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Read your writes: the very first read on the other replica shows the write.
        let (_, read) = b.get(&item, &a.token).await;
        assert_eq!(read["title"], title.as_str(), "stale item on the other replica");
        let (_, page) = b.get("/api/v1/risks", &a.token).await;
        assert_eq!(
            page["items"][0]["title"],
            title.as_str(),
            "stale list on the other replica"
        );
        let (_, matrix) = b.get("/api/v1/dashboard/matrix", &a.token).await;
        assert_eq!(
            matrix["cells"][(likelihood - 1) as usize][1],
            1,
            "stale matrix on the other replica"
        );
    }
}

/// An answer is compressed once for all replicas: the one that fills the entry stores it in Redis
/// in zstd, and the others send those bytes as they are. A coding Redis does not hold is made by
/// the replica that needs it, once.
async fn an_entry_is_compressed_once_for_every_replica(backend: Backend) {
    let redis = RedisServer::start();
    let (a, b) = replica_pair(backend, &redis).await;
    for n in 0..30 {
        a.create_risk(
            &a.token,
            json!({"title": format!("Vendor {n}"), "likelihood": 3, "impact": 4}),
        )
        .await;
    }
    let zstd = r#"cache_codings_made_total{coding="zstd"}"#;
    let br = r#"cache_codings_made_total{coding="br"}"#;
    let get = |base: &str, accept: &str| {
        a.client
            .get(format!("{base}/api/v1/risks"))
            .bearer_auth(&a.token)
            .header("accept-encoding", accept)
            .send()
    };
    let entries = || {
        redis
            .cli(&["KEYS", "openrisk:*:c:*"])
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = entries();
    let filled = get(&a.address, "gzip, deflate, br, zstd").await.unwrap();
    assert_eq!(filled.headers()["x-cache"], "MISS");
    assert_eq!(filled.headers()["content-encoding"], "zstd");
    let filled = filled.bytes().await.unwrap();
    assert_eq!(
        a.metric(zstd).await,
        Some(1.0),
        "made once, by the replica that filled it"
    );
    // The entry goes to Redis in the background.
    for _ in 0..100 {
        if entries() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let from_redis = get(&b.service.base, "gzip, deflate, br, zstd").await.unwrap();
    assert_eq!(from_redis.headers()["cache-status"], "OpenRisk; hit; detail=l2");
    assert_eq!(from_redis.headers()["content-encoding"], "zstd");
    assert_eq!(from_redis.bytes().await.unwrap(), filled, "the filler's bytes");
    let b_metrics = metrics_text(&b).await;
    assert!(
        !b_metrics.contains(zstd),
        "the other replica compressed again: {b_metrics}"
    );

    let brotli = get(&b.service.base, "br").await.unwrap();
    assert_eq!(brotli.headers()["content-encoding"], "br");
    let brotli = brotli.bytes().await.unwrap();
    let mut plain = Vec::new();
    brotli::BrotliDecompress(&mut &brotli[..], &mut plain).unwrap();
    assert_eq!(plain, zstd::stream::decode_all(&filled[..]).unwrap());
    get(&b.service.base, "br").await.unwrap();
    let b_metrics = metrics_text(&b).await;
    assert!(b_metrics.contains(&format!("{br} 1\n")), "{b_metrics}");
}

/// The replica's `/metrics`.
async fn metrics_text(replica: &Replica) -> String {
    let url = format!("{}/metrics", replica.service.base);
    let response = replica.client.get(url).send().await.unwrap();
    response.text().await.unwrap()
}

/// Reads and writes on both replicas while Redis dies, comes back empty, dies again and comes back
/// with a snapshot taken before the writes: never a 5xx, never a stale read.
async fn redis_outages_cause_no_errors_and_no_stale_reads(backend: Backend) {
    let mut redis = RedisServer::start();
    let (a, b) = replica_pair(backend, &redis).await;
    let risk = a
        .create_risk(
            &a.token,
            json!({"title": "Survives", "likelihood": 3, "impact": 3}),
        )
        .await;
    let item = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    let mut version = 0;
    version += 1;
    write(&a, &item, version).await;
    check(&a, &b, &item, version).await;
    // A snapshot with version 1 cached in it.
    assert_eq!(redis.cli(&["SAVE"]).unwrap().trim(), "OK");

    for keep in [false, true] {
        redis.kill();
        for _ in 0..2 {
            version += 1;
            write(&a, &item, version).await;
            check(&a, &b, &item, version).await;
        }
        redis.restart(keep);
        check(&a, &b, &item, version).await;
        // Both replicas pick Redis up again and serve from the cache, fresh.
        wait_until_ready(&a).await;
        wait_until_cached(&a, &item).await;
        check(&a, &b, &item, version).await;
        version += 1;
        write(&a, &item, version).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        check(&a, &b, &item, version).await;
    }
}

async fn wait_until_ready(app: &TestApp) {
    for _ in 0..100 {
        let (_, ready) = app.get("/health/ready", &app.token).await;
        if ready["status"] == "ok" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the replica did not recover from the Redis outage");
}

/// Until `path` is served from the cache again.
async fn wait_until_cached(app: &TestApp, path: &str) {
    for _ in 0..100 {
        let response = app.request(Method::GET, path, &app.token).send().await.unwrap();
        if response.headers()["x-cache"] == "HIT" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} was never served from the cache again");
}

async fn write(a: &TestApp, item: &str, version: i32) {
    let (status, body) = a
        .patch(item, &a.token, json!({"title": format!("v{version}")}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Both replicas, several times each, answer the latest version.
async fn check(a: &TestApp, b: &Replica, item: &str, version: i32) {
    let title = format!("v{version}");
    for _ in 0..3 {
        for (name, (status, body)) in [
            ("a", a.get(item, &a.token).await),
            ("b", b.get(item, &a.token).await),
        ] {
            assert_eq!(status, StatusCode::OK, "replica {name}: {body}");
            assert_eq!(body["title"], title.as_str(), "replica {name} is stale");
        }
    }
}

/// A Redis that accepts connections but never answers (SIGSTOP): requests stay fast and correct,
/// readiness says degraded; after SIGCONT the cache serves again.
async fn a_hung_redis_does_not_stall_requests(backend: Backend) {
    let redis = RedisServer::start();
    let (a, b) = replica_pair(backend, &redis).await;
    let risk = a
        .create_risk(&a.token, json!({"title": "Hung", "likelihood": 3, "impact": 3}))
        .await;
    let item = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    b.get(&item, &a.token).await;
    redis.signal("-STOP");
    for n in 0..20 {
        let started = Instant::now();
        let (status, body) = a.patch(&item, &a.token, json!({"title": format!("t{n}")})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (status, body) in [a.get(&item, &a.token).await, b.get(&item, &a.token).await] {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["title"], format!("t{n}"));
        }
        // A stuck Redis costs a request at most its time-box, never a hang.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let (status, ready) = a.get("/health/ready", &a.token).await;
    assert_eq!(
        (status, &ready["status"]),
        (StatusCode::OK, &json!("degraded")),
        "{ready}"
    );
    redis.signal("-CONT");
    wait_until_ready(&a).await;
    wait_until_cached(&a, &item).await;
    let (_, body) = b.get(&item, &a.token).await;
    assert_eq!(body["title"], "t19");
}

/// The replica's subscription is killed (`CLIENT KILL TYPE pubsub`): until it has resubscribed
/// it does not serve from its L1, and no read is stale.
async fn a_lost_subscription_stops_trust_in_l1(backend: Backend) {
    let redis = RedisServer::start();
    let (a, b) = replica_pair(backend, &redis).await;
    let risk = a
        .create_risk(&a.token, json!({"title": "Sub", "likelihood": 3, "impact": 3}))
        .await;
    let item = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    for n in 0..10 {
        b.get(&item, &a.token).await;
        b.get(&item, &a.token).await;
        let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap();
        assert!(killed.trim().parse::<u32>().unwrap() >= 1, "{killed}");
        let title = format!("after kill {n}");
        let (status, _) = a.patch(&item, &a.token, json!({"title": title})).await;
        assert_eq!(status, StatusCode::OK);
        fresh_within_bound(&b, &a.token, &item, |r| r["title"] == title.as_str()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Redis absent when the service starts: it starts, degraded, serves from the database, and uses
/// the cache once Redis appears.
async fn redis_down_at_start_up_is_picked_up_later(backend: Backend) {
    let mut redis = RedisServer::start();
    redis.kill();
    let app = common::spawn_app_with(backend, &[("REDIS_URL", &redis.url())]).await;
    let (status, ready) = app.get("/health/ready", &app.token).await;
    assert_eq!(
        (status, &ready["status"]),
        (StatusCode::OK, &json!("degraded")),
        "{ready}"
    );
    let response = app
        .request(Method::GET, "/api/v1/risks", &app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-cache"], "BYPASS");
    redis.launch();
    wait_until_ready(&app).await;
    wait_until_cached(&app, "/api/v1/risks").await;
}

mod cluster {
    use super::*;

    /// Invalidations reach the other replica through a three-master Redis Cluster.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_on_one_replica_are_seen_on_the_other() {
        let cluster = common::redis::RedisCluster::start();
        let (a, b) = replicas_on(Backend::Sqlite, &cluster.url()).await;
        writes_are_seen_across(&a, &b).await;
    }
}

on_each_backend!(
    writes_on_one_replica_are_seen_on_the_other,
    an_entry_is_compressed_once_for_every_replica,
    redis_outages_cause_no_errors_and_no_stale_reads,
    a_hung_redis_does_not_stall_requests,
    a_lost_subscription_stops_trust_in_l1,
    redis_down_at_start_up_is_picked_up_later,
);

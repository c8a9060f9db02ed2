//! Redis forgetting what the cache keeps there: generations, the epoch, entries or all of them,
//! deleted deterministically, evicted under real memory pressure with every eviction policy, or
//! brought back from an older snapshot. No read after a write's response may be stale: on the
//! writing replica at once, on the others within the bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use rand::Rng;
use rand::distr::Alphanumeric;

use super::*;
use crate::common::redis::{RedisCluster, TestRedis};

/// What Redis loses, as key patterns.
const LOSSES: [(&str, &[&str]); 4] = [
    ("generations", &["openrisk:*:g:*"]),
    ("epoch", &["openrisk:epoch"]),
    ("entries", &["openrisk:*:c:*"]),
    ("everything", &["openrisk:*"]),
];

/// The title of risk `id` in the first page of the register, as `node` lists it.
async fn listed_title(node: &impl Node, token: &str, id: &str) -> Value {
    let (status, page) = node.get("/api/v1/risks?limit=200", token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    listed(&page, id)
}

fn listed(page: &Value, id: &str) -> Value {
    page["items"]
        .as_array()
        .and_then(|items| items.iter().find(|risk| risk["id"] == id))
        .map_or(Value::Null, |risk| risk["title"].clone())
}

/// Write on A, Redis loses keys, a new replica B starts, writes and reads; both replicas must
/// show B's write. Once for each kind of loss.
async fn the_last_write_survives_any_loss(backend: Backend, redis: &impl TestRedis) {
    let a = common::spawn_app_with(backend, &[("REDIS_URL", &redis.url())]).await;
    let token = a.token.as_str();
    for (loss, patterns) in LOSSES {
        let risk = a
            .create_risk(
                token,
                json!({"title": "first title", "likelihood": 5, "impact": 5}),
            )
            .await;
        let id = risk["id"].as_str().unwrap();
        let item = format!("/api/v1/risks/{id}");
        listed_title(&a, token, id).await;
        listed_title(&a, token, id).await;
        let (status, _) = a.patch(&item, token, json!({"title": "second title"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed_title(&a, token, id).await, "second title");

        let deleted: usize = patterns.iter().map(|p| redis.delete_matching(p)).sum();
        assert!(deleted > 0, "{loss}: nothing to delete");
        let b = Replica::start(&a, &redis.url()).await;
        assert_eq!(listed_title(&b, token, id).await, "second title", "{loss}");
        let (status, body) = b.patch(&item, token, json!({"title": "third title"})).await;
        assert_eq!(status, StatusCode::OK, "{loss}: {body}");
        for _ in 0..2 {
            assert_eq!(
                listed_title(&b, token, id).await,
                "third title",
                "{loss}: B lists"
            );
            assert_eq!(
                b.get(&item, token).await.1["title"],
                "third title",
                "{loss}: B reads"
            );
        }
        fresh_within_bound(&a, token, "/api/v1/risks?limit=200", |page| {
            listed(page, id) == "third title"
        })
        .await;
        assert_eq!(
            a.get(&item, token).await.1["title"],
            "third title",
            "{loss}: A reads"
        );
    }
}

async fn the_last_write_survives_any_loss_of_keys(backend: Backend) {
    the_last_write_survives_any_loss(backend, &RedisServer::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_write_survives_any_loss_of_keys_in_a_cluster() {
    the_last_write_survives_any_loss(Backend::Sqlite, &RedisCluster::start()).await;
}

/// Every eviction policy, each under real memory pressure: one organization floods the cache with
/// distinct large answers while another writes through each replica in turn and every replica
/// reads after each write; a third replica, started anew at each policy while keys are missing,
/// reads alongside.
async fn no_stale_read_under_memory_pressure(backend: Backend) {
    let redis = RedisServer::start_with(&MEMORY_LIMIT);
    let a = common::spawn_app_with(backend, &[("REDIS_URL", &redis.url())]).await;
    let flooder = a
        .create_org(&format!("flood-{}", uuid::Uuid::new_v4().simple()))
        .await;
    under_memory_pressure(&a, &redis, &flooder).await;
}

/// The same in a three-master cluster, each master limited. The writing organization floods the
/// cache itself, so that the pressure falls on the master that holds its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_under_memory_pressure_in_a_cluster() {
    let redis = RedisCluster::start_with(&MEMORY_LIMIT);
    let a = common::spawn_app_with(Backend::Sqlite, &[("REDIS_URL", &redis.url())]).await;
    let token = a.token.clone();
    under_memory_pressure(&a, &redis, &token).await;
}

const MEMORY_LIMIT: [&str; 4] = ["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"];

async fn under_memory_pressure(a: &TestApp, redis: &impl TestRedis, flooder: &str) {
    let (_, ready) = a.get("/health/ready", &a.token).await;
    let memory = &ready["cache"]["redis_memory"][0];
    assert_eq!(memory["maxmemory"], 3 * 1024 * 1024, "{ready}");
    assert_eq!(memory["maxmemory_policy"], "allkeys-lru", "{ready}");
    let b = Replica::start(a, &redis.url()).await;
    for n in 0..60 {
        let description: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(1500)
            .map(char::from)
            .collect();
        let body =
            json!({"title": format!("flood {n}"), "description": description, "likelihood": 3, "impact": 3});
        a.create_risk(flooder, body).await;
    }
    let token = a.token.as_str();
    let risk = a
        .create_risk(token, json!({"title": "w0", "likelihood": 4, "impact": 4}))
        .await;
    let id = risk["id"].as_str().unwrap().to_owned();
    let item = format!("/api/v1/risks/{id}");
    let register = "/api/v1/risks?limit=200";

    let stop = Arc::new(AtomicBool::new(false));
    let bases = vec![a.address.clone(), b.base().to_owned()];
    let flood = tokio::spawn(flood(bases, flooder.to_owned(), stop.clone()));
    let mut nodes = vec![Endpoint::new(&a.address), Endpoint::new(b.base())];
    // Cached before any write, under the first generations: what a lost generation must never
    // make reachable again.
    for node in &nodes {
        node.get(&item, token).await;
        listed_title(node, token, &id).await;
    }
    let mut late_replica = None;
    let policies = [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
        "noeviction",
    ];
    let mut writes = 0;
    for (phase, &policy) in policies.iter().enumerate() {
        redis.configure("maxmemory-policy", policy);
        if phase > 0 {
            nodes.truncate(2);
            drop(late_replica.take());
            let c = Replica::start(a, &redis.url()).await;
            nodes.push(Endpoint::new(c.base()));
            late_replica = Some(c);
        }
        for _ in 0..6 {
            writes += 1;
            let title = format!("w{writes} under {policy}");
            let writer = writes % nodes.len();
            let (status, body) = nodes[writer].patch(&item, token, json!({"title": title})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            for (n, node) in nodes.iter().enumerate() {
                if n == writer {
                    assert_eq!(
                        node.get(&item, token).await.1["title"],
                        title.as_str(),
                        "{policy}"
                    );
                    assert_eq!(listed_title(node, token, &id).await, title.as_str(), "{policy}");
                } else {
                    fresh_within_bound(node, token, &item, |r| r["title"] == title.as_str()).await;
                    fresh_within_bound(node, token, register, |page| listed(page, &id) == title.as_str())
                        .await;
                }
            }
        }
    }
    stop.store(true, Relaxed);
    let flooded = flood.await.unwrap();
    drop(late_replica);
    let evicted = redis.evicted_keys();
    assert!(evicted > 0, "no key was evicted: no memory pressure");
    eprintln!("{writes} writes checked on every replica, {flooded} flooding reads, {evicted} keys evicted");
}

/// A replica by its address, whichever process it runs in.
struct Endpoint {
    base: String,
    client: reqwest::Client,
}

impl Endpoint {
    fn new(base: &str) -> Endpoint {
        Endpoint {
            base: base.to_owned(),
            client: reqwest::Client::new(),
        }
    }
}

impl Node for Endpoint {
    fn base(&self) -> &str {
        &self.base
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Distinct queries over the flooding organization's register, round-robin over the replicas,
/// until `stop`; returns how many.
async fn flood(bases: Vec<String>, token: String, stop: Arc<AtomicBool>) -> usize {
    let client = reqwest::Client::new();
    let sorts = ["score", "-score", "title", "-title", "created_at", "-created_at"];
    let mut n = 0;
    while !stop.load(Relaxed) {
        let path = format!(
            "/api/v1/risks?limit={}&sort={}",
            1 + n % 60,
            sorts[(n / 60) % sorts.len()]
        );
        let base = &bases[n % bases.len()];
        // Refreshed: the database answers, and every answer is stored in Redis (a register's
        // answers stay in memory).
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .header("cache-control", "no-cache")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        n += 1;
    }
    n
}

/// Redis comes back from a snapshot older than the last writes while no replica runs: a replica
/// started afterwards must not trust the generations, epoch and entries the snapshot brought back.
async fn a_replica_started_after_redis_went_back_in_time_reads_fresh(backend: Backend) {
    let mut redis = RedisServer::start_with(&["--save", "3600 1"]);
    let app = common::spawn_app(backend).await;
    let token = app.token.as_str();
    let risk = app
        .create_risk(token, json!({"title": "v0", "likelihood": 2, "impact": 2}))
        .await;
    let item = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    let before = Replica::start(&app, &redis.url()).await;
    for version in ["v1", "v2"] {
        let (status, _) = before.patch(&item, token, json!({"title": version})).await;
        assert_eq!(status, StatusCode::OK);
        for _ in 0..2 {
            assert_eq!(before.get(&item, token).await.1["title"], version);
        }
        if version == "v1" {
            // The snapshot holds v1's generations, epoch and cached answers.
            assert_eq!(redis.cli(&["SAVE"]).unwrap().trim(), "OK");
        }
    }
    drop(before);
    redis.restart(true);
    let after = Replica::start(&app, &redis.url()).await;
    for _ in 0..3 {
        assert_eq!(after.get(&item, token).await.1["title"], "v2");
    }
}

/// Redis over its `maxmemory` under `noeviction` refuses to store anything (generations, entries,
/// the epoch) but still answers reads and deletions: writes stay visible at once on the writing
/// replica and within the bound on the other, with no error; the cache serves again once memory
/// frees.
async fn a_full_redis_refusing_writes_serves_no_stale_answer(backend: Backend) {
    let redis = RedisServer::start();
    let (a, b) = replica_pair(backend, &redis).await;
    let token = a.token.as_str();
    let risk = a
        .create_risk(token, json!({"title": "t0", "likelihood": 3, "impact": 3}))
        .await;
    let item = format!("/api/v1/risks/{}", risk["id"].as_str().unwrap());
    a.get(&item, token).await;
    b.get(&item, token).await;
    let fill = "for i = 1, 500 do redis.call('SET', 'junk:' .. i, string.rep('x', 10000)) end";
    assert!(redis.cli(&["EVAL", fill, "0"]).is_some());
    redis.configure("maxmemory-policy", "noeviction");
    redis.configure("maxmemory", "2mb");
    for n in 1..=6 {
        let title = format!("t{n}");
        if n % 2 == 0 {
            write_and_read(&a, &b, token, &item, &title).await;
        } else {
            write_and_read(&b, &a, token, &item, &title).await;
        }
    }
    let errors = redis.cli(&["INFO", "errorstats"]).unwrap();
    assert!(
        errors.contains("errorstat_OOM"),
        "Redis refused nothing: {errors}"
    );
    redis.delete_matching("junk:*");
    wait_until_cached(&a, &item).await;
    assert_eq!(b.get(&item, token).await.1["title"], "t6");
}

/// Writes `title` through `writer`: it reads it at once, `other` within the bound.
async fn write_and_read(writer: &impl Node, other: &impl Node, token: &str, item: &str, title: &str) {
    let (status, body) = writer.patch(item, token, json!({"title": title})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for _ in 0..2 {
        assert_eq!(writer.get(item, token).await.1["title"], title);
    }
    fresh_within_bound(other, token, item, |r| r["title"] == title).await;
}

on_each_backend!(
    the_last_write_survives_any_loss_of_keys,
    a_full_redis_refusing_writes_serves_no_stale_answer,
    no_stale_read_under_memory_pressure,
    a_replica_started_after_redis_went_back_in_time_reads_fresh,
);

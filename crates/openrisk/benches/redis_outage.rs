//! The cache through a Redis outage, and invalidation across replicas, measured in one run:
//! 1. steady mixed load (95 % reads, 5 % writes) on one replica for 30 s; Redis is killed at 10 s
//!    and restarted empty at 20 s; one line per second: requests, errors, p99, cache hits;
//! 2. 300 writes on one replica, each followed by polling the other until it answers the new
//!    value: the delay after the write's response (p50, p99, max).
//!
//! Starts its own `redis-server`; SQLite in a temporary directory. `cargo bench --bench redis_outage`

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

mod support;

use serde_json::{Value, json};
use support::{TOKEN, spawn};
use tokio::sync::Mutex;

const WORKERS: usize = 16;
const SECONDS: u64 = 30;

/// One request: the second it started in, its latency, whether it succeeded, whether it hit.
type Sample = (u64, Duration, bool, bool);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut redis = start_redis(port)?;
    let redis_url = format!("redis://127.0.0.1:{port}");
    let database = format!("sqlite://{}/openrisk.db", dir.path().display());
    let replica = |name: &str| {
        let data = dir.path().join(name).display().to_string();
        let (database, redis_url) = (database.clone(), redis_url.clone());
        async move {
            spawn(&[
                ("OPENRISK_DATA_DIR", &data),
                ("DATABASE_URL", &database),
                ("REDIS_URL", &redis_url),
            ])
            .await
        }
    };
    let a = replica("a").await?;
    let b = replica("b").await?;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..200 {
        let risk: Value = client
            .post(format!("{a}/api/v1/risks"))
            .bearer_auth(TOKEN)
            .json(&json!({"title": format!("Risk {n}"), "likelihood": 1 + n % 5, "impact": 1 + n % 3}))
            .send()
            .await?
            .json()
            .await?;
        ids.push(risk["id"].as_str().unwrap_or_default().to_owned());
    }

    // 1. Throughput through an outage.
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (client, samples, stop, ids, a) = (
                client.clone(),
                samples.clone(),
                stop.clone(),
                ids.clone(),
                a.clone(),
            );
            tokio::spawn(async move {
                let mut n = w;
                while !stop.load(Relaxed) {
                    n += WORKERS;
                    let id = &ids[n % ids.len()];
                    let request = match n % 20 {
                        0 => client
                            .patch(format!("{a}/api/v1/risks/{id}"))
                            .json(&json!({"likelihood": 1 + n % 5})),
                        1..=7 => client.get(format!("{a}/api/v1/risks")),
                        8..=13 => client.get(format!("{a}/api/v1/risks/{id}")),
                        _ => client.get(format!("{a}/api/v1/dashboard/stats")),
                    };
                    let sent = Instant::now();
                    let response = request.bearer_auth(TOKEN).send().await;
                    let (ok, hit) = match response {
                        Ok(r) => (
                            r.status().is_success(),
                            r.headers().get("x-cache").is_some_and(|v| v == "HIT"),
                        ),
                        Err(_) => (false, false),
                    };
                    samples
                        .lock()
                        .await
                        .push((started.elapsed().as_secs(), sent.elapsed(), ok, hit));
                }
            })
        })
        .collect();
    // BENCH_NO_OUTAGE=1: the same run with Redis up throughout, for comparison.
    let outage = std::env::var("BENCH_NO_OUTAGE").is_err();
    tokio::time::sleep(Duration::from_secs(10)).await;
    if outage {
        redis.kill()?;
        redis.wait()?;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    if outage {
        redis = start_redis(port)?;
    }
    tokio::time::sleep(Duration::from_secs(SECONDS - 20)).await;
    stop.store(true, Relaxed);
    for worker in workers {
        worker.await?;
    }
    println!("second | requests | errors | p50 ms | p99 ms | cache hits | Redis");
    println!("---|---|---|---|---|---|---");
    let samples = samples.lock().await;
    for second in 0..SECONDS {
        let mut latencies: Vec<Duration> = samples.iter().filter(|s| s.0 == second).map(|s| s.1).collect();
        if latencies.is_empty() {
            continue;
        }
        latencies.sort();
        let in_second = samples.iter().filter(|s| s.0 == second);
        let errors = in_second.clone().filter(|s| !s.2).count();
        let hits = in_second.filter(|s| s.3).count();
        let state = if outage && (10..20).contains(&second) {
            "down"
        } else {
            "up"
        };
        println!(
            "{second} | {} | {errors} | {:.2} | {:.2} | {:.0} % | {state}",
            latencies.len(),
            latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
            latencies[latencies.len() * 99 / 100].as_secs_f64() * 1000.0,
            100.0 * hits as f64 / latencies.len() as f64,
        );
    }

    // 2. Invalidation across replicas.
    let item = format!("/api/v1/risks/{}", ids[0]);
    let mut delays = Vec::new();
    for trial in 0..300 {
        client.get(format!("{b}{item}")).bearer_auth(TOKEN).send().await?;
        let title = format!("Trial {trial}");
        client
            .patch(format!("{a}{item}"))
            .bearer_auth(TOKEN)
            .json(&json!({"title": title}))
            .send()
            .await?
            .error_for_status()?;
        let written = Instant::now();
        loop {
            let risk: Value = client
                .get(format!("{b}{item}"))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .json()
                .await?;
            if risk["title"] == title.as_str() {
                delays.push(written.elapsed());
                break;
            }
        }
    }
    delays.sort();
    println!(
        "\ncross-replica: the other replica answered the new value {:?} (p50), {:?} (p99), {:?} (max) \
         after the write's response, over {} writes (each delay includes one read round trip)",
        delays[delays.len() / 2],
        delays[delays.len() * 99 / 100],
        delays[delays.len() - 1],
        delays.len()
    );
    redis.kill()?;
    Ok(())
}

fn start_redis(port: u16) -> anyhow::Result<Child> {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()?;
    for _ in 0..100 {
        let pong = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "PING"])
            .output()?;
        if String::from_utf8_lossy(&pong.stdout).trim() == "PONG" {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("redis-server did not start")
}

//! PostgreSQL going away under a mixed load, on a server of the test's own (so the machine's
//! server is never touched): a fast restart, a `kill -9` of the postmaster, and a stall (every
//! server process stopped with `SIGSTOP`). Meanwhile failures are clean 503s, readiness reports the
//! outage, no acknowledged write is lost, and the service is back once the database is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::IndexedRandom;
use reqwest::StatusCode;

use crate::common::ServiceProcess;
use crate::common::postgres::PostgresServer;
use crate::common::writes::{Writer, acknowledged, assert_aggregates_match, assert_all_there, writers};

#[derive(Clone, Copy, Debug)]
enum Fault {
    FastRestart,
    PostmasterKilled,
    Stall,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_restart() {
    survives(Fault::FastRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postmaster_killed() {
    survives(Fault::PostmasterKilled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall() {
    survives(Fault::Stall).await;
}

/// How long the database stays away: down between a stop and the next start, or frozen.
const OUTAGE: Duration = Duration::from_secs(1);
const STALL: Duration = Duration::from_secs(3);
/// How long the load goes on once the database is back.
const AFTER: Duration = Duration::from_secs(3);

/// One request of the load, timed from the start of the load.
#[derive(Debug)]
struct Sent {
    read: bool,
    started: Duration,
    finished: Duration,
    /// `None`: no whole answer arrived.
    status: Option<StatusCode>,
}

/// Runs `work` until `stop`, timing each request.
fn load<W, F>(
    t0: Instant,
    stop: Arc<AtomicBool>,
    read: bool,
    mut work: W,
) -> tokio::task::JoinHandle<Vec<Sent>>
where
    W: FnMut() -> F + Send + 'static,
    F: Future<Output = Option<StatusCode>> + Send,
{
    tokio::spawn(async move {
        let mut sent = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = t0.elapsed();
            let status = work().await;
            sent.push(Sent {
                read,
                started,
                finished: t0.elapsed(),
                status,
            });
        }
        sent
    })
}

async fn survives(fault: Fault) {
    let pg = PostgresServer::start();
    let data = tempfile::tempdir().unwrap();
    let token = format!("faults-bootstrap-{}", uuid::Uuid::new_v4().simple());
    // No cache: every read goes to the database.
    let env = [
        ("OPENRISK_BOOTSTRAP_TOKEN", token.as_str()),
        ("CACHE_ENABLED", "false"),
    ];
    let service = ServiceProcess::start(&pg.url(), data.path(), &env).await;
    let mut seeder = Writer::new(&service.base, &token, "seed".into());
    for _ in 0..20 {
        assert!(seeder.write_one().await.is_some_and(|s| s.is_success()));
    }
    let seeded: Arc<Vec<String>> = Arc::new(seeder.acknowledged.keys().cloned().collect());

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = writers(&service.base, &token, 2);
    let writing: Vec<_> = writers
        .iter()
        .map(|writer| {
            let writer = writer.clone();
            load(t0, stop.clone(), false, move || {
                let writer = writer.clone();
                async move { writer.lock().await.write_one().await }
            })
        })
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (client, base, token, seeded) = (
                client.clone(),
                service.base.clone(),
                token.clone(),
                seeded.clone(),
            );
            load(t0, stop.clone(), true, move || {
                let path = match rand::rng().random_range(0..3) {
                    0 => format!(
                        "/api/v1/risks?limit=20&q=write%20{}",
                        rand::rng().random_range(0..9)
                    ),
                    _ => format!("/api/v1/risks/{}", seeded.choose(&mut rand::rng()).unwrap()),
                };
                let request = client.get(format!("{base}{path}")).bearer_auth(&token);
                async move { Some(request.send().await.ok()?.status()) }
            })
        })
        .collect();
    let readiness = {
        let (client, base) = (client.clone(), service.base.clone());
        load(t0, stop.clone(), true, move || {
            let request = client.get(format!("{base}/health/ready"));
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some(request.send().await.ok()?.status())
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let fault_at = t0.elapsed();
    let (pg, back_at) = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        match fault {
            Fault::FastRestart => {
                pg.stop_fast();
                std::thread::sleep(OUTAGE);
                pg.launch();
            }
            Fault::PostmasterKilled => {
                pg.kill();
                std::thread::sleep(OUTAGE);
                pg.launch();
            }
            Fault::Stall => {
                pg.freeze(true);
                std::thread::sleep(STALL);
                pg.freeze(false);
            }
        }
        (pg, t0.elapsed())
    })
    .await
    .unwrap();
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);

    let mut sent: Vec<Sent> = Vec::new();
    for task in writing.into_iter().chain(readers) {
        sent.extend(task.await.unwrap());
    }
    let acknowledged = acknowledged(&writers).await;
    let readiness = readiness.await.unwrap();

    let failed: Vec<&Sent> = sent
        .iter()
        .filter(|s| !s.status.is_some_and(|s| s.is_success()))
        .collect();
    let longest = sent.iter().map(|s| s.finished - s.started).max().unwrap();
    let first_success = sent
        .iter()
        .filter(|s| s.status.is_some_and(|s| s.is_success()) && s.finished >= back_at)
        .map(|s| s.finished - back_at)
        .min();
    // Readiness answers given while the database was away (a check of a stalled database ends
    // at its time-out, so answers are placed by when they came).
    let outage: Vec<&Sent> = readiness
        .iter()
        .filter(|s| s.finished > fault_at && s.finished <= back_at)
        .collect();
    let failed_after = failed.iter().filter(|s| s.finished > back_at).count();
    println!(
        "{fault:?}: {} requests ({} reads), failed {} reads and {} writes, longest {} ms, \
         database away {} ms, first success {:?} ms after it was back, {} failures after that, \
         readiness down in {} of {} answers while it was away",
        sent.len(),
        sent.iter().filter(|s| s.read).count(),
        failed.iter().filter(|s| s.read).count(),
        failed.iter().filter(|s| !s.read).count(),
        longest.as_millis(),
        (back_at - fault_at).as_millis(),
        first_success.map(|d| d.as_millis()),
        failed_after,
        outage
            .iter()
            .filter(|s| s.status == Some(StatusCode::SERVICE_UNAVAILABLE))
            .count(),
        outage.len(),
    );

    for request in &failed {
        assert_eq!(
            request.status,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "a failure other than a clean 503: {request:?}"
        );
    }
    assert!(
        outage
            .iter()
            .any(|s| s.status == Some(StatusCode::SERVICE_UNAVAILABLE)),
        "readiness never reported the outage"
    );
    assert_eq!(readiness.last().unwrap().status, Some(StatusCode::OK));
    // Back well before the end of the load: its last second saw no failure.
    let end = sent.iter().map(|s| s.started).max().unwrap();
    let late: Vec<_> = failed
        .iter()
        .filter(|s| s.started + Duration::from_secs(1) > end)
        .collect();
    assert!(
        late.is_empty(),
        "still failing after the database was back: {late:?}"
    );
    assert!(first_success.is_some(), "no success after the database was back");

    assert_all_there(&service.base, &token, &acknowledged).await;
    drop(service);
    assert_aggregates_match(&pg.url(), data.path());
}

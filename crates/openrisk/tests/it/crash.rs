//! A replica killed with `SIGKILL` in the middle of a write load loses nothing it acknowledged:
//! after a restart on the same database, every write answered 2xx is there, with its history
//! entry, and nothing is half-written (versions and history agree, the aggregates match a
//! recount).

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, Database, ServiceProcess};

on_each_backend!(acknowledged_writes_survive_sigkill);

const WRITERS: usize = 4;
const KILLS: u64 = 3;

/// The service binary on `db`, as its own process, so that it can be killed.
async fn start(db: &Database, token: &str) -> ServiceProcess {
    ServiceProcess::start(&db.url, db.data_dir(), &[("OPENRISK_BOOTSTRAP_TOKEN", token)]).await
}

/// What the server acknowledged of one risk: the version and title of its last 2xx write.
#[derive(Clone, Debug)]
struct Acknowledged {
    version: i64,
    title: String,
}

/// Creates and updates risks until the server stops answering; returns what it acknowledged.
async fn write_until_gone(base: String, token: String, writer: usize) -> HashMap<String, Acknowledged> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acknowledged: HashMap<String, Acknowledged> = HashMap::new();
    let mut mine: Vec<String> = Vec::new();
    for n in 0.. {
        let title = format!("writer {writer} write {n}");
        let request = match mine.last() {
            Some(id) if n % 3 != 0 => client
                .patch(format!("{base}/api/v1/risks/{id}"))
                .json(&json!({"title": title, "impact": 1 + n % 5})),
            _ => client
                .post(format!("{base}/api/v1/risks"))
                .json(&json!({"title": title, "likelihood": 1 + n % 5, "impact": 2})),
        };
        let Ok(response) = request.bearer_auth(&token).send().await else {
            return acknowledged;
        };
        let status = response.status();
        let Ok(risk) = response.json::<Value>().await else {
            return acknowledged;
        };
        assert!(status.is_success(), "{status} {risk}");
        let id = risk["id"].as_str().unwrap().to_owned();
        if !mine.contains(&id) {
            mine.push(id.clone());
        }
        let version = risk["version"].as_i64().unwrap();
        acknowledged.insert(id, Acknowledged { version, title });
    }
    unreachable!()
}

async fn acknowledged_writes_survive_sigkill(backend: Backend) {
    let db = Database::create(backend).await;
    let token = format!("crash-bootstrap-{}", uuid::Uuid::new_v4().simple());
    let mut acknowledged: HashMap<String, Acknowledged> = HashMap::new();
    for kill in 0..KILLS {
        let server = start(&db, &token).await;
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| tokio::spawn(write_until_gone(server.base.clone(), token.clone(), writer)))
            .collect();
        let mut rng = StdRng::seed_from_u64(kill);
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..900))).await;
        drop(server); // SIGKILL
        for writer in writers {
            acknowledged.extend(writer.await.unwrap());
        }
    }
    assert!(
        acknowledged.len() > 10,
        "only {} risks were written",
        acknowledged.len()
    );

    let server = start(&db, &token).await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(format!("{}{path}", server.base)).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    for (id, acked) in &acknowledged {
        let (status, risk) = get(format!("/api/v1/risks/{id}")).await;
        assert_eq!(status, StatusCode::OK, "acknowledged risk {id} is lost: {risk}");
        let version = risk["version"].as_i64().unwrap();
        // A write in flight at the kill may have committed unacknowledged: never fewer.
        assert!(
            version >= acked.version,
            "{id}: version {version} < acknowledged {acked:?}"
        );
        if version == acked.version {
            assert_eq!(risk["title"], acked.title.as_str(), "{id}");
        }
    }
    // Every risk, acknowledged or not, is whole: one history entry per version.
    let mut risks: Vec<Value> = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, page) = get(format!("/api/v1/risks?limit=200&sort=created_at{cursor}")).await;
        risks.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert!(risks.len() >= acknowledged.len());
    for risk in &risks {
        let id = risk["id"].as_str().unwrap();
        let (_, history) = get(format!("/api/v1/risks/{id}/history?limit=200")).await;
        let mut versions: Vec<i64> = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["version"].as_i64().unwrap())
            .collect();
        versions.sort();
        let expected: Vec<i64> = (1..=risk["version"].as_i64().unwrap()).collect();
        assert_eq!(versions, expected, "{id}: history against version");
    }
    drop(server);
    let verify = Command::new(env!("CARGO_BIN_EXE_openrisk"))
        .arg("verify")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("OPENRISK_DATA_DIR", db.data_dir())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "aggregates drifted: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

//! `openrisk backup` under a write load and `openrisk restore` into an empty database: every write
//! acknowledged before the backup started is in the restored database, which is whole, and no
//! replica serves an answer cached from the data as it was before the restore.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::redis::RedisServer;
use crate::common::writes::{acknowledged, assert_aggregates_match, assert_all_there, writers};
use crate::common::{Backend, Database, ServiceProcess, read};

on_each_backend!(
    restore_of_a_backup_taken_under_writes,
    the_data_and_its_backups_are_private
);

fn succeeded(output: &Output) -> bool {
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}

async fn get(client: &reqwest::Client, base: &str, token: &str, path: &str) -> (StatusCode, Value) {
    read(
        client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn restore_of_a_backup_taken_under_writes(backend: Backend) {
    let redis = RedisServer::start();
    let original = Database::create(backend).await;
    let token = format!("backup-bootstrap-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("OPENRISK_BOOTSTRAP_TOKEN", token.as_str()),
        ("REDIS_URL", &redis.url()),
    ];
    let first = ServiceProcess::start(&original.url, original.data_dir(), &env).await;

    let writers = writers(&first.base, &token, 2);
    let writing: Vec<_> = writers
        .iter()
        .map(|writer| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(3) {
                    let status = writer.lock().await.write_one().await;
                    assert!(status.is_some_and(|s| s.is_success()), "{status:?}");
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let before = acknowledged(&writers).await;
    let file = original.data_dir().join("openrisk.backup");
    let file_arg = file.to_str().unwrap();
    let started = Instant::now();
    let backup = original.openrisk(&["backup", file_arg]);
    let took = started.elapsed();
    assert!(succeeded(&backup));
    let after_backup = acknowledged(&writers).await;
    for task in writing {
        task.await.unwrap();
    }
    let everything = acknowledged(&writers).await;
    let later: Vec<&String> = everything
        .keys()
        .filter(|id| !after_backup.contains_key(*id))
        .collect();
    println!(
        "{backend:?}: backup of {} risks in {took:?} while writing; {} risks created after it",
        after_backup.len(),
        later.len()
    );
    assert!(
        !later.is_empty(),
        "no write after the backup: the test proves nothing"
    );
    assert!(
        !succeeded(&original.openrisk(&["backup", file_arg])),
        "a backup overwrote a file"
    );

    // Cache the newest answers in Redis: a list that names the risks created after the backup.
    let client = reqwest::Client::new();
    let list = "/api/v1/risks?limit=200&sort=created_at";
    let (_, cached) = get(&client, &first.base, &token, list).await;
    let (_, again) = get(&client, &first.base, &token, list).await;
    assert_eq!(cached, again);
    drop(first);

    let restored = Database::create(backend).await;
    let restore = restored.openrisk(&["restore", file_arg]);
    assert!(succeeded(&restore));
    assert!(
        !succeeded(&restored.openrisk(&["restore", file_arg])),
        "a restore over a database that holds data"
    );
    let second = ServiceProcess::start(&restored.url, restored.data_dir(), &env).await;
    assert_all_there(&second.base, &token, &before).await;

    // The same list, through the same Redis, from the restored data: none of the later risks.
    let (status, page) = get(&client, &second.base, &token, list).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in &later {
        assert!(
            !ids.contains(&id.as_str()),
            "{id} was created after the backup, yet served after the restore"
        );
    }
    for id in before.keys() {
        assert!(
            ids.contains(&id.as_str()),
            "{id} was acknowledged before the backup and is missing"
        );
    }
    drop(second);
    assert_aggregates_match(&restored.url, restored.data_dir());
    check_sizes(&file);
}

fn check_sizes(file: &Path) {
    assert!(std::fs::metadata(file).unwrap().len() > 0);
    assert!(!file.with_extension("backup.partial").exists());
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The data directory is 0700 and what the service writes (the database and its journal, token
/// files, backups, restored copies) 0600, including a directory and files made readable before.
async fn the_data_and_its_backups_are_private(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = Database::create(backend).await;
    let data = db.data_dir();
    let older = data.join("bootstrap-token");
    std::fs::write(&older, "from an older version\n").unwrap();
    std::fs::set_permissions(&older, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let service = ServiceProcess::start(&db.url, data, &[]).await;
    assert_eq!(mode(data), 0o700);
    assert_eq!(mode(&older), 0o600);
    if backend == Backend::Sqlite {
        for name in ["openrisk.db", "openrisk.db-wal", "openrisk.db-shm"] {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
    }
    drop(service);

    let elsewhere = tempfile::tempdir().unwrap();
    let backup = elsewhere.path().join("backup");
    assert!(succeeded(&db.openrisk(&["backup", backup.to_str().unwrap()])));
    assert_eq!(mode(&backup), 0o600);
    if backend == Backend::Sqlite {
        // A backup made readable by someone is still restored private.
        std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
        let restored = elsewhere.path().join("restored.db");
        let output = crate::common::openrisk(
            &["restore", backup.to_str().unwrap()],
            &[
                ("DATABASE_URL", &format!("sqlite://{}", restored.display())),
                ("OPENRISK_DATA_DIR", elsewhere.path().to_str().unwrap()),
            ],
        );
        assert!(succeeded(&output));
        assert_eq!(mode(&restored), 0o600);
    }
}

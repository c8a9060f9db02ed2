//! SQLite on a full disk (a small tmpfs the test mounts): writes fail cleanly with a 503, reads
//! go on, nothing is corrupted, and writes resume once there is space again.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use sqlx::Connection;

use crate::common::writes::{Writer, assert_aggregates_match, assert_all_there};
use crate::common::{ServiceProcess, read};

/// A tmpfs of `size` mounted for the test; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mount = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            mount.status.success(),
            "this test mounts a tmpfs, which needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&mount.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left of the disk with a file; removing the file frees the space again.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .output();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk() {
    let disk = SmallDisk::mount("8m");
    let url = format!("sqlite://{}/openrisk.db", disk.path().display());
    let token = format!("disk-bootstrap-{}", uuid::Uuid::new_v4().simple());
    let service = ServiceProcess::start(&url, disk.path(), &[("OPENRISK_BOOTSTRAP_TOKEN", &token)]).await;
    let mut writer = Writer::new(&service.base, &token, "writer".into());
    for _ in 0..30 {
        assert!(writer.write_one().await.is_some_and(|s| s.is_success()));
    }

    let filler = disk.fill();
    let client = reqwest::Client::new();
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..200 {
        let status = writer.write_one().await.expect("an answer");
        if status.is_success() {
            accepted += 1; // pages freed earlier still had room
            continue;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        refused += 1;
        if refused == 20 {
            break;
        }
    }
    assert_eq!(refused, 20, "writes kept succeeding on a full disk");
    let response = client
        .post(format!("{}/api/v1/risks", service.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"title": "no room", "likelihood": 1, "impact": 1}))
        .send()
        .await
        .unwrap();
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, problem) = read(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["type"], "https://openrisk.dev/problems/storage-full");
    assert!(retry_after.is_some());
    // Reads go on.
    for id in writer.acknowledged.keys() {
        let response = client
            .get(format!("{}/api/v1/risks/{id}", service.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let (status, page) = read(
        client
            .get(format!("{}/api/v1/risks?limit=5&q=writer", service.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");

    println!(
        "full disk: {accepted} writes still fitted, then {refused} refused with 503; {} reads served while full",
        writer.acknowledged.len() + 1
    );
    std::fs::remove_file(filler).unwrap();
    for _ in 0..30 {
        let status = writer.write_one().await;
        assert!(
            status.is_some_and(|s| s.is_success()),
            "{status:?} with space again"
        );
    }
    assert_all_there(&service.base, &token, &writer.acknowledged).await;
    drop(service);

    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, ["ok"], "the database file is damaged");
    drop(conn);
    assert_aggregates_match(&url, disk.path());
}

//! A replica killed with `SIGKILL` in the middle of a write load loses nothing it acknowledged:
//! after a restart on the same database, every write answered 2xx is there, with its history
//! entry, and nothing is half-written (versions and history agree, the aggregates match a
//! recount).

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::writes::{Acknowledged, Writer, assert_aggregates_match, assert_all_there};
use crate::common::{Backend, Database, ServiceProcess};

on_each_backend!(acknowledged_writes_survive_sigkill);

const WRITERS: usize = 4;
const KILLS: u64 = 3;

/// The service binary on `db`, as its own process, so that it can be killed.
async fn start(db: &Database, token: &str) -> ServiceProcess {
    ServiceProcess::start(&db.url, db.data_dir(), &[("OPENRISK_BOOTSTRAP_TOKEN", token)]).await
}

/// Writes until the server stops answering; returns what it acknowledged.
async fn write_until_gone(base: String, token: String, writer: usize) -> HashMap<String, Acknowledged> {
    let mut writer = Writer::new(&base, &token, format!("writer {writer}"));
    while let Some(status) = writer.write_one().await {
        assert!(status.is_success(), "{status}");
    }
    writer.acknowledged
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
    assert_all_there(&server.base, &token, &acknowledged).await;
    drop(server);
    assert_aggregates_match(&db.url, db.data_dir());
}

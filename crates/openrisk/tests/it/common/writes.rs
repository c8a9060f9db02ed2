//! A writer that creates and updates risks and remembers what the server acknowledged, and the
//! check that all of it is there later: for tests that break something under a write load.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// What the server acknowledged of one risk: the version and title of its last 2xx write.
#[derive(Clone, Debug)]
pub struct Acknowledged {
    pub version: i64,
    pub title: String,
}

pub struct Writer {
    client: reqwest::Client,
    base: String,
    token: String,
    name: String,
    writes: u64,
    mine: Vec<String>,
    pub acknowledged: HashMap<String, Acknowledged>,
}

impl Writer {
    pub fn new(base: &str, token: &str, name: String) -> Writer {
        Writer {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(40))
                .build()
                .unwrap(),
            base: base.to_owned(),
            token: token.to_owned(),
            name,
            writes: 0,
            mine: Vec::new(),
            acknowledged: HashMap::new(),
        }
    }

    /// Creates a risk or updates one of its own; the status of the answer, `None` if no whole
    /// answer arrived.
    pub async fn write_one(&mut self) -> Option<StatusCode> {
        let n = self.writes;
        self.writes += 1;
        let title = format!("{} write {n}", self.name);
        let request = match self.mine.last() {
            Some(id) if !n.is_multiple_of(3) => self
                .client
                .patch(format!("{}/api/v1/risks/{id}", self.base))
                .json(&json!({"title": title, "impact": 1 + n % 5})),
            _ => self
                .client
                .post(format!("{}/api/v1/risks", self.base))
                .json(&json!({"title": title, "likelihood": 1 + n % 5, "impact": 2})),
        };
        let response = request.bearer_auth(&self.token).send().await.ok()?;
        let status = response.status();
        let body = response.json::<Value>().await.ok()?;
        if status.is_success() {
            let id = body["id"].as_str().unwrap().to_owned();
            if !self.mine.contains(&id) {
                self.mine.push(id.clone());
            }
            let version = body["version"].as_i64().unwrap();
            self.acknowledged.insert(id, Acknowledged { version, title });
        }
        Some(status)
    }
}

/// Every acknowledged write is there (its risk at that version or later, with that title at that
/// version), and every risk is whole: one history entry per version.
pub async fn assert_all_there(base: &str, token: &str, acknowledged: &HashMap<String, Acknowledged>) {
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    for (id, acked) in acknowledged {
        let (status, risk) = get(format!("/api/v1/risks/{id}")).await;
        assert_eq!(status, StatusCode::OK, "acknowledged risk {id} is lost: {risk}");
        let version = risk["version"].as_i64().unwrap();
        // A write in flight when things broke may have committed unacknowledged: never fewer.
        assert!(
            version >= acked.version,
            "{id}: version {version} < acknowledged {acked:?}"
        );
        if version == acked.version {
            assert_eq!(risk["title"], acked.title.as_str(), "{id}");
        }
    }
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
}

/// `openrisk verify` finds the dashboard aggregates equal to a recount.
pub fn assert_aggregates_match(database_url: &str, data_dir: &std::path::Path) {
    let data_dir = data_dir.display().to_string();
    let verify = super::openrisk(
        &["verify"],
        &[("DATABASE_URL", database_url), ("OPENRISK_DATA_DIR", &data_dir)],
    );
    assert!(
        verify.status.success(),
        "aggregates drifted: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// `count` writers on the service at `base`, each shareable between tasks.
pub fn writers(base: &str, token: &str, count: usize) -> Vec<Arc<Mutex<Writer>>> {
    (0..count)
        .map(|n| Arc::new(Mutex::new(Writer::new(base, token, format!("writer {n}")))))
        .collect()
}

/// What `writers` have had acknowledged so far: waits for the writes in flight to be answered.
pub async fn acknowledged(writers: &[Arc<Mutex<Writer>>]) -> HashMap<String, Acknowledged> {
    let mut all = HashMap::new();
    for writer in writers {
        all.extend(writer.lock().await.acknowledged.clone());
    }
    all
}

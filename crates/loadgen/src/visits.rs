//! One visit: a page of the journeys' mix (`loadtest/lib/journeys.js`, `visit`), with the same
//! activities, weights, filters and writes, each request recorded.

use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use rand::seq::IndexedRandom;
use reqwest::{Method, StatusCode};

use crate::record::Recorder;

const STATUSES: &[&str] = &["draft", "open", "in_progress", "mitigated", "accepted", "closed"];
const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];
const SORTS: &[&str] = &["-score", "score", "-created_at", "-updated_at", "title"];
const CATEGORIES: &[&str] = &[
    "Operational",
    "Financial",
    "Compliance",
    "Security",
    "Technology",
    "Privacy",
];
const TAGS: &[&str] = &[
    "gdpr",
    "cloud",
    "vendor",
    "ransomware",
    "pci",
    "availability",
    "third-party",
    "backup",
];
const SEARCHES: &[&str] = &[
    "ransomware",
    "payment",
    "vendor",
    "billing",
    "breach",
    "outage",
    "phishing",
    "erp",
    "hr%20systems",
    "data%20warehouse",
];
const CONNECTOR_CATEGORIES: &[&str] = &["ticketing", "chat", "siem", "cloud", "vulnerability", "identity"];
const CONNECTORS: &[&str] = &[
    "jira",
    "slack",
    "splunk",
    "okta",
    "github",
    "servicenow",
    "pagerduty",
    "teams",
    "qualys",
    "aws-security-hub",
];

/// The journeys' activities and their weights.
#[derive(Clone, Copy)]
enum Activity {
    Dashboard,
    Register,
    RiskDetail,
    Search,
    Marketplace,
    Summary,
    Export,
}

const ACTIVITIES: &[(Activity, u32)] = &[
    (Activity::Dashboard, 25),
    (Activity::Register, 25),
    (Activity::RiskDetail, 20),
    (Activity::Search, 12),
    (Activity::Marketplace, 8),
    (Activity::Summary, 8),
    (Activity::Export, 2),
];

pub struct User {
    pub role: String,
    pub token: String,
}

/// What every visit shares.
pub struct Visits {
    pub client: reqwest::Client,
    pub api: String,
    pub users: Vec<User>,
    pub write_share: f64,
    /// What requests whose body is not read accept (`ACCEPT_ENCODING`); bodies the visit reads
    /// (a page's ids and cursor, a created risk) come in identity.
    pub accept_encoding: Option<String>,
    pub recorder: Arc<Recorder>,
}

impl Visits {
    /// One visit at step `step`: a write (with its read-back) for `write_share` of them, else one
    /// page of a random user.
    pub async fn visit(&self, step: u16) {
        let (write, draw, user) = {
            let mut rng = rand::rng();
            let write = rng.random_bool(self.write_share);
            let total: u32 = ACTIVITIES.iter().map(|(_, weight)| weight).sum();
            (
                write,
                rng.random_range(0..total),
                rng.random_range(0..self.users.len()),
            )
        };
        if write {
            let writers: Vec<&User> = self
                .users
                .iter()
                .filter(|user| user.role == "analyst" || user.role == "admin")
                .collect();
            let writer = writers.choose(&mut rand::rng()).copied();
            if let Some(writer) = writer {
                self.create_risk(writer, step).await;
            }
            return;
        }
        let mut left = draw;
        let activity = ACTIVITIES
            .iter()
            .find(|(_, weight)| {
                let found = left < *weight;
                left = left.saturating_sub(*weight);
                found
            })
            .map_or(Activity::Dashboard, |(activity, _)| *activity);
        let user = &self.users[user];
        match activity {
            Activity::Dashboard => self.dashboard(user, step).await,
            Activity::Register => drop(self.register(user, step).await),
            Activity::RiskDetail => self.risk_detail(user, step).await,
            Activity::Search => {
                let path = format!("/risks?q={}", pick(SEARCHES));
                self.get(user, "risks.search", &path, step).await;
            }
            Activity::Marketplace => {
                self.get(user, "marketplace.connectors", "/marketplace/connectors", step)
                    .await;
                let category = format!("/marketplace/connectors?category={}", pick(CONNECTOR_CATEGORIES));
                self.get(user, "marketplace.connectors", &category, step).await;
                let connector = format!("/marketplace/connectors/{}", pick(CONNECTORS));
                self.get(user, "marketplace.connector", &connector, step).await;
                self.get(
                    user,
                    "marketplace.installations",
                    "/marketplace/installations",
                    step,
                )
                .await;
            }
            Activity::Summary => {
                let format = if rand::rng().random_bool(0.8) {
                    "json"
                } else {
                    "html"
                };
                self.get(
                    user,
                    "reports.summary",
                    &format!("/reports/summary?format={format}"),
                    step,
                )
                .await;
            }
            Activity::Export => {
                let path = format!(
                    "/reports/risk-register?format=csv&status={}&severity={}",
                    pick(&["open", "in_progress"]),
                    pick(&["high", "critical"])
                );
                self.get(user, "reports.export", &path, step).await;
            }
        }
    }

    async fn dashboard(&self, user: &User, step: u16) {
        self.get(user, "dashboard.stats", "/dashboard/stats", step).await;
        self.get(user, "dashboard.matrix", "/dashboard/matrix", step)
            .await;
        self.get(user, "dashboard.top_risks", "/dashboard/top-risks?limit=10", step)
            .await;
        if rand::rng().random_bool(0.3) {
            let days = pick(&["30", "90", "365"]);
            self.get(
                user,
                "dashboard.timeline",
                &format!("/dashboard/timeline?days={days}"),
                step,
            )
            .await;
        }
    }

    /// The register as people open it (the default view most often, else a filter or two and a
    /// sort), and the next page now and then; the ids listed.
    async fn register(&self, user: &User, step: u16) -> Vec<String> {
        let filters = register_filters();
        let first = self
            .read(user, "risks.list", &format!("/risks?{filters}"), step)
            .await;
        let Some(first) = first else {
            return Vec::new();
        };
        let mut ids = ids(&first);
        if let Some(cursor) = next_cursor(&first)
            && rand::rng().random_bool(0.3)
        {
            let path = format!("/risks?{filters}&cursor={cursor}");
            if let Some(next) = self.read(user, "risks.list", &path, step).await {
                ids.extend(ids_of(&next));
            }
        }
        ids
    }

    async fn risk_detail(&self, user: &User, step: u16) {
        let ids = self.register(user, step).await;
        let Some(id) = ids.choose(&mut rand::rng()) else {
            return;
        };
        self.get(user, "risks.get", &format!("/risks/{id}"), step).await;
        self.get(
            user,
            "risks.mitigations",
            &format!("/risks/{id}/mitigations"),
            step,
        )
        .await;
        if rand::rng().random_bool(0.5) {
            self.get(user, "risks.history", &format!("/risks/{id}/history"), step)
                .await;
        }
    }

    /// A risk tagged `loadtest`, read back at once: a stale read when the read misses it.
    async fn create_risk(&self, user: &User, step: u16) {
        let title = format!("Load test risk lt-{}", rand::rng().random::<u64>());
        let (likelihood, impact) = (rand::rng().random_range(1..=5), rand::rng().random_range(1..=5));
        let body = format!(
            r#"{{"title":"{title}","likelihood":{likelihood},"impact":{impact},"category":"Operational","tags":["loadtest"]}}"#
        );
        let request = (Method::POST, "/risks".to_owned(), Some(body));
        let created = self
            .send(user, "risks.create", request, StatusCode::CREATED, true, step)
            .await;
        let Some(id) = created.as_deref().and_then(|body| ids_of(body).next()) else {
            return;
        };
        let read = self.read(user, "risks.get", &format!("/risks/{id}"), step).await;
        self.recorder
            .read_back(read.is_some_and(|body| body.contains(&title)));
    }

    async fn get(&self, user: &User, route: &'static str, path: &str, step: u16) {
        let request = (Method::GET, path.to_owned(), None);
        self.send(user, route, request, StatusCode::OK, false, step).await;
    }

    /// A GET whose body the visit reads.
    async fn read(&self, user: &User, route: &'static str, path: &str, step: u16) -> Option<String> {
        let request = (Method::GET, path.to_owned(), None);
        self.send(user, route, request, StatusCode::OK, true, step).await
    }

    /// One request, recorded: its duration to the last byte, whether its status was `expect`, and
    /// its `X-Cache`. Returns the body when it is read and the status was expected.
    async fn send(
        &self,
        user: &User,
        route: &'static str,
        (method, path, body): (Method, String, Option<String>),
        expect: StatusCode,
        read_body: bool,
        step: u16,
    ) -> Option<String> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&user.token);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let accept = match (read_body, &self.accept_encoding) {
            (false, Some(accept)) => accept.as_str(),
            _ => "identity",
        };
        request = request.header("accept-encoding", accept);
        let started = Instant::now();
        let (status, hit, body) = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let hit = match response.headers().get("x-cache").map(|v| v.as_bytes()) {
                    Some(b"HIT") => Some(true),
                    Some(b"MISS") => Some(false),
                    _ => None,
                };
                (Some(status), hit, response.bytes().await.ok())
            }
            Err(_) => (None, None, None),
        };
        let ok = status == Some(expect) && body.is_some();
        self.recorder.request(route, step, started, ok, hit);
        match (ok, read_body, body) {
            (true, true, Some(body)) => String::from_utf8(body.to_vec()).ok(),
            _ => None,
        }
    }
}

fn pick<'a>(items: &[&'a str]) -> &'a str {
    items.choose(&mut rand::rng()).copied().unwrap_or_default()
}

fn register_filters() -> String {
    let mut rng = rand::rng();
    if rng.random_bool(0.4) {
        return String::new();
    }
    let mut query = Vec::new();
    for (name, share, values) in [
        ("status", 0.5, STATUSES),
        ("severity", 0.4, SEVERITIES),
        ("category", 0.2, CATEGORIES),
        ("tag", 0.2, TAGS),
        ("sort", 0.6, SORTS),
    ] {
        if rng.random_bool(share) {
            query.push(format!(
                "{name}={}",
                values.choose(&mut rng).copied().unwrap_or_default()
            ));
        }
    }
    query.join("&")
}

/// The ids of a page's items (or of one risk), in order: `"id":"…"` (an owner's or asset's ids
/// have other names).
fn ids_of(body: &str) -> impl Iterator<Item = String> + '_ {
    body.match_indices(r#""id":""#).filter_map(|(at, found)| {
        let start = at + found.len();
        body.get(start..start + 36).map(str::to_owned)
    })
}

fn ids(body: &str) -> Vec<String> {
    ids_of(body).collect()
}

fn next_cursor(body: &str) -> Option<&str> {
    let start = body.find(r#""next_cursor":""#)? + r#""next_cursor":""#.len();
    let end = body[start..].find('"')?;
    Some(&body[start..start + end])
}

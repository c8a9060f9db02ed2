//! Tenant isolation as a property: two organizations read and write at random, and no answer to
//! one ever holds the other's ids, titles or export rows, whichever way the cache serves it (L1,
//! L2, a stale entry being refreshed, a 304).

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

on_each_backend!(redis:
    tenants_never_see_each_other_through_l1_and_stale_entries,
    tenants_never_see_each_other_through_l2,
);

async fn tenants_never_see_each_other_through_l1_and_stale_entries(backend: Backend, redis: &str) {
    // Entries go stale within the run, so that some answers are stale ones being refreshed.
    let short = [
        ("CACHE_TTL_RISKS", "1"),
        ("CACHE_TTL_RISK_DETAILS", "1"),
        ("CACHE_TTL_DASHBOARD", "1"),
        ("CACHE_TTL_REPORTS", "1"),
    ];
    let served = random_traffic_of_two_tenants(cached_app(backend, redis, &short).await).await;
    for way in [
        "OpenRisk; hit; detail=l1",
        "OpenRisk; hit; detail=l1-stale",
        "304",
    ] {
        assert!(served.contains(way), "no answer was served as {way}: {served:?}");
    }
}

async fn tenants_never_see_each_other_through_l2(backend: Backend, redis: &str) {
    let app = cached_app(backend, redis, &[("CACHE_L1_MAX_BYTES", "0")]).await;
    let served = random_traffic_of_two_tenants(app).await;
    for way in ["OpenRisk; hit; detail=l2", "304"] {
        assert!(served.contains(way), "no answer was served as {way}: {served:?}");
    }
}

/// One organization as the test knows it: every id and title it ever had.
struct Tenant {
    /// In every title and name it writes, and in no other organization's.
    marker: String,
    admin: String,
    viewer: String,
    risks: Vec<String>,
    mitigations: Vec<String>,
    ids: HashSet<String>,
    /// The last ETag this tenant was sent for each path.
    etags: HashMap<String, String>,
}

impl Tenant {
    async fn new(app: &TestApp, admin: String) -> Tenant {
        let viewer = app.token_with_role(&admin, "viewer").await;
        Tenant {
            marker: format!("tenant{}", uuid::Uuid::new_v4().simple()),
            admin,
            viewer,
            risks: Vec::new(),
            mitigations: Vec::new(),
            ids: HashSet::new(),
            etags: HashMap::new(),
        }
    }

    fn pick<'a>(&self, rng: &mut StdRng, ids: &'a [String]) -> Option<&'a String> {
        (!ids.is_empty()).then(|| &ids[rng.random_range(0..ids.len())])
    }

    /// Everything of this tenant's that `body` holds, if anything.
    fn found_in(&self, body: &str) -> Option<&str> {
        if body.contains(&self.marker) {
            return Some(&self.marker);
        }
        self.ids
            .iter()
            .find(|id| body.contains(id.as_str()))
            .map(String::as_str)
    }
}

/// Returns the ways answers were served (`Cache-Status` values, and "304").
async fn random_traffic_of_two_tenants(app: TestApp) -> HashSet<String> {
    let other_admin = app
        .create_org(&format!("org{}", uuid::Uuid::new_v4().simple()))
        .await;
    let mut tenants = [
        Tenant::new(&app, app.token.clone()).await,
        Tenant::new(&app, other_admin).await,
    ];
    let mut rng = StdRng::seed_from_u64(15);
    let mut served = HashSet::new();
    for step in 0..400 {
        if step % 130 == 129 {
            // Every page read just before the pause is stale just after it.
            let pages: Vec<(usize, String)> = (0..8)
                .map(|_| {
                    (
                        rng.random_range(0..2),
                        read_path(&mut rng, &tenants[0], &tenants[1]).0,
                    )
                })
                .collect();
            for (me, path) in &pages {
                read(&app, &mut tenants, *me, path, false, &mut rng, &mut served, step).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            for (me, path) in &pages {
                read(&app, &mut tenants, *me, path, false, &mut rng, &mut served, step).await;
            }
        }
        let me = rng.random_range(0..2);
        if rng.random_bool(0.3) {
            write(&app, &mut tenants[me], &mut rng, step).await;
            continue;
        }
        let (mine, theirs) = match me {
            0 => (&tenants[0], &tenants[1]),
            _ => (&tenants[1], &tenants[0]),
        };
        let (path, foreign) = read_path(&mut rng, mine, theirs);
        read(
            &app,
            &mut tenants,
            me,
            &path,
            foreign,
            &mut rng,
            &mut served,
            step,
        )
        .await;
    }
    served
}

/// One read by tenant `me` of `path` (`foreign`: an item of the other tenant), with its checks;
/// records in `served` how it was served.
#[allow(clippy::too_many_arguments)]
async fn read(
    app: &TestApp,
    tenants: &mut [Tenant; 2],
    me: usize,
    path: &str,
    foreign: bool,
    rng: &mut StdRng,
    served: &mut HashSet<String>,
    step: usize,
) {
    let (mine, theirs) = match me {
        0 => (&tenants[0], &tenants[1]),
        _ => (&tenants[1], &tenants[0]),
    };
    let token = if rng.random_bool(0.5) {
        &mine.admin
    } else {
        &mine.viewer
    };
    let mut request = app.request(Method::GET, path, token);
    // The other tenant's ETag for the same page (a 304 may only mean the pages are equal), or this
    // tenant's own.
    let offered = match rng.random_range(0..4) {
        0 | 1 => theirs.etags.get(path),
        2 => mine.etags.get(path),
        _ => None,
    }
    .cloned();
    if let Some(etag) = &offered {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned();
    let context = format!("step {step}: GET {path} as {}", mine.marker);
    if let Some(leaked) = theirs.found_in(&body) {
        panic!(
            "{context} ({status}, {}) holds {leaked} of the other tenant",
            x_cache(&headers)
        );
    }
    if foreign {
        assert_eq!(status, StatusCode::NOT_FOUND, "{context}: another tenant's item");
    }
    served.extend(
        headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    if status == StatusCode::NOT_MODIFIED {
        served.insert("304".into());
        let (_, own, _) = fetch(app, path, token, true).await;
        assert_eq!(
            own.get("etag").and_then(|v| v.to_str().ok()),
            offered.as_deref(),
            "{context}: 304 for another tenant's ETag that is not this tenant's"
        );
    }
    if let Some(etag) = headers.get("etag").and_then(|v| v.to_str().ok()) {
        tenants[me].etags.insert(path.to_owned(), etag.to_owned());
    }
}

/// A page for `mine` to read, and whether it names an item of the other tenant (which must answer
/// 404).
fn read_path(rng: &mut StdRng, mine: &Tenant, theirs: &Tenant) -> (String, bool) {
    let foreign = rng.random_bool(0.15);
    let owner = if foreign { theirs } else { mine };
    let risk = owner.pick(rng, &owner.risks);
    let mitigation = owner.pick(rng, &owner.mitigations);
    let item = |path: String| (path, foreign);
    let page = |path: &str| (path.to_owned(), false);
    match (rng.random_range(0..12), risk, mitigation) {
        (0, Some(risk), _) => item(format!("/api/v1/risks/{risk}")),
        (1, Some(risk), _) => item(format!("/api/v1/risks/{risk}/history")),
        (2, Some(risk), _) => item(format!("/api/v1/risks/{risk}/mitigations")),
        (3, _, Some(mitigation)) => item(format!("/api/v1/mitigations/{mitigation}")),
        (4, ..) => page("/api/v1/risks?q=risk&include_total=true"),
        (5, ..) => page("/api/v1/assets"),
        (6, ..) => page("/api/v1/dashboard/stats"),
        (7, ..) => page("/api/v1/dashboard/top-risks"),
        (8, ..) => page("/api/v1/reports/summary?format=html"),
        (9, ..) => page("/api/v1/reports/risk-register?format=csv"),
        (10, ..) => page("/api/v1/reports/risk-register?format=json"),
        _ => page("/api/v1/risks?sort=title"),
    }
}

async fn write(app: &TestApp, tenant: &mut Tenant, rng: &mut StdRng, step: usize) {
    let title = format!("{} risk {step}", tenant.marker);
    let risk = tenant.pick(rng, &tenant.risks).cloned();
    let (method, path, body) = match (rng.random_range(0..6), risk) {
        (0, Some(risk)) => (
            Method::PATCH,
            format!("/api/v1/risks/{risk}"),
            Some(json!({"title": title, "status": "open", "impact": rng.random_range(1..=5)})),
        ),
        (1, Some(risk)) => (Method::DELETE, format!("/api/v1/risks/{risk}"), None),
        (2, Some(risk)) => (
            Method::POST,
            format!("/api/v1/risks/{risk}/mitigations"),
            Some(json!({"title": format!("{} mitigation {step}", tenant.marker), "due_date": "2021-06-01"})),
        ),
        (3, _) => (
            Method::POST,
            "/api/v1/assets".into(),
            Some(json!({"name": format!("{} asset {step}", tenant.marker), "kind": "data"})),
        ),
        _ => (
            Method::POST,
            "/api/v1/risks".into(),
            Some(json!({"title": title, "likelihood": rng.random_range(1..=5), "impact": 3})),
        ),
    };
    let (status, answer) = app.call(method.clone(), &path, &tenant.admin, body).await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    if let Some(id) = answer["id"].as_str() {
        tenant.ids.insert(id.to_owned());
        match path.as_str() {
            "/api/v1/risks" => tenant.risks.push(id.to_owned()),
            "/api/v1/assets" => {}
            _ if method == Method::POST => tenant.mitigations.push(id.to_owned()),
            _ => {}
        }
    }
    if method == Method::DELETE {
        // Its id stays in `ids`: no one else may ever be shown it.
        tenant.risks.retain(|risk| !path.ends_with(risk.as_str()));
    }
}

//! The capacity scenario's load generator: an open model whose visits arrive at a rate raised in
//! steps (`loadtest/scenarios.json`, `capacity`), each one page of the journeys' mix, as k6's
//! `ramping-arrival-rate` runs `visit` (`loadtest/lib/journeys.js`), at a small fraction of k6's
//! CPU per request, so that the two cores go to the service. It stops at the first visit it must
//! drop (every visit slot busy: the service no longer keeps up), and writes what
//! `loadtest/report.py` reads of a k6 run.
//!
//!   openrisk-loadgen SCENARIOS_JSON SUMMARY_JSON SAMPLES_CSV_GZ
//!
//! Environment, as for the k6 scripts: BASE_URL, TOKENS (`role:token,…`), WRITE_SHARE (default
//! 0.05), ACCEPT_ENCODING, QUICK (the quick shape when set).

mod record;
mod visits;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use record::Recorder;
use visits::{User, Visits};

/// The stepped shape of the capacity scenario.
struct Shape {
    steps: Vec<f64>,
    /// Seconds at the first step's rate before the steps, not recorded: caches and registers
    /// filled, as on a service that has been running.
    warmup: f64,
    ramp: f64,
    hold: f64,
    max_in_flight: usize,
}

impl Shape {
    fn read(path: &PathBuf, quick: bool) -> anyhow::Result<Shape> {
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let shape = &spec["capacity"][if quick { "quick" } else { "full" }];
        let seconds = |name: &str| {
            let text = shape[name].as_str().unwrap_or_default();
            text.trim_end_matches('s')
                .parse::<f64>()
                .with_context(|| format!("capacity.{name}: {text:?} is not a number of seconds"))
        };
        let steps = shape["steps"].as_array().context("capacity.steps")?;
        Ok(Shape {
            steps: steps.iter().filter_map(Value::as_f64).collect(),
            warmup: seconds("warmup")?,
            ramp: seconds("ramp")?,
            hold: seconds("hold")?,
            max_in_flight: shape["maxVUs"].as_u64().context("capacity.maxVUs")? as usize,
        })
    }

    fn step_seconds(&self) -> f64 {
        self.ramp + self.hold
    }

    /// The step (from 1; 0 while warming up) and the arrival rate at `t` seconds: each step ramps
    /// linearly from the previous target to its own, then holds it; `None` past the last.
    fn at(&self, t: f64) -> Option<(u16, f64)> {
        if t < self.warmup {
            return Some((0, *self.steps.first()?));
        }
        let t = t - self.warmup;
        let index = (t / self.step_seconds()) as usize;
        let target = *self.steps.get(index)?;
        let from = index
            .checked_sub(1)
            .map_or(self.steps[0], |previous| self.steps[previous]);
        let into = t - index as f64 * self.step_seconds();
        let rate = match into < self.ramp {
            true => from + (target - from) * into / self.ramp,
            false => target,
        };
        Some((index as u16 + 1, rate))
    }
}

fn users() -> anyhow::Result<Vec<User>> {
    let tokens = std::env::var("TOKENS").unwrap_or_default();
    let users: Vec<User> = tokens
        .split(',')
        .filter(|entry| !entry.trim().is_empty())
        .filter_map(|entry| {
            let (role, token) = entry.trim().split_once(':')?;
            Some(User {
                role: role.to_owned(),
                token: token.to_owned(),
            })
        })
        .collect();
    if users.is_empty() {
        bail!("TOKENS is empty: set it to a comma-separated list of role:token");
    }
    Ok(users)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [scenarios, summary_path, samples_path] = args.as_slice() else {
        bail!("usage: openrisk-loadgen SCENARIOS_JSON SUMMARY_JSON SAMPLES_CSV_GZ");
    };
    let shape = Shape::read(
        scenarios,
        std::env::var_os("QUICK").is_some_and(|v| !v.is_empty()),
    )?;
    let base = std::env::var("BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let write_share: f64 = match std::env::var("WRITE_SHARE") {
        Ok(raw) => raw
            .parse()
            .with_context(|| format!("WRITE_SHARE: {raw:?} is not a number"))?,
        Err(_) => 0.05,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(shape.max_in_flight)
        .timeout(Duration::from_secs(60))
        .build()?;
    let visits = Arc::new(Visits {
        client,
        api: format!("{}/api/v1", base.trim_end_matches('/')),
        users: users()?,
        write_share,
        accept_encoding: std::env::var("ACCEPT_ENCODING").ok().filter(|v| !v.is_empty()),
        recorder: Arc::default(),
    });
    check_users(&visits).await?;

    let started = Instant::now();
    let ended = run(&visits, &shape).await;
    let duration_ms = ended.duration_since(started).as_secs_f64() * 1000.0;
    let recorder: &Recorder = &visits.recorder;
    let settings = json!({
        "step_seconds": shape.step_seconds(), "write_share": write_share, "think_time": 0,
        "generator": "openrisk-loadgen",
    });
    let summary = recorder.summary(settings, duration_ms);
    std::fs::write(summary_path, serde_json::to_vec_pretty(&summary)?)?;
    recorder.write_samples(samples_path)?;
    let requests = &summary["metrics"]["http_reqs"]["values"];
    let latency = &summary["metrics"]["http_req_duration"]["values"];
    println!(
        "requests: {} ({:.1}/s)  p95 {:.1} ms  p99 {:.1} ms  dropped visits {}",
        requests["count"],
        requests["rate"].as_f64().unwrap_or_default(),
        latency["p(95)"].as_f64().unwrap_or_default(),
        latency["p(99)"].as_f64().unwrap_or_default(),
        recorder.dropped_count(),
    );
    Ok(())
}

/// Refuses to start unless every token signs in.
async fn check_users(visits: &Visits) -> anyhow::Result<()> {
    for user in &visits.users {
        let response = visits
            .client
            .get(format!("{}/me", visits.api))
            .bearer_auth(&user.token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("a {} token does not sign in: {}", user.role, response.status());
        }
    }
    Ok(())
}

/// Starts visits on schedule until the shape ends or a visit must be dropped, then waits for
/// those under way (at most a minute); returns when the last ended.
async fn run(visits: &Arc<Visits>, shape: &Shape) -> Instant {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let (mut due, mut last_second) = (0.0, 0);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut previous = 0.0;
    while let Some((step, rate)) = shape.at(started.elapsed().as_secs_f64()) {
        tick.tick().await;
        let now = started.elapsed().as_secs_f64();
        due += rate * (now - previous);
        previous = now;
        if now as u64 > last_second {
            last_second = now as u64;
            visits.recorder.in_flight(in_flight.load(Relaxed));
        }
        while due >= 1.0 {
            due -= 1.0;
            if in_flight.load(Relaxed) >= shape.max_in_flight {
                visits.recorder.dropped(step);
                continue;
            }
            in_flight.fetch_add(1, Relaxed);
            let (visits, in_flight) = (Arc::clone(visits), Arc::clone(&in_flight));
            tokio::spawn(async move {
                visits.visit(step).await;
                in_flight.fetch_sub(1, Relaxed);
            });
        }
        if visits.recorder.dropped_count() > 0 {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while in_flight.load(Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Instant::now()
}

//! What a run recorded, written as `loadtest/report.py` reads a k6 run: `summary.json` (k6's
//! end-of-test metrics and sub-metrics by route and step) and `samples.csv.gz` (one row per
//! sample, with its time).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

struct Request {
    /// Unix time in milliseconds when the answer ended.
    at: f64,
    route: &'static str,
    step: u16,
    duration_ms: f64,
    ok: bool,
    hit: Option<bool>,
}

#[derive(Default)]
struct Samples {
    requests: Vec<Request>,
    /// Unix time in milliseconds and step of each visit dropped.
    dropped: Vec<(f64, u16)>,
    in_flight: Vec<(f64, usize)>,
    read_backs: u64,
    stale_reads: u64,
}

#[derive(Default)]
pub struct Recorder(Mutex<Samples>);

impl Recorder {
    /// Records a request; one sent while warming up (step 0) is not recorded.
    pub fn request(&self, route: &'static str, step: u16, started: Instant, ok: bool, hit: Option<bool>) {
        if step == 0 {
            return;
        }
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let at = now_ms();
        let request = Request {
            at,
            route,
            step,
            duration_ms,
            ok,
            hit,
        };
        self.lock().requests.push(request);
    }

    pub fn dropped(&self, step: u16) {
        self.lock().dropped.push((now_ms(), step));
    }

    pub fn in_flight(&self, visits: usize) {
        self.lock().in_flight.push((now_ms(), visits));
    }

    /// Records a read after a write (warm-up included: a stale read is never excused).
    pub fn read_back(&self, fresh: bool) {
        let mut samples = self.lock();
        samples.read_backs += 1;
        samples.stale_reads += u64::from(!fresh);
    }

    pub fn dropped_count(&self) -> usize {
        self.lock().dropped.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Samples> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// k6's end-of-test summary, as far as the report reads it.
    pub fn summary(&self, settings: Value, duration_ms: f64) -> Value {
        let samples = self.lock();
        let mut metrics = serde_json::Map::new();
        let mut by_route: BTreeMap<&str, Vec<&Request>> = BTreeMap::new();
        let mut by_step: BTreeMap<u16, Vec<&Request>> = BTreeMap::new();
        for request in &samples.requests {
            by_route.entry(request.route).or_default().push(request);
            by_step.entry(request.step).or_default().push(request);
        }
        let all: Vec<&Request> = samples.requests.iter().collect();
        let seconds = duration_ms / 1000.0;
        let count = all.len();
        metrics.insert(
            "http_reqs".into(),
            values(json!({"count": count, "rate": count as f64 / seconds})),
        );
        metrics.insert("http_req_duration".into(), values(durations(&all)));
        metrics.insert("errors".into(), values(passes(all.iter().map(|r| !r.ok))));
        for (route, requests) in &by_route {
            metrics.insert(
                format!("http_req_duration{{route:{route}}}"),
                values(durations(requests)),
            );
            metrics.insert(
                format!("errors{{route:{route}}}"),
                values(passes(requests.iter().map(|r| !r.ok))),
            );
            let hits = requests.iter().filter_map(|r| r.hit);
            metrics.insert(format!("cache_hits{{route:{route}}}"), values(passes(hits)));
        }
        for (step, requests) in &by_step {
            metrics.insert(
                format!("http_req_duration{{step:{step}}}"),
                values(durations(requests)),
            );
        }
        metrics.insert(
            "dropped_iterations".into(),
            values(json!({"count": samples.dropped.len()})),
        );
        metrics.insert("read_backs".into(), values(json!({"count": samples.read_backs})));
        metrics.insert(
            "stale_reads".into(),
            values(json!({"count": samples.stale_reads})),
        );
        json!({
            "openrisk": settings,
            "state": {"testRunDurationMs": duration_ms},
            "metrics": metrics,
        })
    }

    /// Every sample as k6's CSV output has it (the columns the report reads).
    pub fn write_samples(&self, path: &Path) -> std::io::Result<()> {
        let samples = self.lock();
        let file = std::fs::File::create(path)?;
        let mut out =
            flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
        writeln!(out, "metric_name,timestamp,metric_value,extra_tags")?;
        for r in &samples.requests {
            let tags = format!("route={}&step={}", r.route, r.step);
            writeln!(out, "http_req_duration,{:.0},{:.3},{tags}", r.at, r.duration_ms)?;
            writeln!(out, "errors,{:.0},{},{tags}", r.at, u8::from(!r.ok))?;
            if let Some(hit) = r.hit {
                writeln!(out, "cache_hits,{:.0},{},{tags}", r.at, u8::from(hit))?;
            }
        }
        for (at, step) in &samples.dropped {
            writeln!(out, "dropped_iterations,{at:.0},1,step={step}")?;
        }
        for (at, visits) in &samples.in_flight {
            writeln!(out, "vus,{at:.0},{visits},")?;
        }
        out.finish()?.flush()
    }
}

fn values(values: Value) -> Value {
    json!({ "values": values })
}

/// Count, average and percentiles of the requests' durations, named as k6 names them.
fn durations(requests: &[&Request]) -> Value {
    let mut ms: Vec<f64> = requests.iter().map(|r| r.duration_ms).collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p / 100.0 * ms.len() as f64).ceil() as usize).clamp(1, ms.len().max(1)) - 1;
        ms.get(rank).copied().unwrap_or(0.0)
    };
    let avg = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    json!({
        "count": ms.len(), "avg": avg, "min": at(0.0), "med": at(50.0), "p(50)": at(50.0),
        "p(95)": at(95.0), "p(99)": at(99.0), "max": ms.last().copied().unwrap_or(0.0),
    })
}

/// A k6 rate: how many were true (`passes`) and false (`fails`).
fn passes(outcomes: impl Iterator<Item = bool>) -> Value {
    let (mut passes, mut fails) = (0u64, 0u64);
    for outcome in outcomes {
        *(if outcome { &mut passes } else { &mut fails }) += 1;
    }
    let rate = if passes + fails > 0 {
        passes as f64 / (passes + fails) as f64
    } else {
        0.0
    };
    json!({ "passes": passes, "fails": fails, "rate": rate })
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

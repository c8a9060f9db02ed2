//! What the pool reports: its state, acquire waits as percentiles, and the health warnings drawn
//! from them (see `pool` for how they are measured).

use serde::Serialize;
use utoipa::ToSchema;

/// Upper bounds (seconds) of the acquire-wait histogram's buckets, here and on `/metrics`.
pub const ACQUIRE_WAIT_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The finite buckets and one for everything slower.
pub const BUCKETS: usize = ACQUIRE_WAIT_BUCKETS.len() + 1;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ClosedConnections {
    /// Older than the maximum lifetime.
    pub lifetime: u64,
    /// Closed by the pool library without telling: idle longer than the maximum idle time, or
    /// found broken as it was given back after a query failed on it.
    pub idle: u64,
    /// Failed the liveness check before use.
    pub broken: u64,
}

/// Acquire waits over the last minute: the upper bound of the histogram bucket each percentile
/// falls in (`null` without acquires).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AcquireWait {
    pub samples: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl AcquireWait {
    pub fn of(counts: &[u64; BUCKETS]) -> Self {
        let samples: u64 = counts.iter().sum();
        let percentile = |q: f64| {
            let rank = (q * samples as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            counts.iter().position(|c| {
                seen += c;
                seen >= rank
            })
        };
        let ms = |q| {
            (samples > 0)
                .then(|| percentile(q))
                .flatten()
                .map(|i| ACQUIRE_WAIT_BUCKETS[i.min(ACQUIRE_WAIT_BUCKETS.len() - 1)] * 1000.0)
        };
        AcquireWait {
            samples,
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

/// A pool's limits as it applies them and its live state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PoolStatus {
    /// Connections open now.
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    pub max_open: u32,
    /// Connections kept open even when idle.
    pub min_idle: u32,
    pub max_lifetime_seconds: Option<u64>,
    pub max_idle_time_seconds: Option<u64>,
    pub acquire_timeout_seconds: f64,
    /// Dedicated writer connections outside the pool (SQLite: 1).
    pub writers: u32,
    /// The database server's connection limit (PostgreSQL `max_connections`).
    pub server_max_connections: Option<u32>,
    /// Requests waiting for a connection now.
    pub waiters: u64,
    /// Connections handed out since start-up.
    pub acquires: u64,
    /// Acquires that gave up after the acquire time-out.
    pub acquire_timeouts: u64,
    pub acquire_wait: AcquireWait,
    pub connections_opened: u64,
    pub connections_closed: ClosedConnections,
}

impl PoolStatus {
    /// What deserves an operator's attention now; `replicas` share the server's connections.
    pub fn warnings(&self, replicas: u32) -> Vec<PoolWarning> {
        let mut warnings = Vec::new();
        if u64::from(self.in_use) * 10 >= u64::from(self.max_open) * 9 {
            warnings.push(PoolWarning::new(
                "saturated",
                format!("{} of {} connections in use", self.in_use, self.max_open),
            ));
        }
        if self.waiters > 0 {
            warnings.push(PoolWarning::new(
                "waiters",
                format!("{} requests waiting for a connection", self.waiters),
            ));
        }
        if let Some(p95) = self.acquire_wait.p95_ms.filter(|ms| *ms > SLOW_ACQUIRE_MS) {
            warnings.push(PoolWarning::new(
                "slow_acquire",
                format!("95th percentile acquire wait over the last minute is {p95} ms (above {SLOW_ACQUIRE_MS} ms)"),
            ));
        }
        // Connections in use are warm too: what matters is whether the pool holds its minimum.
        if self.size < self.min_idle {
            warnings.push(PoolWarning::new(
                "below_warm_minimum",
                format!(
                    "{} connections open, below the warm minimum of {}",
                    self.size, self.min_idle
                ),
            ));
        }
        let total = u64::from(self.max_open) * u64::from(replicas);
        if let Some(limit) = self
            .server_max_connections
            .filter(|limit| total > u64::from(*limit))
        {
            warnings.push(PoolWarning::new(
                "above_server_limit",
                format!(
                    "configured maximum of {total} connections ({} × {replicas} replicas) exceeds the server's \
                     max_connections ({limit})",
                    self.max_open
                ),
            ));
        }
        warnings
    }
}

/// Acquire waits above this (95th percentile) are worth a warning.
const SLOW_ACQUIRE_MS: f64 = 50.0;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PoolWarning {
    /// `saturated`, `waiters`, `slow_acquire`, `below_warm_minimum` or `above_server_limit`.
    pub code: &'static str,
    pub message: String,
}

impl PoolWarning {
    pub const CODES: [&'static str; 5] = [
        "saturated",
        "waiters",
        "slow_acquire",
        "below_warm_minimum",
        "above_server_limit",
    ];

    fn new(code: &'static str, message: String) -> Self {
        debug_assert!(Self::CODES.contains(&code));
        PoolWarning { code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        let mut counts = [0; BUCKETS];
        counts[3] = 94; // ≤ 1 ms
        counts[9] = 6; // ≤ 100 ms
        let wait = AcquireWait::of(&counts);
        assert_eq!(wait.samples, 100);
        assert_eq!(wait.p50_ms, Some(1.0));
        assert_eq!(wait.p95_ms, Some(100.0));
        assert_eq!(AcquireWait::of(&[0; BUCKETS]).p95_ms, None);
        counts[BUCKETS - 1] = 1000;
        assert_eq!(AcquireWait::of(&counts).p99_ms, Some(10_000.0));
    }

    fn healthy() -> PoolStatus {
        PoolStatus {
            size: 10,
            idle: 8,
            in_use: 2,
            max_open: 20,
            min_idle: 10,
            max_lifetime_seconds: Some(900),
            max_idle_time_seconds: Some(300),
            acquire_timeout_seconds: 5.0,
            writers: 0,
            server_max_connections: Some(100),
            waiters: 0,
            acquires: 1000,
            acquire_timeouts: 0,
            acquire_wait: AcquireWait {
                samples: 100,
                p50_ms: Some(0.1),
                p95_ms: Some(50.0),
                p99_ms: Some(100.0),
            },
            connections_opened: 10,
            connections_closed: ClosedConnections {
                lifetime: 0,
                idle: 0,
                broken: 0,
            },
        }
    }

    fn codes(status: &PoolStatus, replicas: u32) -> Vec<&'static str> {
        status.warnings(replicas).iter().map(|w| w.code).collect()
    }

    #[test]
    fn each_warning_has_its_threshold() {
        let ok = healthy();
        assert_eq!(codes(&ok, 5), Vec::<&str>::new());
        // 90 % of the maximum in use, not 89 %.
        let busy = PoolStatus {
            size: 20,
            idle: 2,
            in_use: 18,
            ..healthy()
        };
        assert_eq!(codes(&busy, 1), ["saturated"]);
        let busy = PoolStatus {
            size: 20,
            idle: 3,
            in_use: 17,
            ..healthy()
        };
        assert_eq!(codes(&busy, 1), Vec::<&str>::new());
        let queued = PoolStatus {
            waiters: 3,
            ..healthy()
        };
        assert_eq!(codes(&queued, 1), ["waiters"]);
        let slow = PoolStatus {
            acquire_wait: AcquireWait {
                p95_ms: Some(100.0),
                ..healthy().acquire_wait
            },
            ..healthy()
        };
        assert_eq!(codes(&slow, 1), ["slow_acquire"]);
        let cold = PoolStatus {
            size: 9,
            idle: 9,
            in_use: 0,
            ..healthy()
        };
        assert_eq!(codes(&cold, 1), ["below_warm_minimum"]);
        // 20 × 6 replicas > 100; SQLite (no server limit) never warns about it.
        assert_eq!(codes(&ok, 6), ["above_server_limit"]);
        let sqlite = PoolStatus {
            server_max_connections: None,
            ..healthy()
        };
        assert_eq!(codes(&sqlite, 6), Vec::<&str>::new());
    }
}

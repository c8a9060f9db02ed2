//! The pool's settings: a named mode's preset, which single variables may override.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    Default,
    HighThroughput,
    LowLatency,
}

impl PoolMode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "default" => Some(PoolMode::Default),
            "high-throughput" => Some(PoolMode::HighThroughput),
            "low-latency" => Some(PoolMode::LowLatency),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Default => "default",
            PoolMode::HighThroughput => "high-throughput",
            PoolMode::LowLatency => "low-latency",
        }
    }

    /// The preset every limit starts from.
    pub fn preset(self) -> PoolSettings {
        let (max_open, max_idle, lifetime, idle_time, acquire) = match self {
            PoolMode::Default => (50, 10, 900, 300, 5),
            PoolMode::HighThroughput => (200, 50, 900, 300, 10),
            PoolMode::LowLatency => (100, 25, 600, 120, 1),
        };
        PoolSettings {
            mode: self,
            max_open,
            max_idle,
            max_lifetime: Duration::from_secs(lifetime),
            max_idle_time: Duration::from_secs(idle_time),
            acquire_timeout: Duration::from_secs(acquire),
            overridden: Vec::new(),
        }
    }
}

/// Connection pool limits. For SQLite they size the reader pool; the writer is one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    pub mode: PoolMode,
    pub max_open: u32,
    /// Connections kept open (and opened at start-up) even when idle.
    pub max_idle: u32,
    /// 0 disables the limit.
    pub max_lifetime: Duration,
    /// 0 disables the limit.
    pub max_idle_time: Duration,
    pub acquire_timeout: Duration,
    /// Variables that overrode the mode's preset.
    pub overridden: Vec<&'static str>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolMode::Default.preset()
    }
}

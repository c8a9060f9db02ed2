//! The cache's namespaces and settings.

use std::time::Duration;

use crate::domain::string_enum;

string_enum! {
    /// What a cached value belongs to; the unit of invalidation.
    pub enum Namespace {
        Risks => "risks",
        // What one risk's page reads: the risk, its history, its mitigations. Each risk's
        // entries also carry a generation of their own, so a write to one risk leaves the
        // others' valid.
        RiskDetails => "risk_details",
        Mitigations => "mitigations",
        Assets => "assets",
        Dashboard => "dashboard",
        Marketplace => "marketplace",
        Reports => "reports",
        Auth => "auth",
    }
}

impl Namespace {
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// Whether each item's entries also carry the item's own generation.
    pub fn per_item(self) -> bool {
        self == Namespace::RiskDetails
    }

    /// How long an entry lives unless configured otherwise: aggregates and the catalogue change
    /// least often.
    pub fn default_ttl(self) -> Duration {
        match self {
            Namespace::Dashboard => Duration::from_secs(600),
            Namespace::Marketplace => Duration::from_secs(900),
            _ => Duration::from_secs(300),
        }
    }
}

/// Settings from the environment (see `docs/cache.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    pub enabled: bool,
    pub redis_url: Option<String>,
    /// Time to live per namespace, in `Namespace::ALL` order.
    pub ttl: Vec<Duration>,
    pub l1_max_bytes: u64,
    /// Larger responses are not cached.
    pub max_body_bytes: usize,
    /// The longest any Redis call may take.
    pub redis_timeout: Duration,
    /// The most rows (risks and mitigations) held in memory as organizations' registers (0: none).
    pub register_max_rows: usize,
}

impl CacheSettings {
    pub fn ttl(&self, namespace: Namespace) -> Duration {
        self.ttl[namespace.index()]
    }
}

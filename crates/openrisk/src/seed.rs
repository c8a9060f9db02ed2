//! `openrisk seed`: a deterministic, realistic register for demos and benchmarks.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::domain::asset::{Asset, AssetFields, AssetKind, Criticality};
use crate::domain::mitigation::{Mitigation, MitigationFields, MitigationStatus};
use crate::domain::risk::{Risk, RiskFields, RiskStatus, Treatment};
use crate::store::SeedBatch;

pub const CATEGORIES: &[&str] = &[
    "Operational",
    "Financial",
    "Compliance",
    "Security",
    "Strategic",
    "Reputational",
    "Legal",
    "Technology",
    "Supply chain",
    "Health & safety",
    "Environmental",
    "Privacy",
];
pub const TAGS: &[&str] = &[
    "gdpr",
    "sox",
    "iso27001",
    "cloud",
    "vendor",
    "ransomware",
    "pci",
    "budget",
    "hr",
    "availability",
    "data-loss",
    "access-control",
    "third-party",
    "regulatory",
    "fraud",
    "physical",
    "backup",
    "ai",
    "insider",
    "disaster-recovery",
];
const THREATS: &[&str] = &[
    "Ransomware attack on",
    "Data breach in",
    "Vendor insolvency affecting",
    "Regulatory fine over",
    "Key person departure from",
    "Prolonged outage of",
    "Phishing campaign against",
    "Supply delay for",
    "Currency exposure in",
    "Insider misuse of",
    "DDoS attack on",
    "License non-compliance in",
    "Fire damage to",
    "Flooding of",
    "Model drift in",
    "Unpatched vulnerabilities in",
];
const AREAS: &[&str] = &[
    "the payment platform",
    "the customer database",
    "HR systems",
    "EU operations",
    "the data warehouse",
    "the mobile app",
    "the ERP",
    "logistics",
    "the head office",
    "partner integrations",
    "the billing service",
    "the identity provider",
];
const ACTIONS: &[&str] = &[
    "Enable multi-factor authentication",
    "Run a tabletop exercise",
    "Negotiate a backup supplier",
    "Encrypt backups off-site",
    "Patch and harden servers",
    "Train staff on phishing",
    "Review access rights",
    "Buy cyber insurance",
    "Document the recovery runbook",
    "Hedge currency exposure",
    "Add monitoring and alerts",
    "Commission an external audit",
];
const STATUS_WEIGHTS: &[(RiskStatus, u32)] = &[
    (RiskStatus::Draft, 5),
    (RiskStatus::Open, 35),
    (RiskStatus::InProgress, 20),
    (RiskStatus::Mitigated, 15),
    (RiskStatus::Accepted, 10),
    (RiskStatus::Closed, 15),
];

/// Generates a register of `total` risks created over the past year, in batches: each batch
/// covers the next slice of the year, so references follow creation order across batches.
pub struct Generator {
    rng: StdRng,
    now: DateTime<Utc>,
    owners: Vec<Uuid>,
    assets: Vec<Uuid>,
    total: usize,
    generated: usize,
}

impl Generator {
    pub fn new(seed: u64, now: DateTime<Utc>, owners: Vec<Uuid>, total: usize) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            now,
            owners,
            assets: Vec::new(),
            total: total.max(1),
            generated: 0,
        }
    }

    fn id_at(&mut self, at: DateTime<Utc>) -> Uuid {
        let random: [u8; 10] = self.rng.random();
        uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &random).into_uuid()
    }

    /// When the `done`-th risk of the register was created: the year is shared out evenly.
    fn slice_start(&self, done: usize) -> DateTime<Utc> {
        let year = Duration::days(365).num_seconds();
        let share = year * done.min(self.total) as i64 / self.total as i64;
        self.now - Duration::seconds(year - share)
    }

    fn time_between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
        let span = (to - from).num_seconds().max(1);
        from + Duration::seconds(self.rng.random_range(0..span))
    }

    /// `count` assets that later risks link to.
    pub fn assets(&mut self, count: usize) -> Vec<Asset> {
        let year_ago = self.now - Duration::days(365);
        let assets: Vec<Asset> = (0..count)
            .map(|i| {
                let at = self.time_between(year_ago, self.now);
                let kind = *AssetKind::ALL.choose(&mut self.rng).unwrap_or(&AssetKind::Other);
                let fields = AssetFields {
                    name: format!("{} {}", kind.as_str().replace('_', " "), i + 1),
                    kind,
                    criticality: *Criticality::ALL
                        .choose(&mut self.rng)
                        .unwrap_or(&Criticality::Medium),
                    description: format!("Inventory item {} tracked by the register.", i + 1),
                    tags: self.tags(2),
                };
                Asset::new(self.id_at(at), fields, at)
            })
            .collect();
        self.assets.extend(assets.iter().map(|a| a.id));
        assets
    }

    fn tags(&mut self, max: usize) -> Vec<String> {
        let n = self.rng.random_range(0..=max);
        let mut tags: Vec<String> = TAGS
            .choose_multiple(&mut self.rng, n)
            .map(|t| t.to_string())
            .collect();
        tags.sort();
        tags
    }

    fn status(&mut self) -> RiskStatus {
        STATUS_WEIGHTS
            .choose_weighted(&mut self.rng, |(_, w)| *w)
            .map(|(s, _)| *s)
            .unwrap_or(RiskStatus::Open)
    }

    /// Risks numbered from `first_number`, created over the past year in order, each with 1–3
    /// mitigations.
    pub fn risks(&mut self, first_number: i64, count: usize) -> SeedBatch {
        let (from, to) = (
            self.slice_start(self.generated),
            self.slice_start(self.generated + count),
        );
        self.generated += count;
        let mut created: Vec<DateTime<Utc>> = (0..count).map(|_| self.time_between(from, to)).collect();
        created.sort();
        let mut batch = SeedBatch::default();
        for (i, created_at) in created.into_iter().enumerate() {
            let likelihood = self.rng.random_range(1..=5);
            let impact = self.rng.random_range(1..=5);
            let residual = self.rng.random_bool(0.5).then(|| {
                (
                    self.rng.random_range(1..=likelihood),
                    self.rng.random_range(1..=impact),
                )
            });
            let status = self.status();
            let threat = *THREATS.choose(&mut self.rng).unwrap_or(&THREATS[0]);
            let area = *AREAS.choose(&mut self.rng).unwrap_or(&AREAS[0]);
            let category = *CATEGORIES.choose(&mut self.rng).unwrap_or(&CATEGORIES[0]);
            let review_date = self
                .rng
                .random_bool(0.8)
                .then(|| (self.now + Duration::days(self.rng.random_range(-90..180))).date_naive());
            let owner_id = if self.rng.random_bool(0.9) {
                self.owners.choose(&mut self.rng).copied()
            } else {
                None
            };
            let asset_count = self.rng.random_range(0..=2).min(self.assets.len());
            let mut asset_ids: Vec<Uuid> = self
                .assets
                .choose_multiple(&mut self.rng, asset_count)
                .copied()
                .collect();
            asset_ids.sort();
            let fields = RiskFields {
                title: format!("{threat} {area}"),
                description: format!(
                    "{threat} {area} could disrupt {} activities. Identified during the {} review; \
                     tested by control CTL-{:04}.",
                    category.to_lowercase(),
                    created_at.format("%B %Y"),
                    self.rng.random_range(0..10_000)
                ),
                category: Some(category.to_owned()),
                owner_id,
                status,
                likelihood,
                impact,
                residual_likelihood: residual.map(|r| r.0),
                residual_impact: residual.map(|r| r.1),
                treatment: if self.rng.random_bool(0.85) {
                    Treatment::ALL.choose(&mut self.rng).copied()
                } else {
                    None
                },
                tags: self.tags(4),
                asset_ids,
                review_date,
            };
            let id = self.id_at(created_at);
            let mut risk = Risk::new(id, first_number + i as i64, fields, created_at);
            risk.updated_at = self.time_between(created_at, self.now);
            if status == RiskStatus::Closed {
                risk.closed_at = Some(risk.updated_at);
            }
            let mitigations = self.rng.random_range(1..=3);
            for _ in 0..mitigations {
                batch.mitigations.push(self.mitigation(&risk));
            }
            risk.mitigation_count = mitigations;
            batch.risks.push(risk);
        }
        batch
    }

    fn mitigation(&mut self, risk: &Risk) -> Mitigation {
        let created_at = self.time_between(risk.created_at, self.now);
        let status = *MitigationStatus::ALL
            .choose(&mut self.rng)
            .unwrap_or(&MitigationStatus::Planned);
        let fields = MitigationFields {
            title: ACTIONS.choose(&mut self.rng).unwrap_or(&ACTIONS[0]).to_string(),
            description: format!("Reduces {}.", risk.reference),
            status,
            owner_id: self.owners.choose(&mut self.rng).copied(),
            due_date: Some((created_at + Duration::days(self.rng.random_range(7..240))).date_naive()),
            progress: match status {
                MitigationStatus::Done => 100,
                MitigationStatus::Planned => 0,
                _ => self.rng.random_range(0..100),
            },
            cost: self
                .rng
                .random_bool(0.7)
                .then(|| f64::from(self.rng.random_range(5..500u32)) * 100.0),
        };
        let id = self.id_at(created_at);
        Mitigation::new(id, risk.id, fields, created_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_register() {
        let now = crate::domain::now();
        let owners = vec![Uuid::nil()];
        let mut a = Generator::new(9, now, owners.clone(), 50);
        let mut b = Generator::new(9, now, owners, 50);
        a.assets(5);
        b.assets(5);
        let (a, b) = (a.risks(1, 50), b.risks(1, 50));
        assert_eq!(a.risks, b.risks);
        assert_eq!(a.mitigations, b.mitigations);
        assert!(a.risks.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    }
}

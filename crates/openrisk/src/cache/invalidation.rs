//! Which cached namespaces each kind of write makes stale: the one table invalidation follows.

use uuid::Uuid;

use super::scope::Scope;
use super::settings::Namespace::{self, *};

/// A kind of write, named by what it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// A risk is created: no one has read its details yet.
    NewRisk,
    Risk,
    Mitigation,
    Asset,
    Installation,
    User,
    Token,
}

/// What one write makes stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub namespaces: Vec<Namespace>,
    /// The one risk whose details (`RiskDetails`) changed, the others' staying valid.
    pub risk: Option<Uuid>,
}

impl Mutation {
    /// Every namespace holding a representation the write can change. `risk` is the risk the
    /// write changed, when the route names it: then only that risk's details are stale, else all.
    pub fn affects(self, risk: Option<Uuid>) -> Stale {
        let (namespaces, changes_details): (&[Namespace], bool) = match self {
            Mutation::NewRisk => (&[Risks, Dashboard, Reports], false),
            // Deleting a risk deletes its mitigations.
            Mutation::Risk => (&[Risks, Mitigations, Dashboard, Reports], true),
            // Risks show their mitigation count.
            Mutation::Mitigation => (&[Mitigations, Risks, Dashboard, Reports], true),
            // Risks list their assets; deleting an asset unlinks it, and the top risks shown by the
            // dashboard and the summary are full risks.
            Mutation::Asset => (&[Assets, Risks, RiskDetails, Dashboard, Reports], false),
            Mutation::Installation => (&[Marketplace], false),
            // Token lookups. Answers that differ by role carry the role in their key.
            Mutation::User | Mutation::Token => (&[Auth], false),
        };
        let mut namespaces = namespaces.to_vec();
        let risk = match (changes_details, risk) {
            (true, Some(risk)) => Some(risk),
            (true, None) => {
                namespaces.push(RiskDetails);
                None
            }
            (false, _) => None,
        };
        Stale { namespaces, risk }
    }
}

impl Stale {
    /// The items whose own generations the write replaces, in `org`.
    pub fn items(&self, org: Uuid) -> Vec<Scope> {
        let details = |risk| Scope::item(org, RiskDetails, risk);
        self.risk.map(details).into_iter().collect()
    }
}

//! Which cached namespaces each kind of write makes stale: the one table invalidation follows.

use super::Namespace::{self, *};

/// A kind of write, named by what it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    Risk,
    Mitigation,
    Asset,
    Installation,
    User,
    Token,
}

impl Mutation {
    /// Every namespace holding a representation the write can change.
    pub fn affects(self) -> &'static [Namespace] {
        match self {
            // Deleting a risk deletes its mitigations.
            Mutation::Risk => &[Risks, Mitigations, Dashboard, Reports],
            // Risks show their mitigation count.
            Mutation::Mitigation => &[Mitigations, Risks, Dashboard, Reports],
            // Risks list their assets; deleting an asset unlinks it, and the top risks shown by the
            // dashboard and the summary are full risks.
            Mutation::Asset => &[Assets, Risks, Dashboard, Reports],
            Mutation::Installation => &[Marketplace],
            // Token lookups; the role is part of every other key already.
            Mutation::User | Mutation::Token => &[Auth],
        }
    }
}

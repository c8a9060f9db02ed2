//! The map of principals: the principal behind each token hash, as last read.
//!
//! Invariant: a remembered principal is used only while the key epoch and its organization's
//! `auth` generation are the ones it was read under, so that a request known already costs one
//! lookup and still sees any change to its user or token.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::counts::{Outcome, Tier};
use super::keys;
use super::scope::Scope;
use super::settings::Namespace;
use super::tiers::Tiers;
use crate::domain::auth::Principal;
use crate::store::{Store, StoreError};

/// A token to look up, and the key epoch read before its generation.
pub struct Token<'a> {
    pub store: &'a dyn Store,
    pub hash: &'a [u8],
    pub now: DateTime<Utc>,
    pub epoch: u64,
}

impl<'a> Token<'a> {
    pub fn new(store: &'a dyn Store, hash: &'a [u8], now: DateTime<Utc>, epoch: u64) -> Self {
        Token {
            store,
            hash,
            now,
            epoch,
        }
    }
}

pub struct Principals(moka::future::Cache<Vec<u8>, Arc<KnownPrincipal>>);

struct KnownPrincipal {
    principal: Principal,
    epoch: u64,
    generation: u64,
}

impl KnownPrincipal {
    /// The principal, if it was read under this epoch and generation.
    fn current_at(&self, epoch: u64, generation: u64) -> Option<&Principal> {
        (self.epoch == epoch && self.generation == generation).then_some(&self.principal)
    }
}

impl Default for Principals {
    fn default() -> Self {
        Principals(
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        )
    }
}

impl Principals {
    /// The principal `token` stands for, through the `auth` namespace of its organization, whose
    /// generation `generation` gives (`None`: the cache may not be used now).
    pub async fn authenticate<G: Future<Output = Option<u64>>>(
        &self,
        tiers: &Tiers,
        token: Token<'_>,
        generation: impl FnOnce(Scope) -> G,
    ) -> Result<Option<Principal>, Arc<StoreError>> {
        let Token {
            store,
            hash,
            now,
            epoch,
        } = token;
        let look_up = || async { store.authenticate(hash, now).await.map_err(Arc::new) };
        let known = self.0.get(hash).await;
        let org = match &known {
            // A token's organization never changes.
            Some(known) => known.principal.organization_id,
            None => match look_up().await? {
                Some(principal) => principal.organization_id,
                None => return Ok(None),
            },
        };
        let scope = Scope::namespace(org, Namespace::Auth);
        let Some(generation) = generation(scope).await else {
            tiers.counts.add(Namespace::Auth, Tier::L1, Outcome::Bypass);
            return look_up().await;
        };
        let principal = match known.as_deref().and_then(|k| k.current_at(epoch, generation)) {
            Some(principal) => {
                tiers.counts.add(Namespace::Auth, Tier::L1, Outcome::Hit);
                Some(principal.clone())
            }
            // Boxed, so that a request known already does not carry a lookup's state.
            None => {
                let key = keys::key(epoch, scope, generation, &[b"token", hash]);
                let read = tiers.get_or_set(scope, key, || store.authenticate(hash, now));
                let read: Option<Principal> = Box::pin(read).await?;
                self.remember(hash, read.as_ref(), epoch, generation).await;
                read
            }
        };
        Ok(principal.filter(|p| p.expires_at.is_none_or(|at| at > now)))
    }

    /// Remembers what `token_hash` stands for, as read under `epoch` and `generation`; a token
    /// that stands for no one is forgotten.
    async fn remember(&self, token_hash: &[u8], principal: Option<&Principal>, epoch: u64, generation: u64) {
        match principal {
            Some(principal) => {
                let known = KnownPrincipal {
                    principal: principal.clone(),
                    epoch,
                    generation,
                };
                self.0.insert(token_hash.to_vec(), Arc::new(known)).await
            }
            None => self.0.invalidate(token_hash).await,
        }
    }
}

//! The map of principals: the principal behind each token hash, as last read.
//!
//! Invariant: a remembered principal is used only while the key epoch and its organization's
//! `auth` generation are the ones it was read under, so that a request known already costs one
//! lookup and still sees any change to its user or token.
//!
//! A token that stands for no one is remembered too, for `UNKNOWN_FOR` and under the key epoch it
//! was read in: a token's value is drawn at random when it is created, so one looked up before it
//! existed is one nobody held; only a restore brings tokens back, and it moves the epoch.

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

/// How long a token found to stand for no one is answered 401 without a lookup.
const UNKNOWN_FOR: Duration = Duration::from_secs(60);

pub struct Principals {
    known: moka::future::Cache<Vec<u8>, Arc<KnownPrincipal>>,
    /// Token hashes that stood for no one, with the key epoch of the lookup.
    unknown: moka::sync::Cache<Vec<u8>, u64>,
}

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
        Principals {
            known: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            unknown: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(UNKNOWN_FOR)
                .build(),
        }
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
        let known = self.known.get(hash).await;
        let org = match &known {
            // A token's organization never changes.
            Some(known) => known.principal.organization_id,
            None if self.unknown.get(hash) == Some(epoch) => return Ok(None),
            None => match look_up().await? {
                Some(principal) => principal.organization_id,
                None => {
                    self.unknown.insert(hash.to_vec(), epoch);
                    return Ok(None);
                }
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
                self.known.insert(token_hash.to_vec(), Arc::new(known)).await
            }
            None => self.known.invalidate(token_hash).await,
        }
    }
}

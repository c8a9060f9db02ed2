//! Keys: of entries (a hash of what identifies the value) and of their places in Redis.

use std::sync::atomic::Ordering::Relaxed;

use uuid::Uuid;

use super::{Cache, Scope};

impl Cache {
    /// What every key carries of the epochs: Redis's and the data's (see `replication`).
    pub(super) fn key_epoch(&self) -> u64 {
        self.epoch.load(Relaxed) ^ self.data_epoch.load(Relaxed)
    }

    /// The key of a value in `scope` at `generation`, identified by `parts`.
    pub fn key(&self, scope: Scope, generation: u64, parts: &[&[u8]]) -> u128 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.key_epoch().to_le_bytes());
        hasher.update(scope.org.as_bytes());
        hasher.update(scope.namespace.as_str().as_bytes());
        if let Some(item) = scope.item {
            hasher.update(item.as_bytes());
        }
        hasher.update(&generation.to_le_bytes());
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let mut first = [0u8; 16];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        u128::from_le_bytes(first)
    }
}

/// Redis keys carry the organization as a hash tag: one organization's keys share a cluster slot.
pub(super) fn entry_key(org: Uuid, key: u128) -> String {
    format!("openrisk:{{{org}}}:c:{key:032x}")
}

pub(super) fn generation_key(scope: Scope) -> String {
    match scope.item {
        None => format!("openrisk:{{{}}}:g:{}", scope.org, scope.namespace),
        Some(item) => format!("openrisk:{{{}}}:g:{}:{item}", scope.org, scope.namespace),
    }
}

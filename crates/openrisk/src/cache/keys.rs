//! Keys: of entries (a hash of what identifies the value) and of their places in Redis.

use uuid::Uuid;

use super::origin::ReadRequest;
use super::scope::Scope;

/// The key of a cacheable read at `generation`: its parts, and today's date when its answer holds
/// figures relative to today.
pub fn read_key(epoch: u64, scope: Scope, generation: u64, read: &ReadRequest<'_>) -> u128 {
    if !read.per_day {
        return key(epoch, scope, generation, read.parts);
    }
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive().num_days_from_ce().to_le_bytes();
    let mut parts = read.parts.to_vec();
    parts.push(&today);
    key(epoch, scope, generation, &parts)
}

/// The key of a value in `scope` at `generation` under the key epoch `epoch` (see `coherence`),
/// identified by `parts`: 128 bits of BLAKE3.
pub fn key(epoch: u64, scope: Scope, generation: u64, parts: &[&[u8]]) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&epoch.to_le_bytes());
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

/// Redis keys carry the organization as a hash tag: one organization's keys share a cluster slot.
pub fn entry_key(org: Uuid, key: u128) -> String {
    format!("openrisk:{{{org}}}:c:{key:032x}")
}

pub fn generation_key(scope: Scope) -> String {
    match scope.item {
        None => format!("openrisk:{{{}}}:g:{}", scope.org, scope.namespace),
        Some(item) => format!("openrisk:{{{}}}:g:{}:{item}", scope.org, scope.namespace),
    }
}

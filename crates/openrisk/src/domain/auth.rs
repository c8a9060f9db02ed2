//! Roles, principals and bearer tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::string_enum;

string_enum! {
    /// Each role includes the ones before it.
    pub enum Role { Viewer => "viewer", Analyst => "analyst", Admin => "admin" }
}

/// Who is calling: resolved from a bearer token on every request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub token_id: Uuid,
    /// The lower of the token's role and its user's current role.
    pub role: Role,
    /// May create organizations.
    pub system: bool,
    /// When the token stops working, if ever.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.role >= role
    }
}

const TOKEN_PREFIX: &str = "ort_";

/// A new random token (256 bits) as shown to the client once.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What the database stores instead of the token. Tokens carry 256 bits of entropy, so a fast
/// cryptographic hash is enough (no password-style stretching) and verifying costs microseconds.
/// Tokens are only ever looked up by this hash, never compared themselves: the time a lookup
/// takes depends on hash bytes, which tell nothing about any token.
pub fn hash_token(token: &str) -> Vec<u8> {
    blake3::hash(token.as_bytes()).as_bytes().to_vec()
}

//! Records the store keeps that only the server needs (the shared domain types live in core).

use latchkey_core::{TokenHash, UnixTime};

/// A signing key as stored: the public JWK in the clear, the private key encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    /// Encrypted under the master key by the signer; opaque to the store.
    pub private_key: String,
    pub created_at: UnixTime,
    /// From this time on the key may sign.
    pub activates_at: UnixTime,
    /// From this time on the key no longer signs (a newer key took over); it stays published
    /// until every token it signed has expired.
    pub retired_at: Option<UnixTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: UnixTime,
    pub kind: String,
    pub actor: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    /// JSON object; never a secret.
    pub detail: String,
}

/// A browser session. The cookie holds a 256-bit secret; the store holds its hash.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id_hash: TokenHash,
    /// Public session identifier, the `sid` claim.
    pub sid: String,
    pub user_id: String,
    pub auth_time: UnixTime,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

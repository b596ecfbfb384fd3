//! Subject identifiers (OIDC Core §8): `public` (the user's id) or `pairwise` (a per-sector
//! value that different sectors cannot correlate).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::model::{Client, SubjectType};
use sha2::{Digest, Sha256};

use crate::state::AppStateInner;

/// OIDC Core §8.1: sub = BASE64URL(SHA-256(sector_identifier || local_account_id || salt)),
/// with a secret salt. Clients without a sector (no redirect URIs) use their client id.
pub fn pairwise(salt: &[u8], sector: &str, user_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(sector.as_bytes());
    h.update([0u8]);
    h.update(user_id.as_bytes());
    h.update([0u8]);
    h.update(salt);
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// The `sub` this client sees for this user.
pub fn for_client(state: &AppStateInner, client: &Client, user_id: &str) -> String {
    with_salt(state.pairwise_salt.as_slice(), client, user_id)
}

/// [`for_client`] for callers that hold only the salt (the CLI).
pub fn with_salt(salt: &[u8], client: &Client, user_id: &str) -> String {
    match client.subject_type {
        SubjectType::Public => user_id.to_owned(),
        SubjectType::Pairwise => {
            let sector = client.sector().unwrap_or_else(|| client.client_id.clone());
            pairwise(salt, &sector, user_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_differs_by_sector_and_is_stable() {
        let salt = [7u8; 32];
        let a = pairwise(&salt, "a.example", "u1");
        assert_eq!(a, pairwise(&salt, "a.example", "u1"));
        assert_ne!(a, pairwise(&salt, "b.example", "u1"));
        assert_ne!(a, pairwise(&salt, "a.example", "u2"));
        assert_ne!(a, pairwise(&[8u8; 32], "a.example", "u1"));
        assert_eq!(a.len(), 43);
        // No ambiguity from concatenation.
        assert_ne!(pairwise(&salt, "ab", "c"), pairwise(&salt, "a", "bc"));
    }
}
